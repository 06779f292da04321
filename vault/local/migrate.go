package local

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// formatV1 is the store file format before the keyring: the file itself held the wrapped
// tenant keys, the key check and the key ID. Open migrates it to formatVersion.
const formatV1 = "1"

// Bucket and key names that only format 1 has.
var (
	bucketTenantsV1 = []byte("tenants")   // context hash -> wrapped tenant key
	keyKeyCheckV1   = []byte("key_check") // see newKeyCheck
	keyKeyIDV1      = []byte("key_id")    // KeyID of the master key, missing in older files
)

// testHookKeyringMigrated is called by migrateV1 after it writes the keyring and before it
// deletes the keys from the store file. Tests return an error from it to stop there, as a
// crash would.
var testHookKeyringMigrated func() error

// migrateV1 moves the tenant keys of a store file of format 1 to its keyring. It writes
// the keyring first and then deletes the keys and the key check from the store file in
// one transaction, which also sets the new format. A crash in between leaves a file of
// format 1 whose keys are also in the keyring, and the next Open runs the migration again.
//
// An existing keyring beside the file is kept and merged, so that such a second run loses
// no key. Where both files have a key for a tenant, the store file's key wins, because its
// values are sealed under it.
func migrateV1(db *bolt.DB, path string, keys masterKeys, log *zap.Logger) (*keyring, error) {
	stored, err := readTenantsV1(db, path, keys)
	if err != nil {
		return nil, err
	}

	ringPath := KeyringPath(path)
	c, _, err := readKeyringFile(ringPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c = newKeyringContent(newStoreID(), keys)
	case err != nil:
		return nil, err
	case !verifyKeyCheck(keys.check, c.header.KeyCheck):
		return nil, wrongKeyError("the keyring "+ringPath, c.header.MasterKeyID, keys.id)
	}
	maps.Copy(c.tenants, stored)

	// a partial last line of the keyring, if any, is dropped here with the rewrite
	if _, err := replaceFile(ringPath, c.encode(), nil); err != nil {
		return nil, fmt.Errorf("writing keyring %s: %w", ringPath, err)
	}
	if testHookKeyringMigrated != nil {
		if err := testHookKeyringMigrated(); err != nil {
			return nil, err
		}
	}

	err = db.Update(func(tx *bolt.Tx) error {
		return finishMigrationV1(tx, c.header.StoreID)
	})
	if err != nil {
		return nil, fmt.Errorf("removing the tenant keys of format 1 from the store file: %w",
			err)
	}

	log.Info("vault file migrated to format 3: tenant keys moved to the keyring",
		zap.String("path", path), zap.String("keyring", ringPath),
		zap.Int("tenant_keys", len(stored)))
	return newKeyring(ringPath, c), nil
}

// readTenantsV1 checks the master key against the key check of a file of format 1 and
// returns its wrapped tenant keys.
func readTenantsV1(db *bolt.DB, path string, keys masterKeys) (map[tenantID][]byte, error) {
	stored := map[tenantID][]byte{}
	err := db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if !verifyKeyCheck(keys.check, meta.Get(keyKeyCheckV1)) {
			return wrongKeyError("the store file "+path, string(meta.Get(keyKeyIDV1)), keys.id)
		}
		b := tx.Bucket(bucketTenantsV1)
		if b == nil {
			return fmt.Errorf("damaged file: bucket %s is missing", bucketTenantsV1)
		}
		return b.ForEach(func(k, v []byte) error {
			if len(k) != len(tenantID{}) {
				return fmt.Errorf("damaged file: a tenant key row has a key of %d bytes",
					len(k))
			}
			stored[tenantID(k)] = bytes.Clone(v)
			return nil
		})
	})
	return stored, err
}

// finishMigrationV1 deletes the key material of format 1 from the store file, and writes
// the store ID and the new format.
func finishMigrationV1(tx *bolt.Tx, storeID string) error {
	meta := tx.Bucket(bucketMeta)
	for _, key := range [][]byte{keyKeyCheckV1, keyKeyIDV1} {
		if err := meta.Delete(key); err != nil {
			return err
		}
	}
	if err := tx.DeleteBucket(bucketTenantsV1); err != nil {
		return err
	}
	if err := meta.Put(keyStoreID, []byte(storeID)); err != nil {
		return err
	}
	return meta.Put(keyFormat, []byte(formatVersion))
}
