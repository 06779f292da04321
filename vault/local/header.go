package local

// This file checks and creates the header of the store file and its keyring when a store
// is opened.

import (
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
)

// storeHeader is the part of a store file's header that prepareFiles needs.
type storeHeader struct {
	format     string // "" for a file without header
	storeID    string // formats 2 and 3 only
	hasObjects bool
}

// prepareFiles checks the header of the locked store file and loads its keyring, after
// creating whichever of the two is new, or after migrating a store file of format 1, which
// it then reports in migrated. It writes nothing to a pair of files that are complete, so
// that dry runs of offline tools leave them unchanged. init allows a file without header,
// which gets a new one.
func prepareFiles(db *bolt.DB, path string, keys masterKeys, init bool,
	log *zap.Logger) (ring *keyring, migrated bool, err error) {
	h, err := readHeader(db)
	if err != nil {
		return nil, false, err
	}
	if err := removeStaleTemp(KeyringPath(path)); err != nil {
		return nil, false, err
	}

	switch h.format {
	case "":
		if !init {
			return nil, false, errors.New("the file is not a piivault vault: it has no header")
		}
		ring, err = createStore(db, path, keys, log)
		return ring, false, err
	case formatV1:
		ring, err = migrateV1(db, path, keys, log)
		return ring, err == nil, err
	default:
		ring, err = loadKeyring(path, h, keys, log)
		return ring, false, err
	}
}

// readHeader reads the header of a store file. A file with other buckets but no header
// is not a vault file, and is left alone.
func readHeader(db *bolt.DB) (storeHeader, error) {
	var h storeHeader
	err := db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return checkNoBuckets(tx)
		}
		if err := checkVaultFile(tx); err != nil {
			return err
		}
		for _, name := range layoutBuckets {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("damaged file: bucket %s is missing", name)
			}
		}

		h.format = string(meta.Get(keyFormat))
		if h.format == formatVersion || h.format == formatV2 {
			h.storeID = string(meta.Get(keyStoreID))
			if h.storeID == "" {
				return errors.New("damaged file: the store ID is missing")
			}
		}
		first, _ := tx.Bucket(bucketObjects).Cursor().First()
		h.hasObjects = first != nil
		return nil
	})
	return h, err
}

// checkNoBuckets rejects a bbolt file that has buckets but no vault header.
func checkNoBuckets(tx *bolt.Tx) error {
	foreign := false
	_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		foreign = true
		return nil
	})
	if foreign {
		return errors.New("the file is a bbolt database but not a piivault vault; " +
			"choose another path")
	}
	return nil
}

// removeStaleTemp removes the temporary file that a replacement of path left behind when
// it crashed. It may hold tenant keys, and the caller holds the store file's lock, so no
// replacement is running.
func removeStaleTemp(path string) error {
	err := os.Remove(path + tempSuffix)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing the temporary file of an interrupted write: %w", err)
	}
	return nil
}

// createStore writes the header of a new store file, then creates its keyring. A crash
// between the two leaves a store file without objects and without keyring, which
// loadKeyring completes. An existing keyring without tenant keys, from such a crash or
// from a deleted empty store, is kept when the master key matches. A keyring with tenant
// keys belongs to a store file that is missing, and createStore stops rather than start a
// new store beside it.
func createStore(db *bolt.DB, path string, keys masterKeys, log *zap.Logger) (*keyring,
	error) {
	ringPath := KeyringPath(path)
	c, torn, err := readKeyringFile(ringPath)
	write := err != nil || torn
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c = newKeyringContent(newStoreID(), keys)
	case err != nil:
		return nil, err
	case len(c.tenants) > 0:
		return nil, fmt.Errorf("the store file is new, but the keyring %s contains tenant "+
			"keys (%d): restore the store file that belongs to this keyring, or move the "+
			"keyring away to start an empty vault", ringPath, len(c.tenants))
	case !verifyKeyCheck(keys.check, c.header.KeyCheck):
		return nil, wrongKeyError("the keyring "+ringPath, c.header.MasterKeyID, keys.id)
	}

	err = db.Update(func(tx *bolt.Tx) error {
		return initFile(tx, c.header.StoreID)
	})
	if err != nil {
		return nil, err
	}
	if write {
		if _, err := replaceFile(ringPath, c.encode(), nil); err != nil {
			return nil, fmt.Errorf("creating keyring %s: %w", ringPath, err)
		}
	}

	log.Info("vault file created", zap.String("path", path), zap.String("keyring", ringPath))
	return newKeyring(ringPath, c), nil
}

