package rules

import (
	"regexp"
	"strings"
	"sync"
	"unicode"
)

// Select returns the nodes that q selects in d, in RFC 9535 nodelist order. Descendant
// segments visit object members in document order. A node appears once for each time a
// selector selects it, so a query such as "$[0,0]" returns a node twice.
func (q *Query) Select(d *Document) []Node {
	return q.nodes(d, false)
}

// SelectFold is like Select, but its name selectors, including those inside filters, also
// match member names that equal the selector's name under Unicode case folding, as
// strings.EqualFold compares them. Go's encoding/json matches struct fields to member
// names that way. Where a singular query inside a filter matches several members of one
// object, it takes the last one, which is the member encoding/json would keep.
func (q *Query) SelectFold(d *Document) []Node {
	return q.nodes(d, true)
}

func (q *Query) nodes(d *Document, fold bool) []Node {
	ev := newEvaluator(d, fold)
	defer ev.free()
	list := ev.run(q.segments, 0, ev.list())
	defer ev.release(list)
	if len(list) == 0 {
		return nil
	}
	out := make([]Node, len(list))
	for i, idx := range list {
		out[i] = d.node(idx)
	}
	return out
}

// evaluator holds the state of one selection over a document.
type evaluator struct {
	doc  *Document
	tape []entry
	data []byte
	fold bool

	name     []byte  // scratch for unescaped member names
	scratch  []byte  // stack of unescaped strings of filter operands
	children []int32 // scratch for slice selectors
	spare    [][]int32
	regexps  map[string]*regexp.Regexp
}

// evaluatorPool keeps evaluators with their scratch buffers and nodelists, so that a
// selection allocates little beyond its result.
var evaluatorPool = sync.Pool{New: func() any { return new(evaluator) }}

// maxPooledList is the capacity above which a nodelist is not kept for reuse.
const maxPooledList = 1 << 16

func newEvaluator(d *Document, fold bool) *evaluator {
	ev := evaluatorPool.Get().(*evaluator)
	ev.doc, ev.tape, ev.data, ev.fold = d, d.tape, d.data, fold
	return ev
}

// free returns the evaluator to the pool. Patterns computed from one document are not
// kept for the next.
func (ev *evaluator) free() {
	ev.doc, ev.tape, ev.data, ev.regexps = nil, nil, nil, nil
	ev.scratch = ev.scratch[:0]
	kept := ev.spare[:0]
	for _, l := range ev.spare {
		if cap(l) <= maxPooledList && len(kept) < 8 {
			kept = append(kept, l)
		}
	}
	clear(ev.spare[len(kept):])
	ev.spare = kept
	evaluatorPool.Put(ev)
}

// run applies segments to the node at index start and appends the resulting nodelist
// (tape indexes) to out.
func (ev *evaluator) run(segments []segment, start int32, out []int32) []int32 {
	if len(segments) == 0 {
		return append(out, start)
	}
	current := append(ev.list(), start)
	var next []int32
	for i, seg := range segments {
		if i == len(segments)-1 {
			next = out
		} else {
			next = ev.list()
		}
		for _, n := range current {
			next = ev.segment(next, seg, n)
		}
		ev.release(current)
		current = next
	}
	return current
}

// list returns an empty nodelist buffer, reused from earlier runs where possible.
func (ev *evaluator) list() []int32 {
	if k := len(ev.spare); k > 0 {
		l := ev.spare[k-1]
		ev.spare = ev.spare[:k-1]
		return l[:0]
	}
	return make([]int32, 0, 16)
}

func (ev *evaluator) release(l []int32) {
	ev.spare = append(ev.spare, l)
}

// segment appends the nodes that seg selects from the node n.
func (ev *evaluator) segment(out []int32, seg segment, n int32) []int32 {
	if !seg.descendant {
		return ev.selectors(out, seg.selectors, n)
	}

	// the tape is in pre-order, so walking it visits n and then its descendants in
	// the order RFC 9535 requires. Scalars have no children to select.
	end := ev.tape[n].next
	for i := n; i < end; i++ {
		if k := ev.tape[i].kind; k == Object || k == Array {
			out = ev.selectors(out, seg.selectors, i)
		}
	}
	return out
}

// selectors appends the nodes that each selector selects from the node n, selector by
// selector.
func (ev *evaluator) selectors(out []int32, sels []selector, n int32) []int32 {
	e := &ev.tape[n]
	if e.kind != Object && e.kind != Array {
		return out
	}
	for i := range sels {
		sel := &sels[i]
		switch sel.kind {
		case selectName:
			if e.kind == Object {
				out = ev.selectName(out, sel.name, n)
			}
		case selectWildcard:
			for c := n + 1; c < e.next; c = ev.tape[c].next {
				out = append(out, c)
			}
		case selectIndex:
			if e.kind == Array {
				out = ev.selectIndex(out, sel.index, n)
			}
		case selectSlice:
			if e.kind == Array {
				out = ev.selectSlice(out, sel.slice, n)
			}
		case selectFilter:
			for c := n + 1; c < e.next; c = ev.tape[c].next {
				if sel.filter.test(ev, c) {
					out = append(out, c)
				}
			}
		}
	}
	return out
}

