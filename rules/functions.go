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
	value valueExpr
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

// valueCall is a call of a function whose result is a value: length, count or value.
type valueCall struct{ call *funcCall }

func (x valueCall) value(ev *evaluator, current int32) value {
	arg := &x.call.args[0]
	switch x.call.fn.id {
	case fnLength:
		return ev.lengthOf(arg.value.value(ev, current))
	case fnCount:
		list := ev.run(arg.nodes.segments, arg.nodes.start(current), ev.list())
		count := len(list)
		ev.release(list)
		return value{kind: valueNumber, num: float64(count)}
	default: // fnValue
		list := ev.run(arg.nodes.segments, arg.nodes.start(current), ev.list())
		v := value{}
		if len(list) == 1 {
			v = nodeValue(list[0])
		}
		ev.release(list)
		return v
	}
}

func (x valueCall) appendNames(names []string) []string {
	return x.call.appendNames(names)
}

// lengthOf returns the length of a string in Unicode scalar values, or the number of
// elements or members of a container, and Nothing for any other value.
func (ev *evaluator) lengthOf(v value) value {
	switch v.kind {
	case valueString:
		return value{kind: valueNumber, num: float64(utf8.RuneCount(v.str))}
	case valueNode:
		e := &ev.tape[v.node]
		switch e.kind {
		case String:
			s := ev.stringValue(e, &ev.left)
			return value{kind: valueNumber, num: float64(utf8.RuneCount(s))}
		case Array, Object:
			return value{kind: valueNumber, num: float64(ev.length(v.node))}
		}
	}
	return value{}
}

// matchCall is a call of match or search, whose result is logical.
type matchCall struct{ call *funcCall }

func (x matchCall) test(ev *evaluator, current int32) bool {
	subject := ev.operand(x.call.args[0].value.value(ev, current), &ev.left)
	if subject.kind != String {
		return false
	}
	anchored := x.call.fn.id == fnMatch
	re := x.call.re
	if !x.call.constPattern {
		pattern := ev.operand(x.call.args[1].value.value(ev, current), &ev.right)
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
