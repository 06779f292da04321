package local

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
)

// The keyring is a file beside the store file that contains the store's tenant keys, each
// wrapped by the master key, and the check of the master key. The store file contains
// only metadata and sealed values. Erasing a tenant removes its wrapped key from the keyring,
// so a copy of the store file taken before the erasure cannot decrypt the tenant's objects
// with the keyring as it is after the erasure. A copy of the keyring taken before the
// erasure still can.
//
// The file is JSON Lines: a header, then one line per tenant key.
//
//	{"format":"piivault-keyring","version":1,"store_id":"<32 hex>","master_key_id":"<16 hex>","key_check":"<base64>"}
//	{"tenant":"<64 hex>","key":"<base64>"}
//
// tenant is the SHA-256 of the tenant's canonical key context (see encodeContext), and key
// is the tenant key sealed under the master key's wrapping key with the context as
// additional data. A new tenant key is appended to the file and synced. Erasure and
// rotation write the whole file to a temporary file, sync it and rename it over the
// keyring. Only the process that holds the store file's lock writes the keyring.

// Constants of the keyring file format.
const (
	keyringSuffix  = ".keys"
	keyringFormat  = "piivault-keyring"
	keyringVersion = 1

	// tempSuffix names the temporary file of an atomic replacement. The name is fixed,
	// because only the holder of the store file's lock writes it, so a file left by a
	// crash is overwritten by the next replacement.
	tempSuffix = ".tmp"
)

// KeyringPath returns the path of the keyring of the store file at storePath: storePath
// followed by ".keys".
func KeyringPath(storePath string) string {
	return storePath + keyringSuffix
}

// keyringHeader is the first line of a keyring file.
type keyringHeader struct {
	Format      string `json:"format"`
	Version     int    `json:"version"`
	StoreID     string `json:"store_id"`      // equals the store_id of the store file
	MasterKeyID string `json:"master_key_id"` // KeyID of the master key, for error messages
	KeyCheck    []byte `json:"key_check"`     // see newKeyCheck
}

// keyringEntry is a line of a keyring file after the header.
type keyringEntry struct {
	Tenant string `json:"tenant"` // tenant ID in hex
	Key    []byte `json:"key"`    // wrapped tenant key
}

// keyringContent is a parsed keyring file.
type keyringContent struct {
	header  keyringHeader
	tenants map[tenantID][]byte // tenant ID -> wrapped tenant key
}

// newKeyringContent returns an empty keyring for the store storeID under keys.
func newKeyringContent(storeID string, keys masterKeys) keyringContent {
	return keyringContent{
		header: keyringHeader{
			Format:      keyringFormat,
			Version:     keyringVersion,
			StoreID:     storeID,
			MasterKeyID: keys.id,
			KeyCheck:    newKeyCheck(keys.check),
		},
		tenants: map[tenantID][]byte{},
	}
}

// encode returns the file form of c, with the tenant keys sorted by tenant ID.
func (c keyringContent) encode() []byte {
	line, _ := json.Marshal(c.header) // a struct of strings, ints and bytes always marshals
	// a tenant line is 167 bytes for a wrapped key of 60 bytes
	b := make([]byte, 0, len(line)+1+170*len(c.tenants))
	b = append(append(b, line...), '\n')
	return appendEntries(b, c.tenants)
}

// appendEntries appends one line per tenant key to b, sorted by tenant ID. It writes the
// JSON of keyringEntry directly, because hex and standard base64 never need escaping. With
// json.Marshal per line, encoding took half the CPU time of BenchmarkEraseTenant1000Tenants.
func appendEntries(b []byte, tenants map[tenantID][]byte) []byte {
	ids := slices.SortedFunc(maps.Keys(tenants), func(x, y tenantID) int {
		return bytes.Compare(x[:], y[:])
	})
	const prefix, middle, suffix = `{"tenant":"`, `","key":"`, "\"}\n"
	for _, tenant := range ids {
		wrapped := tenants[tenant]
		b = slices.Grow(b, len(prefix)+hex.EncodedLen(len(tenant))+len(middle)+
			base64.StdEncoding.EncodedLen(len(wrapped))+len(suffix))
		b = append(b, prefix...)
		b = hex.AppendEncode(b, tenant[:])
		b = append(b, middle...)
		b = base64.StdEncoding.AppendEncode(b, wrapped)
		b = append(b, suffix...)
	}
	return b
}

