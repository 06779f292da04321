package rules

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
)

// ctsPath is the RFC 9535 compliance test suite, in the shared folder beside the
// repository.
var ctsPath = filepath.Join("..", "..", "shared", "jsonpath-cts", "cts.json")

type ctsCase struct {
	Name            string              `json:"name"`
	Selector        string              `json:"selector"`
	Document        json.RawMessage     `json:"document"`
	Result          []json.RawMessage   `json:"result"`
	Results         [][]json.RawMessage `json:"results"`
	ResultPaths     []string            `json:"result_paths"`
	ResultsPaths    [][]string          `json:"results_paths"`
	InvalidSelector bool                `json:"invalid_selector"`
}

func loadCTS(tb testing.TB) []ctsCase {
	tb.Helper()
	data, err := os.ReadFile(ctsPath)
	if errors.Is(err, os.ErrNotExist) {
		tb.Skipf("compliance test suite not found at %s; clone it there to run it", ctsPath)
	}
	if err != nil {
		tb.Fatalf("reading compliance test suite: %v", err)
	}
	var suite struct {
		Tests []ctsCase `json:"tests"`
	}
	if err := json.Unmarshal(data, &suite); err != nil {
		tb.Fatalf("decoding compliance test suite: %v", err)
	}
	return suite.Tests
}

func TestCompliance(t *testing.T) {
	cases := loadCTS(t)
	for _, tc := range cases {
		q, err := Compile(tc.Selector)
		t.Run(tc.Name, func(t *testing.T) {
			if tc.InvalidSelector {
				if err == nil {
					t.Fatalf("Compile(%q) succeeded, want error", tc.Selector)
				}
				var qe *QueryError
				if !errors.As(err, &qe) {
					t.Fatalf("Compile(%q) error is %T, want *QueryError", tc.Selector, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Compile(%q): %v", tc.Selector, err)
			}
			checkCTSResult(t, q, tc)
		})
	}
}

func checkCTSResult(t *testing.T, q *Query, tc ctsCase) {
	t.Helper()
	d, err := Parse(tc.Document, Options{})
	if err != nil {
		t.Fatalf("Parse(document): %v", err)
	}

	var values []any
	for _, n := range q.Select(d) {
		values = append(values, decode(t, d.Bytes()[n.Start:n.End]))
	}
	paths := q.SelectPaths(d)

	results, pathSets := tc.Results, tc.ResultsPaths
	if results == nil {
		results, pathSets = [][]json.RawMessage{tc.Result}, [][]string{tc.ResultPaths}
	}
	for i, want := range results {
		var wantValues []any
		for _, w := range want {
			wantValues = append(wantValues, decode(t, w))
		}
		if reflect.DeepEqual(values, wantValues) && slices.Equal(paths, pathSets[i]) {
			return
		}
	}
	t.Errorf("%s\nselected %v\npaths %q\nwant one of %s\npaths %q",
		tc.Selector, values, paths, rawString(results), pathSets)
}

func decode(t *testing.T, raw []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("decoding %s: %v", raw, err)
	}
	return v
}

func rawString(results [][]json.RawMessage) string {
	b, _ := json.Marshal(results)
	return string(b)
}
