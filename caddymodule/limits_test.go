package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestLimitsOverHTTP2(t *testing.T) {
	upstream := newRecordingUpstream(t)
	s := mustStartCaddy(t, localStoreGlobals(t.TempDir())+`
	servers {
		protocols h1 h2c
	}`, fmt.Sprintf(`
	pii_vault {
		context organization_id {http.request.header.X-Organization-Id}
		tokenize $.email
		max_body_size 1KiB
	}
	reverse_proxy %s`, upstream.hostPort()))

	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	client := &http.Client{Transport: &http.Transport{Protocols: &protocols}}

	post := func(body io.Reader) *http.Response {
		req, err := http.NewRequest("POST", s.url+"/", body)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Organization-Id", "org_a")
		res, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res
	}

	res := post(strings.NewReader(`{"email": "alice@example.com"}`))
	if res.ProtoMajor != 2 {
		t.Fatalf("protocol %s, want HTTP/2", res.Proto)
	}
	if res.StatusCode != 200 {
		t.Errorf("status %d, want 200", res.StatusCode)
	}

	big := `{"email": "alice@example.com", "pad": "` + strings.Repeat("x", 4096) + `"}`
	for name, body := range map[string]io.Reader{
		"declared length": strings.NewReader(big),
		"unknown length":  io.MultiReader(strings.NewReader(big)),
	} {
		if res := post(body); res.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("%s: status %d, want 413", name, res.StatusCode)
		}
	}
	for _, r := range upstream.received() {
		if bytes.Contains(r.body, []byte("alice")) {
			t.Errorf("upstream received plaintext: %s", r.body)
		}
	}
}

func TestDeepNestingRejected(t *testing.T) {
	upstream := newRecordingUpstream(t)
	s := mustStartCaddy(t, localStoreGlobals(t.TempDir()), fmt.Sprintf(`
	pii_vault {
		context organization_id {http.request.header.X-Organization-Id}
		tokenize $..email
		max_body_size 16MiB
	}
	reverse_proxy %s`, upstream.hostPort()))

	res := s.do("POST", "/", strings.Repeat("[", 10<<20), "Content-Type: application/json",
		"X-Organization-Id: org_a")
	if res.status != 400 {
		t.Errorf("status %d, want 400", res.status)
	}
	if !strings.Contains(string(res.body), "nesting") {
		t.Errorf("problem does not name the nesting: %s", res.body)
	}
	if n := len(upstream.received()); n != 0 {
		t.Errorf("upstream received %d requests", n)
	}
}

func TestMaxValuesPerBody(t *testing.T) {
	upstream := newRecordingUpstream(t)
	s := mustStartCaddy(t, localStoreGlobals(t.TempDir()), fmt.Sprintf(`
	pii_vault {
		context organization_id {http.request.header.X-Organization-Id}
		tokenize $.addresses[*].line1
		max_values 10
	}
	reverse_proxy %s`, upstream.hostPort()))

	body := `{"addresses": [` + strings.TrimSuffix(strings.Repeat(`{"line1": 0},`, 11), ",") + `]}`
	res := s.do("POST", "/", body, "Content-Type: application/json", "X-Organization-Id: org_a")
	if res.status != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413: %s", res.status, res.body)
	}
	if n := len(upstream.received()); n != 0 {
		t.Errorf("upstream received %d requests", n)
	}
}

func TestRevealedBodyBounded(t *testing.T) {
	s, upstream := tokenizeEcho(t, `
		tokenize $.notes
		reveal $.notes[*]
		max_body_size 4KiB`)

	postJSON(s, `{"notes": "`+strings.Repeat("n", 1000)+`"}`)
	var stored map[string]string
	if err := json.Unmarshal(upstream.received()[0].body, &stored); err != nil {
		t.Fatal(err)
	}

	// ten copies of a 1 KB value's ID make a small body that reveals to 10 KB
	ids := strings.TrimSuffix(strings.Repeat(fmt.Sprintf("%q,", stored["notes"]), 10), ",")
	upstream.replyJSON(`{"notes": [` + ids + `]}`)
	res := s.do("GET", "/", "", "X-Organization-Id: org_a")
	if res.status != http.StatusBadGateway {
		t.Errorf("status %d, want 502", res.status)
	}
	if len(res.body) > 4096 {
		t.Errorf("body of %d bytes passed the limit", len(res.body))
	}
}
