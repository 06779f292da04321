package local

import (
	"bytes"
	"cmp"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"maps"
	"slices"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// RotateResult is the outcome of RotateMasterKey.
type RotateResult struct {
	// Rewrapped is the number of tenant keys now wrapped under the new master key.
	Rewrapped int

	// Dropped is the number of tenant keys deleted because no object used them anymore.
	// The keyring does not store key contexts, the store file stores a tenant's key
	// context only in the tenant's objects, and the wrapping is bound to the context, so
	// such a key cannot be unwrapped. A later create for the tenant makes a new key.
	Dropped int

	// AlreadyRotated reports that the keyring was already encrypted under the new master
	// key, so nothing changed. A rotation run again after one whose outcome was lost ends
	// here.
	AlreadyRotated bool

	// OldKeyID and NewKeyID are the KeyID of the old and of the new master key.
	OldKeyID, NewKeyID string
}

// RotateMasterKey wraps every tenant key of the keyring of the store file at path under
// newKey in place of oldKey, and replaces the key check and key ID. Values are not
// encrypted again: they stay sealed under their tenant keys, which do not change. The
// store file is not written, except that a store file of format 1 is first migrated as
// Open does.
//
// The store file must exist and must not be open: RotateMasterKey takes its lock, which
// guards the keyring too, and waits at most opts.Timeout for it. The new keyring is written
// to a temporary file, synced and renamed over the old one, so a crash or kill at any
// point leaves a keyring that opens with exactly one of the two keys. Open with the other
// key fails with ErrWrongMasterKey and names the KeyID that the keyring needs. A keyring
// already under newKey is left as it is, with AlreadyRotated set.
//
// Copies of the keyring taken before the rotation still open with the old key.
func RotateMasterKey(ctx context.Context, path string, oldKey, newKey []byte,
	opts Options) (RotateResult, error) {
	return rotate(ctx, path, oldKey, newKey, opts, nil)
}

// rotateHook lets tests stop a rotation. rotate calls it after rewrapping each tenant key,
// after writing the new keyring to its temporary file, and after renaming it over the
// keyring, with steps numbered from 1. An error returned before the rename leaves the old
// keyring in place.
type rotateHook func(step int) error

// rotate is RotateMasterKey with a hook for tests.
func rotate(ctx context.Context, path string, oldKey, newKey []byte, opts Options,
	hook rotateHook) (RotateResult, error) {
	log := cmp.Or(opts.Logger, zap.NewNop())
	res, err := rotateFile(ctx, path, oldKey, newKey, opts, log, hook)
	if err != nil {
		return res, fmt.Errorf("rotating master key of vault %s: %w", path, err)
	}

	log.Info("master key rotated",
		zap.String("path", path),
		zap.String("keyring", KeyringPath(path)),
		zap.Int("rewrapped", res.Rewrapped),
		zap.Int("dropped", res.Dropped),
		zap.Bool("already_rotated", res.AlreadyRotated),
		zap.String("old_key_id", res.OldKeyID),
		zap.String("new_key_id", res.NewKeyID))
	return res, nil
}

// rotateFile locks the store file, loads its keyring under the old key and replaces it.
// A keyring that only the new key opens was already rotated.
func rotateFile(ctx context.Context, path string, oldKey, newKey []byte, opts Options,
	log *zap.Logger, hook rotateHook) (RotateResult, error) {
	from, to, err := rotationKeys(oldKey, newKey)
	if err != nil {
		return RotateResult{}, err
	}
	res := RotateResult{OldKeyID: from.id, NewKeyID: to.id}
	if err := ctx.Err(); err != nil {
		return res, err
	}

	timeout := cmp.Or(opts.Timeout, DefaultTimeout)
	db, ring, err := openFiles(path, from, timeout, false, log)
	if errors.Is(err, ErrWrongMasterKey) {
		rotated, _, errNew := openFiles(path, to, timeout, false, log)
		if errNew == nil {
			res.AlreadyRotated = true
			return res, rotated.Close()
		}
	}
	if err != nil {
		return res, err
	}

	err = rotateKeyring(ctx, db, ring, from, to, hook, &res)
	if closeErr := db.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		res.Rewrapped, res.Dropped = 0, 0
	}
	return res, err
}

