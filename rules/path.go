package rules

import "strconv"

// SelectPaths returns the RFC 9535 normalized paths of the nodes that q selects in d, in
// the same order as Select, such as "$['users'][0]['email']".
func (q *Query) SelectPaths(d *Document) []string {
	ev := newEvaluator(d, false)
	defer ev.free()
	list := ev.run(q.segments, 0, ev.list())
	defer ev.release(list)
	if len(list) == 0 {
		return nil
	}
	parents, ordinals := d.parents()
	out := make([]string, len(list))
	var buf []byte
	for i, n := range list {
		buf = d.appendPath(buf[:0], n, parents, ordinals)
		out[i] = string(buf)
	}
	return out
}

// parents returns, for every entry of the index, the index of its parent (-1 for the
// root) and its position among the parent's children. It costs one pass over the index.
func (d *Document) parents() (parents, ordinals []int32) {
	parents = make([]int32, len(d.tape))
	ordinals = make([]int32, len(d.tape))
	parents[0] = -1
	for i := range d.tape {
		e := &d.tape[i]
		if e.kind != Object && e.kind != Array {
			continue
		}
		ordinal := int32(0)
		for c := int32(i) + 1; c < e.next; c = d.tape[c].next {
			parents[c] = int32(i)
			ordinals[c] = ordinal
			ordinal++
		}
	}
	return parents, ordinals
}

// appendPath appends the normalized path of the node n.
func (d *Document) appendPath(dst []byte, n int32, parents, ordinals []int32) []byte {
	var chain []int32
	for i := n; i > 0; i = parents[i] {
		chain = append(chain, i)
	}
	dst = append(dst, '$')
	var buf []byte
	for k := len(chain) - 1; k >= 0; k-- {
		i := chain[k]
		if d.tape[parents[i]].kind == Array {
			dst = append(dst, '[')
			dst = strconv.AppendInt(dst, int64(ordinals[i]), 10)
			dst = append(dst, ']')
			continue
		}
		name := d.memberName(&d.tape[i], &buf)
		dst = append(dst, '[', '\'')
		dst = appendPathName(dst, name)
		dst = append(dst, '\'', ']')
	}
	return dst
}

// appendPathName appends a member name escaped as RFC 9535, section 2.7 requires inside
// the single quotes of a normalized path.
func appendPathName(dst, name []byte) []byte {
	const hex = "0123456789abcdef"
	for _, c := range name {
		switch c {
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		case '\'':
			dst = append(dst, '\\', '\'')
		case '\\':
			dst = append(dst, '\\', '\\')
		default:
			if c < 0x20 {
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			} else {
				dst = append(dst, c)
			}
		}
	}
	return dst
}
