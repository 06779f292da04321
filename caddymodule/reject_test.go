package caddymodule

import (
	"fmt"
	"strings"
	"testing"
)

func TestRejectsBeforeUpstream(t *testing.T) {
	upstream := newRecordingUpstream(t)
	s := mustStartCaddy(t, localStoreGlobals(t.TempDir()), fmt.Sprintf(`
	pii_vault {
		context organization_id {http.request.header.X-Organization-Id}
		tokenize $.email $.profile.phone
		max_body_size 1KiB
	}
	reverse_proxy %s`, upstream.hostPort()))

	const org = "X-Organization-Id: org_a"
	const jsonType = "Content-Type: application/json"
	big := `{"email": "alice@example.com", "pad": "` + strings.Repeat("x", 2048) + `"}`

	tests := []struct {
		name    string
		body    string
		headers []string
		status  int
	}{
		{"malformed", `{"email": "alice@example.com",}`, []string{jsonType, org}, 400},
		{"trailing data", `{"email": "alice@example.com"} {}`, []string{jsonType, org}, 400},
		{"duplicate key", `{"email": "a@example.com", "email": "alice@example.com"}`, []string{jsonType, org}, 400},
		{"duplicate by escape", `{"email": "a@example.com", "\u0065mail": "alice@example.com"}`, []string{jsonType, org}, 400},
		{"duplicate nested", `{"profile": {"phone": "1", "phon\u0065": "+1 555 0100"}}`, []string{jsonType, org}, 400},
		{"folded key", `{"Email": "alice@example.com"}`, []string{jsonType, org}, 400},
		{"invalid utf-8", "{\"email\": \"alice\xff@example.com\"}", []string{jsonType, org}, 400},
		{"lone surrogate", `{"email": "alice\ud800@example.com"}`, []string{jsonType, org}, 400},
		{"over the limit", big, []string{jsonType, org}, 413},
		{"text/plain", `{"email": "alice@example.com"}`, []string{"Content-Type: text/plain", org}, 415},
		{"no content type", `{"email": "alice@example.com"}`, []string{org}, 415},
		{"two content types", `{"email": "alice@example.com"}`, []string{jsonType, jsonType, org}, 415},
		{"latin-1", `{"email": "alice@example.com"}`, []string{"Content-Type: application/json; charset=iso-8859-1", org}, 415},
		{"gzip", `{"email": "alice@example.com"}`, []string{jsonType, "Content-Encoding: gzip", org}, 415},
		{"no tenant", `{"email": "alice@example.com"}`, []string{jsonType}, 400},
		{"two tenants", `{"email": "alice@example.com"}`, []string{jsonType, org, "X-Organization-Id: org_b"}, 400},
		{"tenant header hop-by-hop", `{"email": "alice@example.com"}`, []string{jsonType, org, "Connection: keep-alive, X-Organization-Id"}, 400},
		{"tenant with nbsp", `{"email": "alice@example.com"}`, []string{jsonType, "X-Organization-Id: org_a\u00a0"}, 400},
		{"tenant not utf-8", `{"email": "alice@example.com"}`, []string{jsonType, "X-Organization-Id: org_\xa0"}, 400},
		{"upgrade", `{"email": "alice@example.com"}`, []string{jsonType, org, "Connection: Upgrade", "Upgrade: websocket"}, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(upstream.received())
			res := s.do("POST", "/users", tt.body, tt.headers...)

			if res.status != tt.status {
				t.Errorf("status %d, want %d: %s", res.status, tt.status, res.body)
			}
			if ct := res.header.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("Content-Type %q, want application/problem+json", ct)
			}
			if strings.Contains(string(res.body), "alice") {
				t.Errorf("problem echoes the body: %s", res.body)
			}
			if n := len(upstream.received()) - before; n != 0 {
				t.Errorf("upstream received %d requests", n)
			}
		})
	}
}

func TestRejectsChunkedOverLimit(t *testing.T) {
	upstream := newRecordingUpstream(t)
	s := mustStartCaddy(t, localStoreGlobals(t.TempDir()), fmt.Sprintf(`
	pii_vault {
		context organization_id {http.request.header.X-Organization-Id}
		tokenize $.email
		max_body_size 1KiB
	}
	reverse_proxy %s`, upstream.hostPort()))

	body := `{"email": "alice@example.com", "pad": "` + strings.Repeat("x", 4096) + `"}`
	res := s.doChunked("POST", "/users", body, "Content-Type: application/json", "X-Organization-Id: org_a")
	if res.status != 413 {
		t.Errorf("status %d, want 413", res.status)
	}
	if n := len(upstream.received()); n != 0 {
		t.Errorf("upstream received %d requests", n)
	}
}
