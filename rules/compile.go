package rules

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxSafeInteger is the largest magnitude of an index or slice bound, the I-JSON range
// that RFC 9535 requires: integers in [-(2^53)+1, (2^53)-1].
const maxSafeInteger = 1<<53 - 1

// compiler is a recursive-descent parser for the RFC 9535 grammar. Queries are short
// configuration strings, so recursion here is bounded by the query's own length.
type compiler struct {
	src string
	pos int
}

func (c *compiler) fail(off int, reason string) *QueryError {
	return &QueryError{Query: c.src, Offset: off, Reason: reason}
}

func (c *compiler) peek() byte {
	if c.pos < len(c.src) {
		return c.src[c.pos]
	}
	return 0
}

// skipBlank skips blank space (RFC 9535 "S") and reports whether there was any.
func (c *compiler) skipBlank() bool {
	start := c.pos
	for c.pos < len(c.src) {
		switch c.src[c.pos] {
		case ' ', '\t', '\n', '\r':
			c.pos++
		default:
			return c.pos > start
		}
	}
	return c.pos > start
}

// query parses a whole jsonpath-query.
func (c *compiler) query() ([]segment, *QueryError) {
	if !utf8.ValidString(c.src) {
		return nil, c.fail(0, "query is not valid UTF-8")
	}
	if c.peek() != '$' {
		return nil, c.fail(0, "query must start with '$'")
	}
	c.pos++
	segments, err := c.segments()
	if err != nil {
		return nil, err
	}
	if c.pos != len(c.src) {
		return nil, c.fail(c.pos, "unexpected character")
	}
	return segments, nil
}

// segments parses the segments after an identifier ('$' or '@'). Whitespace is allowed
// before each segment, but it is left unread when no segment follows.
func (c *compiler) segments() ([]segment, *QueryError) {
	var segments []segment
	for {
		save := c.pos
		c.skipBlank()
		switch c.peek() {
		case '[', '.':
		default:
			c.pos = save
			return segments, nil
		}
		s, err := c.segment()
		if err != nil {
			return nil, err
		}
		segments = append(segments, s)
	}
}

// segment parses one segment that starts with '[' or '.'.
func (c *compiler) segment() (segment, *QueryError) {
	if c.peek() == '[' {
		return c.bracketed()
	}
	c.pos++ // '.'
	s := segment{}
	if c.peek() == '.' {
		c.pos++
		if c.peek() == '[' {
			s, err := c.bracketed()
			s.descendant = true
			return s, err
		}
		s.descendant = true
	}
	if c.peek() == '*' {
		c.pos++
		s.selectors = []selector{{kind: selectWildcard}}
		return s, nil
	}
	name, ok := c.shorthandName()
	if !ok {
		return s, c.fail(c.pos, "expected member name, '*' or '[' after '.'")
	}
	s.selectors = []selector{{kind: selectName, name: name}}
	return s, nil
}

// shorthandName reads a member-name-shorthand: a letter, '_' or non-ASCII character,
// then also digits.
func (c *compiler) shorthandName() (string, bool) {
	start := c.pos
	for c.pos < len(c.src) {
		r, size := utf8.DecodeRuneInString(c.src[c.pos:])
		switch {
		case r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || r >= 0x80:
		case '0' <= r && r <= '9' && c.pos > start:
		default:
			return c.src[start:c.pos], c.pos > start
		}
		c.pos += size
	}
	return c.src[start:c.pos], c.pos > start
}

// bracketed parses a bracketed selection: '[' selector *(',' selector) ']'.
func (c *compiler) bracketed() (segment, *QueryError) {
	c.pos++ // '['
	var s segment
	for {
		s.blank = c.skipBlank() || s.blank
		sel, err := c.selector()
		if err != nil {
			return s, err
		}
		s.selectors = append(s.selectors, sel)
		s.blank = c.skipBlank() || s.blank
		switch c.peek() {
		case ',':
			c.pos++
		case ']':
			c.pos++
			return s, nil
		default:
			return s, c.fail(c.pos, "expected ',' or ']' in bracketed selection")
		}
	}
}

// selector parses one selector inside brackets.
func (c *compiler) selector() (selector, *QueryError) {
	switch ch := c.peek(); {
	case ch == '\'' || ch == '"':
		name, err := c.stringLiteral()
		return selector{kind: selectName, name: name}, err
	case ch == '*':
		c.pos++
		return selector{kind: selectWildcard}, nil
	case ch == '?':
		c.pos++
		c.skipBlank()
		f, err := c.filter()
		return selector{kind: selectFilter, filter: f}, err
	case ch == '-' || ch == ':' || isDigit(ch):
		return c.indexOrSlice()
	case ch == 0:
		return selector{}, c.fail(c.pos, "unexpected end of query")
	}
	return selector{}, c.fail(c.pos, "expected selector")
}

