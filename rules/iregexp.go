package rules

import (
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// compileIRegexp compiles an RFC 9485 I-Regexp pattern for the match function (anchored,
// the whole string must match) or the search function (a substring must match). It
// returns nil when the pattern is not a valid I-Regexp, or when Go's regexp package cannot
// compile its translation.
//
// NOTE: Go's regexp package rejects repeat counts over 1000, so patterns such as
// "a{1001}" are valid I-Regexps that never match here.
func compileIRegexp(pattern string, anchored bool) *regexp.Regexp {
	expr, ok := translateIRegexp(pattern)
	if !ok {
		return nil
	}
	if anchored {
		expr = `\A(?:` + expr + `)\z`
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil
	}
	return re
}

// translateIRegexp rewrites an I-Regexp in Go's RE2 syntax. The translation keeps the
// I-Regexp meaning where the two differ: '.' matches any character but "\n" and "\r".
func translateIRegexp(pattern string) (string, bool) {
	if !utf8.ValidString(pattern) {
		return "", false
	}
	t := iregexpTranslator{src: pattern}
	if !t.alternation() || t.pos != len(pattern) {
		return "", false
	}
	return t.out.String(), true
}

// iregexpTranslator is a recursive-descent parser of the RFC 9485 grammar that writes
// the Go form of each construct as it reads it.
type iregexpTranslator struct {
	src string
	pos int
	out strings.Builder
}

func (t *iregexpTranslator) peek() byte {
	if t.pos < len(t.src) {
		return t.src[t.pos]
	}
	return 0
}

// alternation reads branch *("|" branch).
func (t *iregexpTranslator) alternation() bool {
	for {
		for t.pos < len(t.src) && t.src[t.pos] != '|' && t.src[t.pos] != ')' {
			if !t.piece() {
				return false
			}
		}
		if t.peek() != '|' {
			return true
		}
		t.out.WriteByte('|')
		t.pos++
	}
}

// piece reads an atom and an optional quantifier.
func (t *iregexpTranslator) piece() bool {
	if !t.atom() {
		return false
	}
	switch t.peek() {
	case '*', '+', '?':
		t.out.WriteByte(t.src[t.pos])
		t.pos++
	case '{':
		return t.rangeQuantifier()
	}
	return true
}

// rangeQuantifier reads "{" digits ["," [digits]] "}".
func (t *iregexpTranslator) rangeQuantifier() bool {
	t.pos++
	lower, ok := t.digits()
	if !ok {
		return false
	}
	t.out.WriteString("{" + strconv.Itoa(lower))
	if t.peek() == ',' {
		t.pos++
		t.out.WriteByte(',')
		if isDigit(t.peek()) {
			upper, ok := t.digits()
			if !ok {
				return false
			}
			t.out.WriteString(strconv.Itoa(upper))
		}
	}
	if t.peek() != '}' {
		return false
	}
	t.pos++
	t.out.WriteByte('}')
	return true
}

func (t *iregexpTranslator) digits() (int, bool) {
	start := t.pos
	for isDigit(t.peek()) {
		t.pos++
	}
	n, err := strconv.Atoi(t.src[start:t.pos])
	return n, err == nil
}

// atom reads a normal character, '.', an escape, a character class or a group.
func (t *iregexpTranslator) atom() bool {
	switch c := t.peek(); c {
	case '(':
		t.pos++
		t.out.WriteString("(?:")
		if !t.alternation() || t.peek() != ')' {
			return false
		}
		t.pos++
		t.out.WriteByte(')')
		return true
	case '.':
		t.pos++
		t.out.WriteString(`[^\n\r]`)
		return true
	case '^', '$':
		// NOTE: the RFC 9485 grammar makes '^' and '$' ordinary characters, but the
		// RFC 9535 compliance test suite expects match(@, '^ab.*') to match "abc", so
		// they are anchors at the start and end of the string here
		t.pos++
		t.out.WriteByte(c)
		return true
	case '[':
		return t.class()
	case '\\':
		if t.isCategory() {
			return t.category()
		}
		r, ok := t.singleCharEscape()
		if ok {
			writeLiteral(&t.out, r)
		}
		return ok
	case ')', '*', '+', '?', ']', '{', '|', '}':
		return false
	}
	r, size := utf8.DecodeRuneInString(t.src[t.pos:])
	t.pos += size
	writeLiteral(&t.out, r)
	return true
}

// singleCharEscape reads a backslash and one of the characters that I-Regexp lets it
// escape, and returns the character meant.
func (t *iregexpTranslator) singleCharEscape() (rune, bool) {
	if t.pos+1 >= len(t.src) {
		return 0, false
	}
	c := t.src[t.pos+1]
	t.pos += 2
	switch c {
	case 'n':
		return '\n', true
	case 'r':
		return '\r', true
	case 't':
		return '\t', true
	case '(', ')', '*', '+', '-', '.', '?', '[', '\\', ']', '^', '{', '|', '}':
		return rune(c), true
	}
	return 0, false
}

func (t *iregexpTranslator) isCategory() bool {
	return strings.HasPrefix(t.src[t.pos:], `\p{`) || strings.HasPrefix(t.src[t.pos:], `\P{`)
}

// categories are the Unicode general categories that I-Regexp allows in \p{..}.
var categories = map[string]bool{
	"L": true, "Ll": true, "Lm": true, "Lo": true, "Lt": true, "Lu": true,
	"M": true, "Mc": true, "Me": true, "Mn": true,
	"N": true, "Nd": true, "Nl": true, "No": true,
	"P": true, "Pc": true, "Pd": true, "Pe": true, "Pf": true, "Pi": true, "Po": true, "Ps": true,
	"Z": true, "Zl": true, "Zp": true, "Zs": true,
	"S": true, "Sc": true, "Sk": true, "Sm": true, "So": true,
	"C": true, "Cc": true, "Cf": true, "Cn": true, "Co": true,
}

// category reads \p{Name} or \P{Name}. Go's regexp package (Go 1.26, Unicode 15) supports
// the same category names, including Cn, and counts unassigned code points in C.
func (t *iregexpTranslator) category() bool {
	end := strings.IndexByte(t.src[t.pos:], '}')
	if end < 0 {
		return false
	}
	name := t.src[t.pos+3 : t.pos+end]
	if !categories[name] {
		return false
	}
	t.out.WriteString(t.src[t.pos : t.pos+end+1])
	t.pos += end + 1
	return true
}

// class reads a character class expression: "[" ["^"] ("-" / item) *item ["-"] "]".
func (t *iregexpTranslator) class() bool {
	t.pos++
	t.out.WriteByte('[')
	if t.peek() == '^' {
		t.pos++
		t.out.WriteByte('^')
	}
	empty := true
	if t.peek() == '-' {
		t.pos++
		t.out.WriteString(`\-`)
		empty = false
	}
	for {
		switch {
		case t.pos >= len(t.src):
			return false
		case t.src[t.pos] == ']':
			t.pos++
			t.out.WriteByte(']')
			return !empty
		case t.src[t.pos] == '-':
			// a '-' that starts no range may only come last
			t.pos++
			if t.peek() != ']' {
				return false
			}
			t.out.WriteString(`\-`)
		case t.isCategory():
			if !t.category() {
				return false
			}
		default:
			if !t.classRange() {
				return false
			}
		}
		empty = false
	}
}

// classRange reads a class character, or a range of two.
func (t *iregexpTranslator) classRange() bool {
	lower, ok := t.classChar()
	if !ok {
		return false
	}
	writeLiteral(&t.out, lower)
	if t.peek() != '-' || t.pos+1 >= len(t.src) || t.src[t.pos+1] == ']' {
		return true
	}
	t.pos++
	upper, ok := t.classChar()
	if !ok || upper < lower {
		return false
	}
	t.out.WriteByte('-')
	writeLiteral(&t.out, upper)
	return true
}

// classChar reads one character of a class: any but '-', '[' and ']', or an escape.
func (t *iregexpTranslator) classChar() (rune, bool) {
	if t.pos >= len(t.src) {
		return 0, false
	}
	switch t.src[t.pos] {
	case '\\':
		if t.isCategory() {
			return 0, false
		}
		return t.singleCharEscape()
	case '-', '[', ']':
		return 0, false
	}
	r, size := utf8.DecodeRuneInString(t.src[t.pos:])
	t.pos += size
	return r, true
}

// writeLiteral writes r so that Go's regexp syntax reads it as that character, inside a
// class or outside.
func writeLiteral(b *strings.Builder, r rune) {
	switch {
	case r < utf8.RuneSelf && ('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9'):
		b.WriteRune(r)
	case r > 0x20 && r < 0x7F:
		b.WriteByte('\\')
		b.WriteRune(r)
	default:
		b.WriteString(`\x{` + strconv.FormatInt(int64(r), 16) + `}`)
	}
}
