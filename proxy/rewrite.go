package proxy

import (
	"cmp"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/tidwall/gjson"

	"github.com/piivault/piivault/rules"
	"github.com/piivault/piivault/vault"
)

// phase is the direction a body travels, which decides the status of a failure:
// a bad request body is the client's fault, a bad response body the upstream's.
type phase uint8

const (
	phaseRequest phase = iota
	phaseResponse
)

func (p phase) String() string {
	if p == phaseRequest {
		return "request"
	}
	return "response"
}

// tooLarge returns the status for a body that is, or would become, too large in phase p.
func (p phase) tooLarge() int {
	if p == phaseRequest {
		return http.StatusRequestEntityTooLarge
	}
	return http.StatusBadGateway
}

// vaultTargets counts the targets whose action calls the vault.
func vaultTargets(targets []target) int {
	n := 0
	for _, t := range targets {
		if t.rule.action.usesVault() {
			n++
		}
	}
	return n
}

// badBody returns the status for a body that piivault cannot read in phase p.
func (p phase) badBody() int {
	if p == phaseRequest {
		return http.StatusBadRequest
	}
	return http.StatusBadGateway
}

// target is a value that a rule selected.
type target struct {
	node rules.Node
	rule *rule
	seq  int // position among the targets of the body, in document order
}

// rewrite applies set to body and returns the rewritten body, or body itself when no
// value changed. Every selected value is rewritten, or none is and an error is returned.
func (h *Handler) rewrite(r *http.Request, set []rule, body []byte, kc vault.KeyContext, p phase) (
	out []byte, changed bool, err error,
) {
	doc, perr := rules.Parse(body, rules.Options{MaxDepth: h.cfg.MaxDepth})
	if perr != nil {
		return nil, false, &Error{Status: p.badBody(), Detail: p.String() + " body: " + perr.Error()}
	}
	// the Nodes and edits taken from doc stay valid after Release
	defer doc.Release()

	if !h.fold {
		if offset, found := doc.FoldedName(h.names); found {
			fix := "send the exact name"
			if p == phaseResponse {
				fix = "the upstream must send the exact name, or set folded_keys tokenize"
			}
			return nil, false, problemf(p.badBody(),
				"%s body: member name at byte %d differs from a rule's member name only by case "+
					"or Unicode folding; %s", p, offset, fix)
		}
	}

	targets := h.selectTargets(doc, set)
	if len(targets) == 0 {
		return body, false, nil
	}
	if n := vaultTargets(targets); n > h.cfg.MaxValues {
		return nil, false, problemf(p.tooLarge(),
			"%s body has %d values for the vault, more than the limit of %d", p, n, h.cfg.MaxValues)
	}

	res := resolver{h: h, r: r, doc: doc, kc: kc, phase: p}
	edits, err := res.resolve(targets)
	res.countValues(targets, err)
	if err != nil {
		return nil, false, err
	}
	if len(edits) == 0 {
		return body, false, nil
	}
	out = rules.Splice(make([]byte, 0, len(body)+len(body)/4), body, edits)
	h.metrics.CountRewrittenBytes(p.String(), len(out))
	return out, true, nil
}

// selectTargets returns the values that set selects, in document order. Where selected
// values nest, only the outermost is kept, because rewriting it rewrites what it holds.
// Where rules select the same value, the action of higher precedence is kept.
func (h *Handler) selectTargets(doc *rules.Document, set []rule) []target {
	var targets []target
	for i := range set {
		ru := &set[i]
		var nodes []rules.Node
		if h.fold {
			nodes = ru.query.SelectFold(doc)
		} else {
			nodes = ru.query.Select(doc)
		}
		targets = slices.Grow(targets, len(nodes))
		for _, n := range nodes {
			if applies(ru.action, n) {
				targets = append(targets, target{node: n, rule: ru})
			}
		}
	}

	slices.SortFunc(targets, func(a, b target) int {
		return cmp.Or(
			cmp.Compare(a.node.Start, b.node.Start),
			cmp.Compare(b.node.End, a.node.End),
			cmp.Compare(a.rule.action, b.rule.action),
		)
	})

	kept := targets[:0]
	end := -1
	for _, t := range targets {
		if t.node.Start < end {
			continue // inside, or equal to, a target already kept
		}
		t.seq = len(kept)
		kept = append(kept, t)
		end = t.node.End
	}
	return kept
}

