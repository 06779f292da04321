package proxy

import (
	"fmt"
	"strings"
	"testing"
)

// TestRevealRepeatedIDsAcrossChunks reveals a body whose IDs fill more than one read
// chunk and repeat, with a store that checks the key context in its reads.
func TestRevealRepeatedIDsAcrossChunks(t *testing.T) {
	store := openLocal(t)
	h := newTestHandler(t, store, Phase{Tokenize: []string{"$.items[*]"}}, Phase{})
	u := &upstream{}
	srv := h.Wrap(u)

	values := make([]string, readChunk+10)
	for i := range values {
		values[i] = fmt.Sprintf(`"user%d@example.com"`, i)
	}
	items := "[" + strings.Join(values, ",") + "]"
	rec := post(srv, "org_a", `{"items": `+items+`}`)
	if rec.Code != 200 {
		t.Fatalf("tokenize: status %d: %s", rec.Code, rec.Body)
	}
	if strings.Contains(string(u.body), "example.com") {
		t.Fatalf("upstream received plaintext: %s", u.body)
	}

	// the upstream now sends every ID twice, and the first one a third time
	tokenized := strings.TrimSuffix(strings.TrimPrefix(string(u.body), `{"items": `), "}")
	first := strings.SplitN(strings.Trim(tokenized, "[]"), ",", 2)[0]
	response := `{"items": ` + tokenized + `, "again": [` + first + `], "more": ` + tokenized + `}`
	h2 := newTestHandler(t, store, Phase{}, Phase{Reveal: []string{"$.items[*]", "$.again[*]", "$.more[*]"}})
	rec = post(h2.Wrap(&replay{body: []byte(response)}), "org_a", `{}`)
	if rec.Code != 200 {
		t.Fatalf("reveal: status %d: %s", rec.Code, rec.Body)
	}

	want := `{"items": ` + items + `, "again": [` + values[0] + `], "more": ` + items + `}`
	if got := rec.Body.String(); got != want {
		t.Errorf("revealed body:\n got %s\nwant %s", got, want)
	}
}
