package proxy

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tidwall/gjson"
	"go.uber.org/zap"

	"github.com/piivault/piivault/rules"
	"github.com/piivault/piivault/vault"
)

// resolver turns the targets of one body into edits, with as few vault round trips as
// the actions allow: one describe batch for every ID found, then one batch each of
// creates, in-place updates, deletes and reads.
type resolver struct {
	h     *Handler
	r     *http.Request
	doc   *rules.Document
	kc    vault.KeyContext
	phase phase

	edits []rules.Edit // one slot per target in document order, empty where a target keeps its value
	ids   []string     // IDs to describe
	idOf  []int        // for each target, its index in ids, or -1

	creates  []vault.NewObject
	createAt []target
	upserts  []vault.NewObject // creates with a fixed name, which update in place
	upsertAt []target
	deletes  []string
	reads    []pendingRead

	growth int                     // bytes that the edits add to the body
	done   [actReveal + 1][]string // object IDs served, by action, for the audit log

	denied      map[denial][]string // object IDs denied, "" for values that are no ID
	deniedOrder []denial
	counts      valueCounts // values by action and outcome, for metrics
	namePrefix  string      // see tenantPrefix
	kcString    string      // kc.String(), once computed
}

func (res *resolver) resolve(targets []target) ([]rules.Edit, error) {
	res.idOf = make([]int, len(targets))
	res.edits = make([]rules.Edit, len(targets))
	for i, t := range targets {
		res.idOf[i] = -1
		if t.rule.action == actRedact {
			res.edit(t, jsonNull)
			continue
		}
		if id, ok := res.objectID(t.node); ok && res.readsDirect(t) {
			res.queueRead(id, t)
		} else if ok {
			res.idOf[i] = len(res.ids)
			res.ids = append(res.ids, id)
		} else if t.rule.action == actTokenize {
			if err := res.store(t); err != nil {
				return nil, err
			}
		} else if t.rule.action == actMask {
			// plaintext that reached the upstream some other way is masked all the same
			res.edit(t, maskJSON(res.doc.Bytes()[t.node.Start:t.node.End], t.rule.mask))
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
	if err := res.upsertAll(); err != nil {
		return nil, err
	}
	if err := res.deleteAll(); err != nil {
		return nil, err
	}
	if err := res.readAll(); err != nil {
		return nil, err
	}
	res.logDone()

	// each target has its slot, so the edits are in document order already
	edits := res.edits[:0]
	for _, e := range res.edits {
		if e.Value != nil {
			edits = append(edits, e)
		}
	}
	return edits, nil
}

// field returns the member name that binds the objects of t. It is the name that t's
// rule ends in, or else the member name of t's value. For an array element, it is the
// last name of the rule's path, such as "phones" in $.phones[*].
func (res *resolver) field(t target) string {
	if t.rule.field != "" {
		return t.rule.field
	}
	if name, ok := res.doc.MemberName(t.node); ok {
		return name
	}
	return t.rule.listField
}

// escapedField returns field(t) escaped for object names, see fieldPrefix.
func (res *resolver) escapedField(t target) string {
	if t.rule.field != "" {
		return t.rule.escapedField
	}
	return url.QueryEscape(res.field(t))
}

// tenantPrefix returns ObjectNamePrefix of the request's key context, computed once per
// body because every object name of the body starts with it.
func (res *resolver) tenantPrefix() string {
	if res.namePrefix == "" {
		res.namePrefix = namePrefixOf(res.keyContext())
	}
	return res.namePrefix
}

// keyContext returns the request's key context as a string, computed once per body for
// object names and audit events.
func (res *resolver) keyContext() string {
	if res.kcString == "" {
		res.kcString = res.kc.String()
	}
	return res.kcString
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
// object belongs to the request's tenant. Reveals and masks on a vault.ContextReader skip
// it: that store checks the context in the read itself.
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
		if err := res.sort(t, id, meta, err == nil && meta.Context.Equal(res.kc), err != nil); err != nil {
			return err
		}
	}
	return nil
}

// sort queues the work for a target that holds an object ID.
func (res *resolver) sort(t target, id string, meta vault.Metadata, owned, unknown bool) error {
	switch {
	case t.rule.action == actTokenize && owned && res.createdBy(t, meta):
		// a client sent back an ID it received: it stays as it is
		res.counts.add(t, outcomeKept)
	case t.rule.action == actTokenize:
		// an ID of another tenant, an unknown one, or one of another field is plain
		// data here: passing it would let a client move, say, an SSN's ID into a
		// field that a route reveals
		return res.store(t)
	case t.rule.action == actErase && unknown:
		// erased already
		res.counts.add(t, outcomeKept)
	case !owned && unknown:
		res.deny(t, id, "unknown object ID")
	case !owned:
		res.deny(t, id, "object of another key context")
	case t.rule.action == actErase:
		res.deletes = append(res.deletes, id)
		res.counts.add(t, outcomeOK)
	case t.rule.action == actDescribe:
		res.edit(t, describeJSON(meta))
		res.served(actDescribe, id)
	default:
		res.queueRead(id, t)
	}
	return nil
}

// createdBy reports whether the object of meta was created by t's rule: a tokenize rule
// with the same query, or for a named rule, the object of the same name.
func (res *resolver) createdBy(t target, meta vault.Metadata) bool {
	prefix := fieldPrefix(res.tenantPrefix(), res.escapedField(t))
	if t.rule.name == "" {
		return strings.HasPrefix(meta.Name, prefix+t.rule.query.String()+":")
	}
	name, err := res.h.cfg.ExpandName(res.r, t.rule.name)
	return err == nil && meta.Name == prefix+name
}

// store queues t's value for storage: a new object, or the named object of its rule.
func (res *resolver) store(t target) error {
	obj := vault.NewObject{
		Value:   slices.Clone(res.doc.Bytes()[t.node.Start:t.node.End]),
		Context: res.kc,
	}
	if t.rule.name == "" {
		obj.Name = objectName(res.tenantPrefix(), res.escapedField(t), t.rule)
		res.creates = append(res.creates, obj)
		res.createAt = append(res.createAt, t)
		return nil
	}

	name, err := res.h.cfg.ExpandName(res.r, t.rule.name)
	if err != nil {
		return asProblem(err)
	}
	obj.Name = fieldPrefix(res.tenantPrefix(), res.escapedField(t)) + name
	for _, u := range res.upserts {
		if u.Name == obj.Name {
			return problemf(http.StatusBadRequest,
				"tokenize %s selects several values for one object name; a name template needs a path that selects one value",
				t.rule.query)
		}
	}
	res.upserts = append(res.upserts, obj)
	res.upsertAt = append(res.upsertAt, t)
	return nil
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
		res.editID(res.createAt[i], m.ID)
	}
	return nil
}

