package proxy

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/piivault/piivault/rules"
	"github.com/piivault/piivault/vault"
)

// phase tells which direction a body travels, which decides the status of a failure:
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
	if !h.fold {
		if offset, found := doc.FoldedName(h.names); found {
			return nil, false, problemf(p.badBody(),
				"%s body: member name at byte %d differs from a rule's member name only by case "+
					"or Unicode folding; send the exact name", p, offset)
		}
	}

	targets := h.selectTargets(doc, set)
	if len(targets) == 0 {
		return body, false, nil
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
// values nest, only the outermost is kept, because rewriting it rewrites what it holds;
// where rules select the same value, the action of higher precedence is kept.
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
		kept = append(kept, t)
		end = t.node.End
	}
	return kept
}

// applies reports whether an action rewrites node. Object IDs are strings, so the
// actions that read IDs skip every other kind; null has nothing to store or hide.
func applies(a action, n rules.Node) bool {
	switch a {
	case actRedact, actTokenize:
		return n.Kind != rules.Null
	default:
		return n.Kind == rules.String
	}
}

// resolver turns the targets of one body into edits, with as few vault round trips as
// the actions allow: one describe batch for every ID found, then one create batch and
// one read batch.
type resolver struct {
	h     *Handler
	r     *http.Request
	doc   *rules.Document
	kc    vault.KeyContext
	phase phase

	edits    []rules.Edit
	ids      []string // IDs to describe
	idOf     []int    // for each target, its index in ids, or -1
	creates  []vault.NewObject
	createAt []target
	reads    []string
	readAt   []target
	revealed []string
	counts   valueCounts
}

func (res *resolver) resolve(targets []target) ([]rules.Edit, error) {
	res.idOf = make([]int, len(targets))
	for i, t := range targets {
		res.idOf[i] = -1
		if t.rule.action == actRedact {
			res.edit(t, []byte("null"))
			continue
		}
		if id, ok := res.objectID(t.node); ok {
			res.idOf[i] = len(res.ids)
			res.ids = append(res.ids, id)
		} else if t.rule.action == actTokenize {
			res.create(t)
		} else {
			res.deny(t, "", "not an object ID")
		}
	}

	if err := res.describe(targets); err != nil {
		return nil, err
	}
	if err := res.createAll(); err != nil {
		return nil, err
	}
	if err := res.readAll(); err != nil {
		return nil, err
	}
	res.logReveals()

	slices.SortFunc(res.edits, func(a, b rules.Edit) int { return cmp.Compare(a.Start, b.Start) })
	return res.edits, nil
}

// objectID returns the object ID that a string node holds, if it holds one.
func (res *resolver) objectID(n rules.Node) (string, bool) {
	if n.Kind != rules.String {
		return "", false
	}
	id := gjson.ParseBytes(res.doc.Bytes()[n.Start:n.End]).String()
	return id, vault.ValidID(id)
}

// describe fetches the metadata of every ID found, and sorts each target by whether its
// object belongs to the request's tenant.
func (res *resolver) describe(targets []target) error {
	if len(res.ids) == 0 {
		return nil
	}
	start := time.Now()
	metas, errs := vault.DescribeAll(res.r.Context(), res.h.cfg.Store, res.ids)
	res.h.metrics.ObserveStoreCall("describe", time.Since(start), storeFailed(errs))

	for i, t := range targets {
		j := res.idOf[i]
		if j < 0 {
			continue
		}
		id, meta, err := res.ids[j], metas[j], errs[j]
		if err != nil && !isUnknown(err) {
			return vaultError(err)
		}
		owned := err == nil && meta.Context.Equal(res.kc)

		switch {
		case t.rule.action == actTokenize && owned:
			// a client sent back an ID it received: it stays as it is
			res.counts.add(t, outcomeKept)
		case t.rule.action == actTokenize:
			// an ID of another tenant, or an unknown one, is plain data to this tenant
			res.create(t)
		case !owned && err != nil:
			res.deny(t, id, "unknown object ID")
		case !owned:
			res.deny(t, id, "object of another key context")
		case t.rule.action == actDescribe:
			res.edit(t, describeJSON(meta))
		default:
			res.reads = append(res.reads, id)
			res.readAt = append(res.readAt, t)
		}
	}
	return nil
}

