package vault

import (
	"regexp"
	"testing"
)

// idReference is the specification of ValidID as a regular expression.
var idReference = regexp.MustCompile(
	`^(?:secret_[0-9A-Fa-f]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})$`)

var idCases = []string{
	"secret_0123456789abcdef0123456789ABCDEF",
	"secret_0123456789abcdef0123456789ABCDEg",
	"secret_0123456789abcdef0123456789ABCDE",
	"secret_0123456789abcdef0123456789ABCDEF0",
	"Secret_0123456789abcdef0123456789ABCDEF",
	"secret-0123456789abcdef0123456789ABCDEF",
	"secret_0123456789ABCDEF/../../kv",
	"123e4567-e89b-12d3-a456-426614174000",
	"123E4567-E89B-12D3-A456-426614174000",
	"123e4567-e89b-12d3-a456-42661417400",
	"123e4567-e89b-12d3-a456_426614174000",
	"123e4567e89b-12d3-a456-4266141740000",
	"123e4567-e89b-12d3-a456-42661417400z",
	"",
	"secret_",
	"secret_0123456789abcdef0123456789ABCDE\n",
	"secret_0123456789abcdef0123456789ABCDÉ",
}

func TestValidIDMatchesPattern(t *testing.T) {
	for _, id := range idCases {
		if got, want := ValidID(id), idReference.MatchString(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}

func FuzzValidID(f *testing.F) {
	for _, id := range idCases {
		f.Add(id)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if got, want := ValidID(id), idReference.MatchString(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	})
}
