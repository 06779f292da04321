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

// testHookKeyRemoved is called by EraseTenant after it removes the tenant key from the
// keyring and before it deletes the objects. Tests return an error from it to stop there,
// as a crash would.
var testHookKeyRemoved func() error

// EraseTenant deletes the tenant key of kc from the keyring, then every object created
// under kc from the store file, and returns the number of objects deleted. Erasing a
// tenant that has no key and no objects returns 0. A later create under kc gets a new
// tenant key.
//
// Once the key is gone from the keyring, no object of the tenant can be decrypted with
// that keyring, even with the master key: neither from the live store file nor from a copy
// of it taken before the erasure. A copy of the keyring taken before the erasure still
// holds the key, so with the master key it decrypts the objects in copies of the store
// file from that time. Such keyring copies must be erased or expire on their own
// schedule.
//
// The key goes first, so a crash between the two steps leaves objects that cannot be
// decrypted. Open logs them, CheckIntegrity reports them, and running EraseTenant again
// deletes them. Creates of any new tenant wait until the erasure finishes.
//
// NOTE: the keyring is replaced by a rename and the store file's pages are freed, not
// overwritten. The filesystem, its snapshots and the disk may keep the old bytes.
// CompactFile removes the erased objects' rows from the store file's free pages.
func (s *Store) EraseTenant(ctx context.Context, kc vault.KeyContext) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("erasing tenant %s: %w", kc, err)
	}
	tenant := tenantOf(encodeContext(kc))

	count, err := s.erase(tenant)
	if err != nil {
		return 0, fmt.Errorf("erasing tenant %s: %w", kc, err)
	}
	s.log.Info("tenant erased", zap.Stringer("key_context", kc), zap.Int("objects", count))
	return count, nil
}

// erase removes the key of tenant from the keyring, then deletes its objects. It holds the
// keyring's write lock throughout, so that no create stores a new key for the tenant
// before its old objects are gone.
func (s *Store) erase(tenant tenantID) (int, error) {
	s.ring.writeMu.Lock()
	defer s.ring.writeMu.Unlock()

	err := s.ring.removeLocked(tenant)
	s.keys.forget(tenant)
	if err != nil {
		return 0, fmt.Errorf("removing the tenant key: %w", err)
	}
	if testHookKeyRemoved != nil {
		if err := testHookKeyRemoved(); err != nil {
			return 0, err
		}
	}

	// a write that checked the old key before its removal commits before this
	// transaction, so its objects are deleted here too
	count := 0
	err = s.db.Update(func(tx *bolt.Tx) error {
		var err error
		count, err = eraseIn(bucketsOf(tx), tenant)
		if err == nil {
			s.countCommit(tx)
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("deleting the objects: %w", err)
	}
	return count, nil
}

// eraseIn deletes the objects of tenant, and returns how many it deleted.
func eraseIn(l layout, tenant tenantID) (int, error) {
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
