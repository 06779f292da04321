package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// fuzzSeeds returns JSON bodies for the fuzz corpora: the documents of the compliance
// test suite when it is present, and bodies with escapes, duplicates and deep nesting.
func fuzzSeeds(tb testing.TB) [][]byte {
	seeds := [][]byte{
		[]byte(`{"a":1,"\u0061":2}`),
		[]byte(`{"email":"a@example.com","phone":"+1 555","n":[1,2.5e3,-0,{"x":null}]}`),
		[]byte(`{"e\u006dail":"\ud83d\ude00","EMAIL":"\"\\\/\b\f\n\r\t"}`),
		[]byte(`["\ud800","\udc00x"]`),
		[]byte("\xEF\xBB\xBF{}"),
		[]byte(`[1,]`),
		[]byte(`{"a":1,}`),
		[]byte(`01`),
		[]byte("\"\xed\xa0\x80\""),
		[]byte(strings.Repeat("[", 70) + strings.Repeat("]", 70)),
		[]byte(strings.Repeat(`{"a":`, 64) + "1" + strings.Repeat("}", 64)),
		[]byte(` {"users":[{"id":1,"email":"x"},{"id":2,"email":{"v":"y"}}]} `),
	}
	data, err := os.ReadFile(ctsPath)
	if err != nil {
		return seeds
	}
	var suite struct {
		Tests []struct {
			Document json.RawMessage `json:"document"`
		} `json:"tests"`
	}
	if err := json.Unmarshal(data, &suite); err != nil {
		tb.Fatalf("decoding compliance test suite: %v", err)
	}
	for _, tc := range suite.Tests {
		if tc.Document != nil {
			seeds = append(seeds, tc.Document)
		}
	}
	return seeds
}

func FuzzParse(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	all := MustCompile("$..*")
	f.Fuzz(func(t *testing.T, body []byte) {
		d, err := Parse(body, Options{})
		if verr := Validate(body, Options{}); (verr == nil) != (err == nil) {
			t.Fatalf("Validate(%q) = %v, but Parse returned %v", body, verr, err)
		}
		if err != nil {
			// Parse rejects only what encoding/json reads without complaint but other
			// parsers may read differently
			var se *SyntaxError
			if json.Valid(body) && (!errors.As(err, &se) || !stricterThanJSON(se.Reason)) {
				t.Fatalf("Parse rejected %q, which encoding/json accepts: %v", body, err)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("Parse accepted %q, which encoding/json rejects", body)
		}
		if root := d.Root(); string(bytes.TrimSpace(body)) != string(body[root.Start:root.End]) {
			t.Fatalf("root node %v does not span the value in %q", root, body)
		}
		for _, n := range all.Select(d) {
			if !json.Valid(body[n.Start:n.End]) {
				t.Fatalf("node %v of %q is not a JSON value", n, body)
			}
		}
	})
}

// stricterThanJSON reports whether reason is one of the checks that Parse adds to the
// grammar that encoding/json validates.
func stricterThanJSON(reason string) bool {
	switch reason {
	case reasonDuplicate, reasonNULName, reasonSurrogate, reasonUTF8, "nesting deeper than 64":
		return true
	}
	return false
}

// tokenPrefix starts every placeholder of FuzzSplice; bodies that contain it are skipped
// so that a placeholder cannot be confused with original data.
const tokenPrefix = "vault_obj_"

func FuzzSplice(f *testing.F) {
	queries := []string{"$..*", "$.email", "$..email", "$[*]", "$..[0]", "$", "$..[1:]"}
	for _, s := range fuzzSeeds(f) {
		for i := range queries {
			f.Add(s, uint8(i))
		}
	}
	f.Fuzz(func(t *testing.T, body []byte, which uint8) {
		if bytes.Contains(body, []byte(tokenPrefix)) {
			return
		}
		d, err := Parse(body, Options{})
		if err != nil {
			return
		}
		q := MustCompile(queries[int(which)%len(queries)])

		vault := map[string][]byte{}
		tokenized := tokenize(d, q, vault)
		revealed := reveal(t, tokenized, vault)
		if !bytes.Equal(revealed, body) {
			t.Fatalf("round trip changed the body\nbefore %q\nafter  %q", body, revealed)
		}
	})
}

// tokenize replaces each outermost selected value with a placeholder string and stores
// the value's raw text under it.
func tokenize(d *Document, q *Query, vault map[string][]byte) []byte {
	var edits []Edit
	for _, n := range Outermost(q.Select(d)) {
		token := fmt.Sprintf(`"%s%d"`, tokenPrefix, len(vault))
		vault[token] = d.Bytes()[n.Start:n.End]
		edits = append(edits, Edit{Start: n.Start, End: n.End, Value: []byte(token)})
	}
	return Splice(nil, d.Bytes(), edits)
}

// reveal replaces every placeholder string in body with the value stored under it.
func reveal(t *testing.T, body []byte, vault map[string][]byte) []byte {
	t.Helper()
	d, err := Parse(body, Options{})
	if err != nil {
		t.Fatalf("tokenized body %q is invalid: %v", body, err)
	}
	// placeholders are strings, so they never nest and Outermost only sorts them
	var tokens []Node
	for _, n := range append([]Node{d.Root()}, MustCompile("$..*").Select(d)...) {
		if _, ok := vault[string(body[n.Start:n.End])]; ok {
			tokens = append(tokens, n)
		}
	}
	var edits []Edit
	for _, n := range Outermost(tokens) {
		edits = append(edits, Edit{Start: n.Start, End: n.End, Value: vault[string(body[n.Start:n.End])]})
	}
	return Splice(nil, body, edits)
}

func FuzzCompile(f *testing.F) {
	seeds := []string{
		"$", "$.a", "$..b[1:-1:2]", "$['a','b'][*]", `$["\u00e9"]`, "$[?@.a]",
		"$..[?@.b=='x' || length(@)>1]", "$[?match(@.b, '[a-z]+')]", "$[?search(@, $.a[0])]",
		"$[?count(@..*)>=2 && !value(@.b)]",
	}
	for _, q := range seeds {
		f.Add(q)
	}
	body := []byte(`{"a":[1,{"b":"x\u00e9"}],"b":{"a":null,"B":"` + "\u2028" + `"},"c":"[a-z]"}`)
	original := bytes.Clone(body)
	d, err := Parse(body, Options{})
	if err != nil {
		f.Fatalf("Parse: %v", err)
	}
	f.Fuzz(func(t *testing.T, query string) {
		q, err := Compile(query)
		if err != nil {
			return
		}
		if len(q.Select(d)) != len(q.SelectPaths(d)) {
			t.Fatalf("%q: Select and SelectPaths disagree", query)
		}
		q.SelectFold(d)
		if !bytes.Equal(body, original) {
			t.Fatalf("%q modified the document", query)
		}
	})
}