// selectName appends the members of the object n named name. Without folding there is
// at most one, because Parse rejects duplicate names.
func (ev *evaluator) selectName(out []int32, name string, n int32) []int32 {
	end := ev.tape[n].next
	for c := n + 1; c < end; c = ev.tape[c].next {
		if ev.nameMatches(&ev.tape[c], name) {
			out = append(out, c)
			if !ev.fold {
				return out
			}
		}
	}
	return out
}

// nameMatches reports whether the member name of e equals name after unescaping, or
// under case folding when the evaluator folds.
func (ev *evaluator) nameMatches(e *entry, name string) bool {
	raw := ev.data[e.keyStart:e.keyEnd]
	if e.flags&flagKeyEscaped != 0 {
		ev.name = appendUnescaped(ev.name[:0], raw)
		raw = ev.name
	}
	if string(raw) == name {
		return true
	}
	return ev.fold && equalFold(raw, name)
}

// equalFold reports whether b and s are equal under Unicode case folding.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) && isASCII(b) && isASCIIString(s) {
		return false
	}
	return strings.EqualFold(string(b), s) || caseless(string(b)) == caseless(s)
}

// caseless maps each rune of s to the lower case of its upper case. That also joins the
// letters that Java's equalsIgnoreCase and JavaScript's toUpperCase match but Go's
// simple folding keeps apart, such as dotless ı and dotted İ with i.
func caseless(s string) string {
	return strings.Map(func(r rune) rune { return unicode.ToLower(unicode.ToUpper(r)) }, s)
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func isASCIIString(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// selectIndex appends the element of the array n at index, counted from the end when
// index is negative.
func (ev *evaluator) selectIndex(out []int32, index int64, n int32) []int32 {
	if index < 0 {
		index += int64(ev.length(n))
		if index < 0 {
			return out
		}
	}
	end := ev.tape[n].next
	for c := n + 1; c < end; c = ev.tape[c].next {
		if index == 0 {
			return append(out, c)
		}
		index--
	}
	return out
}

// length returns the number of elements or members of the container n.
func (ev *evaluator) length(n int32) int {
	count := 0
	end := ev.tape[n].next
	for c := n + 1; c < end; c = ev.tape[c].next {
		count++
	}
	return count
}

// selectSlice appends the elements of the array n that the slice selects, following the
// bounds computation of RFC 9535, section 2.3.4.2.
func (ev *evaluator) selectSlice(out []int32, s sliceSpec, n int32) []int32 {
	step := int64(1)
	if s.hasStep {
		step = s.step
	}
	if step == 0 {
		return out
	}

	kids := ev.children[:0]
	end := ev.tape[n].next
	for c := n + 1; c < end; c = ev.tape[c].next {
		kids = append(kids, c)
	}
	ev.children = kids
	length := int64(len(kids))

	lower, upper := sliceBounds(s, step, length)
	if step > 0 {
		for i := lower; i < upper; i += step {
			out = append(out, kids[i])
		}
		return out
	}
	for i := upper; lower < i; i += step {
		out = append(out, kids[i])
	}
	return out
}

// sliceBounds returns the lower and upper bounds of a slice over length elements.
func sliceBounds(s sliceSpec, step, length int64) (lower, upper int64) {
	start, end := int64(0), length
	if step < 0 {
		start, end = length-1, -length-1
	}
	if s.hasStart {
		start = normalizeIndex(s.start, length)
	}
	if s.hasEnd {
		end = normalizeIndex(s.end, length)
	}
	if step > 0 {
		return min(max(start, 0), length), min(max(end, 0), length)
	}
	return min(max(end, -1), length-1), min(max(start, -1), length-1)
}

func normalizeIndex(i, length int64) int64 {
	if i >= 0 {
		return i
	}
	return length + i
}

// memberName returns the member name of the entry: unescaped into the scratch buffer *buf
// when it has escapes, and otherwise the document's own bytes, which must not be
// modified. A nil buf allocates.
func (d *Document) memberName(e *entry, buf *[]byte) []byte {
	raw := d.data[e.keyStart:e.keyEnd]
	if e.flags&flagKeyEscaped == 0 {
		return raw
	}
	if buf == nil {
		return appendUnescaped(nil, raw)
	}
	*buf = appendUnescaped((*buf)[:0], raw)
	return *buf
}
