package rules

import (
	"errors"
	"slices"
	"testing"
)

func TestOutermost(t *testing.T) {
	nodes := []Node{
		{Start: 10, End: 12}, {Start: 2, End: 20}, {Start: 5, End: 8}, {Start: 2, End: 20},
		{Start: 30, End: 31}, {Start: 25, End: 28}, {Start: 2, End: 4},
	}
	got := Outermost(nodes)
	want := []Node{{Start: 2, End: 20}, {Start: 25, End: 28}, {Start: 30, End: 31}}
	if !slices.Equal(got, want) {
		t.Errorf("Outermost = %v, want %v", got, want)
	}
	if nodes[0].Start != 10 {
		t.Error("Outermost modified its argument")
	}
}

func TestSplice(t *testing.T) {
	src := []byte(`{"a":"x","b":[1,2],"c":true}`)
	edits := []Edit{
		{Start: 5, End: 8, Value: []byte(`"id_1"`)},
		{Start: 13, End: 18, Value: []byte(`null`)},
		{Start: 23, End: 27, Value: nil},
	}
	got := Splice([]byte("prefix:"), src, edits)
	want := `prefix:{"a":"id_1","b":null,"c":}`
	if string(got) != want {
		t.Errorf("Splice = %s, want %s", got, want)
	}
	if got := Splice(nil, src, nil); string(got) != string(src) {
		t.Errorf("Splice without edits = %s", got)
	}
}

func TestSplicePanicsOnOverlap(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Splice of overlapping edits did not panic")
		}
	}()
	Splice(nil, []byte("0123456789"), []Edit{{Start: 2, End: 5}, {Start: 4, End: 6}})
}

func TestCheck(t *testing.T) {
	out, err := Check("$..email", []byte(`{"email":"a","u":[{"email":"<b>"}],"it's":{"email":1}}`))
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	want := `["$['email']","$['u'][0]['email']","$['it\\'s']['email']"]`
	if string(out) != want {
		t.Errorf("Check = %s, want %s", out, want)
	}

	out, err = Check("$.none", []byte(`{}`))
	if err != nil || string(out) != "[]" {
		t.Errorf("Check with no match = %s, %v, want []", out, err)
	}
}

func TestCheckErrors(t *testing.T) {
	_, err := Check("$[", []byte(`{}`))
	var qe *QueryError
	if !errors.As(err, &qe) {
		t.Errorf("Check(invalid query) error = %v, want *QueryError", err)
	}
	_, err = Check("$", []byte(`{"a":1,"a":2}`))
	var se *SyntaxError
	if !errors.As(err, &se) {
		t.Errorf("Check(invalid input) error = %v, want *SyntaxError", err)
	}
}
