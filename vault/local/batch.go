package local

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/piivault/piivault/vault"
)

// newRow is one object of a CreateBatch, sealed and encoded before the write transaction.
type newRow struct {
	id     []byte
	name   []byte
	record []byte
	sealed []byte
	index  []byte // key in the tenant's object index
}

// CreateBatch stores every object or none, in one write transaction that concurrent calls
// share. Each object gets a new random object ID.
func (s *Store) CreateBatch(ctx context.Context, objs []vault.NewObject) ([]vault.Metadata,
	error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("creating objects: %w", err)
	}
	for i, obj := range objs {
		if err := checkName(obj.Name); err != nil {
			return nil, fmt.Errorf("creating objects: object %d: %w", i, err)
		}
	}
	if len(objs) == 0 {
		return []vault.Metadata{}, nil
	}

	for attempt := 1; ; attempt++ {
		metas, err := s.createOnce(objs)
		if errors.Is(err, errTenantKeyChanged) && attempt < writeAttempts {
			s.log.Debug("retrying create after a tenant key change",
				zap.Int("objects", len(objs)), zap.Int("attempt", attempt))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("creating objects: %w", err)
		}
		return metas, nil
	}
}

// createOnce seals the values under their tenant keys, then writes all rows in one shared
// transaction. The keys of new tenants are in the keyring before the transaction starts.
func (s *Store) createOnce(objs []vault.NewObject) ([]vault.Metadata, error) {
	gen := s.keys.generation()
	encoded := make([][]byte, len(objs))
	contexts := make(map[tenantID][]byte)
	for i, obj := range objs {
		encoded[i] = encodeContext(obj.Context)
		contexts[tenantOf(encoded[i])] = encoded[i]
	}
	keys, err := s.prepareTenantKeys(contexts, gen)
	if err != nil {
		return nil, err
	}

	now := time.Now().UnixNano()
	rows := make([]newRow, len(objs))
	metas := make([]vault.Metadata, len(objs))
	for i, obj := range objs {
		rows[i], metas[i] = newObjectRow(obj, encoded[i], keys[tenantOf(encoded[i])], now)
	}

	err = s.write(keys, func(l layout) error {
		for i, row := range rows {
			if err := putRow(l, row); err != nil {
				return fmt.Errorf("object %d: %w", i, err)
			}
		}
		return nil
	})
	s.cacheTenantKeys(keys, gen, err)
	if err != nil {
		return nil, err
	}
	return metas, nil
}

// newObjectRow assigns an object ID and version, and seals the value.
func newObjectRow(obj vault.NewObject, encodedContext []byte, key *tenantKey,
	now int64) (newRow, vault.Metadata) {
	id := newObjectID()
	r := record{name: obj.Name, version: newVersionID(), updated: now, context: encodedContext}
	row := newRow{
		id:     []byte(id),
		name:   []byte(obj.Name),
		record: r.encode(),
		sealed: seal(key.aead, obj.Value, valueAAD(id, r.version, encodedContext)),
		index:  tenantObjectKey(key.tenant, id),
	}
	meta := vault.Metadata{
		ID:        id,
		Name:      obj.Name,
		Context:   maps.Clone(obj.Context),
		VersionID: r.version,
		UpdatedAt: time.Unix(0, now).UTC(),
	}
	return row, meta
}

// putRow writes the rows of one new object, unless its name is taken.
func putRow(l layout, row newRow) error {
	if l.names.Get(row.name) != nil {
		return vault.ErrNameConflict
	}
	if l.objects.Get(row.id) != nil {
		// 128 random bits make this practically impossible, but an overwrite would lose
		// an object, so fail instead.
		return errors.New("object ID already in use")
	}

	if err := l.objects.Put(row.id, row.record); err != nil {
		return err
	}
	if err := l.values.Put(row.id, row.sealed); err != nil {
		return err
	}
	if err := l.names.Put(row.name, row.id); err != nil {
		return err
	}
	return l.tenObjs.Put(row.index, nil)
}

