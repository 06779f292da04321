package rules

import "fmt"

// Check returns, as a compact JSON array of strings without a trailing newline, the
// normalized paths that query selects in input. It is the dry run behind the
// `caddy pii check --query Q` subcommand. Errors wrap *QueryError or *SyntaxError.
func Check(query string, input []byte) ([]byte, error) {
	q, err := Compile(query)
	if err != nil {
		return nil, fmt.Errorf("compiling query: %w", err)
	}
	d, err := Parse(input, Options{})
	if err != nil {
		return nil, fmt.Errorf("parsing input: %w", err)
	}

	paths := q.SelectPaths(d)
	out := []byte{'['}
	for i, p := range paths {
		if i > 0 {
			out = append(out, ',')
		}
		out = appendJSONString(out, p)
	}
	return append(out, ']'), nil
}

// appendJSONString appends s as a JSON string. Unlike json.Marshal it leaves '<', '>' and
// '&' unescaped, which keeps paths readable on a terminal.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