// indexOrSlice parses an index selector or a slice selector.
func (c *compiler) indexOrSlice() (selector, *QueryError) {
	var spec sliceSpec
	var err *QueryError
	if c.peek() != ':' {
		if spec.start, err = c.integer(); err != nil {
			return selector{}, err
		}
		spec.hasStart = true
		save := c.pos
		c.skipBlank()
		if c.peek() != ':' {
			c.pos = save
			return selector{kind: selectIndex, index: spec.start}, nil
		}
	}
	c.pos++ // ':'
	c.skipBlank()
	if ch := c.peek(); ch == '-' || isDigit(ch) {
		if spec.end, err = c.integer(); err != nil {
			return selector{}, err
		}
		spec.hasEnd = true
		c.skipBlank()
	}
	if c.peek() == ':' {
		c.pos++
		c.skipBlank()
		if ch := c.peek(); ch == '-' || isDigit(ch) {
			if spec.step, err = c.integer(); err != nil {
				return selector{}, err
			}
			spec.hasStep = true
		}
	}
	return selector{kind: selectSlice, slice: spec}, nil
}

// integer parses an RFC 9535 int: "0" or an optional '-' and digits without a leading
// zero, within the I-JSON range.
func (c *compiler) integer() (int64, *QueryError) {
	start := c.pos
	if c.peek() == '-' {
		c.pos++
	}
	digits := c.pos
	for isDigit(c.peek()) {
		c.pos++
	}
	text := c.src[start:c.pos]
	switch {
	case c.pos == digits:
		return 0, c.fail(start, "expected integer")
	case c.src[digits] == '0' && c.pos-digits > 1:
		return 0, c.fail(start, "leading zero in integer")
	case text == "-0":
		return 0, c.fail(start, "negative zero is not a valid integer")
	}
	v, err := strconv.ParseInt(text, 10, 64)
	if err != nil || v > maxSafeInteger || v < -maxSafeInteger {
		return 0, c.fail(start, "integer out of range")
	}
	return v, nil
}

// stringLiteral parses a single- or double-quoted string literal and returns its value.
func (c *compiler) stringLiteral() (string, *QueryError) {
	quote := c.src[c.pos]
	c.pos++
	var b strings.Builder
	for {
		if c.pos >= len(c.src) {
			return "", c.fail(c.pos, "unterminated string literal")
		}
		ch := c.src[c.pos]
		switch {
		case ch == quote:
			c.pos++
			return b.String(), nil
		case ch < 0x20:
			return "", c.fail(c.pos, "control character in string literal")
		case ch == '\\':
			if err := c.escape(&b, quote); err != nil {
				return "", err
			}
		default:
			b.WriteByte(ch)
			c.pos++
		}
	}
}

// escape decodes the escape sequence at c.pos into b. Inside a string quoted with quote,
// only that quote character may be escaped.
func (c *compiler) escape(b *strings.Builder, quote byte) *QueryError {
	start := c.pos
	c.pos++
	ch := c.peek()
	c.pos++
	switch ch {
	case 'b':
		b.WriteByte('\b')
	case 'f':
		b.WriteByte('\f')
	case 'n':
		b.WriteByte('\n')
	case 'r':
		b.WriteByte('\r')
	case 't':
		b.WriteByte('\t')
	case '/', '\\':
		b.WriteByte(ch)
	case '\'', '"':
		if ch != quote {
			return c.fail(start, "invalid escape in string literal")
		}
		b.WriteByte(ch)
	case 'u':
		r, err := c.unicodeEscape(start)
		if err != nil {
			return err
		}
		b.WriteRune(r)
	default:
		return c.fail(start, "invalid escape in string literal")
	}
	return nil
}

// unicodeEscape decodes the hex digits of a \u escape, and the second escape of a
// surrogate pair.
func (c *compiler) unicodeEscape(start int) (rune, *QueryError) {
	src := []byte(c.src)
	r, ok := hex4(src, c.pos)
	if !ok {
		return 0, c.fail(start, "invalid \\u escape in string literal")
	}
	c.pos += 4
	switch {
	case r >= 0xDC00 && r <= 0xDFFF:
		return 0, c.fail(start, "lone surrogate in \\u escape")
	case r >= 0xD800 && r <= 0xDBFF:
		if !strings.HasPrefix(c.src[c.pos:], "\\u") {
			return 0, c.fail(start, "lone surrogate in \\u escape")
		}
		low, ok := hex4(src, c.pos+2)
		if !ok || low < 0xDC00 || low > 0xDFFF {
			return 0, c.fail(start, "lone surrogate in \\u escape")
		}
		c.pos += 6
		r = 0x10000 + (r-0xD800)<<10 + (low - 0xDC00)
	}
	return r, nil
}
