package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"

	bolt "go.etcd.io/bbolt"

	"github.com/piivault/piivault/vault"
)

// DescribeBatch returns the metadata of each ID from one read transaction, with a per-ID
// error where it failed. It never decrypts a value or reads a tenant key.
func (s *Store) DescribeBatch(ctx context.Context, ids []string) ([]vault.Metadata, []error) {
	metas := make([]vault.Metadata, len(ids))
	errs := make([]error, len(ids))
	rd := reader{s: s}
	s.view(ctx, ids, errs, func(l layout, i int) {
		metas[i], errs[i] = rd.describe(l, ids[i])
	})
	wrapErrors(errs, ids, "describing object")
	return metas, errs
}

// ReadBatch returns each object with its decrypted value from one read transaction, with
// a per-ID error where it failed.
func (s *Store) ReadBatch(ctx context.Context, ids []string) ([]vault.Object, []error) {
	objs := make([]vault.Object, len(ids))
	errs := make([]error, len(ids))
	rd := reader{s: s, gen: s.keys.generation()}
	s.view(ctx, ids, errs, func(l layout, i int) {
		objs[i], errs[i] = rd.read(l, ids[i])
	})
	wrapErrors(errs, ids, "reading object")
	return objs, errs
}

// ReadBatchFor is ReadBatch for objects of kc: it checks each object's key context
// before decrypting it, in the same read transaction, and decrypts values of at most
// maxBytes in total when maxBytes is positive (see vault.ContextReader). The objects
// share one copy of kc as their Context.
func (s *Store) ReadBatchFor(ctx context.Context, ids []string, kc vault.KeyContext,
	maxBytes int64) ([]vault.Object, []error) {
	objs := make([]vault.Object, len(ids))
	errs := make([]error, len(ids))
	rd := reader{s: s, gen: s.keys.generation(), budget: maxBytes, bounded: maxBytes > 0}
	rd.expect(kc)
	s.view(ctx, ids, errs, func(l layout, i int) {
		objs[i], errs[i] = rd.read(l, ids[i])
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

// reader reads the objects of one batch inside its read transaction. It keeps one cursor
// per bucket and reuses its buffers. For a batch of one key context, it also keeps that
// context's key and decoded form. A read then allocates little more than what it returns.
type reader struct {
	s   *Store
	gen uint64 // key cache generation, read before the transaction

	objects, values *bolt.Cursor
	id, aad         []byte // the key of the current lookup, and its value's AAD

	expected   []byte           // encoded context of every object, or nil for any context
	expectedKC vault.KeyContext // decoded form of expected
	key        *tenantKey       // the key of expected, once found
	keyErr     error

	budget  int64 // bytes that the batch may still decrypt, when bounded
	bounded bool
}

// expect restricts the reader to objects of kc.
func (rd *reader) expect(kc vault.KeyContext) {
	if kc == nil {
		kc = vault.KeyContext{}
	}
	rd.expected = encodeContext(kc)
	rd.expectedKC = maps.Clone(kc)
}

// find returns the record of id, parsed in place.
func (rd *reader) find(l layout, id string) (recordView, error) {
	if rd.objects == nil {
		rd.objects, rd.values = l.objects.Cursor(), l.values.Cursor()
	}
	rd.id = append(rd.id[:0], id...)
	raw := seekExact(rd.objects, rd.id)
	if raw == nil {
		return recordView{}, vault.ErrNotFound
	}
	return parseRecord(raw)
}

// describe returns the metadata of id.
func (rd *reader) describe(l layout, id string) (vault.Metadata, error) {
	v, err := rd.find(l, id)
	if err != nil {
		return vault.Metadata{}, err
	}
	kc, err := decodeWholeContext(v.context)
	if err != nil {
		return vault.Metadata{}, err
	}
	return v.metadata(id, kc), nil
}

// read returns object id with its value decrypted under its tenant key. An object whose
// context is not the expected one fails with vault.ErrContextMismatch before its key is
// looked up.
func (rd *reader) read(l layout, id string) (vault.Object, error) {
	v, err := rd.find(l, id)
	if err != nil {
		return vault.Object{}, err
	}
	if rd.expected != nil && !bytes.Equal(v.context, rd.expected) {
		// encodeContext is canonical, so equal contexts have equal encodings
		return vault.Object{}, vault.ErrContextMismatch
	}

	key, kc, err := rd.keyOf(v.context)
	if errors.Is(err, errNoTenantKey) {
		// an erased tenant's object, as in a store file restored from a backup, is gone
		// for good: callers must not retry it as they would a failing store
		return vault.Object{}, fmt.Errorf("%w: %w", vault.ErrNotFound, err)
	}
	if err != nil {
		return vault.Object{}, err
	}

	sealed := v.sealed
	if sealed == nil {
		sealed = seekExact(rd.values, rd.id)
	}
	if sealed == nil {
		return vault.Object{}, errors.New("value not found")
	}
	if err := rd.spend(sealed); err != nil {
		return vault.Object{}, err
	}
	rd.aad = appendValueAAD(rd.aad[:0], id, v.version, v.context)
	value, err := unseal(key.aead, sealed, rd.aad)
	if err != nil {
		return vault.Object{}, err
	}
	return vault.Object{Metadata: v.metadata(id, kc), Value: value}, nil
}

// spend takes the size of a sealed value's plaintext from the budget, or fails with
// vault.ErrTooLarge when the budget does not cover it.
func (rd *reader) spend(sealed []byte) error {
	if !rd.bounded {
		return nil
	}
	size := int64(max(len(sealed)-sealOverhead, 0))
	if size > rd.budget {
		return vault.ErrTooLarge
	}
	rd.budget -= size
	return nil
}

// keyOf returns the tenant key and the decoded form of an object's encoded context. The
// expected context's key is looked up once per batch.
func (rd *reader) keyOf(encoded []byte) (*tenantKey, vault.KeyContext, error) {
	if rd.expected != nil {
		if rd.key == nil && rd.keyErr == nil {
			rd.key, rd.keyErr = rd.s.currentTenantKey(tenantOf(rd.expected), rd.expected, rd.gen)
		}
		return rd.key, rd.expectedKC, rd.keyErr
	}

	kc, err := decodeWholeContext(encoded)
	if err != nil {
		return nil, nil, err
	}
	key, err := rd.s.currentTenantKey(tenantOf(encoded), encoded, rd.gen)
	return key, kc, err
}

// decodeWholeContext decodes an encoded context that must fill b.
func decodeWholeContext(b []byte) (vault.KeyContext, error) {
	kc, rest, err := decodeContext(b)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, errRecord
	}
	return kc, nil
}

// seekExact returns the value of key under cursor c, or nil. One cursor serves every
// lookup of a batch, where Bucket.Get would make a new one each time.
func seekExact(c *bolt.Cursor, key []byte) []byte {
	k, v := c.Seek(key)
	if !bytes.Equal(k, key) {
		return nil
	}
	return v
}
