package rules

import (
	"errors"
	"slices"
	"testing"
)

// selectTexts returns the raw text of each node that query selects in body.
func selectTexts(t *testing.T, query, body string, fold bool) []string {
	t.Helper()
	d, err := Parse([]byte(body), Options{})
	if err != nil {
		t.Fatalf("Parse(%s): %v", body, err)
	}
	q := MustCompile(query)
	nodes := q.Select(d)
	if fold {
		nodes = q.SelectFold(d)
	}
	var out []string
	for _, n := range nodes {
		out = append(out, body[n.Start:n.End])
	}
	return out
}

func TestSelectRawText(t *testing.T) {
	body := `{"users": [ {"email" : "a@x" , "n":1.50}, {"email":"b\u0040x","n":[ 1 ]} ] }`
	cases := []struct {
		query string
		want  []string
	}{
		{"$.users[*].email", []string{`"a@x"`, `"b\u0040x"`}},
		{"$.users[*].n", []string{`1.50`, `[ 1 ]`}},
		{"$..n", []string{`1.50`, `[ 1 ]`}},
		{"$.users[-1].n[0]", []string{`1`}},
		{"$.users[1:]['email']", []string{`"b\u0040x"`}},
		{"$['users'][0,0].n", []string{`1.50`, `1.50`}},
		{"$.missing", nil},
		{"$.users.email", nil},
		{"$", []string{body[:len(body)]}},
	}
	for _, tc := range cases {
		got := selectTexts(t, tc.query, body, false)
		if tc.query == "$" {
			tc.want = []string{body}
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s selected %q, want %q", tc.query, got, tc.want)
		}
	}
}

func TestSelectEscapedMemberName(t *testing.T) {
	body := `{"e\u006dail":"x","a\"b":1,"\ud83d\ude00":2}`
	if got := selectTexts(t, "$.email", body, false); !slices.Equal(got, []string{`"x"`}) {
		t.Errorf("$.email selected %q", got)
	}
	if got := selectTexts(t, `$['a"b']`, body, false); !slices.Equal(got, []string{`1`}) {
		t.Errorf(`$['a"b'] selected %q`, got)
	}
	if got := selectTexts(t, "$['\U0001F600']", body, false); !slices.Equal(got, []string{`2`}) {
		t.Errorf("$['\U0001F600'] selected %q", got)
	}
}

func TestSelectFold(t *testing.T) {
	body := `{"Email":"a","EMAIL":"b","email":"c","e\u006dAIL":"d","\u212Aey":"k","other":"o"}`
	if got := selectTexts(t, "$.email", body, false); !slices.Equal(got, []string{`"c"`}) {
		t.Errorf("Select $.email = %q, want only the exact member", got)
	}
	want := []string{`"a"`, `"b"`, `"c"`, `"d"`}
	if got := selectTexts(t, "$.email", body, true); !slices.Equal(got, want) {
		t.Errorf("SelectFold $.email = %q, want %q", got, want)
	}
	// U+212A KELVIN SIGN folds to 'k'
	if got := selectTexts(t, "$.key", body, true); !slices.Equal(got, []string{`"k"`}) {
		t.Errorf("SelectFold $.key = %q, want the Kelvin sign member", got)
	}
}

