package proxy

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/piivault/piivault/vault"
	"github.com/piivault/piivault/vault/vaulttest"
)

// upstream records the last body it received and echoes it as JSON.
type upstream struct {
	calls int
	body  []byte
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.calls++
	u.body, _ = io.ReadAll(r.Body)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(u.body)
}

func orgContext(r *http.Request) (vault.KeyContext, error) {
	return vault.KeyContext{"organization_id": r.Header.Get("X-Org")}, nil
}

func newTestHandler(t testing.TB, store vault.Store, request, response Phase) *Handler {
	t.Helper()
	h, err := New(Config{Store: store, Request: request, Response: response, KeyContext: orgContext})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func post(h http.Handler, org, body string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", "/", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Org", org)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestWrapTokenizesAndReveals(t *testing.T) {
	u := &upstream{}
	h := newTestHandler(t, vaulttest.NewMemory(),
		Phase{Tokenize: []string{"$.email"}}, Phase{Reveal: []string{"$.email"}})
	srv := h.Wrap(u)

	rec := post(srv, "org_a", `{"email": "alice@example.com"}`)
	if bytes.Contains(u.body, []byte("alice")) {
		t.Errorf("upstream received plaintext: %s", u.body)
	}
	if got := rec.Body.String(); got != `{"email": "alice@example.com"}` {
		t.Errorf("client got %s", got)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"invalid query", Config{Response: Phase{Redact: []string{"$["}}}},
		{"vault rule without store", Config{Request: Phase{Tokenize: []string{"$.a"}}}},
		{"unknown mask", Config{Store: vaulttest.NewMemory(), KeyContext: orgContext,
			Response: Phase{Mask: []MaskRule{{Path: "$.a", Format: "middle"}}}}},
		{"folded_keys", Config{FoldedKeys: "ignore"}},
		{"on_denied", Config{OnDenied: "drop"}},
		{"negative size", Config{MaxBodySize: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg); err == nil {
				t.Error("New accepted the config")
			}
		})
	}
}

func TestFoldedKeysTokenize(t *testing.T) {
	u := &upstream{}
	h, err := New(Config{
		Store: vaulttest.NewMemory(), KeyContext: orgContext, FoldedKeys: "tokenize",
		Request: Phase{Tokenize: []string{"$.email"}},
	})
	if err != nil {
		t.Fatal(err)
	}

	rec := post(h.Wrap(u), "org_a", `{"EMAIL": "alice@example.com", "ſemail": "x"}`)
	if rec.Code != 200 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if bytes.Contains(u.body, []byte("alice")) {
		t.Errorf("upstream received plaintext: %s", u.body)
	}
}

func TestMaskFormats(t *testing.T) {
	tests := []struct {
		format, in, want string
	}{
		{"email", "alice@example.com", "a****@example.com"},
		{"email", "no-at-sign", "**********"},
		{"last4", "+1 555 0100", "*******0100"},
		{"last4", "123", "***"},
		{"full", "héllo", "*****"},
	}
	for _, tt := range tests {
		f, err := parseMaskFormat(tt.format)
		if err != nil {
			t.Fatal(err)
		}
		if got := f.apply(tt.in); got != tt.want {
			t.Errorf("%s(%q) = %q, want %q", tt.format, tt.in, got, tt.want)
		}
	}
}

// replay is an upstream that responds to every request with body as JSON.
type replay struct{ body []byte }

func (u *replay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(u.body)
}

func TestMaskJSONKinds(t *testing.T) {
	last4, _ := parseMaskFormat("last4")
	tests := []struct{ in, want string }{
		{`"+1 555 0100"`, `"*******0100"`},
		{`"caf\u00e9 1234"`, `"*****1234"`},
		{`4111111111111111`, `"************1111"`},
		{`{"a": "secret"}`, `"****"`},
		{`[1, 2]`, `"****"`},
		{`true`, `"****"`},
	}
	for _, tt := range tests {
		if got := string(maskJSON([]byte(tt.in), last4)); got != tt.want {
			t.Errorf("maskJSON(%s) = %s, want %s", tt.in, got, tt.want)
		}
	}
}
