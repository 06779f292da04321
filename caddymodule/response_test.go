package caddymodule

import (
	"compress/gzip"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
)

// tokenizeEcho starts a Caddy whose upstream echoes the request body, with the
// handler block rules, and returns the site and the upstream.
func tokenizeEcho(t *testing.T, rules string) (*site, *recordingUpstream) {
	t.Helper()
	upstream := newRecordingUpstream(t)
	s := mustStartCaddy(t, localStoreGlobals(t.TempDir()), fmt.Sprintf(`
	pii_vault {
		context organization_id {http.request.header.X-Organization-Id}
		%s
	}
	reverse_proxy %s`, rules, upstream.hostPort()))
	return s, upstream
}

func postJSON(s *site, body string) response {
	s.t.Helper()
	return s.do("POST", "/", body, "Content-Type: application/json", "X-Organization-Id: org_a")
}

func TestRoundTripKeepsTypes(t *testing.T) {
	s, upstream := tokenizeEcho(t, `
		tokenize $.email $.age $.tags $.profile $.active $.none $.text
		reveal $.email $.age $.tags $.profile $.active $.none $.text`)

	body := `{"email":"alice@example.com","age":42.50,"tags":["a",1,{"b":null}],` +
		`"profile":{"x":[1,2],"y":"\u00e9"},"active":false,"none":null,"text":"line\nbreak \"q\""}`
	res := postJSON(s, body)

	if string(res.body) != body {
		t.Errorf("round trip changed the body:\n got %s\nwant %s", res.body, body)
	}
	forwarded := string(upstream.received()[0].body)
	for _, plain := range []string{"alice@", "42.50", `"b"`, `\u00e9`, "false", "break"} {
		if strings.Contains(forwarded, plain) {
			t.Errorf("upstream received %q: %s", plain, forwarded)
		}
	}
	if !strings.Contains(forwarded, `"none":null`) {
		t.Errorf("null was tokenized: %s", forwarded)
	}
}

func TestResponseHeadersAfterReveal(t *testing.T) {
	s, upstream := tokenizeEcho(t, `
		tokenize $.email
		reveal $.email`)
	upstream.setReply(func(w http.ResponseWriter, r *http.Request, body []byte) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Etag", `"v1"`)
		w.Header().Set("Last-Modified", "Mon, 02 Jan 2006 15:04:05 GMT")
		w.Header().Set("Accept-Ranges", "bytes")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})

	res := postJSON(s, `{"email": "alice@example.com"}`)
	if string(res.body) != `{"email": "alice@example.com"}` {
		t.Fatalf("body %s", res.body)
	}
	if cl := res.header.Get("Content-Length"); cl != strconv.Itoa(len(res.body)) {
		t.Errorf("Content-Length %s for a body of %d bytes", cl, len(res.body))
	}
	for _, name := range []string{"Etag", "Last-Modified", "Accept-Ranges"} {
		if v := res.header.Get(name); v != "" {
			t.Errorf("%s: %s passed on a rewritten body", name, v)
		}
	}
	if cc := res.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}

	got := upstream.received()[0].header
	if ae := got.Get("Accept-Encoding"); ae != "identity" {
		t.Errorf("upstream got Accept-Encoding %q, want identity", ae)
	}
}

func TestResponseActions(t *testing.T) {
	s, _ := tokenizeEcho(t, `
		tokenize $.email $.phone $.card $.ssn
		mask $.email email
		mask $.phone last4
		mask $.card full
		describe $.ssn
		redact $.secret`)

	res := postJSON(s, `{"email": "alice@example.com", "phone": "+1 555 0100",`+
		` "card": "4111", "ssn": "123-45-6789", "secret": {"pin": 1234}}`)
	got := res.json(t)

	want := map[string]any{
		"email": "a****@example.com", "phone": "*******0100", "card": "****", "secret": nil,
	}
	for field, value := range want {
		if got[field] != value {
			t.Errorf("%s = %#v, want %#v", field, got[field], value)
		}
	}
	meta, ok := got["ssn"].(map[string]any)
	if !ok {
		t.Fatalf("ssn = %#v, want metadata", got["ssn"])
	}
	if keys := fmt.Sprint(meta["context_keys"]); keys != "[organization_id]" {
		t.Errorf("context_keys = %s", keys)
	}
	if strings.Contains(string(res.body), "6789") {
		t.Errorf("describe revealed the value: %s", res.body)
	}
}

func TestRequestPhaseReveal(t *testing.T) {
	// one route tokenizes, an egress route reveals on the way to a provider
	dir := t.TempDir()
	provider := newRecordingUpstream(t)
	s := mustStartCaddy(t, localStoreGlobals(dir), fmt.Sprintf(`
	handle /store {
		pii_vault {
			context organization_id {http.request.header.X-Organization-Id}
			tokenize $.to
		}
		respond {http.request.body} 200
	}
	handle /send {
		pii_vault {
			context organization_id {http.request.header.X-Organization-Id}
			request {
				reveal $.to
			}
		}
		reverse_proxy %s
	}`, provider.hostPort()))

	stored := s.do("POST", "/store", `{"to": "alice@example.com"}`,
		"Content-Type: application/json", "X-Organization-Id: org_a")
	if strings.Contains(string(stored.body), "alice") {
		t.Fatalf("store route returned plaintext: %s", stored.body)
	}

	s.do("POST", "/send", string(stored.body), "Content-Type: application/json", "X-Organization-Id: org_a")
	if got := string(provider.received()[0].body); got != `{"to": "alice@example.com"}` {
		t.Errorf("provider received %s, want the plaintext", got)
	}

	s.do("POST", "/send", string(stored.body), "Content-Type: application/json", "X-Organization-Id: org_b")
	if got := string(provider.received()[1].body); got != string(stored.body) {
		t.Errorf("another tenant's send carried %s, want the ID", got)
	}
}

