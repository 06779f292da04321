package local

import (
	"bytes"
	"cmp"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// RotateResult is the outcome of RotateMasterKey.
type RotateResult struct {
	// Rewrapped is the number of tenant keys now wrapped under the new master key.
	Rewrapped int

	// Dropped is the number of tenant keys deleted because no object used them anymore.
	// The file stores a tenant's key context only in the tenant's objects, and the wrapping
	// is bound to the context, so such a key cannot be unwrapped. A later create for the
	// tenant makes a new key.
	Dropped int

	// AlreadyRotated reports that the file was already encrypted under the new master key,
	// so nothing changed. A rotation run again after one whose outcome was lost ends here.
	AlreadyRotated bool

	// OldKeyID and NewKeyID are the KeyID of the old and of the new master key.
	OldKeyID, NewKeyID string
}

// RotateMasterKey wraps every tenant key of the vault file at path under newKey in place
// of oldKey, and replaces the key check and key ID. Values are not encrypted again: they
// stay sealed under their tenant keys, which do not change.
//
// The file must exist and must not be open: RotateMasterKey takes the file's lock and
// waits at most opts.Timeout for it. All changes are made in one bbolt transaction, which
// commits whole or not at all, so a crash or kill at any point leaves a file that opens
// with exactly one of the two keys. Open with the other key fails with ErrWrongMasterKey
// and names the KeyID that the file needs. A file already under newKey is left as it is,
// with AlreadyRotated set.
//
// Copies of the file taken before the rotation still open with the old key. The old
// wrapped keys also stay in the file's free pages until CompactFile rewrites the file.
func RotateMasterKey(ctx context.Context, path string, oldKey, newKey []byte,
	opts Options) (RotateResult, error) {
	return rotate(ctx, path, oldKey, newKey, opts, nil)
}

// rotateHook lets tests stop a rotation. rotate calls it after each change inside the
// transaction, with steps numbered from 1, and once more after the commit. An error
// returned inside the transaction rolls it back.
type rotateHook func(step int) error

// rotate is RotateMasterKey with a hook for tests.
func rotate(ctx context.Context, path string, oldKey, newKey []byte, opts Options,
	hook rotateHook) (RotateResult, error) {
	res, err := rotateFile(ctx, path, oldKey, newKey, opts, hook)
	if err != nil {
		return res, fmt.Errorf("rotating master key of vault %s: %w", path, err)
	}

	log := cmp.Or(opts.Logger, zap.NewNop())
	log.Info("master key rotated",
		zap.String("path", path),
		zap.Int("rewrapped", res.Rewrapped),
		zap.Int("dropped", res.Dropped),
		zap.Bool("already_rotated", res.AlreadyRotated),
		zap.String("old_key_id", res.OldKeyID),
		zap.String("new_key_id", res.NewKeyID))
	return res, nil
}

// rotateFile runs the rotation transaction on the locked file.
func rotateFile(ctx context.Context, path string, oldKey, newKey []byte, opts Options,
	hook rotateHook) (RotateResult, error) {
	from, to, err := rotationKeys(oldKey, newKey)
	if err != nil {
		return RotateResult{}, err
	}
	res := RotateResult{OldKeyID: from.id, NewKeyID: to.id}
	if err := ctx.Err(); err != nil {
		return res, err
	}

	db, err := openDB(path, cmp.Or(opts.Timeout, DefaultTimeout), false)
	if err != nil {
		return res, err
	}
	err = rotateDB(ctx, db, from, to, hook, &res)
	if closeErr := db.Close(); err == nil {
		err = closeErr
	}
	return res, err
}

// rotateDB runs the rotation transaction, and sets the counts and AlreadyRotated of res.
func rotateDB(ctx context.Context, db *bolt.DB, from, to masterKeys, hook rotateHook,
	res *RotateResult) error {
	step := 0
	next := func() error {
		step++
		if hook == nil {
			return nil
		}
		return hook(step)
	}

	err := db.Update(func(tx *bolt.Tx) error {
		err := checkHeader(tx, from)
		if errors.Is(err, ErrWrongMasterKey) && checkHeader(tx, to) == nil {
			res.AlreadyRotated = true
			return nil
		}
		if err != nil {
			return err
		}
		res.Rewrapped, res.Dropped, err = rotateIn(ctx, tx, from, to, next)
		return err
	})
	if err != nil {
		res.Rewrapped, res.Dropped = 0, 0
		return err
	}
	return next()
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

// rotateIn rewraps the tenant keys of tx from one master key to the other, and replaces
// the key check. It calls step after each change.
func rotateIn(ctx context.Context, tx *bolt.Tx, from, to masterKeys,
	step func() error) (rewrapped, dropped int, err error) {
	l := bucketsOf(tx)
	tenants, err := listTenants(l.tenants)
	if err != nil {
		return 0, 0, err
	}
	contexts := tenantContexts(l, tenants)

	for _, tenant := range tenants {
		if err := ctx.Err(); err != nil {
			return 0, 0, err
		}

		encoded, ok := contexts[tenant]
		if ok {
			err = rewrap(l.tenants, tenant, encoded, from, to)
			rewrapped++
		} else {
			err = l.tenants.Delete(tenant[:])
			dropped++
		}
		if err != nil {
			return 0, 0, fmt.Errorf("tenant %x: %w", tenant[:8], err)
		}
		if err := step(); err != nil {
			return 0, 0, err
		}
	}

	if err := putKeyCheck(tx.Bucket(bucketMeta), to); err != nil {
		return 0, 0, err
	}
	return rewrapped, dropped, step()
}

// listTenants returns the tenant IDs of the tenant key bucket. They are collected before
// any change, because writing to a bucket under a bbolt cursor can skip keys.
func listTenants(b *bolt.Bucket) ([]tenantID, error) {
	var tenants []tenantID
	err := b.ForEach(func(k, _ []byte) error {
		if len(k) != len(tenantID{}) {
			return fmt.Errorf("damaged file: a tenant key row has a key of %d bytes", len(k))
		}
		tenants = append(tenants, tenantID(k))
		return nil
	})
	return tenants, err
}

// rewrap unwraps the key of tenant with one master key and wraps it with the other.
func rewrap(b *bolt.Bucket, tenant tenantID, encodedContext []byte, from,
	to masterKeys) error {
	aad := wrapAAD(encodedContext)
	key, err := unseal(from.wrapper, b.Get(tenant[:]), aad)
	if err != nil {
		return fmt.Errorf("unwrapping tenant key: %w", err)
	}
	defer clear(key)
	return b.Put(tenant[:], seal(to.wrapper, key, aad))
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
