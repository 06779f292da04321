package rules

import (
	"strings"
	"testing"
)

// asciiEqualFold must agree with strings.EqualFold on ASCII input, byte pair by byte
// pair, because FoldedName uses it in place of strings.EqualFold for ASCII names.
func TestASCIIEqualFoldMatchesEqualFold(t *testing.T) {
	for x := range 128 {
		for y := range 128 {
			a, b := string(rune(x))+"k", string(rune(y))+"K"
			if got, want := asciiEqualFold([]byte(a), b), strings.EqualFold(a, b); got != want {
				t.Errorf("asciiEqualFold(%q, %q) = %v, want %v", a, b, got, want)
			}
		}
	}
	if asciiEqualFold([]byte("email"), "emails") {
		t.Error("names of different lengths compare equal")
	}
}
