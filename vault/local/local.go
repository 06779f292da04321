// Package local is piivault's embedded vault: a bbolt store file that holds objects
// encrypted with AES-256-GCM, and a keyring file beside it that holds their keys.
//
// Every key context (tenant) has its own random 256-bit key, wrapped by a key derived from
// the master key. A value is sealed under its tenant key with the object ID, version ID and
// context as additional data, so a value copied or swapped to another row of the file fails
// to decrypt.
//
// The wrapped tenant keys live in the keyring, at KeyringPath of the store file, and the
// store file holds no key material. EraseTenant removes the tenant's key from the keyring,
// so neither the live store file nor a copy of it taken before the erasure can be decrypted
// for that tenant with the live keyring, even with the master key. Only a copy of the
// keyring taken before the erasure still can. The master key is written to neither file.
// The keyring contains a key check, so Open with a different master key fails at once, and
// the KeyID of its master key, so the error names the key that the store needs.
// RotateMasterKey wraps the tenant keys under a new master key by replacing the keyring.
//
// Writes run through bbolt's group commit (DB.Batch): the creates of one CreateBatch call
// commit in one transaction, and concurrent calls share commits and fsyncs. The first
// create of a tenant also appends its new key to the keyring, and concurrent first creates
// share that append.
package local

import (
	"bytes"
	"cmp"
	"crypto/cipher"
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
// one the keyring is encrypted under: the key it was created with, or the new key of its
// last rotation.
var ErrWrongMasterKey = errors.New("wrong master key")

// formatVersion is the layout of the store file that this package writes: version 3 keeps
// each object's sealed value in its record. Version 2 (formatV2) kept the values in a
// bucket of their own, and its files need no migration: their records stay readable, and
// the first create or update marks the file as version 3, so that older builds reject
// it. Open migrates a store file of version 1 (formatV1), and rejects any other version.
// Both 2 and 3 keep the tenant keys in the keyring.
const (
	formatVersion = "3"
	formatV2      = "2"
)

// Defaults of Options. In BenchmarkCreateBatch10Parallel on a 2-core VM, a BatchDelay of
// 2ms stored more values per second than 0.5ms or 10ms (bbolt's default).
const (
	DefaultTimeout      = 5 * time.Second
	DefaultBatchDelay   = 2 * time.Millisecond
	DefaultKeyCacheSize = 1024
)

// Bucket names of the store file layout.
var (
	bucketMeta    = []byte("meta")           // format version and store ID
	bucketObjects = []byte("objects")        // object ID -> metadata record
	bucketValues  = []byte("values")         // object ID -> sealed value, for records of format 2
	bucketNames   = []byte("names")          // name -> object ID
	bucketTenObjs = []byte("tenant_objects") // context hash + object ID -> empty

	keyFormat  = []byte("format")
	keyStoreID = []byte("store_id") // random ID that the keyring repeats

	// layoutBuckets are the buckets that every store file has besides meta.
	layoutBuckets = [][]byte{bucketObjects, bucketValues, bucketNames, bucketTenObjs}
)

// Options tunes Open. The zero value is ready to use.
type Options struct {
	// Logger receives the opening of the files and tenant erasures, and write retries at
	// debug level. It never receives a value or a key. Default: no logging.
	Logger *zap.Logger

	// Timeout bounds the wait for the store file's lock, which another process holding
	// the file keeps. Default: DefaultTimeout.
	Timeout time.Duration

	// BatchDelay is how long a write waits for concurrent writes to join its commit
	// (bbolt's DB.MaxBatchDelay). A lone write waits this long before its commit. Under
	// load, a delay that is too short makes many small commits queue for the write lock.
	// Default: DefaultBatchDelay.
	BatchDelay time.Duration

	// KeyCacheSize bounds the number of unwrapped tenant keys kept in memory. A negative
	// size turns the cache off. Default: DefaultKeyCacheSize.
	KeyCacheSize int

	// MustExist makes Open fail when the store file does not exist or has no header,
	// instead of creating it. Offline tools set it, so that a mistyped path does not
	// leave an empty vault behind. Open still migrates a store file of format 1, and
	// creates the missing keyring of a store file without objects. Default: false.
	MustExist bool
}

// Store is a vault.Store and vault.Batcher backed by a bbolt store file and its keyring.
// It is safe for concurrent use.
type Store struct {
	db      *bolt.DB
	path    string
	log     *zap.Logger
	wrapper cipher.AEAD // wraps tenant keys, derived from the master key
	ring    *keyring
	keys    *keyCache

	// commits counts committed write transactions, for tests and benchmarks of group
	// commit. lastTx marks the transaction already counted.
	commits atomic.Uint64
	lastTx  atomic.Pointer[bolt.Tx]

	// marked is set once the file's header says formatVersion, see markFormat
	marked atomic.Bool
}

// Open opens the store file at path and its keyring at KeyringPath(path), creating both
// and the parent directories when the store file is missing, unless opts.MustExist is set.
// masterKey must be 32 bytes.
//
// Open fails when the keyring is missing but the store file has objects, when the keyring
// belongs to another store file, and, with an error that wraps ErrWrongMasterKey and names
// the KeyID of the key that the keyring needs, when the keyring is under another master
// key. A store file of format 1, which held its tenant keys itself, is migrated: its keys
// move to a new keyring, and the file is compacted so that its free pages lose them.
//
// The Store holds the store file's lock until Close, and with it the right to write the
// keyring: no other Open, RotateMasterKey or CompactFile of the same path runs meanwhile.
func Open(path string, masterKey []byte, opts Options) (*Store, error) {
	if len(masterKey) != keySize {
		return nil, fmt.Errorf("opening vault %s: master key must be %d bytes, got %d",
			path, keySize, len(masterKey))
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	keys, err := deriveMasterKeys(masterKey)
	if err != nil {
		return nil, fmt.Errorf("opening vault %s: %w", path, err)
	}

	if !opts.MustExist {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return nil, fmt.Errorf("opening vault %s: creating directory: %w", path, err)
		}
	}
	warnLoosePermissions(log, path)
	warnLoosePermissions(log, KeyringPath(path))

	timeout := cmp.Or(opts.Timeout, DefaultTimeout)
	db, ring, err := openFiles(path, keys, timeout, !opts.MustExist, log)
	if err != nil {
		return nil, fmt.Errorf("opening vault %s: %w", path, err)
	}
	db.MaxBatchDelay = cmp.Or(opts.BatchDelay, DefaultBatchDelay)
	warnObjectsWithoutKey(db, ring, log)

	log.Info("vault opened", zap.String("path", path), zap.String("keyring", ring.path),
		zap.String("master_key_id", keys.id))
	return &Store{
		db:      db,
		path:    path,
		log:     log,
		wrapper: keys.wrapper,
		ring:    ring,
		keys:    newKeyCache(cmp.Or(opts.KeyCacheSize, DefaultKeyCacheSize)),
	}, nil
}

// openFiles opens and locks the store file at path, then checks or creates its header and
// its keyring under keys. A store file of format 1 is migrated, then compacted and opened
// again. create allows a missing store file and a new header.
func openFiles(path string, keys masterKeys, timeout time.Duration, create bool,
	log *zap.Logger) (*bolt.DB, *keyring, error) {
	for {
		db, err := openDB(path, timeout, create)
		if err != nil {
			return nil, nil, err
		}
		ring, migrated, err := prepareFiles(db, path, keys, create, log)
		if err != nil {
			_ = db.Close()
			return nil, nil, err
		}
		if !migrated {
			return db, ring, nil
		}

		// the migration deleted the wrapped keys, but bbolt keeps their bytes in free
		// pages until they are reused, so a copy of the file would still contain them
		replaced, err := compactLocked(db, path, timeout)
		if err != nil {
			log.Warn("compacting the migrated vault file failed, so its free pages keep the "+
				"tenant keys of format 1 until CompactFile runs", zap.String("path", path),
				zap.Error(err))
		}
		if !replaced {
			return db, ring, nil
		}
		// db is the file that was renamed away: open the compacted one and load its
		// keyring again, in case another process wrote it between the two locks
		_ = db.Close()
	}
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

// warnLoosePermissions logs a warning when an existing store file or keyring is readable
// by group or others. The values and keys are encrypted, but names and contexts are not.
func warnLoosePermissions(log *zap.Logger, path string) {
	info, err := os.Stat(path)
	if err != nil || info.Mode().Perm()&0o077 == 0 {
		return
	}
	log.Warn("vault file is accessible by group or others; run chmod 600 on it",
		zap.String("path", path), zap.Stringer("mode", info.Mode().Perm()))
}

// Close closes the store file and releases its lock. Calls in flight finish first.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("closing vault %s: %w", s.path, err)
	}
	return nil
}

