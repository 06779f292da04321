package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	valid := []string{
		`null`, `true`, `false`, `0`, `-0`, `1.5`, `-12.5e+3`, `1E-2`, `1e5`, `""`,
		`"a\"\\\/\b\f\n\r\t\u00e9"`, `"\ud83d\ude00"`, `"\uFFFF"`, "\"\u00e9\u4e2d\U0001F600\"",
		`[]`, `{}`, ` [ 1 , 2 ] `, "\t\n\r {\"a\" : [ ] }\n",
		`{"a":1,"b":{"a":2}}`, `{"a":{"b":1},"b":{"b":2}}`, `[{"a":1},{"a":1}]`,
		`{"a":1,"A":2}`, `"\u0000"`, "\"\x7f\"", `"\uDBFF\uDFFF"`,
	}
	for _, s := range valid {
		if _, err := Parse([]byte(s), Options{}); err != nil {
			t.Errorf("Parse(%q): %v", s, err)
		}
		if !json.Valid([]byte(s)) {
			t.Errorf("test case %q is not valid JSON for encoding/json", s)
		}
	}
}

func TestParseInvalid(t *testing.T) {
	cases := []struct {
		in     string
		offset int64
		reason string
	}{
		{``, 0, reasonEOF},
		{`   `, 3, reasonEOF},
		{"\xEF\xBB\xBF{}", 0, reasonBOM},
		{`{} {}`, 3, reasonTrailing},
		{`1 2`, 2, reasonTrailing},
		{`[1,]`, 3, reasonTrailingComma},
		{`{"a":1,}`, 7, reasonTrailingComma},
		{`[1 2]`, 3, reasonArrayNext},
		{`{"a":1 "b":2}`, 7, reasonObjectNext},
		{`{"a" 1}`, 5, reasonColon},
		{`{a:1}`, 1, reasonName},
		{`{'a':1}`, 1, reasonName},
		{`['a']`, 1, reasonValue},
		{`[,1]`, 1, reasonValue},
		{`/* c */ 1`, 0, reasonValue},
		{`[1] // c`, 4, reasonTrailing},
		{`NaN`, 0, reasonValue},
		{`Infinity`, 0, reasonValue},
		{`-Infinity`, 1, reasonNumber},
		{`tru`, 0, reasonLiteral},
		{`nul`, 0, reasonLiteral},
		{`True`, 0, reasonValue},
		{`01`, 0, reasonLeadingZero},
		{`-01`, 0, reasonLeadingZero},
		{`1.`, 2, reasonNumber},
		{`.5`, 0, reasonValue},
		{`1e`, 2, reasonNumber},
		{`1e+`, 3, reasonNumber},
		{`+1`, 0, reasonValue},
		{`-`, 1, reasonEOF},
		{`0x10`, 1, reasonTrailing},
		{"\"a\nb\"", 2, reasonControl},
		{"\"a\x00\"", 2, reasonControl},
		{"\"a\tb\"", 2, reasonControl},
		{`"\x41"`, 1, reasonEscape},
		{`"\'"`, 1, reasonEscape},
		{`"\u12"`, 1, reasonUnicodeEscape},
		{`"\u12G4"`, 1, reasonUnicodeEscape},
		{`"\ud800"`, 1, reasonSurrogate},
		{`"\udc00"`, 1, reasonSurrogate},
		{`"\ud800\u0041"`, 1, reasonSurrogate},
		{`"\ud800\ud800"`, 1, reasonSurrogate},
		{`"\ud800x"`, 1, reasonSurrogate},
		{`"\ud800\u00"`, 7, reasonUnicodeEscape},
		{"\"\xff\"", 1, reasonUTF8},
		{"\"\xc3\"", 1, reasonUTF8},
		{"\"\xc0\xaf\"", 1, reasonUTF8},         // overlong
		{"\"\xed\xa0\x80\"", 1, reasonUTF8},     // UTF-8 encoded surrogate
		{"\"\xf4\x90\x80\x80\"", 1, reasonUTF8}, // beyond U+10FFFF
		{"\xc3\xa9", 0, reasonValue},
		{"[1,\u00a02]", 3, reasonValue},
		{"\f1", 0, reasonValue},
		{`{"a":1,"a":2}`, 7, reasonDuplicate},
		{`{"a":1,"\u0061":2}`, 7, reasonDuplicate},
		{`{"\u00e9":1,"` + "\u00e9" + `":2}`, 12, reasonDuplicate},
		{`{"\/":1,"/":2}`, 8, reasonDuplicate},
		{`[`, 1, reasonEOF},
		{`{"a":`, 5, reasonEOF},
		{`"abc`, 4, reasonEOF},
		{`[1}`, 2, reasonArrayNext},
		{`{"a":1]`, 6, reasonObjectNext},
		{`]`, 0, reasonValue},
	}
	for _, tc := range cases {
		_, err := Parse([]byte(tc.in), Options{})
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) error = %v, want *SyntaxError", tc.in, err)
			continue
		}
		if se.Reason != tc.reason {
			t.Errorf("Parse(%q) reason = %q, want %q", tc.in, se.Reason, tc.reason)
		}
		if se.Offset != tc.offset {
			t.Errorf("Parse(%q) offset = %d, want %d", tc.in, se.Offset, tc.offset)
		}
	}
}

