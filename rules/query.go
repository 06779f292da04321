package rules

import "fmt"

// Query is a compiled RFC 9535 JSONPath query. A Query is safe for concurrent use.
type Query struct {
	src      string
	segments []segment
	names    []string
}

// QueryError reports why Compile rejected a query.
type QueryError struct {
	Query  string // the query as given
	Offset int    // byte offset in Query where the error was found
	Reason string
}

// Error names the query and the byte position of the error.
func (e *QueryError) Error() string {
	return fmt.Sprintf("invalid JSONPath query %q at position %d: %s", e.Query, e.Offset, e.Reason)
}

// Compile parses an RFC 9535 JSONPath query, such as "$.users[*].email". The query must
// start with "$" and may not have leading or trailing whitespace. Errors are *QueryError.
func Compile(query string) (*Query, error) {
	c := compiler{src: query}
	segments, err := c.query()
	if err != nil {
		return nil, err
	}
	q := &Query{src: query, segments: segments}
	q.names = collectNames(nil, segments)
	return q, nil
}

// MustCompile is like Compile but panics if the query is invalid. It simplifies the
// initialization of global variables and tests.
func MustCompile(query string) *Query {
	q, err := Compile(query)
	if err != nil {
		panic("rules: " + err.Error())
	}
	return q
}

// String returns the query text given to Compile.
func (q *Query) String() string {
	return q.src
}

// Names returns the member names that the query's name selectors mention, including those
// inside filter expressions, each once, in the order they first appear. The caller must
// not modify the result.
func (q *Query) Names() []string {
	return q.names
}

// Field returns the member name that the query's last segment selects, when that
// segment is one name selector, such as "line1" for $.addresses[*].line1 or $..line1,
// and "" otherwise.
func (q *Query) Field() string {
	if len(q.segments) == 0 {
		return ""
	}
	return singleName(q.segments[len(q.segments)-1])
}

// LastName returns the name of the query's last segment that is one name selector, such
// as "phones" for $.phones[*] and $.phones[0:2], and "" when no segment is.
func (q *Query) LastName() string {
	for i := len(q.segments) - 1; i >= 0; i-- {
		if name := singleName(q.segments[i]); name != "" {
			return name
		}
	}
	return ""
}

// singleName returns the name that seg selects when seg is one name selector.
func singleName(seg segment) string {
	if len(seg.selectors) != 1 || seg.selectors[0].kind != selectName {
		return ""
	}
	return seg.selectors[0].name
}

// segment is a child segment, or a descendant segment ("..") when descendant is set.
type segment struct {
	descendant bool
	blank      bool // the brackets contain blank space
	selectors  []selector
}

type selectorKind uint8

const (
	selectName selectorKind = iota
	selectWildcard
	selectIndex
	selectSlice
	selectFilter
)

// selector is one selector of a segment. The fields that apply depend on kind.
type selector struct {
	kind   selectorKind
	name   string    // selectName
	index  int64     // selectIndex
	slice  sliceSpec // selectSlice
	filter logicalExpr
}

// sliceSpec is an array slice start:end:step with the parts that were given.
type sliceSpec struct {
	start, end, step          int64
	hasStart, hasEnd, hasStep bool
}

// singular reports whether segments form a singular query: only child segments with one
// name or index selector each, so that the query selects at most one node. The RFC 9535
// grammar of singular queries allows no blank space inside the brackets, so "@[ 'a' ]"
// is not singular.
func singular(segments []segment) bool {
	for _, s := range segments {
		if s.descendant || s.blank || len(s.selectors) != 1 {
			return false
		}
		if k := s.selectors[0].kind; k != selectName && k != selectIndex {
			return false
		}
	}
	return true
}

// collectNames appends the names of the name selectors in segments that names does not
// contain yet.
func collectNames(names []string, segments []segment) []string {
	for _, s := range segments {
		for _, sel := range s.selectors {
			switch sel.kind {
			case selectName:
				names = appendNew(names, sel.name)
			case selectFilter:
				names = sel.filter.appendNames(names)
			}
		}
	}
	return names
}

func appendNew(names []string, name string) []string {
	for _, n := range names {
		if n == name {
			return names
		}
	}
	return append(names, name)
}
