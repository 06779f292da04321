// Package local is piivault's embedded vault: a single bbolt file that stores objects
// encrypted with AES-256-GCM.
//
// Every key context (tenant) has its own random 256-bit key, wrapped by a key derived from
// the master key. A value is sealed under its tenant key with the object ID, version ID and
// context as additional data, so a value copied or swapped to another row of the file fails
// to decrypt. The master key is never written to the file. The file contains a key check,
// so Open with a different master key fails at once, and the KeyID of its master key, so
// the error names the key that the file needs. RotateMasterKey wraps the tenant keys under
// a new master key.
//
// Writes run through bbolt's group commit (DB.Batch): the creates of one CreateBatch call
// commit in one transaction, and concurrent calls share commits and fsyncs.
package local

import (
	"bytes"
	"cmp"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"go.uber.org/zap"

	"github.com/piivault/piivault/vault"
)

// ErrWrongMasterKey is wrapped by the error of Open when the master key differs from the
// one the file is encrypted under: the key it was created with, or the new key of its last
// rotation.
var ErrWrongMasterKey = errors.New("wrong master key")

// formatVersion is the layout of the file that this package reads and writes. Open rejects
// a file of any other version.
const formatVersion = "1"

// Defaults of Options. In BenchmarkCreateBatch10Parallel on a 2-core VM, a BatchDelay of
// 2ms stored more values per second than 0.5ms or 10ms (bbolt's default).
const (
	DefaultTimeout      = 5 * time.Second
	DefaultBatchDelay   = 2 * time.Millisecond
	DefaultKeyCacheSize = 1024
)

// Bucket names of the file layout.
var (
	bucketMeta    = []byte("meta")           // format version, key check and key ID
	bucketTenants = []byte("tenants")        // context hash -> wrapped tenant key
	bucketObjects = []byte("objects")        // object ID -> metadata record
	bucketValues  = []byte("values")         // object ID -> sealed value
	bucketNames   = []byte("names")          // name -> object ID
	bucketTenObjs = []byte("tenant_objects") // context hash + object ID -> empty

	keyFormat   = []byte("format")
	keyKeyCheck = []byte("key_check")
	keyKeyID    = []byte("key_id") // KeyID of the master key, for error messages
)

// Options tunes Open. The zero value is ready to use.
type Options struct {
	// Logger receives the opening of the file and tenant erasures, and write retries at
	// debug level. It never receives a value or a key. Default: no logging.
	Logger *zap.Logger

	// Timeout bounds the wait for the file lock, which another process holding the file
	// keeps. Default: DefaultTimeout.
	Timeout time.Duration

	// BatchDelay is how long a write waits for concurrent writes to join its commit
	// (bbolt's DB.MaxBatchDelay). A lone write waits this long before its commit. Under
	// load, a delay that is too short makes many small commits queue for the write lock.
	// Default: DefaultBatchDelay.
	BatchDelay time.Duration

	// KeyCacheSize bounds the number of unwrapped tenant keys kept in memory. A negative
	// size turns the cache off. Default: DefaultKeyCacheSize.
	KeyCacheSize int

	// MustExist makes Open fail when the file does not exist, instead of creating it.
	// Offline tools set it, so that a mistyped path does not leave an empty vault behind.
	// Default: false.
	MustExist bool
}

// Store is a vault.Store and vault.Batcher backed by one bbolt file. It is safe for
// concurrent use.
type Store struct {
	db      *bolt.DB
	path    string
	log     *zap.Logger
	wrapper cipher.AEAD // wraps tenant keys, derived from the master key
	keys    *keyCache

	// commits counts committed write transactions, for tests and benchmarks of group
	// commit. lastTx marks the transaction already counted.
	commits atomic.Uint64
	lastTx  atomic.Pointer[bolt.Tx]
}

// Open opens the vault file at path, creating it and its parent directories when missing,
// unless opts.MustExist is set.
// masterKey must be 32 bytes. A file encrypted under another master key fails with an
// error that wraps ErrWrongMasterKey and names the KeyID of the key that the file needs.
func Open(path string, masterKey []byte, opts Options) (*Store, error) {
	if len(masterKey) != keySize {
		return nil, fmt.Errorf("opening vault %s: master key must be %d bytes, got %d",
			path, keySize, len(masterKey))
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}

	if !opts.MustExist {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("opening vault %s: creating directory: %w", path, err)
		}
	}
	warnLoosePermissions(log, path)

	db, err := openDB(path, cmp.Or(opts.Timeout, DefaultTimeout), !opts.MustExist)
	if err != nil {
		return nil, fmt.Errorf("opening vault %s: %w", path, err)
	}
	db.MaxBatchDelay = cmp.Or(opts.BatchDelay, DefaultBatchDelay)

	s, err := newStore(db, path, masterKey, log, cmp.Or(opts.KeyCacheSize, DefaultKeyCacheSize))
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// openAttempts bounds how often openDB opens the file again after finding that the file it
// locked was replaced meanwhile.
const openAttempts = 3