// rotationKeys checks both master keys and derives their subkeys.
func rotationKeys(oldKey, newKey []byte) (from, to masterKeys, err error) {
	if len(oldKey) != keySize || len(newKey) != keySize {
		return from, to, fmt.Errorf("master keys must be %d bytes, got %d (old) and %d (new)",
			keySize, len(oldKey), len(newKey))
	}
	if subtle.ConstantTimeCompare(oldKey, newKey) == 1 {
		return from, to, errors.New("the new master key equals the old one: " +
			"generate a new key with 'caddy pii keygen'")
	}

	if from, err = deriveMasterKeys(oldKey); err != nil {
		return from, to, err
	}
	to, err = deriveMasterKeys(newKey)
	return from, to, err
}

// rotateKeyring rewraps the tenant keys of ring from one master key to the other, with a
// new key check, and replaces the keyring file with the result. It sets the counts of res.
// The store file in db is only read, for the key contexts of the tenants.
func rotateKeyring(ctx context.Context, db *bolt.DB, ring *keyring, from, to masterKeys,
	hook rotateHook, res *RotateResult) error {
	step := 0
	next := func() error {
		step++
		if hook == nil {
			return nil
		}
		return hook(step)
	}

	tenants := slices.SortedFunc(maps.Keys(ring.keys), func(x, y tenantID) int {
		return bytes.Compare(x[:], y[:])
	})
	var contexts map[tenantID][]byte
	_ = db.View(func(tx *bolt.Tx) error {
		contexts = tenantContexts(bucketsOf(tx), tenants)
		return nil
	})

	rotated := newKeyringContent(ring.header.StoreID, to)
	for _, tenant := range tenants {
		if err := ctx.Err(); err != nil {
			return err
		}
		if encoded, ok := contexts[tenant]; ok {
			wrapped, err := rewrap(ring.keys[tenant], encoded, from, to)
			if err != nil {
				return fmt.Errorf("tenant %x: %w", tenant[:8], err)
			}
			rotated.tenants[tenant] = wrapped
			res.Rewrapped++
		} else {
			res.Dropped++
		}
		if err := next(); err != nil {
			return err
		}
	}

	if _, err := replaceFile(ring.path, rotated.encode(), next); err != nil {
		return fmt.Errorf("writing keyring %s: %w", ring.path, err)
	}
	return next()
}

// rewrap unwraps a tenant key with one master key and wraps it with the other.
func rewrap(wrapped, encodedContext []byte, from, to masterKeys) ([]byte, error) {
	aad := wrapAAD(encodedContext)
	key, err := unseal(from.wrapper, wrapped, aad)
	if err != nil {
		return nil, fmt.Errorf("unwrapping tenant key: %w", err)
	}
	defer clear(key)
	return seal(to.wrapper, key, aad), nil
}

// tenantContexts returns the encoded context of each tenant that still has an object. It
// looks up the tenant's object index, and scans every object record only when a tenant has
// no indexed object, in case an object lost its index entry. Damaged records are skipped,
// because they cannot be read in any case.
func tenantContexts(l layout, tenants []tenantID) map[tenantID][]byte {
	contexts := make(map[tenantID][]byte, len(tenants))
	for _, tenant := range tenants {
		if encoded := contextFromIndex(l, tenant); encoded != nil {
			contexts[tenant] = encoded
		}
	}
	if len(contexts) == len(tenants) {
		return contexts
	}

	_ = l.objects.ForEach(func(_, v []byte) error {
		if r, err := decodeRecord(v); err == nil {
			if _, ok := contexts[tenantOf(r.context)]; !ok {
				contexts[tenantOf(r.context)] = r.context
			}
		}
		return nil
	})
	return contexts
}

// contextFromIndex returns the encoded context of the first object in the index of
// tenant whose record belongs to tenant, or nil.
func contextFromIndex(l layout, tenant tenantID) []byte {
	c := l.tenObjs.Cursor()
	for k, _ := c.Seek(tenant[:]); hasPrefixKey(k, tenant[:]); k, _ = c.Next() {
		r, err := findRecord(l, string(k[len(tenant):]))
		if err == nil && tenantOf(r.context) == tenant {
			return bytes.Clone(r.context)
		}
	}
	return nil
}