// upsertAll writes every named value, concurrently, and splices in the object IDs.
func (res *resolver) upsertAll() error {
	if len(res.upserts) == 0 {
		return nil
	}
	ids := make([]string, len(res.upserts))
	errs := make([]error, len(res.upserts))
	start := time.Now()
	var wg sync.WaitGroup
	for i, obj := range res.upserts {
		wg.Go(func() { ids[i], errs[i] = upsert(res.r.Context(), res.h.cfg.Store, obj) })
	}
	wg.Wait()
	res.h.metrics.ObserveStoreCall("upsert", time.Since(start), storeFailed(errs))

	for i, err := range errs {
		switch {
		case errors.Is(err, errConcurrentWrite):
			return problemf(http.StatusConflict,
				"another request is writing the object of tokenize %s; retry the request",
				res.upsertAt[i].rule.query)
		case err != nil:
			return vaultError(err)
		}
		res.editID(res.upsertAt[i], ids[i])
	}
	return nil
}

// errConcurrentWrite reports that other writers kept changing an object while upsert
// tried to write it.
var errConcurrentWrite = errors.New("concurrent writes to one object")

// upsertAttempts bounds how often upsert starts over after losing a race.
const upsertAttempts = 3

// upsert writes obj's value into the object named obj.Name: an update checked against
// the version it just read, or a create when no object has the name. A writer that
// loses a race reads again and retries. After upsertAttempts it returns
// errConcurrentWrite, so no write ever overwrites a version it did not see.
func upsert(ctx context.Context, s vault.Store, obj vault.NewObject) (string, error) {
	for range upsertAttempts {
		meta, err := vault.DescribeByName(ctx, s, obj.Name)
		switch {
		case errors.Is(err, vault.ErrNotFound):
			m, err := s.Create(ctx, obj)
			if errors.Is(err, vault.ErrNameConflict) {
				continue
			}
			return m.ID, err
		case err != nil:
			return "", err
		case !meta.Context.Equal(obj.Context):
			return "", fmt.Errorf("object name taken by another key context: %w", vault.ErrNameConflict)
		}

		m, err := s.Update(ctx, meta.ID, obj.Value, meta.VersionID)
		if errors.Is(err, vault.ErrVersionConflict) || errors.Is(err, vault.ErrNotFound) {
			continue
		}
		if err != nil {
			return "", err
		}
		return cmp.Or(m.ID, meta.ID), nil
	}
	return "", errConcurrentWrite
}