// decodeKeyring parses a keyring file. Every line ends with a newline, so a last line
// without one was cut off by a crash during an append: decodeKeyring drops it and reports
// torn. Its key was never used, because a write syncs the keyring before it commits
// objects sealed under a new key. Any other line that does not parse is damage, and an
// error.
func decodeKeyring(data []byte) (c keyringContent, torn bool, err error) {
	lines := bytes.Split(data, []byte{'\n'})
	if last := lines[len(lines)-1]; len(last) > 0 {
		torn = true
	}
	lines = lines[:len(lines)-1]
	if len(lines) == 0 {
		return c, false, errors.New("damaged keyring: the header line is missing")
	}

	if err := json.Unmarshal(lines[0], &c.header); err != nil {
		return c, false, fmt.Errorf("damaged keyring: header: %w", err)
	}
	if c.header.Format != keyringFormat {
		return c, false, fmt.Errorf("the file is not a piivault keyring: format %q",
			c.header.Format)
	}
	if c.header.Version != keyringVersion {
		return c, false, fmt.Errorf("unsupported keyring version %d, this build reads "+
			"version %d", c.header.Version, keyringVersion)
	}

	c.tenants = make(map[tenantID][]byte, len(lines)-1)
	for i, line := range lines[1:] {
		tenant, wrapped, err := decodeEntry(line)
		if err != nil {
			return c, false, fmt.Errorf("damaged keyring: line %d: %w", i+2, err)
		}
		if old, dup := c.tenants[tenant]; dup && !bytes.Equal(old, wrapped) {
			return c, false, fmt.Errorf("damaged keyring: line %d: tenant %x has two keys",
				i+2, tenant[:8])
		}
		c.tenants[tenant] = wrapped
	}
	return c, torn, nil
}

// decodeEntry parses one tenant key line.
func decodeEntry(line []byte) (tenantID, []byte, error) {
	var e keyringEntry
	if err := json.Unmarshal(line, &e); err != nil {
		return tenantID{}, nil, err
	}
	raw, err := hex.DecodeString(e.Tenant)
	if err != nil || len(raw) != len(tenantID{}) {
		return tenantID{}, nil, errors.New("the tenant ID is not 64 hex digits")
	}
	if len(e.Key) == 0 {
		return tenantID{}, nil, errors.New("the wrapped key is empty")
	}
	return tenantID(raw), e.Key, nil
}

// readKeyringFile reads and parses the keyring at path. A missing file returns an error
// that wraps fs.ErrNotExist.
func readKeyringFile(path string) (keyringContent, bool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return keyringContent{}, false, err
	}
	c, torn, err := decodeKeyring(data)
	if err != nil {
		return keyringContent{}, false, fmt.Errorf("keyring %s: %w", path, err)
	}
	return c, torn, nil
}

// replaceFile writes data to the temporary file of path, syncs it, calls beforeRename
// (for tests) and renames the temporary file over path, then syncs the directory. A crash
// at any point leaves either the old or the new file at path. renamed reports whether the
// new file is at path, which it can be even when err is not nil.
func replaceFile(path string, data []byte, beforeRename func() error) (renamed bool,
	err error) {
	tmp := path + tempSuffix
	if err := writeSynced(tmp, data); err != nil {
		_ = os.Remove(tmp)
		return false, err
	}
	if beforeRename != nil {
		if err := beforeRename(); err != nil {
			_ = os.Remove(tmp)
			return false, err
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return false, err
	}
	return true, syncDir(filepath.Dir(path))
}

// writeSynced creates the file at path with mode 0600, writes data and syncs it. A file
// left at path by a crash is removed first, so that its mode does not carry over.
func writeSynced(path string, data []byte) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	return err
}

// keyring is the keyring of an open Store. It keeps the wrapped tenant keys of the file in
// memory: the Store holds the store file's lock, so no other process writes the keyring,
// and after each write the map equals the file.
//
// NOTE: memory and the cost of an erasure or rotation grow with the number of tenants,
// because every wrapped key stays in memory and both rewrite the whole file. Appending a
// new key costs the same at any size.
type keyring struct {
	path   string
	header keyringHeader

	mu      sync.RWMutex
	keys    map[tenantID][]byte // wrapped keys, each replaced but never modified
	pending *keyringBatch       // new keys waiting for the next append

	// writeMu is held for each write of the file, and by an erasure until its objects
	// are deleted. Code that holds it may read keys without mu, because keys changes
	// only under both.
	writeMu sync.Mutex
	rewrite bool          // set when a failed append may have left a partial line (writeMu)
	writes  atomic.Uint64 // writes of the file, for tests of group commit
}

