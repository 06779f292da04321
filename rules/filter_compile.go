package rules

import (
	"math"
	"strconv"
	"strings"
)

// primary is a literal, a query or a function call whose role (test, comparison operand
// or function argument) the parser does not know yet. Exactly one field is set.
type primary struct {
	offset  int
	literal *operand
	query   *filterQuery
	call    *funcCall
}

// filter parses the logical expression of a filter selector, after "?" and blanks.
func (c *compiler) filter() (logicalExpr, *QueryError) {
	return c.logicalOr()
}

// logicalOr parses logical-and-expr *(S "||" S logical-and-expr).
func (c *compiler) logicalOr() (logicalExpr, *QueryError) {
	return c.logicalList("||", c.logicalAnd, func(terms []logicalExpr) logicalExpr {
		return orExpr(terms)
	})
}

// logicalAnd parses basic-expr *(S "&&" S basic-expr).
func (c *compiler) logicalAnd() (logicalExpr, *QueryError) {
	return c.logicalList("&&", c.basic, func(terms []logicalExpr) logicalExpr {
		return andExpr(terms)
	})
}

func (c *compiler) logicalList(op string, term func() (logicalExpr, *QueryError),
	join func([]logicalExpr) logicalExpr,
) (logicalExpr, *QueryError) {
	first, err := term()
	if err != nil {
		return nil, err
	}
	terms := []logicalExpr{first}
	for {
		save := c.pos
		c.skipBlank()
		if !strings.HasPrefix(c.src[c.pos:], op) {
			c.pos = save
			break
		}
		c.pos += len(op)
		c.skipBlank()
		next, err := term()
		if err != nil {
			return nil, err
		}
		terms = append(terms, next)
	}
	if len(terms) == 1 {
		return first, nil
	}
	return join(terms), nil
}

// basic parses a parenthesized expression, a comparison or a test expression, each
// possibly negated with '!' where the grammar allows it.
func (c *compiler) basic() (logicalExpr, *QueryError) {
	if c.peek() == '!' {
		c.pos++
		c.skipBlank()
		if c.peek() == '(' {
			x, err := c.paren()
			return notExpr{x}, err
		}
		p, err := c.primary()
		if err != nil {
			return nil, err
		}
		x, err := c.asTest(p)
		return notExpr{x}, err
	}
	if c.peek() == '(' {
		return c.paren()
	}

	p, err := c.primary()
	if err != nil {
		return nil, err
	}
	save := c.pos
	c.skipBlank()
	op, ok := c.compareOp()
	if !ok {
		c.pos = save
		return c.asTest(p)
	}
	c.skipBlank()
	q, err := c.primary()
	if err != nil {
		return nil, err
	}
	left, err := c.asComparable(p)
	if err != nil {
		return nil, err
	}
	right, err := c.asComparable(q)
	if err != nil {
		return nil, err
	}
	return &compareExpr{op: op, left: left, right: right}, nil
}

// paren parses "(" S logical-expr S ")".
func (c *compiler) paren() (logicalExpr, *QueryError) {
	c.pos++
	c.skipBlank()
	x, err := c.logicalOr()
	if err != nil {
		return nil, err
	}
	c.skipBlank()
	if c.peek() != ')' {
		return nil, c.fail(c.pos, "expected ')'")
	}
	c.pos++
	return x, nil
}

var compareOps = []struct {
	text string
	op   compareOp
}{
	{"==", opEqual}, {"!=", opNotEqual}, {"<=", opLessEqual}, {">=", opGreaterEqual},
	{"<", opLess}, {">", opGreater},
}

func (c *compiler) compareOp() (compareOp, bool) {
	for _, o := range compareOps {
		if strings.HasPrefix(c.src[c.pos:], o.text) {
			c.pos += len(o.text)
			return o.op, true
		}
	}
	return 0, false
}

// asTest turns a primary into a test expression: a query tests for existence, and a
// function must return LogicalType or NodesType.
func (c *compiler) asTest(p primary) (logicalExpr, *QueryError) {
	switch {
	case p.query != nil:
		return existsExpr{p.query}, nil
	case p.call != nil && p.call.fn.result == typeLogical:
		return matchCall{p.call}, nil
	case p.call != nil:
		return nil, c.fail(p.offset, "function result must be compared")
	}
	return nil, c.fail(p.offset, "literal must be compared")
}

// asComparable turns a primary into a comparison operand: a literal, a singular query or
// a function that returns ValueType.
func (c *compiler) asComparable(p primary) (*valueExpr, *QueryError) {
	switch {
	case p.literal != nil:
		return &valueExpr{literal: p.literal}, nil
	case p.query != nil && p.query.singular:
		return &valueExpr{query: p.query}, nil
	case p.query != nil:
		return nil, c.fail(p.offset, "query in comparison must be singular")
	case p.call.fn.result == typeValue:
		return &valueExpr{call: p.call}, nil
	}
	return nil, c.fail(p.offset, "function result cannot be compared")
}

// primary parses a literal, a query starting with '@' or '$', or a function call.
func (c *compiler) primary() (primary, *QueryError) {
	p := primary{offset: c.pos}
	switch ch := c.peek(); {
	case ch == '@' || ch == '$':
		c.pos++
		segments, err := c.segments()
		if err != nil {
			return p, err
		}
		p.query = &filterQuery{absolute: ch == '$', singular: singular(segments), segments: segments}
		return p, nil
	case ch == '"' || ch == '\'':
		s, err := c.stringLiteral()
		p.literal = &operand{kind: String, str: []byte(s)}
		return p, err
	case ch == '-' || isDigit(ch):
		num, err := c.number()
		p.literal = &operand{kind: Number, num: num}
		return p, err
	case 'a' <= ch && ch <= 'z':
		return c.nameOrCall(p)
	}
	return p, c.fail(c.pos, "expected literal, query or function")
}