// deleteAll deletes every object queued for erasure, concurrently.
func (res *resolver) deleteAll() error {
	if len(res.deletes) == 0 {
		return nil
	}
	errs := make([]error, len(res.deletes))
	start := time.Now()
	var wg sync.WaitGroup
	for i, id := range res.deletes {
		wg.Go(func() { errs[i] = res.h.cfg.Store.Delete(res.r.Context(), id) })
	}
	wg.Wait()
	res.h.metrics.ObserveStoreCall("delete", time.Since(start), storeFailed(errs))

	for i, err := range errs {
		if err != nil && !errors.Is(err, vault.ErrNotFound) {
			return vaultError(err)
		}
		res.served(actErase, res.deletes[i])
	}
	return nil
}

// readChunk is the number of objects that readAll reads at once. Reveal bounds the body
// it makes by MaxBodySize as values arrive, so reading in chunks also bounds the
// plaintext held at once, however many IDs a body has. Chunks add no round trip to a
// reveal of up to 64 IDs.
//
// NOTE: a chunk can still hold 64 values of up to MaxBodySize each; values stored
// through piivault are at most one request body long.
const readChunk = 64

// pendingRead is a target whose object readAll reads.
type pendingRead struct {
	id string
	at target
}

// queueRead queues t's object for readAll. The queue starts with room for every target
// of the body, so that it grows once.
func (res *resolver) queueRead(id string, t target) {
	if res.reads == nil {
		res.reads = make([]pendingRead, 0, len(res.idOf))
	}
	res.reads = append(res.reads, pendingRead{id: id, at: t})
}

// served records, for the audit log, that action a served object id. The list starts
// with room for every target of the body.
func (res *resolver) served(a action, id string) {
	if res.done[a] == nil {
		res.done[a] = make([]string, 0, len(res.idOf))
	}
	res.done[a] = append(res.done[a], id)
}

// readAll reads every object to reveal or mask, each ID once however often the body
// repeats it, and splices in the values.
func (res *resolver) readAll() error {
	if len(res.reads) == 0 {
		return nil
	}

	// firsts lists the first read of each ID, in document order, and next chains each
	// read to the next read of the same ID, or to -1
	firsts := make([]int, 0, len(res.reads))
	next := make([]int, len(res.reads))
	lastOf := make(map[string]int, len(res.reads))
	for i, pr := range res.reads {
		next[i] = -1
		if j, seen := lastOf[pr.id]; seen {
			next[j] = i
		} else {
			firsts = append(firsts, i)
		}
		lastOf[pr.id] = i
	}

	ids := make([]string, 0, min(len(firsts), readChunk))
	var targets []target
	for start := 0; start < len(firsts); start += readChunk {
		chunk := firsts[start:min(start+readChunk, len(firsts))]
		ids = ids[:0]
		for _, i := range chunk {
			ids = append(ids, res.reads[i].id)
		}
		begin := time.Now()
		objs, errs := res.read(ids, res.readBudget(chunk))
		res.h.metrics.ObserveStoreCall("read", time.Since(begin), storeFailed(errs))

		for k, first := range chunk {
			targets = targets[:0]
			for i := first; i >= 0; i = next[i] {
				targets = append(targets, res.reads[i].at)
			}
			if err := res.reveal(ids[k], objs[k], errs[k], targets); err != nil {
				return err
			}
		}
	}
	return nil
}

