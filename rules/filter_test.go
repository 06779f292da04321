package rules

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestFilterSelect(t *testing.T) {
	body := `{"users":[
		{"id":1,"role":"admin","email":"a@x","tags":["x","y"],"meta":{"k":[1,{"z":null}]}},
		{"id":2,"role":"\u0061dmin","email":"b@x","tags":[],"meta":{"k":[1.0,{"z":null}]}},
		{"id":3,"role":"user","email":"c\n@x","age":1e400},
		{"id":4,"Role":"admin","email":"d@x"}
	],"limit":2,"pattern":"[ab]@x"}`
	cases := []struct {
		query string
		want  []string
	}{
		{"$.users[?@.role=='admin'].id", []string{"1", "2"}},
		{"$.users[?@.role!='admin'].id", []string{"3", "4"}},
		{"$.users[?@.id<=$.limit].id", []string{"1", "2"}},
		{"$.users[?@.id>2 && @.email].id", []string{"3", "4"}},
		{"$.users[?!@.role || @.id==3].id", []string{"3", "4"}},
		{"$.users[?(@.id==1 || @.id==4) && !(@.id==4)].id", []string{"1"}},
		{"$.users[?@.meta==$.users[1].meta].id", []string{"1", "2"}},
		{"$.users[?length(@.tags)==2].id", []string{"1"}},
		{"$.users[?length(@.email)==4].id", []string{"3"}},
		{"$.users[?count(@.*)>4].id", []string{"1", "2"}},
		{"$.users[?match(@.email, '[a-c]@x')].id", []string{"1", "2"}},
		{"$.users[?search(@.email, '\\\\n')].id", []string{"3"}},
		{"$.users[?match(@.email, $.pattern)].id", []string{"1", "2"}},
		{"$.users[?value(@..z)==null].id", []string{"1", "2"}},
		{"$.users[?@.age>1].id", []string{"3"}},
		{"$..[?@.z==null]", []string{`{"z":null}`, `{"z":null}`}},
		{"$.users[?@.missing==@.other].id", []string{"1", "2", "3", "4"}},
		{"$.users[?@.id==1.0e0].email", []string{`"a@x"`}},
		{"$.users[?@.role>'b'].id", []string{"3"}},
		{"$.users[?@.tags[0]=='x'].id", []string{"1"}},
		{"$.users[?@.id==1, ?@.id==1].id", []string{"1", "1"}},
	}
	for _, tc := range cases {
		got := selectTexts(t, tc.query, body, false)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s selected %q, want %q", tc.query, got, tc.want)
		}
	}
}

func TestFilterSelectFold(t *testing.T) {
	body := `[{"Role":"admin","id":1},{"role":"user","ROLE":"admin","id":2},{"role":"admin","id":3}]`
	if got := selectTexts(t, "$[?@.role=='admin'].id", body, false); !slices.Equal(got, []string{"3"}) {
		t.Errorf("Select = %q, want only the exact member name", got)
	}
	// the last member that folds to "role" is the one encoding/json keeps
	want := []string{"1", "2", "3"}
	if got := selectTexts(t, "$[?@.role=='admin'].id", body, true); !slices.Equal(got, want) {
		t.Errorf("SelectFold = %q, want %q", got, want)
	}
}

func TestFilterNames(t *testing.T) {
	q := MustCompile("$.users[?@.role=='admin' && length(@.tags)>0 || match(@.email, 'x')].ssn")
	want := []string{"users", "role", "tags", "email", "ssn"}
	if got := q.Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
}

func TestFilterCompileErrors(t *testing.T) {
	invalid := []string{
		"$[?@.a==]", "$[?1]", "$[?'a']", "$[?@.*==1]", "$[?@..a==1]", "$[?@[ 'a' ]==1]",
		"$[?length(@.a)]", "$[?count(@.a)]", "$[?match(@.a,'x')==true]", "$[?length(@.*)==1]",
		"$[?count(1)==1]", "$[?value(@.a==1)==1]", "$[?unknown(@.a)]", "$[?length()==1]",
		"$[?length(@.a,@.b)==1]", "$[?!@.a==1]", "$[?@.a=1]", "$[?(@.a]", "$[?@.a==01]",
		"$[?@.a==1e]", "$[?True]", "$[?@.a==nul]", "$[?@.a==-]", "$[?length (@.a)==1]",
		"$[?@.a==1e999]", "$[?match(@.a, 'x') || 1]", "$[?@.a && ]", "$[?@.tags==['x']]",
	}
	for _, q := range invalid {
		if _, err := Compile(q); err == nil {
			t.Errorf("Compile(%q) succeeded, want error", q)
		}
	}
	valid := []string{
		"$[?@['a']==1]", "$[?@ ['a'] [0]==1]", "$[?@.a==-0]", "$[?@.a==1.5E+3]",
		"$[? !( @.a ) ]", "$[?length(@)==1]", "$[?count(@..*)>1]", "$[?@.a==$.b]",
		"$[?match(@.a, @.b)]", "$[?value(@..a)==1]", "$[?true==true]", "$[?@]",
	}
	for _, q := range valid {
		if _, err := Compile(q); err != nil {
			t.Errorf("Compile(%q): %v", q, err)
		}
	}
}

