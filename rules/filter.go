package rules

import "regexp"

// logicalExpr is a compiled filter expression (RFC 9535 LogicalType).
type logicalExpr interface {
	// test evaluates the expression with the node at tape index current as '@'.
	test(ev *evaluator, current int32) bool
	// appendNames appends the names of the name selectors inside the expression.
	appendNames(names []string) []string
}

// valueExpr is an operand of a comparison or a function argument (RFC 9535 ValueType):
// a literal, a singular query or a function call with a value result. It is a struct, not
// an interface, so that the operands it fills stay on the stack.
type valueExpr struct {
	literal *operand
	query   *filterQuery // singular
	call    *funcCall
}

// eval sets out to the value with the node at tape index current as '@'. Strings may be
// appended to ev.scratch, which the caller truncates when done.
func (x *valueExpr) eval(ev *evaluator, current int32, out *operand) {
	switch {
	case x.literal != nil:
		*out = *x.literal
	case x.query != nil:
		n, ok := ev.singular(x.query.segments, x.query.start(current))
		if !ok {
			*out = operand{}
			return
		}
		ev.resolve(n, out)
	default:
		ev.call(x.call, current, out)
	}
}

func (x *valueExpr) appendNames(names []string) []string {
	switch {
	case x.query != nil:
		return x.query.appendNames(names)
	case x.call != nil:
		return x.call.appendNames(names)
	}
	return names
}

// filterQuery is a query inside a filter: relative to '@', or absolute from '$'.
type filterQuery struct {
	absolute bool
	singular bool
	segments []segment
}

// start returns the tape index that the query starts from.
func (q *filterQuery) start(current int32) int32 {
	if q.absolute {
		return 0
	}
	return current
}

func (q *filterQuery) appendNames(names []string) []string {
	return collectNames(names, q.segments)
}

type orExpr []logicalExpr

func (x orExpr) test(ev *evaluator, current int32) bool {
	for _, term := range x {
		if term.test(ev, current) {
			return true
		}
	}
	return false
}

func (x orExpr) appendNames(names []string) []string {
	for _, term := range x {
		names = term.appendNames(names)
	}
	return names
}

type andExpr []logicalExpr

func (x andExpr) test(ev *evaluator, current int32) bool {
	for _, term := range x {
		if !term.test(ev, current) {
			return false
		}
	}
	return true
}

func (x andExpr) appendNames(names []string) []string {
	for _, term := range x {
		names = term.appendNames(names)
	}
	return names
}

type notExpr struct{ x logicalExpr }

func (x notExpr) test(ev *evaluator, current int32) bool {
	return !x.x.test(ev, current)
}

func (x notExpr) appendNames(names []string) []string {
	return x.x.appendNames(names)
}

// existsExpr is a test expression with a query: true when the query selects a node.
type existsExpr struct{ q *filterQuery }

func (x existsExpr) test(ev *evaluator, current int32) bool {
	if x.q.singular {
		_, ok := ev.singular(x.q.segments, x.q.start(current))
		return ok
	}
	list := ev.run(x.q.segments, x.q.start(current), ev.list())
	found := len(list) > 0
	ev.release(list)
	return found
}

func (x existsExpr) appendNames(names []string) []string {
	return x.q.appendNames(names)
}

// compareExpr is a comparison of two values.
type compareExpr struct {
	op          compareOp
	left, right *valueExpr
}

func (x *compareExpr) test(ev *evaluator, current int32) bool {
	mark := len(ev.scratch)
	var left, right operand
	x.left.eval(ev, current, &left)
	x.right.eval(ev, current, &right)
	result := ev.compare(x.op, &left, &right)
	ev.scratch = ev.scratch[:mark]
	return result
}

func (x *compareExpr) appendNames(names []string) []string {
	return x.right.appendNames(x.left.appendNames(names))
}

// singular returns the node that a singular query selects from the node at start. When
// the evaluator folds names and several members of one object match, it takes the last.
func (ev *evaluator) singular(segments []segment, start int32) (int32, bool) {
	n := start
	for i := range segments {
		sel := &segments[i].selectors[0]
		e := &ev.tape[n]
		found := int32(-1)
		switch {
		case sel.kind == selectName && e.kind == Object:
			for c := n + 1; c < e.next; c = ev.tape[c].next {
				if ev.nameMatches(&ev.tape[c], sel.name) {
					found = c
					if !ev.fold {
						break
					}
				}
			}
		case sel.kind == selectIndex && e.kind == Array:
			var buf [1]int32
			if l := ev.selectIndex(buf[:0], sel.index, n); len(l) == 1 {
				found = l[0]
			}
		}
		if found < 0 {
			return 0, false
		}
		n = found
	}
	return n, true
}

// regexpFor returns the compiled form of an I-Regexp pattern that a filter computed at
// run time, or nil when the pattern is invalid. Results are cached for the evaluation.
func (ev *evaluator) regexpFor(pattern []byte, anchored bool) *regexp.Regexp {
	key := string(pattern)
	if anchored {
		key = "A" + key
	} else {
		key = "U" + key
	}
	if re, ok := ev.regexps[key]; ok {
		return re
	}
	re := compileIRegexp(string(pattern), anchored)
	if ev.regexps == nil {
		ev.regexps = map[string]*regexp.Regexp{}
	}
	ev.regexps[key] = re
	return re
}
