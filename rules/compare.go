package rules

import (
	"bytes"
	"strconv"
)

// operand is a value in a filter expression: a literal, a function result or the value of
// a node, with scalars decoded. The zero operand is RFC 9535 Nothing (no value).
type operand struct {
	kind Kind    // zero for Nothing
	num  float64 // Number
	str  []byte  // String, unescaped
	node int32   // Object and Array: the node's tape index
}

// compareOp is a comparison operator of a filter.
type compareOp uint8

const (
	opEqual compareOp = iota
	opNotEqual
	opLess
	opLessEqual
	opGreater
	opGreaterEqual
)

// compare applies op as RFC 9535, section 2.3.5.2.2 defines it: == is deep equality of
// JSON values, where Nothing equals only Nothing, and < orders numbers and strings only.
func (ev *evaluator) compare(op compareOp, x, y *operand) bool {
	switch op {
	case opEqual:
		return ev.equal(x, y)
	case opNotEqual:
		return !ev.equal(x, y)
	case opLess:
		return less(x, y)
	case opLessEqual:
		return less(x, y) || ev.equal(x, y)
	case opGreater:
		return less(y, x)
	default:
		return less(y, x) || ev.equal(x, y)
	}
}

// resolve sets out to the value of the node n. The unescaped text of a string with
// escapes is appended to ev.scratch. The caller truncates ev.scratch to its length from
// before the evaluation when done, so nested evaluations never overwrite a live string.
func (ev *evaluator) resolve(n int32, out *operand) {
	e := &ev.tape[n]
	*out = operand{kind: e.kind, node: n}
	switch e.kind {
	case Number:
		out.num = ev.number(e)
	case String:
		out.str = ev.stringValue(e)
	}
}

// number decodes a number node.
//
// NOTE: numbers compare as float64, so integers beyond 2^53 may compare equal to their
// neighbors.
func (ev *evaluator) number(e *entry) float64 {
	f, _ := strconv.ParseFloat(string(ev.data[e.start:e.end]), 64)
	return f
}

// stringValue returns the content of a string node: the document's own bytes, which must
// not be modified, or its unescaped form appended to ev.scratch when it has escapes.
func (ev *evaluator) stringValue(e *entry) []byte {
	raw := ev.data[e.start+1 : e.end-1]
	if e.flags&flagValueEscaped == 0 {
		return raw
	}
	start := len(ev.scratch)
	ev.scratch = appendUnescaped(ev.scratch, raw)
	return ev.scratch[start:len(ev.scratch):len(ev.scratch)]
}

func (ev *evaluator) equal(x, y *operand) bool {
	if x.kind != y.kind {
		return false
	}
	switch x.kind {
	case Number:
		return x.num == y.num
	case String:
		return bytes.Equal(x.str, y.str)
	case Object, Array:
		mark := len(ev.scratch)
		equal := ev.deepEqual(x.node, y.node)
		ev.scratch = ev.scratch[:mark]
		return equal
	}
	return true // Nothing, null, true, false
}

func less(x, y *operand) bool {
	switch {
	case x.kind == Number && y.kind == Number:
		return x.num < y.num
	case x.kind == String && y.kind == String:
		// UTF-8 byte order is Unicode scalar value order
		return bytes.Compare(x.str, y.str) < 0
	}
	return false
}

// deepEqual reports whether the nodes a and b are equal JSON values. Recursion is bounded
// by the document's nesting depth, which Parse limits.
func (ev *evaluator) deepEqual(a, b int32) bool {
	ea, eb := &ev.tape[a], &ev.tape[b]
	if ea.kind != eb.kind {
		return false
	}
	switch ea.kind {
	case Number:
		return ev.number(ea) == ev.number(eb)
	case String:
		return bytes.Equal(ev.stringValue(ea), ev.stringValue(eb))
	case Array:
		if ev.length(a) != ev.length(b) {
			return false
		}
		for i, j := a+1, b+1; i < ea.next; i, j = ev.tape[i].next, ev.tape[j].next {
			if !ev.deepEqual(i, j) {
				return false
			}
		}
		return true
	case Object:
		return ev.length(a) == ev.length(b) && ev.membersEqual(a, b)
	}
	return true
}

// membersEqual reports whether every member of the object a has an equal member of the
// same name in the object b. Members in the same order are matched in one pass, and the
// others by a search of b.
func (ev *evaluator) membersEqual(a, b int32) bool {
	var nameA, nameB []byte
	j := b + 1
	for i := a + 1; i < ev.tape[a].next; i = ev.tape[i].next {
		name := ev.doc.memberName(&ev.tape[i], &nameA)
		if j >= ev.tape[b].next || !bytes.Equal(ev.doc.memberName(&ev.tape[j], &nameB), name) {
			var ok bool
			if j, ok = ev.member(b, name); !ok {
				return false
			}
		}
		if !ev.deepEqual(i, j) {
			return false
		}
		j = ev.tape[j].next
	}
	return true
}

// member returns the member of the object n whose unescaped name is name.
func (ev *evaluator) member(n int32, name []byte) (int32, bool) {
	end := ev.tape[n].next
	var buf []byte
	for c := n + 1; c < end; c = ev.tape[c].next {
		if bytes.Equal(ev.doc.memberName(&ev.tape[c], &buf), name) {
			return c, true
		}
	}
	return 0, false
}
