package rules

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// SWAR constants: one bit or value in every byte of a uint64.
const (
	lsbs = 0x0101010101010101
	msbs = 0x8080808080808080
)

// specialMask returns a word with the high bit set in the lowest byte of v that is a
// quote, a backslash, a control character or not ASCII. Borrows can also mark bytes above
// that one, but never below it. It returns 0 when v has no such byte.
func specialMask(v uint64) uint64 {
	quote := v ^ (lsbs * '"')
	backslash := v ^ (lsbs * '\\')
	zeroQuote := (quote - lsbs) &^ quote
	zeroBackslash := (backslash - lsbs) &^ backslash
	control := (v - lsbs*0x20) &^ v
	return (zeroQuote | zeroBackslash | control | v) & msbs
}

// scanString validates the JSON string that starts with the quote at data[i]. It returns
// the offset after the closing quote and whether the string contains an escape.
func scanString(data []byte, i int) (end int, escaped bool, err *SyntaxError) {
	n := len(data)
	i++
	for {
		// skip plain ASCII eight bytes at a time
		for i+8 <= n {
			m := specialMask(binary.LittleEndian.Uint64(data[i:]))
			if m != 0 {
				i += bits.TrailingZeros64(m) / 8
				break
			}
			i += 8
		}
		if i >= n {
			return i, escaped, syntaxErr(n, reasonEOF)
		}
		c := data[i]
		switch {
		case c == '"':
			return i + 1, escaped, nil
		case c == '\\':
			escaped = true
			j, err := scanEscape(data, i)
			if err != nil {
				return j, escaped, err
			}
			i = j
		case c < 0x20:
			return i, escaped, syntaxErr(i, reasonControl)
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(data[i:])
			if r == utf8.RuneError && size == 1 {
				return i, escaped, syntaxErr(i, reasonUTF8)
			}
			i += size
		}
	}
}

// scanEscape validates the escape sequence at data[i], a backslash, and returns the offset
// after it. A \u escape of a high surrogate must be followed by a \u escape of a low
// surrogate, and a low surrogate must not appear alone.
func scanEscape(data []byte, i int) (int, *SyntaxError) {
	n := len(data)
	if i+1 >= n {
		return i, syntaxErr(n, reasonEOF)
	}
	switch data[i+1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return i + 2, nil
	case 'u':
	default:
		return i, syntaxErr(i, reasonEscape)
	}

	r, ok := hex4(data, i+2)
	if !ok {
		return i, syntaxErr(i, reasonUnicodeEscape)
	}
	switch {
	case r >= 0xDC00 && r <= 0xDFFF:
		return i, syntaxErr(i, reasonSurrogate)
	case r >= 0xD800 && r <= 0xDBFF:
		if i+7 >= n || data[i+6] != '\\' || data[i+7] != 'u' {
			return i, syntaxErr(i, reasonSurrogate)
		}
		low, ok := hex4(data, i+8)
		if !ok {
			return i + 6, syntaxErr(i+6, reasonUnicodeEscape)
		}
		if low < 0xDC00 || low > 0xDFFF {
			return i, syntaxErr(i, reasonSurrogate)
		}
		return i + 12, nil
	}
	return i + 6, nil
}

// hex4 decodes the four hex digits at data[i:i+4].
func hex4(data []byte, i int) (rune, bool) {
	if i+4 > len(data) {
		return 0, false
	}
	var r rune
	for _, c := range data[i : i+4] {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

// appendUnescaped appends the decoded form of raw, the text between the quotes of a JSON
// string that scanString accepted.
func appendUnescaped(dst, raw []byte) []byte {
	for i := 0; i < len(raw); {
		c := raw[i]
		if c != '\\' {
			j := i + 1
			for j < len(raw) && raw[j] != '\\' {
				j++
			}
			dst = append(dst, raw[i:j]...)
			i = j
			continue
		}
		switch raw[i+1] {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, _ := hex4(raw, i+2)
			if r >= 0xD800 && r <= 0xDBFF {
				low, _ := hex4(raw, i+8)
				r = 0x10000 + (r-0xD800)<<10 + (low - 0xDC00)
				i += 6
			}
			dst = utf8.AppendRune(dst, r)
			i += 6
			continue
		default: // '"', '\\', '/'
			dst = append(dst, raw[i+1])
		}
		i += 2
	}
	return dst
}