func TestFilterKeepsDocument(t *testing.T) {
	body := []byte(`{"a":["\u00e9x","` + "\u2028" + `",{"b\u0063":"d\n"},"plain"],"p":"[a-z]"}`)
	original := bytes.Clone(body)
	d, err := Parse(body, Options{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	queries := []string{
		"$.a[?match(@, '.x')]", "$.a[?length(@)>0]", "$.a[?@.bc=='d\\n']", "$.a[?search(@, $.p)]",
		"$..[?@=='plain']", "$.a[?@==$.a[0]]",
	}
	for _, q := range queries {
		MustCompile(q).Select(d)
		MustCompile(q).SelectPaths(d)
		if !bytes.Equal(body, original) {
			t.Fatalf("%s modified the document: %q", q, body)
		}
	}
}

func TestIRegexpTranslate(t *testing.T) {
	cases := []struct {
		pattern string
		match   []string
		noMatch []string
	}{
		{".", []string{"a", "\u2028", "é"}, []string{"\n", "\r", "", "ab"}},
		{"a.c", []string{"abc"}, []string{"a\nc"}},
		{"[^a]", []string{"b", "\n"}, []string{"a"}},
		{"[a-c-]", []string{"b", "-"}, []string{"d"}},
		{"[-x]", []string{"-", "x"}, []string{"y"}},
		{"\\p{Lu}+", []string{"ÀB"}, []string{"aB"}},
		{"\\P{L}", []string{"1"}, []string{"a"}},
		{"[\\p{Nd}x]", []string{"5", "x"}, []string{"y"}},
		{"\\.\\n\\[\\]\\{\\}", []string{".\n[]{}"}, nil},
		{"a{2,3}", []string{"aa", "aaa"}, []string{"a", "aaaa"}},
		{"a{2,}", []string{"aaaaa"}, []string{"a"}},
		{"(ab|c)*", []string{"", "abcab"}, []string{"abb"}},
		{"[\\^x]", []string{"^"}, []string{"y"}},
		{"x\\^", []string{"x^"}, []string{"x"}},
		{"\U0001F600?", []string{"", "\U0001F600"}, []string{"x"}},
	}
	for _, tc := range cases {
		re := compileIRegexp(tc.pattern, true)
		if re == nil {
			t.Errorf("compileIRegexp(%q) = nil", tc.pattern)
			continue
		}
		for _, s := range tc.match {
			if !re.MatchString(s) {
				t.Errorf("%q does not match %q", tc.pattern, s)
			}
		}
		for _, s := range tc.noMatch {
			if re.MatchString(s) {
				t.Errorf("%q matches %q", tc.pattern, s)
			}
		}
	}
}

func TestIRegexpInvalid(t *testing.T) {
	invalid := []string{
		"(", ")", "a)", "[", "[]", "[^]", "[a", "a{", "a{1", "a{,2}", "*", "a**", "+a", "?",
		"\\d", "\\w", "\\s", "\\x", "\\p{Xx}", "\\p{IsBasicLatin}", "\\p{L", "[a-\\p{L}]",
		"[z-a]", "[a-b-c]", "[[]", "a]", "a}", "{", "(?:a)", "\\", "a{1001}", "\xff",
	}
	for _, p := range invalid {
		if re := compileIRegexp(p, false); re != nil {
			t.Errorf("compileIRegexp(%q) accepted an invalid pattern as %q", p, re)
		}
	}
	if re := compileIRegexp(strings.Repeat("a", 10), false); re == nil {
		t.Error("compileIRegexp rejected a plain pattern")
	}
}

func TestFilterDeepEqual(t *testing.T) {
	body := `[
		{"id":1,"x":{"a":1,"b":[1,{"c":"d"}]},"y":{"b":[1.0,{"\u0063":"\u0064"}],"a":1}},
		{"id":2,"x":{"a":1,"b":[1,2]},"y":{"a":1,"b":[2,1]}},
		{"id":3,"x":{"a":1},"y":{"a":1,"b":null}},
		{"id":4,"x":{"a":1,"b":2},"y":{"a":1,"c":2}},
		{"id":5,"x":[],"y":{}},
		{"id":6,"x":"é","y":"\u00e9"}
	]`
	if got := selectTexts(t, "$[?@.x==@.y].id", body, false); !slices.Equal(got, []string{"1", "6"}) {
		t.Errorf("== selected %q, want [1 6]", got)
	}
	want := []string{"2", "3", "4", "5"}
	if got := selectTexts(t, "$[?@.x!=@.y].id", body, false); !slices.Equal(got, want) {
		t.Errorf("!= selected %q, want %q", got, want)
	}
}

func TestFilterNestedEscapedStrings(t *testing.T) {
	// the subject of match is unescaped before the nested filter in the pattern argument
	// unescapes its own strings, which must not overwrite it
	body := `[{"id":1,"s":"a\u0062c","p":[{"k":"x\u0079","re":"a\u002ec"}]},{"id":2,"s":"abd","p":[{"k":"xy","re":"a.c"}]}]`
	got := selectTexts(t, "$[?match(@.s, value(@.p[?@.k=='xy'].re))].id", body, false)
	if !slices.Equal(got, []string{"1"}) {
		t.Errorf("selected %q, want [1]", got)
	}
	got = selectTexts(t, "$[?@.s==value(@.p[?@.k=='x\\u0079'].s) || length(@.s)==value(@.p[?@.k=='xy'].k)].id", body, false)
	if len(got) != 0 {
		t.Errorf("selected %q, want none", got)
	}
}