func TestParseDuplicateInLargeObject(t *testing.T) {
	var b strings.Builder
	b.WriteString("{")
	for i := range 40 {
		b.WriteString(`"k` + strconv.Itoa(i) + `":1,`)
	}
	valid := b.String() + `"last":{"k0":1}}`
	if _, err := Parse([]byte(valid), Options{}); err != nil {
		t.Fatalf("Parse(40 distinct members): %v", err)
	}

	dup := b.String() + `"k\u0033\u0039":2}`
	_, err := Parse([]byte(dup), Options{})
	var se *SyntaxError
	if !errors.As(err, &se) || se.Reason != reasonDuplicate {
		t.Fatalf("Parse(large object with duplicate) error = %v, want %q", err, reasonDuplicate)
	}
}

func TestParseDuplicateScopedToObject(t *testing.T) {
	// the same name in sibling and nested objects is not a duplicate, also after the
	// names of a closed object are discarded
	doc := `{"a":{"a":{"a":1},"b":2},"b":{"a":3},"c":[{"a":1,"b":2},{"a":1}]}`
	if _, err := Parse([]byte(doc), Options{}); err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if _, err := Parse([]byte(`{"a":{"x":1},"a":2}`), Options{}); err == nil {
		t.Fatal("Parse accepted a duplicate after a nested object")
	}
}

func TestParseDepth(t *testing.T) {
	nested := func(depth int) []byte {
		return []byte(strings.Repeat("[", depth) + strings.Repeat("]", depth))
	}
	if _, err := Parse(nested(64), Options{}); err != nil {
		t.Errorf("Parse(depth 64): %v", err)
	}
	_, err := Parse(nested(65), Options{})
	var se *SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("Parse(depth 65) error = %v, want *SyntaxError", err)
	}
	if se.Reason != "nesting deeper than 64" || se.Offset != 64 {
		t.Errorf("Parse(depth 65) = %v, want nesting deeper than 64 at byte 64", se)
	}
	if _, err := Parse(nested(3), Options{MaxDepth: 2}); err == nil {
		t.Error("Parse(depth 3, MaxDepth 2) succeeded")
	}
	if _, err := Parse(nested(200), Options{MaxDepth: 200}); err != nil {
		t.Errorf("Parse(depth 200, MaxDepth 200): %v", err)
	}
}

func TestParseDeepBodyBounded(t *testing.T) {
	body := bytes.Repeat([]byte("["), 10<<20)
	allocs := testing.AllocsPerRun(1, func() {
		if _, err := Parse(body, Options{}); err == nil {
			t.Fatal("Parse accepted 10 MB of '['")
		}
	})
	if allocs > 20 {
		t.Errorf("Parse of 10 MB of '[' made %v allocations, want a few", allocs)
	}
}

func TestSyntaxErrorMessage(t *testing.T) {
	_, err := Parse([]byte(`{"secret-value":1,"secret-value":2}`), Options{})
	if err == nil {
		t.Fatal("Parse accepted a duplicate member name")
	}
	if got, want := err.Error(), "invalid JSON at byte 18: duplicate member name"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestParseIndex(t *testing.T) {
	body := []byte(` {"a" : [1, "x\n", {"b":null}], "c\u0064": true} `)
	d, err := Parse(body, Options{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	root := d.Root()
	if got := string(body[root.Start:root.End]); got != `{"a" : [1, "x\n", {"b":null}], "c\u0064": true}` {
		t.Errorf("root text = %q", got)
	}
	if root.Kind != Object {
		t.Errorf("root kind = %v, want object", root.Kind)
	}
	kinds := []Kind{Object, Array, Number, String, Object, Null, True}
	if len(d.tape) != len(kinds) {
		t.Fatalf("index has %d entries, want %d", len(d.tape), len(kinds))
	}
	for i, k := range kinds {
		if d.tape[i].kind != k {
			t.Errorf("entry %d kind = %v, want %v", i, d.tape[i].kind, k)
		}
	}
}

func TestParseRejectsNULInName(t *testing.T) {
	for _, body := range []string{`{"email\u0000": 1}`, `{"a\u0000b": 1}`} {
		if _, err := Parse([]byte(body), Options{}); err == nil {
			t.Errorf("Parse accepted %s", body)
		}
	}
	for _, body := range []string{`{"a\\u0000": 1}`, `{"a": "\u0000"}`} {
		if _, err := Parse([]byte(body), Options{}); err != nil {
			t.Errorf("Parse rejected %s: %v", body, err)
		}
	}
}

func TestFoldedNameBeyondGoFolding(t *testing.T) {
	for _, name := range []string{"emaıl", "emaİl", "EMAİL", "ſsn", "\u212aey"} {
		doc, err := Parse([]byte(`{"`+name+`": 1}`), Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, found := doc.FoldedName([]string{"email", "ssn", "key"}); !found {
			t.Errorf("FoldedName missed %q", name)
		}
	}
}

func TestValidateMatchesParse(t *testing.T) {
	bodies := []string{`"a@example.com"`, `""`, `"`, `"a"b"`, `"a\"b"`, "\"a\tb\"", "\"\xff\"",
		"\"\xed\xa0\x80\"", "\"caf\u00e9\"", "\"\x7f\"", ` "a"`, `{"a":1}`, `{"a":1,"a":2}`, `[1,]`, ``}
	for _, body := range bodies {
		_, perr := Parse([]byte(body), Options{})
		verr := Validate([]byte(body), Options{})
		if (perr == nil) != (verr == nil) {
			t.Errorf("Validate(%q) = %v, but Parse returned %v", body, verr, perr)
		}
	}
}

func TestValidateDepth(t *testing.T) {
	if err := Validate([]byte(`[[[1]]]`), Options{MaxDepth: 2}); err == nil {
		t.Error("Validate accepted a depth of 3 with MaxDepth 2")
	}
}