// readsDirect reports whether t's ID is read without a describe first: a reveal or mask
// on a store that checks the key context itself before decrypting.
func (res *resolver) readsDirect(t target) bool {
	_, ok := res.h.cfg.Store.(vault.ContextReader)
	return ok && (t.rule.action == actReveal || t.rule.action == actMask)
}

// read reads the objects of ids, checking their key context in the store where it can,
// and decrypting at most maxBytes there.
//
// NOTE: stores without vault.ContextReader, such as the workos store, return whole
// values, so a body of IDs of large values costs their full size before reveal rejects
// it.
func (res *resolver) read(ids []string, maxBytes int64) ([]vault.Object, []error) {
	if cr, ok := res.h.cfg.Store.(vault.ContextReader); ok {
		return cr.ReadBatchFor(res.r.Context(), ids, res.kc, maxBytes)
	}
	return vault.ReadAll(res.r.Context(), res.h.cfg.Store, ids)
}

// readBudget returns the bytes that the values of chunk (indexes of res.reads) may take
// before the revealed body passes MaxBodySize: what is left of the limit, plus the bytes
// of one target of each value, which the value replaces.
func (res *resolver) readBudget(chunk []int) int64 {
	budget := res.h.cfg.MaxBodySize - int64(len(res.doc.Bytes())+res.growth)
	for _, i := range chunk {
		n := res.reads[i].at.node
		budget += int64(n.End - n.Start)
	}
	return max(budget, 1)
}

// reveal splices one object's value, revealed or masked, into each of its targets.
func (res *resolver) reveal(id string, obj vault.Object, err error, targets []target) error {
	reason := ""
	switch {
	case errors.Is(err, vault.ErrContextMismatch):
		reason = "object of another key context"
	case errors.Is(err, vault.ErrTooLarge):
		return res.revealedTooLarge()
	case err != nil && !isUnknown(err):
		return vaultError(err)
	case err != nil:
		reason = "unknown object ID"
	case !obj.Context.Equal(res.kc):
		// a store may hand back objects that another writer created: check once more
		reason = "object of another key context"
	}
	if reason != "" {
		for _, t := range targets {
			res.deny(t, id, reason)
		}
		return nil
	}

	field, _ := fieldOf(obj.Name, res.tenantPrefix())
	value := asJSON(obj.Value)
	for _, t := range targets {
		if !res.h.crossField && field != "" && field != res.field(t) {
			// an ID that the app moved to another member, such as an SSN's into email
			// or into a list of phones
			res.deny(t, id, "object of another field")
			continue
		}
		out := value
		if t.rule.action == actMask {
			out = maskJSON(value, t.rule.mask)
		}
		// small IDs can stand for large values: the body that reveal makes is bounded too
		res.growth += len(out) - (t.node.End - t.node.Start)
		if int64(len(res.doc.Bytes())+res.growth) > res.h.cfg.MaxBodySize {
			return res.revealedTooLarge()
		}
		res.edit(t, out)
		res.served(t.rule.action, id)
	}
	return nil
}

// revealedTooLarge returns the problem of a body that revealing would make larger than
// MaxBodySize.
func (res *resolver) revealedTooLarge() error {
	return problemf(res.phase.tooLarge(),
		"%s body would be larger than the limit of %d bytes once revealed",
		res.phase, res.h.cfg.MaxBodySize)
}

// edit replaces t's value. Every edit but a denial's null counts as done.
func (res *resolver) edit(t target, value []byte) {
	res.edits[t.seq] = rules.Edit{Start: t.node.Start, End: t.node.End, Value: value}
	res.counts.add(t, outcomeOK)
}

