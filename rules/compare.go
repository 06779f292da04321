package rules

import (
	"bytes"
	"strconv"
)

// valueKind is the kind of a value in a filter expression.
type valueKind uint8

const (
	valueNothing valueKind = iota // RFC 9535 Nothing: no node, no value
	valueNode                     // a node of the document
	valueNull
	valueTrue
	valueFalse
	valueNumber
	valueString
)

// value is a filter value: a node of the document, a literal or a function result.
type value struct {
	kind valueKind
	node int32   // valueNode
	num  float64 // valueNumber
	str  []byte  // valueString, unescaped
}

func nodeValue(n int32) value {
	return value{kind: valueNode, node: n}
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

// operand is a value resolved for comparison: scalars decoded, containers by tape index.
type operand struct {
	kind Kind // zero for Nothing
	num  float64
	str  []byte
	node int32
}

// compare applies op as RFC 9535, section 2.3.5.2.2 defines it: == is deep equality of
// JSON values, where Nothing equals only Nothing, and < orders numbers and strings only.
func (ev *evaluator) compare(op compareOp, a, b value) bool {
	x := ev.operand(a, &ev.left)
	y := ev.operand(b, &ev.right)
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

// operand resolves v. Escaped strings of the document are unescaped into buf.
func (ev *evaluator) operand(v value, buf *[]byte) operand {
	switch v.kind {
	case valueNull:
		return operand{kind: Null}
	case valueTrue:
		return operand{kind: True}
	case valueFalse:
		return operand{kind: False}
	case valueNumber:
		return operand{kind: Number, num: v.num}
	case valueString:
		return operand{kind: String, str: v.str}
	case valueNode:
		e := &ev.tape[v.node]
		switch e.kind {
		case Number:
			return operand{kind: Number, num: ev.number(e)}
		case String:
			return operand{kind: String, str: ev.stringValue(e, buf)}
		}
		return operand{kind: e.kind, node: v.node}
	}
	return operand{}
}

// number decodes a number node. Numbers compare as float64, so integers beyond 2^53 may
// compare equal to their neighbors.
func (ev *evaluator) number(e *entry) float64 {
	f, _ := strconv.ParseFloat(string(ev.data[e.start:e.end]), 64)
	return f
}

// stringValue returns the content of a string node: unescaped into the scratch buffer
// *buf when it has escapes, and otherwise the document's own bytes, which must not be
// modified. A nil buf allocates.
func (ev *evaluator) stringValue(e *entry, buf *[]byte) []byte {
	raw := ev.data[e.start+1 : e.end-1]
	if e.flags&flagValueEscaped == 0 {
		return raw
	}
	if buf == nil {
		return appendUnescaped(nil, raw)
	}
	*buf = appendUnescaped((*buf)[:0], raw)
	return *buf
}

func (ev *evaluator) equal(x, y operand) bool {
	if x.kind != y.kind {
		return false
	}
	switch x.kind {
	case Number:
		return x.num == y.num
	case String:
		return bytes.Equal(x.str, y.str)
	case Object, Array:
		return ev.deepEqual(x.node, y.node)
	}
	return true // Nothing, null, true, false
}

func less(x, y operand) bool {
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
		return bytes.Equal(ev.stringValue(ea, nil), ev.stringValue(eb, nil))
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
