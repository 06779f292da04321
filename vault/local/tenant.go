package local

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// writeAttempts bounds the retries of a write whose tenant key changed between preparing
// and committing it. Each erasure of the tenant during the write can cost it two attempts:
// one because the key is gone, one when a concurrent write stores the new key first.
const writeAttempts = 8

// errTenantKeyChanged makes a write start over with the tenant key now in the file.
var errTenantKeyChanged = errors.New("tenant key changed during the write, try again")

// tenantKey is the tenant key that a write seals its values under.
type tenantKey struct {
	tenant  tenantID
	wrapped []byte
	aead    cipher.AEAD
	isNew   bool // the write stores wrapped, because the file has no key for the tenant
}

// tenantAEAD returns the unwrapped key of a tenant from the cache, or unwraps wrapped and
// caches it. gen is the cache generation read before the caller's transaction started.
func (s *Store) tenantAEAD(tenant tenantID, encodedContext, wrapped []byte,
	gen uint64) (cipher.AEAD, error) {
	if aead, _, ok := s.keys.get(tenant, wrapped); ok {
		return aead, nil
	}

	key, err := unseal(s.wrapper, wrapped, wrapAAD(encodedContext))
	if err != nil {
		return nil, fmt.Errorf("unwrapping tenant key: %w", err)
	}
	aead, err := newAEAD(key)
	clear(key)
	if err != nil {
		return nil, err
	}
	s.keys.put(tenant, wrapped, aead, gen)
	return aead, nil
}

// newTenantKey returns a random tenant key and its wrapped form, bound to the context.
func (s *Store) newTenantKey(tenant tenantID, encodedContext []byte) (*tenantKey, error) {
	key := make([]byte, keySize)
	rand.Read(key)
	defer clear(key)

	aead, err := newAEAD(key)
	if err != nil {
		return nil, err
	}
	wrapped := seal(s.wrapper, key, wrapAAD(encodedContext))
	return &tenantKey{tenant: tenant, wrapped: wrapped, aead: aead, isNew: true}, nil
}

// prepareTenantKeys returns the key of each tenant in contexts (tenant ID to encoded
// context): from the cache, from the file in one read transaction, or new when the file
// has none. The write checks them again in its transaction, see checkTenantKeys.
func (s *Store) prepareTenantKeys(contexts map[tenantID][]byte) (map[tenantID]*tenantKey,
	error) {
	gen := s.keys.generation()
	keys := make(map[tenantID]*tenantKey, len(contexts))
	var missing []tenantID
	for tenant := range contexts {
		if aead, wrapped, ok := s.keys.get(tenant, nil); ok {
			keys[tenant] = &tenantKey{tenant: tenant, wrapped: wrapped, aead: aead}
			continue
		}
		missing = append(missing, tenant)
	}
	if len(missing) == 0 {
		return keys, nil
	}

	stored := make(map[tenantID][]byte, len(missing))
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTenants)
		for _, tenant := range missing {
			if v := b.Get(tenant[:]); v != nil {
				stored[tenant] = bytes.Clone(v)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading tenant keys: %w", err)
	}

	for _, tenant := range missing {
		key, err := s.loadOrNewTenantKey(tenant, contexts[tenant], stored[tenant], gen)
		if err != nil {
			return nil, err
		}
		keys[tenant] = key
	}
	return keys, nil
}

// loadOrNewTenantKey unwraps the stored key of a tenant, or makes a new one when wrapped
// is nil.
func (s *Store) loadOrNewTenantKey(tenant tenantID, encodedContext, wrapped []byte,
	gen uint64) (*tenantKey, error) {
	if wrapped == nil {
		return s.newTenantKey(tenant, encodedContext)
	}
	aead, err := s.tenantAEAD(tenant, encodedContext, wrapped, gen)
	if err != nil {
		return nil, err
	}
	return &tenantKey{tenant: tenant, wrapped: wrapped, aead: aead}, nil
}

// checkTenantKeys stores the new tenant keys of a write, and verifies that the others are
// still the keys in the file. A concurrent write may have stored another new key for the
// same tenant, or an erasure removed it, and then the write must start over.
func checkTenantKeys(b *bolt.Bucket, keys map[tenantID]*tenantKey) error {
	for tenant, key := range keys {
		stored := b.Get(tenant[:])
		switch {
		case stored == nil && key.isNew:
			if err := b.Put(tenant[:], key.wrapped); err != nil {
				return err
			}
		case stored != nil && bytes.Equal(stored, key.wrapped):
		default:
			return errTenantKeyChanged
		}
	}
	return nil
}

// cacheTenantKeys caches the keys of a committed write, and removes them from the cache
// after a write whose keys changed.
func (s *Store) cacheTenantKeys(keys map[tenantID]*tenantKey, gen uint64, err error) {
	for tenant, key := range keys {
		switch {
		case err == nil:
			s.keys.put(tenant, key.wrapped, key.aead, gen)
		case errors.Is(err, errTenantKeyChanged):
			s.keys.forget(tenant)
		}
	}
}