// editID replaces t's value with an object ID as a JSON string. A valid ID is ASCII
// letters, digits, '_' and '-', so quotes are all it needs. Any other string that a store
// returns is escaped, so that it cannot break the body.
func (res *resolver) editID(t target, id string) {
	if !vault.ValidID(id) {
		quoted, _ := json.Marshal(id)
		res.edit(t, quoted)
		return
	}
	quoted := make([]byte, 0, len(id)+2)
	quoted = append(quoted, '"')
	quoted = append(quoted, id...)
	res.edit(t, append(quoted, '"'))
}

// jsonNull is the value of redacted and nulled targets. Edits share it, because Splice
// only reads edit values; a copy per value was 1,000 allocations for 1,000 redactions.
var jsonNull = []byte("null")

// deny records that t must not be revealed, and nulls it when OnDenied is "null". id is
// empty when the value is no object ID: it may then be plaintext, so it is not logged.
func (res *resolver) deny(t target, id, reason string) {
	if res.h.nullDeny && t.rule.action != actErase {
		res.edits[t.seq] = rules.Edit{Start: t.node.Start, End: t.node.End, Value: jsonNull}
	}
	res.counts.add(t, outcomeDenied)

	key := denial{action: t.rule.action, rule: t.rule.query.String(), reason: reason}
	if res.denied == nil {
		res.denied = make(map[denial][]string)
	}
	if _, seen := res.denied[key]; !seen {
		res.deniedOrder = append(res.deniedOrder, key)
	}
	res.denied[key] = append(res.denied[key], id)
}

// denial groups the denials of one body for the audit log.
type denial struct {
	action action
	rule   string
	reason string
}

// maxAuditIDs bounds the object IDs listed in one audit event, so that a body full of
// IDs cannot flood the log.
const maxAuditIDs = 100

// logDone writes one audit event per action that served objects, and one per kind of
// denial, each with the number of values and the distinct object IDs involved.
func (res *resolver) logDone() {
	for a := actRedact; a <= actReveal; a++ {
		ids := res.done[a]
		if len(ids) == 0 {
			continue
		}
		res.h.audit.Info(a.String(),
			zap.String("action", a.String()),
			zap.Int("count", len(ids)),
			zap.Strings("object_ids", distinctIDs(ids, maxAuditIDs)),
			res.requestFields(),
		)
	}
	for _, key := range res.deniedOrder {
		ids := res.denied[key]
		res.h.audit.Info("denied",
			zap.String("action", key.action.String()),
			zap.String("rule", key.rule),
			zap.String("reason", key.reason),
			zap.Int("count", len(ids)),
			zap.Strings("object_ids", distinctIDs(ids, maxAuditIDs)),
			res.requestFields(),
		)
	}
}

// distinctIDs returns up to n distinct non-empty strings of ids, in the order they first
// appear, so that one object repeated many times cannot push the others out of the list.
// An empty ID stands for a value that is no object ID, which may be plaintext and is
// never logged.
func distinctIDs(ids []string, n int) []string {
	out := make([]string, 0, min(len(ids), n))
	seen := make(map[string]struct{}, min(len(ids), n))
	for _, id := range ids {
		if len(out) == n {
			break
		}
		if _, dup := seen[id]; dup || id == "" {
			continue
		}
		seen[id] = struct{}{}
		out = append(out, id)
	}
	return out
}

// requestFields are the audit fields that place an event: the phase, the tenant and
// the request line. None of them holds a value from a body.
func (res *resolver) requestFields() zap.Field {
	return zap.Dict("request",
		zap.String("phase", res.phase.String()),
		zap.String("key_context", res.keyContext()),
		zap.String("method", res.r.Method),
		zap.String("uri", res.r.URL.Path),
	)
}

// asProblem returns err as an *Error, a 400 problem unless it is one already.
func asProblem(err error) *Error {
	var perr *Error
	if errors.As(err, &perr) {
		return perr
	}
	return &Error{Status: http.StatusBadRequest, Detail: err.Error()}
}