// applies reports whether an action rewrites node. Object IDs are strings, so reveal,
// describe and erase skip every other kind. Mask hides any value, and null has nothing
// to store or hide.
func applies(a action, n rules.Node) bool {
	switch a {
	case actRedact, actTokenize, actMask:
		return n.Kind != rules.Null
	default:
		return n.Kind == rules.String
	}
}

// isUnknown reports whether err means that the object does not exist, as opposed to a
// store that failed.
func isUnknown(err error) bool {
	return errors.Is(err, vault.ErrNotFound) || errors.Is(err, vault.ErrInvalidID)
}

// vaultError turns a store failure into a 503 problem, with the store's Retry-After
// where it gave one.
func vaultError(err error) error {
	perr := &Error{
		Status:     http.StatusServiceUnavailable,
		Detail:     "the vault is unavailable; try again later",
		RetryAfter: time.Second,
		Err:        err,
	}
	var ra interface{ RetryAfterDuration() time.Duration }
	if errors.As(err, &ra) && ra.RetryAfterDuration() > 0 {
		perr.RetryAfter = ra.RetryAfterDuration()
	}
	return perr
}

// ObjectNamePrefix returns the start of the name of every object that piivault creates
// for kc, so that a tenant's objects can be found by name. Context values may contain
// ':', so a listing by prefix must also check each object's context.
func ObjectNamePrefix(kc vault.KeyContext) string {
	return namePrefixOf(kc.String())
}

// namePrefixOf is ObjectNamePrefix of a key context in its String form.
func namePrefixOf(kc string) string {
	return "piivault:" + kc + ":"
}

// objectName names a new object after piivault, the tenant, the field and the rule,
// with a suffix that keeps names unique: 48 bits of the time in milliseconds and 32
// random bits. Names made later sort later, so a store's name index grows at its end.
// escapedField is the object's member name, escaped as fieldPrefix does.
func objectName(tenantPrefix, escapedField string, r *rule) string {
	var suffix [10]byte
	binary.BigEndian.PutUint64(suffix[:8], uint64(time.Now().UnixMilli())<<16)
	_, _ = rand.Read(suffix[6:])

	var hexSuffix [2 * len(suffix)]byte
	hex.Encode(hexSuffix[:], suffix[:])
	// one concatenation, one allocation
	return tenantPrefix + escapedField + "/" + r.query.String() + ":" + string(hexSuffix[:])
}

// fieldPrefix is the start of the names of a tenant's objects of one member name: the
// tenant's prefix and the name, escaped with url.QueryEscape so that it holds no '/'.
func fieldPrefix(tenantPrefix, escapedField string) string {
	return tenantPrefix + escapedField + "/"
}

// fieldOf returns the member name that the object named name was tokenized from, and
// false for a name that piivault did not give it.
func fieldOf(name, tenantPrefix string) (string, bool) {
	rest, ok := strings.CutPrefix(name, tenantPrefix)
	if !ok {
		return "", false
	}
	escaped, _, ok := strings.Cut(rest, "/")
	if !ok {
		return "", false
	}
	field, err := url.QueryUnescape(escaped)
	return field, err == nil
}

// asJSON returns value as JSON text. Values that piivault stored are JSON already; a
// value that another writer stored as plain text becomes a JSON string.
func asJSON(value []byte) []byte {
	if rules.Validate(value, rules.Options{}) == nil {
		return value
	}
	s, _ := json.Marshal(string(value))
	return s
}

// maskJSON masks a JSON value and returns the mask as a JSON string: a string's or a
// number's characters by f, and any other value whole, since a mask of JSON syntax
// would show its structure.
func maskJSON(value []byte, f maskFormat) []byte {
	var text string
	switch v := gjson.ParseBytes(value); v.Type {
	case gjson.String:
		text = f.apply(v.String())
	case gjson.Number:
		text = f.apply(v.Raw)
	default:
		text = "****"
	}
	s, _ := json.Marshal(text)
	return s
}

// describeJSON returns an object's metadata as the JSON that replaces its ID.
func describeJSON(m vault.Metadata) []byte {
	keys := make([]string, 0, len(m.Context))
	for k := range m.Context {
		keys = append(keys, k)
	}
	slices.Sort(keys)

	out, _ := json.Marshal(struct {
		ID          string   `json:"id"`
		VersionID   string   `json:"version_id"`
		UpdatedAt   string   `json:"updated_at"`
		ContextKeys []string `json:"context_keys"`
	}{m.ID, m.VersionID, m.UpdatedAt.UTC().Format(time.RFC3339Nano), keys})
	return out
}
