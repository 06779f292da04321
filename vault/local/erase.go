package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/piivault/piivault/vault"
)

// EraseTenant deletes the tenant key of kc and every object created under kc, in one
// transaction, and returns the number of objects deleted. Erasing a tenant that has no key
// and no objects returns 0. A later create under kc gets a new tenant key.
//
// Once the key is deleted, no object of the tenant can be decrypted from the live file,
// even with the master key. Copies of the file taken before the erasure still contain the
// wrapped key, so they must be erased or expire on their own schedule.
//
// NOTE: bbolt reuses freed pages but does not overwrite them, so the bytes of the wrapped
// key may stay in the file's free pages until they are reused. CompactFile removes them,
// but only from a closed file, so a store that stays open keeps them until then.
func (s *Store) EraseTenant(ctx context.Context, kc vault.KeyContext) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("erasing tenant %s: %w", kc, err)
	}
	tenant := tenantOf(encodeContext(kc))

	count := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		count, err = eraseIn(bucketsOf(tx), tenant)
		if err == nil {
			s.countCommit(tx)
		}
		return err
	})
	s.keys.forget(tenant)
	if err != nil {
		return 0, fmt.Errorf("erasing tenant %s: %w", kc, err)
	}

	s.log.Info("tenant erased", zap.Stringer("key_context", kc), zap.Int("objects", count))
	return count, nil
}

// eraseIn deletes the tenant key and the objects of tenant, and returns how many objects
// it deleted.
func eraseIn(l layout, tenant tenantID) (int, error) {
	if err := l.tenants.Delete(tenant[:]); err != nil {
		return 0, err
	}

	// collect the index keys first, because deleting under a bbolt cursor can skip keys
	var keys [][]byte
	c := l.tenObjs.Cursor()
	for k, _ := c.Seek(tenant[:]); hasPrefixKey(k, tenant[:]); k, _ = c.Next() {
		keys = append(keys, bytes.Clone(k))
	}

	count := 0
	for _, k := range keys {
		id := string(k[len(tenant):])
		r, err := findRecord(l, id)
		switch {
		case errors.Is(err, vault.ErrNotFound):
			// an index entry without its object: drop the entry alone
			if err := l.tenObjs.Delete(k); err != nil {
				return 0, err
			}
		case err != nil:
			return 0, fmt.Errorf("object %s: %w", id, err)
		default:
			if err := deleteObject(l, id, r); err != nil {
				return 0, fmt.Errorf("object %s: %w", id, err)
			}
			count++
		}
	}
	return count, nil
}
