package rules

import "slices"

// Edit replaces src[Start:End] with Value.
type Edit struct {
	Start, End int
	Value      []byte
}

// Outermost returns nodes sorted by Start without duplicates and without the nodes that
// lie inside another node of the list, so that the result can be turned into
// non-overlapping edits. It does not modify nodes.
func Outermost(nodes []Node) []Node {
	// JSON values either nest or are disjoint, so among nodes with the same start the
	// longest is the outermost
	byStart := func(a, b Node) int {
		if a.Start != b.Start {
			return a.Start - b.Start
		}
		return b.End - a.End
	}
	sorted := slices.Clone(nodes)
	if !slices.IsSortedFunc(sorted, byStart) {
		slices.SortFunc(sorted, byStart)
	}
	out := sorted[:0]
	end := -1
	for _, n := range sorted {
		if n.Start < end {
			continue
		}
		out = append(out, n)
		end = n.End
	}
	return out
}

// Splice appends to dst the bytes of src with each edit applied, in one pass, and returns
// the extended slice. Edits must be sorted by Start, must not overlap and must lie within
// src; Splice panics otherwise.
func Splice(dst, src []byte, edits []Edit) []byte {
	size := len(src)
	for _, e := range edits {
		size += len(e.Value) - (e.End - e.Start)
	}
	dst = slices.Grow(dst, size)

	prev := 0
	for _, e := range edits {
		if e.Start < prev || e.End < e.Start || e.End > len(src) {
			panic("rules: Splice edits must be sorted, non-overlapping and within src")
		}
		dst = append(dst, src[prev:e.Start]...)
		dst = append(dst, e.Value...)
		prev = e.End
	}
	return append(dst, src[prev:]...)
}