// openDB opens the bbolt file at path and takes its exclusive lock within timeout. It
// creates a missing file only when create is set, so that offline tools never leave an
// empty vault behind a mistyped path.
//
// CompactFile replaces a file by renaming a new one over it. A process that opened the old
// file and then waited for its lock would then hold a file that is no longer at path. Its
// writes would be lost, so openDB checks that the locked file is still the one at path.
func openDB(path string, timeout time.Duration, create bool) (*bolt.DB, error) {
	for attempt := 1; ; attempt++ {
		var file *os.File
		db, err := bolt.Open(path, 0o600, &bolt.Options{
			Timeout: timeout,
			OpenFile: func(name string, flag int, perm os.FileMode) (*os.File, error) {
				if !create {
					flag &^= os.O_CREATE
				}
				f, err := os.OpenFile(name, flag, perm)
				file = f
				if err == nil && testHookFileOpened != nil {
					testHookFileOpened()
				}
				return f, err
			},
		})
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("file is locked by another process (waited %s); stop "+
				"that process or use another path: %w", timeout, err)
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("the vault file does not exist; check the path: %w", err)
		}
		if err != nil {
			return nil, err
		}

		same, err := isFileAt(file, path)
		if err == nil && same {
			return db, nil
		}
		_ = db.Close()
		if err != nil {
			return nil, err
		}
		if attempt == openAttempts {
			return nil, fmt.Errorf("the file was replaced %d times while waiting for its "+
				"lock; try again", attempt)
		}
	}
}

// testHookFileOpened is called by openDB after it opens the file and before it waits for
// the lock. Tests set it to replace the file at that moment.
var testHookFileOpened func()

// isFileAt reports whether the open file f is still the file at path.
func isFileAt(f *os.File, path string) (bool, error) {
	opened, err := f.Stat()
	if err != nil {
		return false, err
	}
	current, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(opened, current), nil
}

// newStore derives the master subkeys, and initializes or checks the file's header.
func newStore(db *bolt.DB, path string, masterKey []byte, log *zap.Logger,
	cacheSize int) (*Store, error) {
	keys, err := deriveMasterKeys(masterKey)
	if err != nil {
		return nil, fmt.Errorf("opening vault %s: %w", path, err)
	}

	created, err := prepareHeader(db, keys)
	if err != nil {
		return nil, fmt.Errorf("opening vault %s: %w", path, err)
	}

	if created {
		log.Info("vault file created", zap.String("path", path))
	}
	log.Info("vault opened", zap.String("path", path), zap.String("master_key_id", keys.id))
	return &Store{
		db:      db,
		path:    path,
		log:     log,
		wrapper: keys.wrapper,
		keys:    newKeyCache(cacheSize),
	}, nil
}

// prepareHeader checks the header of an existing file in a read transaction, and writes
// only when the file is new or lacks a key ID. Opening a file therefore leaves its bytes
// unchanged, which keeps dry runs of offline tools free of writes.
func prepareHeader(db *bolt.DB, keys masterKeys) (created bool, err error) {
	complete := false
	err = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return nil
		}
		if err := checkHeader(tx, keys); err != nil {
			return err
		}
		complete = meta.Get(keyKeyID) != nil
		return nil
	})
	if err != nil || complete {
		return false, err
	}

	err = db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			created = true
			return initFile(tx, keys)
		}
		if err := checkHeader(tx, keys); err != nil {
			return err
		}
		return addKeyID(tx, keys)
	})
	return created, err
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

// initFile writes the header and creates the buckets of a new file. A file that has other
// buckets but no header is not a vault file, and is left alone.
func initFile(tx *bolt.Tx, keys masterKeys) error {
	foreign := false
	_ = tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
		foreign = true
		return nil
	})
	if foreign {
		return errors.New("the file is a bbolt database but not a piivault vault; " +
			"choose another path")
	}

	meta, err := tx.CreateBucket(bucketMeta)
	if err != nil {
		return err
	}
	if err := meta.Put(keyFormat, []byte(formatVersion)); err != nil {
		return err
	}
	if err := putKeyCheck(meta, keys); err != nil {
		return err
	}
	for _, name := range [][]byte{bucketTenants, bucketObjects, bucketValues,
		bucketNames, bucketTenObjs} {
		if _, err := tx.CreateBucket(name); err != nil {
			return err
		}
	}
	return nil
}