func TestResponsePhaseTokenize(t *testing.T) {
	s, _ := tokenizeEcho(t, `
		response {
			tokenize $.notes
		}`)
	res := postJSON(s, `{"notes": "call alice@example.com"}`)
	if strings.Contains(string(res.body), "alice") {
		t.Errorf("client got plaintext: %s", res.body)
	}
}

func TestOnDeniedNull(t *testing.T) {
	s, upstream := tokenizeEcho(t, `
		reveal $.email $.id
		on_denied null`)
	upstream.replyJSON(`{"email": "secret_0123456789ABCDEF0123456789ABCDEF", "id": "not an ID"}`)

	res := s.do("GET", "/", "", "X-Organization-Id: org_a")
	if string(res.body) != `{"email": null, "id": null}` {
		t.Errorf("body %s, want both nulled", res.body)
	}
}

func TestNestedRulesOutermostWins(t *testing.T) {
	s, upstream := tokenizeEcho(t, `
		tokenize $.profile $.profile.email
		reveal $.profile`)
	res := postJSON(s, `{"profile": {"email": "alice@example.com"}}`)

	forwarded := string(upstream.received()[0].body)
	if strings.Count(forwarded, "secret_") != 1 {
		t.Errorf("want one object for the whole profile, upstream got %s", forwarded)
	}
	if string(res.body) != `{"profile": {"email": "alice@example.com"}}` {
		t.Errorf("reveal gave %s", res.body)
	}
}

func TestResponsesPassedThrough(t *testing.T) {
	s, upstream := tokenizeEcho(t, `reveal $.email`)
	const id = `{"email": "secret_0123456789ABCDEF0123456789ABCDEF"}`

	tests := []struct {
		name   string
		method string
		reply  func(w http.ResponseWriter)
		status int
		body   string
	}{
		{"partial content", "GET", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Range", "bytes 0-9/100")
			w.WriteHeader(206)
			_, _ = w.Write([]byte(id[:10]))
		}, 206, id[:10]},
		{"event stream", "GET", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = w.Write([]byte("data: hello\n\n"))
		}, 200, "data: hello\n\n"},
		{"not modified", "GET", func(w http.ResponseWriter) {
			w.WriteHeader(304)
		}, 304, ""},
		{"head", "HEAD", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "55")
		}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upstream.setReply(func(w http.ResponseWriter, _ *http.Request, _ []byte) { tt.reply(w) })
			res := s.do(tt.method, "/", "", "X-Organization-Id: org_a")
			if res.status != tt.status {
				t.Errorf("status %d, want %d", res.status, tt.status)
			}
			if string(res.body) != tt.body {
				t.Errorf("body %q, want %q", res.body, tt.body)
			}
		})
	}
}

func TestResponsesFailedClosed(t *testing.T) {
	s, upstream := tokenizeEcho(t, `
		reveal $.email
		max_body_size 1KiB`)

	tests := []struct {
		name  string
		reply func(w http.ResponseWriter)
	}{
		{"too large", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"pad": "` + strings.Repeat("x", 4096) + `"}`))
		}},
		{"too large, chunked", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			for range 8 {
				_, _ = w.Write([]byte(strings.Repeat(" ", 512)))
				http.NewResponseController(w).Flush()
			}
		}},
		{"gzip", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "gzip")
			gz := gzip.NewWriter(w)
			_, _ = gz.Write([]byte(`{"email": "x"}`))
			_ = gz.Close()
		}},
		{"invalid json", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"email": "x"`))
		}},
		{"shorter than its Content-Length", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", "100")
			_, _ = w.Write([]byte(`{"email": "x"}`))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upstream.setReply(func(w http.ResponseWriter, _ *http.Request, _ []byte) { tt.reply(w) })
			res := s.do("GET", "/", "", "X-Organization-Id: org_a", "Accept-Encoding: identity")
			if res.status != 502 {
				t.Errorf("status %d, want 502: %s", res.status, res.body)
			}
			if ct := res.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q, want application/problem+json", ct)
			}
		})
	}
}

func TestMaskHidesPlaintextFromUpstream(t *testing.T) {
	s, upstream := tokenizeEcho(t, `
		mask $.ssn last4
		mask $.card last4`)
	// values that reached the app's database before piivault, or around it
	upstream.replyJSON(`{"ssn": "999-88-7777", "card": 4111111111111111}`)

	res := s.do("GET", "/", "", "X-Organization-Id: org_a")
	if got := string(res.body); got != `{"ssn": "*******7777", "card": "************1111"}` {
		t.Errorf("body %s, want both masked", got)
	}
}

func TestDenialsLoggedOncePerBody(t *testing.T) {
	s, upstream := tokenizeEcho(t, `reveal $[*].email`)
	id := "secret_00000000000000000000000000000ABC"
	upstream.replyJSON(`[` + strings.TrimSuffix(strings.Repeat(fmt.Sprintf(`{"email": %q},`, id), 500), ",") + `]`)

	before := countLogLines(t, `"msg":"denied"`)
	s.do("GET", "/", "", "X-Organization-Id: org_a")
	if n := countLogLines(t, `"msg":"denied"`) - before; n != 1 {
		t.Errorf("%d denial lines for one body, want 1", n)
	}
	if !logContains(t, `"msg":"denied"`, `"count":500`) {
		t.Error("the denial line does not count the 500 values")
	}
}

// countLogLines returns the number of lines of the suite's log that contain part.
func countLogLines(t *testing.T, part string) int {
	t.Helper()
	data, err := os.ReadFile(suiteLog)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), part)
}
