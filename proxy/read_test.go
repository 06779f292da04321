package proxy

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/piivault/piivault/vault"
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
	ids := strings.Trim(strings.TrimSuffix(strings.TrimPrefix(string(u.body), `{"items": `), "}"), "[]")
	first := strings.SplitN(ids, ",", 2)[0]
	response := `{"items": [` + ids + `,` + first + `,` + ids + `]}`
	h2 := newTestHandler(t, store, Phase{}, Phase{Reveal: []string{"$.items[*]"}})
	rec = post(h2.Wrap(&replay{body: []byte(response)}), "org_a", `{}`)
	if rec.Code != 200 {
		t.Fatalf("reveal: status %d: %s", rec.Code, rec.Body)
	}

	plain := strings.Trim(items, "[]")
	want := `{"items": [` + plain + `,` + values[0] + `,` + plain + `]}`
	if got := rec.Body.String(); got != want {
		t.Errorf("revealed body:\n got %s\nwant %s", got, want)
	}
}

// TestRevealBindsEveryPathShape moves an SSN's ID into the email member and into a list,
// with tokenize paths of several names and of array elements, and expects each move to
// be denied.
func TestRevealBindsEveryPathShape(t *testing.T) {
	store := openLocal(t)
	u := &upstream{}
	tok := newTestHandler(t, store, Phase{Tokenize: []string{"$['email','ssn']", "$.phones[*]"}}, Phase{})
	rec := post(tok.Wrap(u), "org_a", `{"email": "a@example.com", "ssn": "222-33-4444", "phones": ["555-0100"]}`)
	if rec.Code != 200 {
		t.Fatalf("tokenize: status %d: %s", rec.Code, rec.Body)
	}
	var stored struct {
		Email, SSN string
		Phones     []string
	}
	if err := json.Unmarshal(u.body, &stored); err != nil {
		t.Fatal(err)
	}

	reveal := newTestHandler(t, store, Phase{}, Phase{Reveal: []string{"$['email','ssn']", "$.phones[*]"}})
	own := `{"email": "` + stored.Email + `", "ssn": "` + stored.SSN + `", "phones": ["` + stored.Phones[0] + `"]}`
	tests := []struct{ name, body, want string }{
		{"own places", own, `{"email": "a@example.com", "ssn": "222-33-4444", "phones": ["555-0100"]}`},
		// a denied ID stays as it is, so each moved body comes back unchanged
		{"ssn as email", `{"email": "` + stored.SSN + `"}`, ""},
		{"ssn in phones", `{"phones": ["` + stored.SSN + `"]}`, ""},
		{"phone as email", `{"email": "` + stored.Phones[0] + `"}`, ""},
		{"email as ssn", `{"ssn": "` + stored.Email + `"}`, ""},
	}
	for _, tt := range tests {
		want := cmp.Or(tt.want, tt.body)
		rec := post(reveal.Wrap(&replay{body: []byte(tt.body)}), "org_a", `{}`)
		if got := rec.Body.String(); got != want {
			t.Errorf("%s: got %s, want %s", tt.name, got, want)
		}
	}

	// a client that sends the SSN's ID as its email gets it tokenized as plain data
	rec = post(tok.Wrap(u), "org_a", `{"email": "`+stored.SSN+`"}`)
	if rec.Code != 200 {
		t.Errorf("tokenize of the SSN's ID at email: status %d: %s", rec.Code, rec.Body)
	}
	if strings.Contains(string(u.body), stored.SSN) {
		t.Errorf("tokenize kept the SSN's ID at email: upstream got %s", u.body)
	}
}

// TestAuditListsDistinctIDs reveals one object many times and four others once, and
// expects the audit event to list all five objects and count every value.
func TestAuditListsDistinctIDs(t *testing.T) {
	store := openLocal(t)
	core, logs := observer.New(zap.InfoLevel)
	h, err := New(Config{Store: store, KeyContext: orgContext, Audit: zap.New(core),
		Request: Phase{Tokenize: []string{"$.items[*]"}}, Response: Phase{Reveal: []string{"$.items[*]"}}})
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream{}
	rec := post(h.Wrap(u), "org_a", `{"items": ["a", "b", "c", "d", "e"]}`)
	if rec.Code != 200 {
		t.Fatalf("tokenize: status %d: %s", rec.Code, rec.Body)
	}
	ids := strings.Split(strings.Trim(strings.TrimSuffix(strings.TrimPrefix(string(u.body), `{"items": `), "}"), "[]"), ",")

	body := `{"items": [` + strings.Repeat(ids[0]+",", 150) + strings.Join(ids[1:], ",") + `]}`
	logs.TakeAll()
	rec = post(h.Wrap(&replay{body: []byte(body)}), "org_a", `{}`)
	if rec.Code != 200 {
		t.Fatalf("reveal: status %d: %s", rec.Code, rec.Body)
	}

	events := logs.FilterMessage("reveal").All()
	if len(events) != 1 {
		t.Fatalf("%d reveal events, want 1", len(events))
	}
	fields := events[0].ContextMap()
	if fields["count"] != int64(154) {
		t.Errorf("count = %v, want 154", fields["count"])
	}
	listed, _ := fields["object_ids"].([]any)
	if len(listed) != 5 {
		t.Errorf("object_ids lists %d IDs, want the 5 distinct ones: %v", len(listed), listed)
	}
}

// countingReader is a store that adds up the bytes of the values that ReadBatchFor
// returns.
type countingReader struct {
	vault.Store
	cr        vault.ContextReader
	decrypted int
}

func (c *countingReader) ReadBatchFor(ctx context.Context, ids []string, kc vault.KeyContext,
	maxBytes int64) ([]vault.Object, []error) {
	objs, errs := c.cr.ReadBatchFor(ctx, ids, kc, maxBytes)
	for _, o := range objs {
		c.decrypted += len(o.Value)
	}
	return objs, errs
}

// TestRevealDecryptsWithinLimit sends a small response of IDs of large values, and
// expects the store to decrypt no more than the body limit before the 502.
func TestRevealDecryptsWithinLimit(t *testing.T) {
	local := openLocal(t)
	store := &countingReader{Store: local, cr: local.(vault.ContextReader)}
	const limit = 64 << 10
	h, err := New(Config{Store: store, KeyContext: orgContext, MaxBodySize: limit,
		Request: Phase{Tokenize: []string{"$.note"}}, Response: Phase{Reveal: []string{"$.notes[*]"}}})
	if err != nil {
		t.Fatal(err)
	}

	var ids []string
	for range 10 {
		u := &upstream{}
		rec := post(h.Wrap(u), "org_a", `{"note": "`+strings.Repeat("n", 30_000)+`"}`)
		if rec.Code != 200 {
			t.Fatalf("tokenize: status %d: %s", rec.Code, rec.Body)
		}
		ids = append(ids, strings.TrimSuffix(strings.TrimPrefix(string(u.body), `{"note": `), "}"))
	}

	body := `{"notes": [` + strings.Join(ids, ",") + `]}`
	rec := post(h.Wrap(&replay{body: []byte(body)}), "org_a", `{}`)
	if rec.Code != 502 {
		t.Errorf("status %d, want 502: %s", rec.Code, rec.Body)
	}
	if store.decrypted > limit {
		t.Errorf("decrypted %d bytes for a body limit of %d", store.decrypted, limit)
	}
}