// nameOrCall parses true, false, null, or a function call.
func (c *compiler) nameOrCall(p primary) (primary, *QueryError) {
	start := c.pos
	for ch := c.peek(); 'a' <= ch && ch <= 'z' || ch == '_' || isDigit(ch); ch = c.peek() {
		c.pos++
	}
	name := c.src[start:c.pos]
	if c.peek() == '(' {
		call, err := c.call(name, start)
		p.call = call
		return p, err
	}
	switch name {
	case "true":
		p.literal = &operand{kind: True}
	case "false":
		p.literal = &operand{kind: False}
	case "null":
		p.literal = &operand{kind: Null}
	default:
		return p, c.fail(start, "expected literal, query or function")
	}
	return p, nil
}

// number parses a JSON number literal; "-0" is allowed here, unlike in indexes.
func (c *compiler) number() (float64, *QueryError) {
	start := c.pos
	if c.peek() == '-' {
		c.pos++
	}
	digits := c.pos
	for isDigit(c.peek()) {
		c.pos++
	}
	switch {
	case c.pos == digits:
		return 0, c.fail(start, "invalid number")
	case c.src[digits] == '0' && c.pos-digits > 1:
		return 0, c.fail(start, "leading zero in number")
	}
	if c.peek() == '.' {
		c.pos++
		if !c.digits() {
			return 0, c.fail(start, "invalid number")
		}
	}
	if ch := c.peek(); ch == 'e' || ch == 'E' {
		c.pos++
		if ch := c.peek(); ch == '+' || ch == '-' {
			c.pos++
		}
		if !c.digits() {
			return 0, c.fail(start, "invalid number")
		}
	}
	f, err := strconv.ParseFloat(c.src[start:c.pos], 64)
	if err != nil || math.IsInf(f, 0) {
		return 0, c.fail(start, "number out of range")
	}
	return f, nil
}

// digits reads one or more decimal digits.
func (c *compiler) digits() bool {
	start := c.pos
	for isDigit(c.peek()) {
		c.pos++
	}
	return c.pos > start
}

// call parses the arguments of a function and checks them against its signature
// (RFC 9535, section 2.4.3).
func (c *compiler) call(name string, start int) (*funcCall, *QueryError) {
	fn, ok := functions[name]
	if !ok {
		return nil, c.fail(start, "unknown function "+strconv.Quote(name))
	}
	c.pos++ // '('
	c.skipBlank()
	var args []primaryArg
	for c.peek() != ')' {
		if len(args) > 0 {
			if c.peek() != ',' {
				return nil, c.fail(c.pos, "expected ',' or ')' after function argument")
			}
			c.pos++
			c.skipBlank()
		}
		a, err := c.argument()
		if err != nil {
			return nil, err
		}
		args = append(args, a)
		c.skipBlank()
	}
	c.pos++ // ')'
	if len(args) != len(fn.params) {
		return nil, c.fail(start, name+"() takes "+strconv.Itoa(len(fn.params))+" arguments")
	}

	call := &funcCall{fn: fn}
	for i, a := range args {
		arg, err := c.typedArgument(a, fn.params[i])
		if err != nil {
			return nil, err
		}
		call.args = append(call.args, arg)
	}
	if fn.id == fnMatch || fn.id == fnSearch {
		if lit := call.args[1].value.literal; lit != nil {
			call.constPattern = true
			if lit.kind == String {
				call.re = compileIRegexp(string(lit.str), fn.id == fnMatch)
			}
		}
	}
	return call, nil
}

// primaryArg is a parsed function argument: a primary, or a logical expression.
type primaryArg struct {
	primary primary
	logical logicalExpr
}

// argument parses a function argument. A literal, query or function call followed by ','
// or ')' is kept as a primary, so that its parameter type decides what it means.
func (c *compiler) argument() (primaryArg, *QueryError) {
	start := c.pos
	if ch := c.peek(); ch != '!' && ch != '(' {
		p, err := c.primary()
		if err != nil {
			return primaryArg{}, err
		}
		save := c.pos
		c.skipBlank()
		if ch := c.peek(); ch == ',' || ch == ')' {
			c.pos = save
			return primaryArg{primary: p}, nil
		}
		c.pos = start
	}
	x, err := c.logicalOr()
	return primaryArg{logical: x, primary: primary{offset: start}}, err
}

// typedArgument checks an argument against the declared type of its parameter.
func (c *compiler) typedArgument(a primaryArg, param exprType) (funcArg, *QueryError) {
	p := a.primary
	switch {
	case a.logical != nil:
		return funcArg{}, c.fail(p.offset, "logical expression is not a valid argument here")
	case param == typeNodes && p.query != nil:
		return funcArg{nodes: p.query}, nil
	case param == typeNodes:
		return funcArg{}, c.fail(p.offset, "argument must be a query")
	case p.query != nil && !p.query.singular:
		return funcArg{}, c.fail(p.offset, "query argument must be singular")
	case p.call != nil && p.call.fn.result != typeValue:
		return funcArg{}, c.fail(p.offset, "function result is not a value")
	}
	v, err := c.asComparable(p)
	return funcArg{value: v}, err
}
