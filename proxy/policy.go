package proxy

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/piivault/piivault/rules"
)

// Phase is the policy of one direction of a route: the JSONPath queries (RFC 9535) that
// each action applies to. The request phase rewrites bodies on their way to the upstream,
// the response phase rewrites bodies on their way back to the client.
type Phase struct {
	// Tokenize stores the selected values in the vault and replaces each with its object
	// ID. A value that already is an object ID of the request's tenant stays as it is.
	Tokenize []string `json:"tokenize,omitempty"`

	// Reveal replaces object IDs with the values they stand for, where the object's key
	// context equals the request's.
	Reveal []string `json:"reveal,omitempty"`

	// Mask replaces object IDs with a masked form of their values, so that the
	// plaintext itself never leaves piivault.
	Mask []MaskRule `json:"mask,omitempty"`

	// Redact replaces the selected values with null, without calling the vault.
	Redact []string `json:"redact,omitempty"`

	// Describe replaces object IDs with their metadata, without decrypting them.
	Describe []string `json:"describe,omitempty"`

	// TokenizeNamed tokenizes like Tokenize, into an object whose name comes from a
	// template, so that writing the same field of the same record again updates that
	// object in place instead of creating another.
	TokenizeNamed []NamedRule `json:"tokenize_named,omitempty"`

	// Erase deletes the objects whose IDs the selected values hold, where they belong to
	// the request's tenant. The IDs stay in the body; they no longer reveal anything.
	Erase []string `json:"erase,omitempty"`
}

// NamedRule selects the values to tokenize into the object that Name names.
type NamedRule struct {
	Path string `json:"path"`

	// Name is the object name, with request placeholders such as
	// {http.request.uri.path.1}. Each placeholder must expand to a non-empty value. The
	// tenant's key context is added to the name, so tenants never share an object.
	Name string `json:"name"`
}

// MaskRule selects the object IDs to mask and the mask to apply.
type MaskRule struct {
	Path string `json:"path"`

	// Format is "email" (first character and domain kept), "lastN" such as "last4" (the
	// last N characters kept) or "full" (every character masked).
	Format string `json:"format"`
}

// Empty reports whether p has no rule.
func (p Phase) Empty() bool {
	return len(p.Tokenize)+len(p.Reveal)+len(p.Mask)+len(p.Redact)+len(p.Describe)+
		len(p.TokenizeNamed)+len(p.Erase) == 0
}

// action is the operation that a rule applies to the values it selects.
type action uint8

// The actions, in order of precedence: when rules of one phase select the same value,
// the first of these wins, so a value that one rule redacts is never revealed by another.
const (
	actRedact action = iota
	actTokenize
	actErase
	actDescribe
	actMask
	actReveal
)

var actionNames = [...]string{"redact", "tokenize", "erase", "describe", "mask", "reveal"}

func (a action) String() string { return actionNames[a] }

// usesVault reports whether the action calls the vault, and so needs a key context.
func (a action) usesVault() bool { return a != actRedact }

// rule is a compiled rule of a phase.
type rule struct {
	action action
	query  *rules.Query
	mask   maskFormat
	name   string // object name template, for TokenizeNamed
	field  string // the member name the query ends in, or "": see rules.Query.Field

	escapedField string // field, escaped for object names, see fieldPrefix
	listField    string // for values that are array elements, see rules.Query.LastName
}

// compile compiles the queries of p. name is the phase, for error messages.
func (p Phase) compile(name string) ([]rule, error) {
	var out []rule
	add := func(a action, queries []string) error {
		for _, q := range queries {
			query, err := rules.Compile(q)
			if err != nil {
				return fmt.Errorf("%s phase: %s %s: %w", name, a, q, err)
			}
			field := query.Field()
			out = append(out, rule{action: a, query: query, field: field,
				escapedField: url.QueryEscape(field), listField: query.LastName()})
		}
		return nil
	}

	if err := add(actRedact, p.Redact); err != nil {
		return nil, err
	}
	if err := add(actTokenize, p.Tokenize); err != nil {
		return nil, err
	}
	for _, n := range p.TokenizeNamed {
		if n.Name == "" {
			return nil, fmt.Errorf("%s phase: tokenize %s: the name template is empty", name, n.Path)
		}
		if err := add(actTokenize, []string{n.Path}); err != nil {
			return nil, err
		}
		out[len(out)-1].name = n.Name
	}
	if err := add(actErase, p.Erase); err != nil {
		return nil, err
	}
	if err := add(actDescribe, p.Describe); err != nil {
		return nil, err
	}
	for _, m := range p.Mask {
		format, err := parseMaskFormat(m.Format)
		if err != nil {
			return nil, fmt.Errorf("%s phase: mask %s: %w", name, m.Path, err)
		}
		if err := add(actMask, []string{m.Path}); err != nil {
			return nil, err
		}
		out[len(out)-1].mask = format
	}
	if err := add(actReveal, p.Reveal); err != nil {
		return nil, err
	}
	return out, nil
}

// maskFormat is a parsed MaskRule.Format.
type maskFormat struct {
	kind string // "email", "last" or "full"
	keep int    // characters kept, for "last"
}

func parseMaskFormat(s string) (maskFormat, error) {
	switch {
	case s == "email", s == "full":
		return maskFormat{kind: s}, nil
	case strings.HasPrefix(s, "last"):
		n, err := strconv.Atoi(strings.TrimPrefix(s, "last"))
		if err != nil || n < 1 || n > 64 {
			return maskFormat{}, fmt.Errorf("invalid mask format %q: lastN needs N from 1 to 64, such as last4", s)
		}
		return maskFormat{kind: "last", keep: n}, nil
	}
	return maskFormat{}, fmt.Errorf("unknown mask format %q: use email, full or lastN such as last4", s)
}

// apply masks s: every character is replaced by '*' except those the format keeps.
func (f maskFormat) apply(s string) string {
	r := []rune(s)
	keep := func(i int) bool { return false }

	switch f.kind {
	case "last":
		// a value no longer than N is masked whole, or the mask would show all of it
		keep = func(i int) bool { return len(r) > f.keep && i >= len(r)-f.keep }
	case "email":
		at := strings.LastIndexByte(s, '@')
		if at > 0 {
			domain := len([]rune(s[:at]))
			keep = func(i int) bool { return i == 0 || i >= domain }
		}
	}

	for i := range r {
		if !keep(i) {
			r[i] = '*'
		}
	}
	return string(r)
}