// keyringBatch is a group of new tenant keys that one append writes: concurrent creates
// of new tenants share its write and its fsync.
type keyringBatch struct {
	keys map[tenantID][]byte
	done bool  // guarded by writeMu
	err  error // guarded by writeMu
}

// newKeyring returns the open keyring of the file at path with content c.
func newKeyring(path string, c keyringContent) *keyring {
	return &keyring{path: path, header: c.header, keys: c.tenants}
}

// get returns the wrapped key of tenant, or nil. Callers must not modify it.
func (r *keyring) get(tenant tenantID) []byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.keys[tenant]
}

// len returns the number of tenant keys.
func (r *keyring) len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.keys)
}

// add stores the new wrapped keys of tenants that have no key yet, and returns the key of
// each tenant of keys as the keyring has it after the write. A tenant whose returned key
// differs from the one passed got another key first, from a concurrent call. add returns
// only after the keys it returns are synced to the file.
func (r *keyring) add(keys map[tenantID][]byte) (map[tenantID][]byte, error) {
	r.mu.Lock()
	if r.pending == nil {
		r.pending = &keyringBatch{keys: map[tenantID][]byte{}}
	}
	b := r.pending
	waits := false
	for tenant, wrapped := range keys {
		if _, ok := r.keys[tenant]; ok {
			continue
		}
		waits = true
		if _, ok := b.keys[tenant]; !ok {
			b.keys[tenant] = wrapped
		}
	}
	r.mu.Unlock()

	if waits {
		if err := r.writeBatch(b); err != nil {
			return nil, err
		}
	}

	current := make(map[tenantID][]byte, len(keys))
	r.mu.RLock()
	for tenant := range keys {
		current[tenant] = r.keys[tenant]
	}
	r.mu.RUnlock()
	return current, nil
}

// writeBatch appends batch b unless another caller already did, and returns the outcome.
// The first caller that gets writeMu writes the batch, with every key that joined it
// while the previous write ran.
func (r *keyring) writeBatch(b *keyringBatch) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	if b.done {
		return b.err
	}

	r.mu.Lock()
	if r.pending == b {
		r.pending = nil
	}
	r.mu.Unlock()

	b.err = r.appendLocked(b.keys)
	b.done = true
	return b.err
}

// appendLocked appends the keys of tenants that have no key yet to the file and syncs it,
// then adds them to the map. A tenant may have got a key from an earlier batch after its
// caller joined this one, and that key must stay: objects may be sealed under it. After a
// failed append, appendLocked replaces the whole file instead, because the failure may
// have left a partial line. The caller holds writeMu.
func (r *keyring) appendLocked(keys map[tenantID][]byte) error {
	keys = maps.Clone(keys)
	maps.DeleteFunc(keys, func(tenant tenantID, _ []byte) bool {
		return r.keys[tenant] != nil
	})
	if len(keys) == 0 {
		return nil
	}
	if r.rewrite {
		next := maps.Clone(r.keys)
		maps.Copy(next, keys)
		return r.replaceLocked(next)
	}

	f, err := os.OpenFile(r.path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		r.rewrite = true
		return fmt.Errorf("appending to keyring %s: %w", r.path, err)
	}
	_, err = f.Write(appendEntries(nil, keys))
	if err == nil {
		err = f.Sync()
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		r.rewrite = true
		return fmt.Errorf("appending to keyring %s: %w", r.path, err)
	}

	r.writes.Add(1)
	r.mu.Lock()
	maps.Copy(r.keys, keys)
	r.mu.Unlock()
	return nil
}

// replaceLocked replaces the file with one that contains exactly keys, and makes keys the
// map. The caller holds writeMu.
func (r *keyring) replaceLocked(keys map[tenantID][]byte) error {
	c := keyringContent{header: r.header, tenants: keys}
	renamed, err := replaceFile(r.path, c.encode(), nil)
	if renamed {
		r.rewrite = false
		r.writes.Add(1)
		r.mu.Lock()
		r.keys = keys
		r.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("writing keyring %s: %w", r.path, err)
	}
	return nil
}

// removeLocked replaces the file with one without the key of tenant. It writes nothing
// when the keyring has no key for tenant and the file is intact. The caller holds
// writeMu.
func (r *keyring) removeLocked(tenant tenantID) error {
	if _, ok := r.keys[tenant]; !ok && !r.rewrite {
		return nil
	}
	next := maps.Clone(r.keys)
	delete(next, tenant)
	return r.replaceLocked(next)
}
