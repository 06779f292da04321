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
	var buf []byte
	for i := range d.tape {
		e := &d.tape[i]
		if e.flags&flagMember == 0 {
			continue
		}
		name := d.memberName(e, &buf)
		if foldsToOneOf(name, names) {
			return int(e.keyStart) - 1, true
		}
	}
	return 0, false
}

// foldsToOneOf reports whether name is not in names but equals one of them under case
// folding.
func foldsToOneOf(name []byte, names []string) bool {
	folded := false
	for _, n := range names {
		if string(name) == n {
			return false
		}
		if !folded && equalFold(name, n) {
			folded = true
		}
	}
	return folded
}
