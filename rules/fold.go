package rules

// FoldedName reports the byte offset of the first member name in d, in document order,
// that is not one of names but equals one of them under Unicode case folding
// (strings.EqualFold). Go's encoding/json matches struct fields to member names that way,
// so such a member can reach a field that a rule for one of names was meant to cover.
// Member names are compared after unescaping, and offset is that of the name's opening
// quote.
func (d *Document) FoldedName(names []string) (offset int, found bool) {
	if len(names) == 0 {
		return 0, false
	}
	asciiNames := true
	for _, n := range names {
		asciiNames = asciiNames && isASCIIString(n)
	}

	var buf []byte
	for i := range d.tape {
		e := &d.tape[i]
		if e.flags&flagMember == 0 {
			continue
		}
		name := d.memberName(e, &buf)
		if foldsToOneOf(name, names, asciiNames && isASCII(name)) {
			return int(e.keyStart) - 1, true
		}
	}
	return 0, false
}

// foldsToOneOf reports whether name is not in names but equals one of them under case
// folding. ascii is true when name and every name in names are ASCII. ASCII folding only
// maps A-Z to a-z, so the comparison then needs no Unicode tables, which matters because
// this check runs on every member of every body.
func foldsToOneOf(name []byte, names []string, ascii bool) bool {
	folded := false
	for _, n := range names {
		if string(name) == n {
			return false
		}
		if folded {
			continue
		}
		if ascii {
			folded = asciiEqualFold(name, n)
		} else {
			folded = equalFold(name, n)
		}
	}
	return folded
}

// asciiEqualFold reports whether the ASCII strings b and s are equal when A-Z are read
// as a-z.
func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