// DescribeBatch returns the metadata of each ID from one read transaction, with a per-ID
// error where it failed. It never reads a ciphertext or a tenant key.
func (s *Store) DescribeBatch(ctx context.Context, ids []string) ([]vault.Metadata, []error) {
	metas := make([]vault.Metadata, len(ids))
	errs := make([]error, len(ids))
	s.view(ctx, ids, errs, func(l layout, i int) {
		metas[i], errs[i] = describeIn(l, ids[i])
	})
	wrapErrors(errs, ids, "describing object")
	return metas, errs
}

// ReadBatch returns each object with its decrypted value from one read transaction, with
// a per-ID error where it failed.
func (s *Store) ReadBatch(ctx context.Context, ids []string) ([]vault.Object, []error) {
	objs := make([]vault.Object, len(ids))
	errs := make([]error, len(ids))
	gen := s.keys.generation()
	s.view(ctx, ids, errs, func(l layout, i int) {
		objs[i], errs[i] = s.readIn(l, ids[i], gen, nil)
	})
	wrapErrors(errs, ids, "reading object")
	return objs, errs
}

// ReadBatchFor is ReadBatch for objects of kc: it checks each object's key context
// before decrypting it, in the same read transaction.
func (s *Store) ReadBatchFor(ctx context.Context, ids []string, kc vault.KeyContext) ([]vault.Object, []error) {
	if kc == nil {
		kc = vault.KeyContext{}
	}
	objs := make([]vault.Object, len(ids))
	errs := make([]error, len(ids))
	gen := s.keys.generation()
	s.view(ctx, ids, errs, func(l layout, i int) {
		objs[i], errs[i] = s.readIn(l, ids[i], gen, kc)
	})
	wrapErrors(errs, ids, "reading object")
	return objs, errs
}

// view checks every ID first and sets the error of invalid ones to vault.ErrInvalidID,
// without any lookup. Then it calls fn for each valid ID in one read transaction. When the
// transaction fails, view sets that error for the valid IDs.
func (s *Store) view(ctx context.Context, ids []string, errs []error,
	fn func(l layout, i int)) {
	valid := 0
	for i, id := range ids {
		if errs[i] = vault.CheckID(id); errs[i] == nil {
			valid++
		}
	}
	if valid == 0 {
		return
	}

	err := ctx.Err()
	if err == nil {
		err = s.db.View(func(tx *bolt.Tx) error {
			l := bucketsOf(tx)
			for i := range ids {
				if errs[i] == nil {
					fn(l, i)
				}
			}
			return nil
		})
	}
	if err == nil {
		return
	}
	for i, id := range ids {
		if vault.ValidID(id) {
			errs[i] = err
		}
	}
}

// readIn returns object id with its value decrypted under its tenant key. A non-nil want
// is the key context the object must have: any other fails with vault.ErrContextMismatch
// before the value is decrypted.
func (s *Store) readIn(l layout, id string, gen uint64, want vault.KeyContext) (vault.Object, error) {
	r, err := findRecord(l, id)
	if err != nil {
		return vault.Object{}, err
	}
	meta, err := r.metadata(id)
	if err != nil {
		return vault.Object{}, err
	}
	if want != nil && !meta.Context.Equal(want) {
		return vault.Object{}, vault.ErrContextMismatch
	}

	key, err := s.currentTenantKey(tenantOf(r.context), r.context, gen)
	if errors.Is(err, errNoTenantKey) {
		// an erased tenant's object, as in a store file restored from a backup, is gone
		// for good: callers must not retry it as they would a failing store
		return vault.Object{}, fmt.Errorf("%w: %w", vault.ErrNotFound, err)
	}
	if err != nil {
		return vault.Object{}, err
	}
	sealed := l.values.Get([]byte(id))
	if sealed == nil {
		return vault.Object{}, errors.New("value not found")
	}
	value, err := unseal(key.aead, sealed, valueAAD(id, r.version, r.context))
	if err != nil {
		return vault.Object{}, err
	}
	return vault.Object{Metadata: meta, Value: value}, nil
}

// wrapErrors adds the action and, for valid IDs, the ID to each error. Invalid IDs stay
// out of messages because they may be arbitrary client input.
func wrapErrors(errs []error, ids []string, action string) {
	for i, err := range errs {
		switch {
		case err == nil:
		case vault.ValidID(ids[i]):
			errs[i] = fmt.Errorf("%s %s: %w", action, ids[i], err)
		default:
			errs[i] = fmt.Errorf("%s: %w", action, err)
		}
	}
}