func TestSelectPaths(t *testing.T) {
	body := `{"a":[{"b":1},{"it's":2,"\u0007\n\\":3}],"c":{"d":4}}`
	d, err := Parse([]byte(body), Options{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	got := MustCompile("$..*").SelectPaths(d)
	want := []string{
		"$['a']", "$['c']", "$['a'][0]", "$['a'][1]", "$['a'][0]['b']",
		`$['a'][1]['it\'s']`, `$['a'][1]['\u0007\n\\']`, "$['c']['d']",
	}
	if !slices.Equal(got, want) {
		t.Errorf("SelectPaths = %q\nwant %q", got, want)
	}
}

func TestNames(t *testing.T) {
	q := MustCompile("$.a['b','a'][*]..c.d[0]")
	if got, want := q.Names(), []string{"a", "b", "c", "d"}; !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
}

func TestFoldedName(t *testing.T) {
	cases := []struct {
		body   string
		offset int
		found  bool
	}{
		{`{"email":1,"phone":2}`, 0, false},
		{`{"x":{"email":1},"y":[{"EMAIL":2}]}`, 23, true},
		{`{"e\u006dail":1,"Phone":2}`, 16, true},
		{`{"\u212Aey":1}`, 1, true},
		{`{"emails":1,"EMAILS":2}`, 0, false},
		{`["EMAIL"]`, 0, false},
	}
	for _, tc := range cases {
		d, err := Parse([]byte(tc.body), Options{})
		if err != nil {
			t.Fatalf("Parse(%s): %v", tc.body, err)
		}
		offset, found := d.FoldedName([]string{"email", "phone", "key"})
		if found != tc.found || offset != tc.offset {
			t.Errorf("FoldedName(%s) = %d, %v, want %d, %v", tc.body, offset, found, tc.offset, tc.found)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	cases := []struct {
		query  string
		offset int
	}{
		{"", 0},
		{"a", 0},
		{" $", 0},
		{"$ ", 1},
		{"$.", 2},
		{"$[", 2},
		{"$[01]", 2},
		{"$[-0]", 2},
		{"$[9007199254740992]", 2},
		{"$['a", 4},
		{`$["\q"]`, 3},
		{`$["\ud800"]`, 3},
		{"$.a b", 3},
		{"$[1 2]", 4},
	}
	for _, tc := range cases {
		_, err := Compile(tc.query)
		var qe *QueryError
		if !errors.As(err, &qe) {
			t.Errorf("Compile(%q) error = %v, want *QueryError", tc.query, err)
			continue
		}
		if qe.Offset != tc.offset {
			t.Errorf("Compile(%q) offset = %d, want %d (%v)", tc.query, qe.Offset, tc.offset, err)
		}
		if qe.Query != tc.query {
			t.Errorf("Compile(%q) error names query %q", tc.query, qe.Query)
		}
	}
}

func TestMustCompilePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustCompile of an invalid query did not panic")
		}
	}()
	MustCompile("$[")
}

func TestQueryString(t *testing.T) {
	if got := MustCompile("$..a[1:2]").String(); got != "$..a[1:2]" {
		t.Errorf("String() = %q", got)
	}
}

func TestSelectConcurrent(t *testing.T) {
	d, err := Parse([]byte(`{"a":[{"b":"x\u0041"},{"b":"y"}],"c":"\u0078A"}`), Options{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	q := MustCompile("$.a[?@.b==$.c].b")
	done := make(chan []Node)
	for range 4 {
		go func() {
			var last []Node
			for range 200 {
				last = q.Select(d)
			}
			done <- last
		}()
	}
	for range 4 {
		if got := <-done; len(got) != 1 {
			t.Errorf("concurrent Select returned %d nodes, want 1", len(got))
		}
	}
}

func TestReleaseKeepsNodes(t *testing.T) {
	body := []byte(`{"a":"x","b":[1,2]}`)
	d, err := Parse(body, Options{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	nodes := MustCompile("$.b[*]").Select(d)
	d.Release()

	// a later Parse reuses the released index
	other, err := Parse([]byte(`[true,false,null]`), Options{})
	if err != nil {
		t.Fatalf("Parse after Release: %v", err)
	}
	if got := len(MustCompile("$[*]").Select(other)); got != 3 {
		t.Errorf("Select after Release found %d nodes, want 3", got)
	}
	if got := string(body[nodes[1].Start:nodes[1].End]); got != "2" {
		t.Errorf("node taken before Release has text %q, want 2", got)
	}
}

func TestQueryFieldAndLastName(t *testing.T) {
	tests := []struct{ query, field, lastName string }{
		{"$.email", "email", "email"},
		{"$.addresses[*].line1", "line1", "line1"},
		{"$..line1", "line1", "line1"},
		{"$['a']['b']", "b", "b"},
		{"$.phones[*]", "", "phones"},
		{"$.a[*][0:2]", "", "a"},
		{"$..phones[*]", "", "phones"},
		{"$['a','b']", "", ""},
		{"$['a','b'][*]", "", ""},
		{"$[*]", "", ""},
		{"$", "", ""},
		{"$[?@.x]", "", ""},
	}
	for _, tt := range tests {
		q := MustCompile(tt.query)
		if got := q.Field(); got != tt.field {
			t.Errorf("Field(%s) = %q, want %q", tt.query, got, tt.field)
		}
		if got := q.LastName(); got != tt.lastName {
			t.Errorf("LastName(%s) = %q, want %q", tt.query, got, tt.lastName)
		}
	}
}

func TestMemberName(t *testing.T) {
	body := []byte(`{"email": "a", "n\u0061me": {"x": [1, "b"]}}`)
	d, err := Parse(body, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		query, want string
		member      bool
	}{
		{"$.email", "email", true},
		{"$.name", "name", true},
		{"$.name.x", "x", true},
		{"$.name.x[1]", "", false},
		{"$", "", false},
	}
	for _, tt := range tests {
		nodes := MustCompile(tt.query).Select(d)
		if len(nodes) != 1 {
			t.Fatalf("%s selected %d nodes", tt.query, len(nodes))
		}
		name, member := d.MemberName(nodes[0])
		if name != tt.want || member != tt.member {
			t.Errorf("MemberName of %s = %q, %v; want %q, %v", tt.query, name, member, tt.want, tt.member)
		}
	}
}
