package rules

import (
	"regexp"
	"unicode/utf8"
)

// exprType is the declared type of a function parameter or result (RFC 9535, section
// 2.4.1).
type exprType uint8

const (
	typeValue exprType = iota
	typeLogical
	typeNodes
)

type functionID uint8

const (
	fnLength functionID = iota
	fnCount
	fnMatch
	fnSearch
	fnValue
)

// function is the signature of a function extension.
type function struct {
	id     functionID
	params []exprType
	result exprType
}

// functions are the function extensions that RFC 9535, section 2.4 defines.
var functions = map[string]function{
	"length": {fnLength, []exprType{typeValue}, typeValue},
	"count":  {fnCount, []exprType{typeNodes}, typeValue},
	"match":  {fnMatch, []exprType{typeValue, typeValue}, typeLogical},
	"search": {fnSearch, []exprType{typeValue, typeValue}, typeLogical},
	"value":  {fnValue, []exprType{typeNodes}, typeValue},
}

// funcArg is an argument of a function call: a value, or a query for a NodesType
// parameter.
type funcArg struct {
	value *valueExpr
	nodes *filterQuery
}

// funcCall is a call of a function extension. For match and search with a literal
// pattern, the pattern is compiled with the query: constPattern is set, and re is nil
// when the pattern is not a valid I-Regexp.
type funcCall struct {
	fn           function
	args         []funcArg
	constPattern bool
	re           *regexp.Regexp
}

func (call *funcCall) appendNames(names []string) []string {
	for _, a := range call.args {
		if a.nodes != nil {
			names = a.nodes.appendNames(names)
		} else {
			names = a.value.appendNames(names)
		}
	}
	return names
}

// call sets out to the result of a function whose result is a value: length, count or
// value.
func (ev *evaluator) call(call *funcCall, current int32, out *operand) {
	arg := &call.args[0]
	switch call.fn.id {
	case fnLength:
		mark := len(ev.scratch)
		var v operand
		arg.value.eval(ev, current, &v)
		*out = ev.lengthOf(&v)
		ev.scratch = ev.scratch[:mark]
	case fnCount:
		list := ev.run(arg.nodes.segments, arg.nodes.start(current), ev.list())
		*out = operand{kind: Number, num: float64(len(list))}
		ev.release(list)
	default: // fnValue
		list := ev.run(arg.nodes.segments, arg.nodes.start(current), ev.list())
		*out = operand{}
		if len(list) == 1 {
			ev.resolve(list[0], out)
		}
		ev.release(list)
	}
}

// lengthOf returns the length of a string in Unicode scalar values, or the number of
// elements or members of a container, and Nothing for any other value.
func (ev *evaluator) lengthOf(v *operand) operand {
	switch v.kind {
	case String:
		return operand{kind: Number, num: float64(utf8.RuneCount(v.str))}
	case Array, Object:
		return operand{kind: Number, num: float64(ev.length(v.node))}
	}
	return operand{}
}

// matchCall is a call of match or search, whose result is logical.
type matchCall struct{ call *funcCall }

func (x matchCall) test(ev *evaluator, current int32) bool {
	mark := len(ev.scratch)
	defer func() { ev.scratch = ev.scratch[:mark] }()

	var subject operand
	x.call.args[0].value.eval(ev, current, &subject)
	if subject.kind != String {
		return false
	}
	anchored := x.call.fn.id == fnMatch
	re := x.call.re
	if !x.call.constPattern {
		var pattern operand
		x.call.args[1].value.eval(ev, current, &pattern)
		if pattern.kind != String {
			return false
		}
		re = ev.regexpFor(pattern.str, anchored)
	}
	return re != nil && re.Match(subject.str)
}

func (x matchCall) appendNames(names []string) []string {
	return x.call.appendNames(names)
}