// putKeyCheck writes a new key check and the key ID of keys.
func putKeyCheck(meta *bolt.Bucket, keys masterKeys) error {
	if err := meta.Put(keyKeyCheck, newKeyCheck(keys.check)); err != nil {
		return err
	}
	return meta.Put(keyKeyID, []byte(keys.id))
}

// addKeyID stores the key ID in a file written before key IDs were, so that a later
// open with a wrong key can name the key that the file needs.
func addKeyID(tx *bolt.Tx, keys masterKeys) error {
	meta := tx.Bucket(bucketMeta)
	if meta.Get(keyKeyID) != nil {
		return nil
	}
	return meta.Put(keyKeyID, []byte(keys.id))
}

// checkHeader verifies the format version and that the master key matches the key check.
func checkHeader(tx *bolt.Tx, keys masterKeys) error {
	if err := checkVaultFile(tx); err != nil {
		return err
	}
	meta := tx.Bucket(bucketMeta)
	if !verifyKeyCheck(keys.check, meta.Get(keyKeyCheck)) {
		return wrongKeyError(meta.Get(keyKeyID), keys.id)
	}
	for _, name := range [][]byte{bucketTenants, bucketObjects, bucketValues,
		bucketNames, bucketTenObjs} {
		if tx.Bucket(name) == nil {
			return fmt.Errorf("damaged file: bucket %s is missing", name)
		}
	}
	return nil
}

// checkVaultFile rejects a bbolt file that has no vault header, so that a mistyped path
// does not rewrite another program's database.
func checkVaultFile(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return errors.New("the file is not a piivault vault: it has no header")
	}
	if v := meta.Get(keyFormat); string(v) != formatVersion {
		return fmt.Errorf("unsupported file format version %q, this build reads version %s",
			v, formatVersion)
	}
	return nil
}

// wrongKeyError names the key ID that the file needs, when the file stores one, and the
// key ID of the key provided.
func wrongKeyError(needed []byte, provided string) error {
	if needed == nil {
		return fmt.Errorf("%w: the file is encrypted under another master key "+
			"(the key provided has ID %s)", ErrWrongMasterKey, provided)
	}
	return fmt.Errorf("%w: the file needs the master key with ID %s, the key provided has "+
		"ID %s", ErrWrongMasterKey, needed, provided)
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

// warnLoosePermissions logs a warning when an existing vault file is readable by group or
// others. The values are encrypted, but names and contexts are not.
func warnLoosePermissions(log *zap.Logger, path string) {
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm()&0o077 == 0 {
		return
	}
	log.Warn("vault file is accessible by group or others; run chmod 600 on it",
		zap.String("path", path), zap.Stringer("mode", info.Mode().Perm()))
}

// Close closes the file. Calls in flight finish first.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing vault %s: %w", s.path, err)
	}
	return nil
}

// Path returns the path of the vault file.
func (s *Store) Path() string {
	return s.path
}

// countCommit arranges for the commit of tx to be counted once, however many batched
// calls share it. A transaction that rolls back is not counted.
func (s *Store) countCommit(tx *bolt.Tx) {
	if s.lastTx.Swap(tx) != tx {
		tx.OnCommit(func() { s.commits.Add(1) })
	}
}

// bucketsOf returns the buckets of the object layout in tx.
func bucketsOf(tx *bolt.Tx) layout {
	return layout{
		tenants: tx.Bucket(bucketTenants),
		objects: tx.Bucket(bucketObjects),
		values:  tx.Bucket(bucketValues),
		names:   tx.Bucket(bucketNames),
		tenObjs: tx.Bucket(bucketTenObjs),
	}
}

// layout groups the buckets that one transaction uses.
type layout struct {
	tenants, objects, values, names, tenObjs *bolt.Bucket
}

// tenantObjectKey returns the key of the index entry that lists id under its tenant.
func tenantObjectKey(tenant tenantID, id string) []byte {
	k := make([]byte, 0, len(tenant)+len(id))
	k = append(k, tenant[:]...)
	return append(k, id...)
}

// hasPrefixKey reports whether a cursor key k is still inside prefix.
func hasPrefixKey(k, prefix []byte) bool {
	return k != nil && bytes.HasPrefix(k, prefix)
}

// Interface guards.
var (
	_ vault.Store   = (*Store)(nil)
	_ vault.Batcher = (*Store)(nil)
)
