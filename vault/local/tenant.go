package local

import (
	"bytes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// writeAttempts bounds the retries of a write whose tenant key changed between preparing
// and committing it. Each erasure of the tenant during the write can cost it two attempts:
// one because the key is gone, one when a concurrent write stores the new key first.
const writeAttempts = 8

// errTenantKeyChanged makes a write start over with the tenant key now in the keyring.
var errTenantKeyChanged = errors.New("tenant key changed during the write, try again")

// errNoTenantKey is returned for an object whose tenant has no key in the keyring: the
// tenant was erased, or the keyring is older than the object.
var errNoTenantKey = errors.New("tenant key not found in the keyring")

// tenantKey is the tenant key that a write seals its values under.
type tenantKey struct {
	tenant  tenantID
	wrapped []byte
	aead    cipher.AEAD
}

// tenantAEAD returns the unwrapped key of a tenant from the cache, or unwraps wrapped and
// caches it. gen is the cache generation read before the caller read wrapped.
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

// currentTenantKey returns the key that the keyring has for tenant, unwrapped, or
// errNoTenantKey.
func (s *Store) currentTenantKey(tenant tenantID, encodedContext []byte,
	gen uint64) (*tenantKey, error) {
	wrapped := s.ring.get(tenant)
	if wrapped == nil {
		return nil, errNoTenantKey
	}
	aead, err := s.tenantAEAD(tenant, encodedContext, wrapped, gen)
	if err != nil {
		return nil, err
	}
	return &tenantKey{tenant: tenant, wrapped: wrapped, aead: aead}, nil
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
	return &tenantKey{tenant: tenant, wrapped: wrapped, aead: aead}, nil
}

// prepareTenantKeys returns the key of each tenant in contexts (tenant ID to encoded
// context): the keyring's, or a new one. New keys are added to the keyring, and synced,
// before prepareTenantKeys returns, so that no object is committed under a key that a
// crash could lose. The write checks the keys again in its transaction, see
// checkTenantKeys.
func (s *Store) prepareTenantKeys(contexts map[tenantID][]byte,
	gen uint64) (map[tenantID]*tenantKey, error) {
	keys := make(map[tenantID]*tenantKey, len(contexts))
	fresh := map[tenantID][]byte{}
	for tenant, encoded := range contexts {
		key, err := s.currentTenantKey(tenant, encoded, gen)
		if errors.Is(err, errNoTenantKey) {
			key, err = s.newTenantKey(tenant, encoded)
			if err == nil {
				fresh[tenant] = key.wrapped
			}
		}
		if err != nil {
			return nil, err
		}
		keys[tenant] = key
	}
	if len(fresh) == 0 {
		return keys, nil
	}

	stored, err := s.ring.add(fresh)
	if err != nil {
		return nil, fmt.Errorf("storing new tenant keys: %w", err)
	}
	for tenant := range fresh {
		// a concurrent write stored its own new key for the tenant first
		if !bytes.Equal(stored[tenant], keys[tenant].wrapped) {
			return nil, errTenantKeyChanged
		}
	}
	return keys, nil
}

// checkTenantKeys verifies, inside a write transaction, that the keys of the write are
// still the keys in the keyring. An erasure may have removed one since the write prepared
// them, and then the write must start over. An erasure that removes a key after this check
// deletes the tenant's objects in a later transaction, which includes this write's.
func (s *Store) checkTenantKeys(keys map[tenantID]*tenantKey) error {
	for tenant, key := range keys {
		if !bytes.Equal(s.ring.get(tenant), key.wrapped) {
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
