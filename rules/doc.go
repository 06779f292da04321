// Package rules selects values in JSON bodies with RFC 9535 JSONPath queries and rewrites
// them in one pass.
//
// Parse validates a body strictly (RFC 8259 grammar, valid UTF-8, paired surrogates, no
// duplicate member names, bounded depth) and indexes it. A compiled Query selects nodes as
// byte offsets into the raw body, and Splice replaces those byte ranges, so every byte
// outside a replaced value stays as it was.
//
//	doc, err := rules.Parse(body, rules.Options{})
//	if err != nil { ... }
//	defer doc.Release() // optional: lets a later Parse reuse the index
//	q := rules.MustCompile("$.users[*].email")
//	var edits []rules.Edit
//	for _, n := range rules.Outermost(q.Select(doc)) {
//		edits = append(edits, rules.Edit{Start: n.Start, End: n.End, Value: replacement})
//	}
//	out := rules.Splice(nil, body, edits)
package rules

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
)

// DefaultMaxDepth is the nesting depth that Parse accepts when Options.MaxDepth is zero.
const DefaultMaxDepth = 64

// maxDocumentSize is the largest body Parse accepts, because the index stores offsets as
// int32.
const maxDocumentSize = 1<<31 - 1

// Options configures Parse.
type Options struct {
	// MaxDepth is the maximum number of nested arrays and objects. A top-level array or
	// object has depth 1. Zero or a negative value means DefaultMaxDepth.
	MaxDepth int
}

// Kind is the type of a JSON value.
type Kind uint8

// The kinds of JSON values. The zero Kind is not a valid kind.
const (
	Null Kind = iota + 1
	False
	True
	Number
	String
	Object
	Array
)

var kindNames = [...]string{"invalid", "null", "false", "true", "number", "string", "object", "array"}

// String returns the JSON name of the kind, such as "object".
func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// Node is a value in a Document: Bytes()[Start:End] is the value's raw JSON text, without
// surrounding whitespace. A string node includes its quotes.
type Node struct {
	Start, End int
	Kind       Kind
}

// SyntaxError reports why Parse rejected a body. Reason is a fixed phrase and never
// contains bytes of the body, so the error is safe to log and to return to clients.
type SyntaxError struct {
	Offset int64  // byte offset of the first invalid byte, or the body length at its end
	Reason string // fixed phrase such as "duplicate member name"
}

// Error returns "invalid JSON at byte N: reason".
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.Offset, e.Reason)
}

// entry is one value in a Document's index. The index lists values in document order
// (pre-order), so the children of a container follow it directly.
type entry struct {
	start, end       int32 // raw value text
	keyStart, keyEnd int32 // member name text without quotes; zero for array elements
	next             int32 // index of the first entry after this value's subtree
	kind             Kind
	flags            uint8
}

// entry flags.
const (
	flagMember       = 1 << iota // value is an object member; keyStart and keyEnd are set
	flagKeyEscaped               // member name contains a backslash escape
	flagValueEscaped             // string value contains a backslash escape
)

// Document is a validated JSON body and its structural index. It refers to the bytes
// given to Parse, which the caller must not modify while the Document is in use. A
// Document is safe for concurrent use by multiple goroutines.
type Document struct {
	data []byte
	tape []entry
}

// Bytes returns the body that the Document was parsed from, without a copy.
func (d *Document) Bytes() []byte {
	return d.data
}

// Root returns the top-level value.
func (d *Document) Root() Node {
	return d.node(0)
}

// MemberName returns the member name of n, unescaped, when n is the value of an object
// member of d, and false for the root and for array elements.
func (d *Document) MemberName(n Node) (string, bool) {
	i, found := slices.BinarySearchFunc(d.tape, n.Start, func(e entry, start int) int {
		return cmp.Compare(int(e.start), start)
	})
	if !found || int(d.tape[i].end) != n.End || d.tape[i].flags&flagMember == 0 {
		return "", false
	}
	return string(d.memberName(&d.tape[i], nil)), true
}

func (d *Document) node(i int32) Node {
	e := &d.tape[i]
	return Node{Start: int(e.start), End: int(e.end), Kind: e.kind}
}
