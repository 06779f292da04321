package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// scenario is one comparison of the run: the same requests against Caddy A (without
// pii_vault) and Caddy B (with it).
type scenario struct {
	name string
	req  request

	// minRatio is the target for B's throughput over A's; maxP99Ratio, when set, the
	// target for B's p99 latency over A's.
	minRatio    float64
	maxP99Ratio float64

	// sampleRSS makes the rounds record Caddy's peak resident set.
	sampleRSS bool
}

// maxRSS is the target for B's peak resident set in the 1 MB scenario.
const maxRSS = 150 << 20

// maxP99GrowthMillis is the target for how much B's p99 latency may exceed A's at half of A's
// maximum rate, in the reveal scenario.
const maxP99GrowthMillis = 1.0

// scenarios returns the scenarios of the run, with the bodies that setup prepared.
func scenarios(f fixtures) []scenario {
	return []scenario{
		{name: "nomatch", req: request{"POST", "/nomatch", f.small},
			minRatio: 0.95, maxP99Ratio: 1.10},
		{name: "tokenize10", req: request{"POST", "/tokenize", f.small}, minRatio: 0.70},
		{name: "reveal10", req: request{"GET", "/reveal", nil}, minRatio: 0.80},
		{name: "large-reveal", req: request{"GET", "/large-reveal", nil}, minRatio: 0.60},
		{name: "large-redact", req: request{"GET", "/large-redact", nil}, minRatio: 0.60},
		{name: "big-1mb", req: request{"POST", "/big", f.big}, sampleRSS: true},
	}
}

// fixtures are the request bodies of the run.
type fixtures struct {
	small []byte // 1 KB with 10 fields f0 to f9 to tokenize
	large []byte // about 100 KB with 1,000 items whose email is an object ID
	big   []byte // about 1 MB that no rule selects anything in
}

// smallBody returns a JSON object of 1,024 bytes with the plaintext fields f0 to f9.
func smallBody() []byte {
	var b bytes.Buffer
	b.WriteString(`{"id":"u_1","name":"Alice Example"`)
	for i := range 10 {
		fmt.Fprintf(&b, `,"f%d":"user%d@example.com"`, i, i)
	}
	b.WriteString(`,"notes":"`)
	b.WriteString(strings.Repeat("x", 1024-b.Len()-len(`"}`)))
	b.WriteString(`"}`)
	return b.Bytes()
}

// itemsBody returns {"items":[...]} with n items whose email is a plaintext value and
// whose pad member has padding bytes.
func itemsBody(n, padding int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"items":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"u_%d","email":"user%d@example.com","name":"User %d","pad":"%s"}`,
			i, i, i, strings.Repeat("y", padding))
	}
	b.WriteString(`]}`)
	return b.Bytes()
}

// prepare creates the run's objects through B and stores the tokenized bodies in the
// upstream as the fixtures that the reveal and redact routes serve.
func prepare(urlB, upstreamURL string) (fixtures, error) {
	f := fixtures{small: smallBody(), big: itemsBody(9800, 30)}

	// the tokenize routes return the upstream's echo, which is the body with object IDs
	tokenized, err := send("POST", urlB+"/tokenize", f.small)
	if err != nil {
		return f, fmt.Errorf("tokenizing the 1 KB body: %w", err)
	}
	// 1,000 items of about 100 bytes once their emails are object IDs
	f.large, err = send("POST", urlB+"/large-tokenize", itemsBody(1000, 20))
	if err != nil {
		return f, fmt.Errorf("tokenizing the 100 KB body: %w", err)
	}
	if n := bytes.Count(tokenized, []byte(`"secret_`)); n != 10 {
		return f, fmt.Errorf("tokenized 1 KB body has %d object IDs, want 10", n)
	}
	if n := bytes.Count(f.large, []byte(`"secret_`)); n != 1000 {
		return f, fmt.Errorf("tokenized 100 KB body has %d object IDs, want 1000", n)
	}

	for path, body := range map[string][]byte{
		"/reveal": tokenized, "/large-reveal": f.large, "/large-redact": f.large,
	} {
		if _, err := send("PUT", upstreamURL+path, body); err != nil {
			return f, fmt.Errorf("storing fixture %s: %w", path, err)
		}
	}
	return f, checkReveal(urlB)
}

// checkReveal checks that B's reveal route returns plaintext, so that the reveal
// rounds measure reveals and not denials.
func checkReveal(urlB string) error {
	body, err := send("GET", urlB+"/reveal", nil)
	if err != nil {
		return err
	}
	if bytes.Count(body, []byte("@example.com")) != 10 {
		return fmt.Errorf("reveal route returned %d plaintext values, want 10",
			bytes.Count(body, []byte("@example.com")))
	}
	return nil
}

// send sends one request with the run's tenant and returns the response body, or an
// error for a status other than 2xx.
func send(method, url string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("X-Organization-Id", "org_bench")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, err
	}
	if res.StatusCode < 200 || res.StatusCode >= 300 {
		return nil, fmt.Errorf("%s %s: status %d: %s", method, url, res.StatusCode, data)
	}
	return data, nil
}