// loadKeyring reads the keyring of a store file of the current format, and checks that it
// belongs to the store file and to the master key. A missing keyring is created only for a
// store file without objects: the objects of any other could never be decrypted again.
func loadKeyring(path string, h storeHeader, keys masterKeys, log *zap.Logger) (*keyring,
	error) {
	ringPath := KeyringPath(path)
	c, torn, err := readKeyringFile(ringPath)
	if errors.Is(err, fs.ErrNotExist) {
		return createKeyring(path, h, keys, log)
	}
	if err != nil {
		return nil, err
	}

	if c.header.StoreID != h.storeID {
		return nil, fmt.Errorf("the keyring %s belongs to another store file: it has store "+
			"ID %s, the store file has %s; use the keyring that was created with this store "+
			"file", ringPath, c.header.StoreID, h.storeID)
	}
	if !verifyKeyCheck(keys.check, c.header.KeyCheck) {
		return nil, wrongKeyError("the keyring "+ringPath, c.header.MasterKeyID, keys.id)
	}
	if torn {
		log.Warn("keyring ends with a partial line from an interrupted write, rewriting it "+
			"without that line", zap.String("keyring", ringPath))
		if _, err := replaceFile(ringPath, c.encode(), nil); err != nil {
			return nil, fmt.Errorf("rewriting keyring %s: %w", ringPath, err)
		}
	}
	return newKeyring(ringPath, c), nil
}

// createKeyring creates the missing keyring of a store file without objects.
func createKeyring(path string, h storeHeader, keys masterKeys, log *zap.Logger) (*keyring,
	error) {
	ringPath := KeyringPath(path)
	if h.hasObjects {
		return nil, fmt.Errorf("the keyring %s is missing, and the objects of the store file "+
			"%s cannot be decrypted without it: restore the keyring from its backup, or move "+
			"the store file away to start an empty vault", ringPath, path)
	}

	c := newKeyringContent(h.storeID, keys)
	if _, err := replaceFile(ringPath, c.encode(), nil); err != nil {
		return nil, fmt.Errorf("creating keyring %s: %w", ringPath, err)
	}
	log.Info("keyring created for a store file without objects", zap.String("path", path),
		zap.String("keyring", ringPath))
	return newKeyring(ringPath, c), nil
}

// masterKeys are the subkeys of one master key.
type masterKeys struct {
	wrapper cipher.AEAD // wraps tenant keys
	check   []byte      // authenticates the key check
	id      string      // see KeyID
}

// deriveMasterKeys derives the subkeys of master.
func deriveMasterKeys(master []byte) (masterKeys, error) {
	wrapKey, err := deriveKey(master, infoWrap)
	if err != nil {
		return masterKeys{}, err
	}
	defer clear(wrapKey)
	wrapper, err := newAEAD(wrapKey)
	if err != nil {
		return masterKeys{}, err
	}
	check, err := deriveKey(master, infoCheck)
	if err != nil {
		return masterKeys{}, err
	}
	return masterKeys{wrapper: wrapper, check: check, id: KeyID(master)}, nil
}

// initFile writes the header and creates the buckets of a new store file.
func initFile(tx *bolt.Tx, storeID string) error {
	if err := checkNoBuckets(tx); err != nil {
		return err
	}
	meta, err := tx.CreateBucket(bucketMeta)
	if err != nil {
		return err
	}
	if err := meta.Put(keyFormat, []byte(formatVersion)); err != nil {
		return err
	}
	if err := meta.Put(keyStoreID, []byte(storeID)); err != nil {
		return err
	}
	for _, name := range layoutBuckets {
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	return nil
}

// newStoreID returns 128 random bits in hex. The store file and its keyring both record
// it, so that Open notices a keyring of another store.
func newStoreID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// checkVaultFile rejects a bbolt file that has no vault header, so that a mistyped path
// does not rewrite another program's database, and a format that this build cannot read.
func checkVaultFile(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return errors.New("the file is not a piivault vault: it has no header")
	}
	if v := string(meta.Get(keyFormat)); v != formatVersion && v != formatV2 && v != formatV1 {
		return fmt.Errorf("unsupported file format version %q, this build reads versions "+
			"%s, %s and %s", v, formatV1, formatV2, formatVersion)
	}
	return nil
}

// wrongKeyError names the key ID that file needs, when it stores one, and the key ID of
// the key provided.
func wrongKeyError(file, needed, provided string) error {
	if needed == "" {
		return fmt.Errorf("%w: %s is encrypted under another master key (the key provided "+
			"has ID %s)", ErrWrongMasterKey, file, provided)
	}
	return fmt.Errorf("%w: %s needs the master key with ID %s, the key provided has ID %s",
		ErrWrongMasterKey, file, needed, provided)
}

// newKeyCheck returns a random salt followed by its HMAC under checkKey.
func newKeyCheck(checkKey []byte) []byte {
	salt := make([]byte, 16)
	rand.Read(salt)
	mac := hmac.New(sha256New, checkKey)
	mac.Write(salt)
	return mac.Sum(salt)
}

// verifyKeyCheck reports whether check was made by newKeyCheck with checkKey.
func verifyKeyCheck(checkKey, check []byte) bool {
	if len(check) != 16+32 {
		return false
	}
	mac := hmac.New(sha256New, checkKey)
	mac.Write(check[:16])
	return hmac.Equal(mac.Sum(nil), check[16:])
}