// Path returns the path of the store file. Its keyring is at KeyringPath(Path()).
func (s *Store) Path() string {
	return s.path
}

// markFormat sets the header of a file of format 2 to formatVersion in the write
// transaction tx, before the first record with a value goes in. Creates and updates call
// it; deletes and erasures leave a file of format 2 readable by the builds that wrote it. For a file whose header
// is formatVersion already, it costs one atomic load per write.
func (s *Store) markFormat(tx *bolt.Tx) error {
	if s.marked.Load() {
		return nil
	}
	meta := tx.Bucket(bucketMeta)
	if string(meta.Get(keyFormat)) != formatVersion {
		if err := meta.Put(keyFormat, []byte(formatVersion)); err != nil {
			return err
		}
	}
	tx.OnCommit(func() { s.marked.Store(true) })
	return nil
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
		tx:      tx,
		objects: tx.Bucket(bucketObjects),
		values:  tx.Bucket(bucketValues),
		names:   tx.Bucket(bucketNames),
		tenObjs: tx.Bucket(bucketTenObjs),
	}
}

// layout groups the buckets that one transaction uses.
type layout struct {
	tx                              *bolt.Tx
	objects, values, names, tenObjs *bolt.Bucket
}

// appendFillPercent is the share of a page that bbolt fills when it splits one, instead of its
// default of half. New keys mostly sort after the keys of their page: object IDs start
// with the time, names end with it after their field's prefix, and the tenant index grows
// per tenant. A split page then seldom gets another key, and half-full pages would make
// each commit write more pages. In BenchmarkCreateBatch10Parallel, 0.9 cut the pages
// written per commit from 100 to 70.
const appendFillPercent = 0.9

// packForAppends sets the fill percent of l's buckets for a write transaction. bbolt
// keeps the setting on the bucket handle, so each transaction sets it again.
func (l layout) packForAppends() {
	for _, b := range []*bolt.Bucket{l.objects, l.values, l.names, l.tenObjs} {
		b.FillPercent = appendFillPercent
	}
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
