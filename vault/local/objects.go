package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/piivault/piivault/vault"
)

// maxNameSize bounds object names, which are keys of the name index. bbolt allows keys up
// to 32 KiB.
const maxNameSize = 4096

// Create stores a new object and returns its metadata. It is CreateBatch with one object.
func (s *Store) Create(ctx context.Context, obj vault.NewObject) (vault.Metadata, error) {
	metas, err := s.CreateBatch(ctx, []vault.NewObject{obj})
	if err != nil {
		return vault.Metadata{}, err
	}
	return metas[0], nil
}

// Read returns an object with its decrypted value.
func (s *Store) Read(ctx context.Context, id string) (vault.Object, error) {
	objs, errs := s.ReadBatch(ctx, []string{id})
	return objs[0], errs[0]
}

// Describe returns an object's metadata. It neither decrypts the value nor reads the
// tenant key.
func (s *Store) Describe(ctx context.Context, id string) (vault.Metadata, error) {
	metas, errs := s.DescribeBatch(ctx, []string{id})
	return metas[0], errs[0]
}

// Update replaces an object's value under a new version ID. A non-empty versionCheck must
// equal the current version ID, or the update fails with vault.ErrVersionConflict. The
// name and key context stay as they are.
func (s *Store) Update(ctx context.Context, id string, value []byte,
	versionCheck string) (vault.Metadata, error) {
	if err := vault.CheckID(id); err != nil {
		return vault.Metadata{}, fmt.Errorf("updating object: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return vault.Metadata{}, fmt.Errorf("updating object %s: %w", id, err)
	}

	for attempt := 1; ; attempt++ {
		meta, err := s.updateOnce(id, value, versionCheck)
		if errors.Is(err, errTenantKeyChanged) && attempt < writeAttempts {
			s.log.Debug("retrying update after a tenant key change",
				zap.String("object_id", id), zap.Int("attempt", attempt))
			continue
		}
		if err != nil {
			return vault.Metadata{}, fmt.Errorf("updating object %s: %w", id, err)
		}
		return meta, nil
	}
}

// updateOnce seals the new value outside the write transaction, so that the shared commit
// does no cryptography, and checks the version inside it.
func (s *Store) updateOnce(id string, value []byte, versionCheck string) (vault.Metadata,
	error) {
	gen := s.keys.generation()
	var current record
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		current, err = findForUpdate(bucketsOf(tx), id, versionCheck)
		return err
	})
	if err != nil {
		return vault.Metadata{}, err
	}

	tenant := tenantOf(current.context)
	key, err := s.currentTenantKey(tenant, current.context, gen)
	if err != nil {
		return vault.Metadata{}, err
	}
	keys := map[tenantID]*tenantKey{tenant: key}
	next := record{
		name:    current.name,
		version: newVersionID(),
		updated: time.Now().UnixNano(),
		context: current.context,
	}
	next.sealed = seal(key.aead, value, valueAAD(id, next.version, next.context))
	encoded := next.encode()

	err = s.write(keys, func(l layout) error {
		if _, err := findForUpdate(l, id, versionCheck); err != nil {
			return err
		}
		if err := s.markFormat(l.tx); err != nil {
			return err
		}
		if err := l.objects.Put([]byte(id), encoded); err != nil {
			return err
		}
		// the value of a record of format 2 is in the values bucket
		return l.values.Delete([]byte(id))
	})
	s.cacheTenantKeys(keys, gen, err)
	if err != nil {
		return vault.Metadata{}, err
	}
	return next.metadata(id)
}

// findForUpdate returns the record of id after checking the version.
func findForUpdate(l layout, id, versionCheck string) (record, error) {
	r, err := findRecord(l, id)
	if err != nil {
		return record{}, err
	}
	if versionCheck != "" && r.version != versionCheck {
		return record{}, vault.ErrVersionConflict
	}
	return r, nil
}

// Delete removes an object, its value and its name. Deleting an unknown object returns
// vault.ErrNotFound.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := vault.CheckID(id); err != nil {
		return fmt.Errorf("deleting object: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("deleting object %s: %w", id, err)
	}

	err := s.write(nil, func(l layout) error {
		r, err := findRecord(l, id)
		if err != nil {
			return err
		}
		return deleteObject(l, id, r)
	})
	if err != nil {
		return fmt.Errorf("deleting object %s: %w", id, err)
	}
	return nil
}

// deleteObject removes every row of object id, whose record is r.
func deleteObject(l layout, id string, r record) error {
	key := []byte(id)
	if bytes.Equal(l.names.Get([]byte(r.name)), key) {
		if err := l.names.Delete([]byte(r.name)); err != nil {
			return err
		}
	}
	if err := l.tenObjs.Delete(tenantObjectKey(tenantOf(r.context), id)); err != nil {
		return err
	}
	if err := l.values.Delete(key); err != nil {
		return err
	}
	return l.objects.Delete(key)
}

// List returns the metadata of every object whose name starts with prefix, ordered by
// name.
func (s *Store) List(ctx context.Context, prefix string) ([]vault.Metadata, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("listing objects: %w", err)
	}

	metas := []vault.Metadata{}
	err := s.db.View(func(tx *bolt.Tx) error {
		l := bucketsOf(tx)
		c := l.names.Cursor()
		p := []byte(prefix)
		for k, v := c.Seek(p); hasPrefixKey(k, p); k, v = c.Next() {
			meta, err := describeIn(l, string(v))
			if err != nil {
				// names may carry tenant data, so the message leaves the name out
				return fmt.Errorf("damaged name index: %w", err)
			}
			metas = append(metas, meta)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing objects: %w", err)
	}
	return metas, nil
}

// write runs apply in a shared write transaction (bbolt's group commit) after checking the
// tenant keys of the write. apply may run more than once, because bbolt runs a call again
// alone when a call of its batch fails, so it must only write bytes prepared beforehand.
func (s *Store) write(keys map[tenantID]*tenantKey, apply func(l layout) error) error {
	return s.db.Batch(func(tx *bolt.Tx) error {
		l := bucketsOf(tx)
		l.packForAppends()
		if err := s.checkTenantKeys(keys); err != nil {
			return err
		}
		if err := apply(l); err != nil {
			return err
		}
		s.countCommit(tx)
		return nil
	})
}

// findRecord returns the metadata record of id, or vault.ErrNotFound.
func findRecord(l layout, id string) (record, error) {
	raw := l.objects.Get([]byte(id))
	if raw == nil {
		return record{}, vault.ErrNotFound
	}
	return decodeRecord(raw)
}

// describeIn returns the metadata of id.
func describeIn(l layout, id string) (vault.Metadata, error) {
	r, err := findRecord(l, id)
	if err != nil {
		return vault.Metadata{}, err
	}
	return r.metadata(id)
}

// checkName rejects names that cannot be keys of the name index.
func checkName(name string) error {
	if name == "" {
		return errors.New("name is empty")
	}
	if len(name) > maxNameSize {
		return fmt.Errorf("name is %d bytes, more than the maximum of %d", len(name), maxNameSize)
	}
	return nil
}
