package proxy

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/piivault/piivault/vault/vaulttest"
)

// marker is the plaintext that FuzzNeverForwardsMarker plants in bodies.
const marker = "PLAINTEXT-MARKER"

var fuzzSeeds = []string{
	`{"email": "PLAINTEXT-MARKER"}`,
	`{"user": {"email": "PLAINTEXT-MARKER", "name": "x"}}`,
	`[{"email": ["PLAINTEXT-MARKER", 1]}, {"email": null}]`,
	`{"email": "a", "\u0065mail": "PLAINTEXT-MARKER"}`,
	`{"Email": "PLAINTEXT-MARKER"}`,
	`{"e\u006dail": "PLAINTEXT-\u004dARKER"}`,
	`{"email": "PLAINTEXT-MARKER"} {"email": "PLAINTEXT-MARKER"}`,
	`{"email": "PLAINTEXT-MARKER", }`,
	`[[[[[[[[{"email": "PLAINTEXT-MARKER"}]]]]]]]]`,
	"\ufeff{\"email\": \"PLAINTEXT-MARKER\"}",
}

// FuzzNeverForwardsMarker checks that whatever body a client sends, no value that Go's
// encoding/json reads at a member named like "email" reaches the upstream with the
// marker in it.
func FuzzNeverForwardsMarker(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	h := newTestHandler(f, vaulttest.NewMemory(), Phase{Tokenize: []string{"$..email"}}, Phase{})

	f.Fuzz(func(t *testing.T, body []byte) {
		u := &upstream{}
		post(h.Wrap(u), "org_a", string(body))
		if u.calls == 0 {
			return
		}

		var doc any
		if err := json.Unmarshal(u.body, &doc); err != nil {
			if bytes.Contains(u.body, []byte(marker)) {
				t.Fatalf("forwarded a body Go cannot parse, with the marker: %q", u.body)
			}
			return
		}
		if leak := findMarker(doc, false); leak {
			t.Fatalf("forwarded the marker at an email member: %q", u.body)
		}
	})
}

// findMarker reports whether the marker is in a value under a member whose name folds to
// "email", as encoding/json would match it to a struct field.
func findMarker(v any, protected bool) bool {
	switch v := v.(type) {
	case map[string]any:
		for k, child := range v {
			if findMarker(child, protected || strings.EqualFold(k, "email")) {
				return true
			}
		}
	case []any:
		for _, child := range v {
			if findMarker(child, protected) {
				return true
			}
		}
	case string:
		return protected && strings.Contains(v, marker)
	}
	return false
}

// FuzzRoundTrip checks that reveal(tokenize(doc)) gives back doc byte for byte.
func FuzzRoundTrip(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"a": 1.50, "b": [true, {"a": "\u00e9"}], "c": {"a": null}}`))
	store := vaulttest.NewMemory()
	queries := []string{"$..email", "$..a", "$.b[0]", "$[1]"}
	h := newTestHandler(f, store, Phase{Tokenize: queries}, Phase{Reveal: queries})

	f.Fuzz(func(t *testing.T, body []byte) {
		u := &upstream{}
		rec := post(h.Wrap(u), "org_a", string(body))
		if rec.Code != 200 {
			return // rejected: nothing to round-trip
		}
		if got := rec.Body.Bytes(); !bytes.Equal(got, body) {
			t.Fatalf("round trip changed the body:\n got %q\nwant %q\nupstream %q", got, body, u.body)
		}
	})
}