// create queues t's value for storage.
func (res *resolver) create(t target) {
	value := slices.Clone(res.doc.Bytes()[t.node.Start:t.node.End])
	res.creates = append(res.creates, vault.NewObject{
		Name:    objectName(res.kc, t.rule.query.String()),
		Value:   value,
		Context: res.kc,
	})
	res.createAt = append(res.createAt, t)
}

// createAll stores every queued value in one batch and splices in the object IDs.
func (res *resolver) createAll() error {
	if len(res.creates) == 0 {
		return nil
	}
	start := time.Now()
	metas, err := vault.CreateAll(res.r.Context(), res.h.cfg.Store, res.creates)
	res.h.metrics.ObserveStoreCall("create", time.Since(start), err != nil)
	if err != nil {
		return vaultError(err)
	}
	for i, m := range metas {
		id, _ := json.Marshal(m.ID)
		res.edit(res.createAt[i], id)
	}
	return nil
}

// readAll reads every object to reveal or mask in one batch and splices in the values.
func (res *resolver) readAll() error {
	if len(res.reads) == 0 {
		return nil
	}
	start := time.Now()
	objs, errs := vault.ReadAll(res.r.Context(), res.h.cfg.Store, res.reads)
	res.h.metrics.ObserveStoreCall("read", time.Since(start), storeFailed(errs))

	for i, t := range res.readAt {
		if err := errs[i]; err != nil {
			if isUnknown(err) {
				res.deny(t, res.reads[i], "unknown object ID")
				continue
			}
			return vaultError(err)
		}
		// a store may hand back objects that another writer created: check once more
		if !objs[i].Context.Equal(res.kc) {
			res.deny(t, res.reads[i], "object of another key context")
			continue
		}

		value := asJSON(objs[i].Value)
		if t.rule.action == actMask {
			value = maskJSON(value, t.rule.mask)
		}
		res.edit(t, value)
		res.revealed = append(res.revealed, res.reads[i])
	}
	return nil
}

func (res *resolver) edit(t target, value []byte) {
	res.edits = append(res.edits, rules.Edit{Start: t.node.Start, End: t.node.End, Value: value})
	res.counts.add(t, outcomeOK)
}

// deny records that t must not be revealed, and nulls it where OnDenied says so. id is
// empty when the value is no object ID: it may then be plaintext, so it is not logged.
func (res *resolver) deny(t target, id, reason string) {
	if res.h.nullDeny {
		res.edits = append(res.edits, rules.Edit{Start: t.node.Start, End: t.node.End, Value: []byte("null")})
	}
	res.counts.add(t, outcomeDenied)
	res.h.audit.Info("reveal denied",
		zap.String("action", t.rule.action.String()),
		zap.String("rule", t.rule.query.String()),
		zap.String("object_id", id),
		zap.String("reason", reason),
		zap.Int("offset", t.node.Start),
		zap.String("phase", res.phase.String()),
		zap.String("key_context", res.kc.String()),
		zap.String("method", res.r.Method),
		zap.String("uri", res.r.URL.Path),
	)
}

func (res *resolver) logReveals() {
	if len(res.revealed) == 0 {
		return
	}
	res.h.audit.Info("revealed",
		zap.Strings("object_ids", res.revealed),
		zap.String("phase", res.phase.String()),
		zap.String("key_context", res.kc.String()),
		zap.String("method", res.r.Method),
		zap.String("uri", res.r.URL.Path),
	)
}

// isUnknown reports whether err means that the object does not exist, as opposed to a
// store that could not answer.
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

// objectName names a new object after piivault, the tenant and the rule, with a random
// suffix that keeps names unique.
func objectName(kc vault.KeyContext, query string) string {
	var suffix [8]byte
	_, _ = rand.Read(suffix[:])
	return "piivault:" + kc.String() + ":" + query + ":" + hex.EncodeToString(suffix[:])
}

// asJSON returns value as JSON text. Values that piivault stored are JSON already; a
// value that another writer stored as plain text becomes a JSON string.
func asJSON(value []byte) []byte {
	if _, err := rules.Parse(value, rules.Options{}); err == nil {
		return value
	}
	s, _ := json.Marshal(string(value))
	return s
}

// maskJSON masks a JSON value: a string's characters, or any other value's JSON text,
// and returns the mask as a JSON string.
func maskJSON(value []byte, f maskFormat) []byte {
	text := string(value)
	if v := gjson.ParseBytes(value); v.Type == gjson.String {
		text = v.String()
	}
	s, _ := json.Marshal(f.apply(text))
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
