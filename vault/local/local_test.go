package local

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/piivault/piivault/vault"
	"github.com/piivault/piivault/vault/vaulttest"
)

// newKey returns a random master key.
func newKey(t testing.TB) []byte {
	t.Helper()
	key := make([]byte, keySize)
	rand.Read(key)
	return key
}

// openAt opens the store at path and closes it when the test ends.
func openAt(t testing.TB, path string, key []byte) *Store {
	t.Helper()
	s, err := Open(path, key, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// openTemp opens a new store in a temporary directory.
func openTemp(t testing.TB) *Store {
	t.Helper()
	return openAt(t, filepath.Join(t.TempDir(), "vault.db"), newKey(t))
}

// reopen closes s and opens its file again with key.
func reopen(t *testing.T, s *Store, key []byte) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return openAt(t, s.Path(), key)
}

// rawUpdate changes the vault file directly, as an attacker with write access to it could.
// The store must be closed.
func rawUpdate(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		t.Fatalf("opening the file directly: %v", err)
	}
	defer db.Close()
	if err := db.Update(fn); err != nil {
		t.Fatalf("changing the file directly: %v", err)
	}
}

// readRing parses the keyring of the store file at storePath.
func readRing(t *testing.T, storePath string) keyringContent {
	t.Helper()
	c, torn, err := readKeyringFile(KeyringPath(storePath))
	if err != nil {
		t.Fatalf("reading the keyring: %v", err)
	}
	if torn {
		t.Fatal("the keyring ends with a partial line")
	}
	return c
}

// writeRing overwrites the keyring of the store file at storePath with c, as someone
// with write access to it could. The store must be closed.
func writeRing(t *testing.T, storePath string, c keyringContent) {
	t.Helper()
	if err := os.WriteFile(KeyringPath(storePath), c.encode(), 0o600); err != nil {
		t.Fatalf("writing the keyring: %v", err)
	}
}

// copyVault copies a closed store file and its keyring, as a backup of both would.
func copyVault(t *testing.T, from, to string) {
	t.Helper()
	copyFile(t, from, to)
	copyFile(t, KeyringPath(from), KeyringPath(to))
}

// tenantIDOf returns the tenant ID of kc.
func tenantIDOf(kc vault.KeyContext) tenantID {
	return tenantOf(encodeContext(kc))
}

// create stores one object and fails the test on error.
func create(t *testing.T, s *Store, name, value string, kc vault.KeyContext) vault.Metadata {
	t.Helper()
	meta, err := s.Create(context.Background(), vault.NewObject{
		Name: name, Value: []byte(value), Context: kc,
	})
	if err != nil {
		t.Fatalf("Create(%q): %v", name, err)
	}
	return meta
}

// readValue reads an object's value and fails the test on error.
func readValue(t *testing.T, s *Store, id string) string {
	t.Helper()
	obj, err := s.Read(context.Background(), id)
	if err != nil {
		t.Fatalf("Read(%s): %v", id, err)
	}
	return string(obj.Value)
}

var (
	orgA = vault.KeyContext{"organization_id": "org_a"}
	orgB = vault.KeyContext{"organization_id": "org_b"}
)

func TestConformance(t *testing.T) {
	vaulttest.Run(t, func(t *testing.T) vault.Store { return openTemp(t) })
}

// TestConformanceNoKeyCache runs the suite with the tenant key cache off, so that every
// read and write unwraps its tenant key from the file.
func TestConformanceNoKeyCache(t *testing.T) {
	vaulttest.Run(t, func(t *testing.T) vault.Store {
		s, err := Open(filepath.Join(t.TempDir(), "vault.db"), newKey(t),
			Options{KeyCacheSize: -1})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	})
}

// TestLogsWithoutSecrets captures every log entry of a store's life and checks that none
// contains a value or the master key.
func TestLogsWithoutSecrets(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	key := newKey(t)
	s, err := Open(filepath.Join(t.TempDir(), "vault.db"), key, Options{Logger: zap.New(core)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	meta := create(t, s, "a", `"plaintext-marker"`, orgA)
	readValue(t, s, meta.ID)
	if _, err := s.EraseTenant(context.Background(), orgA); err != nil {
		t.Fatalf("EraseTenant: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if logs.Len() == 0 {
		t.Fatal("no log entries")
	}
	encodedKey := base64.StdEncoding.EncodeToString(key)
	for _, entry := range logs.All() {
		line := fmt.Sprint(entry.Message, entry.ContextMap())
		if strings.Contains(line, "plaintext-marker") || strings.Contains(line, encodedKey) {
			t.Errorf("log entry %q contains a value or the master key", line)
		}
	}
}

func TestRoundTripBytes(t *testing.T) {
	s := openTemp(t)
	values := map[string][]byte{
		"string":  []byte(`"alice@example.com"`),
		"number":  []byte(`-12.5e3`),
		"true":    []byte(`true`),
		"false":   []byte(`false`),
		"null":    []byte(`null`),
		"object":  []byte(`{"a":{"b":[1,"2",null]}}`),
		"array":   []byte(`[1,[2,[3]]]`),
		"empty":   {},
		"binary":  {0x00, 0xff, 0xfe, '"', '\\', 0x80},
		"large":   bytes.Repeat([]byte("x"), 1<<20),
		"unicode": []byte(`"ü 😀 \ud83d\ude00"`),
	}
	for name, value := range values {
		meta, err := s.Create(context.Background(), vault.NewObject{
			Name: name, Value: value, Context: orgA,
		})
		if err != nil {
			t.Fatalf("Create(%s): %v", name, err)
		}
		if got := readValue(t, s, meta.ID); got != string(value) {
			t.Errorf("Read(%s) = %q, want %q", name, truncate(got), truncate(string(value)))
		}
	}
}

// truncate shortens long values in failure messages.
func truncate(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

func TestObjectIDShape(t *testing.T) {
	s := openTemp(t)
	meta := create(t, s, "a", `"x"`, orgA)

	if !strings.HasPrefix(meta.ID, "secret_") || len(meta.ID) != len("secret_")+32 {
		t.Errorf("ID %q is not secret_ followed by 32 hex digits", meta.ID)
	}
	if hex := meta.ID[len("secret_"):]; hex != strings.ToUpper(hex) {
		t.Errorf("ID %q has lower-case hex digits", meta.ID)
	}
	if err := vault.CheckID(meta.ID); err != nil {
		t.Errorf("CheckID(%s): %v", meta.ID, err)
	}
}

func TestRestart(t *testing.T) {
	key := newKey(t)
	s := openAt(t, filepath.Join(t.TempDir(), "vault.db"), key)
	ctx := context.Background()
	want := map[string]string{}
	for i := range 20 {
		kc := vault.KeyContext{"organization_id": fmt.Sprintf("org_%d", i%4)}
		meta := create(t, s, fmt.Sprintf("obj/%02d", i), fmt.Sprintf(`"value %d"`, i), kc)
		want[meta.ID] = fmt.Sprintf(`"value %d"`, i)
	}
	updated := create(t, s, "obj/updated", `"v1"`, orgA)
	if _, err := s.Update(ctx, updated.ID, []byte(`"v2"`), updated.VersionID); err != nil {
		t.Fatalf("Update: %v", err)
	}
	want[updated.ID] = `"v2"`

	s = reopen(t, s, key)
	for id, value := range want {
		if got := readValue(t, s, id); got != value {
			t.Errorf("Read(%s) after reopening = %q, want %q", id, got, value)
		}
	}
	metas, err := s.List(ctx, "obj/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(metas) != len(want) {
		t.Errorf("List after reopening returned %d objects, want %d", len(metas), len(want))
	}

	// a tenant key stored before the restart still encrypts new objects
	later := create(t, s, "obj/later", `"later"`, orgA)
	if got := readValue(t, s, later.ID); got != `"later"` {
		t.Errorf("Read of an object created after reopening = %q", got)
	}
}

func TestWrongMasterKey(t *testing.T) {
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "vault.db")
	s := openAt(t, path, key)
	meta := create(t, s, "a", `"secret"`, orgA)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	_, err := Open(path, newKey(t), Options{})
	if !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("Open with another key: error = %v, want one wrapping ErrWrongMasterKey", err)
	}
	if !strings.Contains(err.Error(), "the keyring "+KeyringPath(path)+" needs the master "+
		"key with ID "+KeyID(key)) {
		t.Errorf("Open with another key: error %q does not name the keyring and its key ID",
			err)
	}

	s = openAt(t, path, key)
	if got := readValue(t, s, meta.ID); got != `"secret"` {
		t.Errorf("Read with the right key after a failed open = %q", got)
	}
}

func TestMasterKeyNotInFile(t *testing.T) {
	key := newKey(t)
	s := openAt(t, filepath.Join(t.TempDir(), "vault.db"), key)
	create(t, s, "a", `"secret"`, orgA)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	for _, path := range []string{s.Path(), KeyringPath(s.Path())} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, key) ||
			bytes.Contains(data, []byte(base64.StdEncoding.EncodeToString(key))) {
			t.Errorf("%s contains the master key", filepath.Base(path))
		}
		if bytes.Contains(data, []byte(`"secret"`)) {
			t.Errorf("%s contains a plaintext value", filepath.Base(path))
		}
	}
}

func TestMasterKeySize(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "vault.db"), make([]byte, 16), Options{})
	if err == nil || !strings.Contains(err.Error(), "32 bytes") {
		t.Errorf("Open with a 16-byte key: error = %v, want one about 32 bytes", err)
	}
}

func TestOpenFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data", "vault")
	s := openAt(t, filepath.Join(dir, "vault.db"), newKey(t))

	info, err := os.Stat(s.Path())
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("file mode = %04o, want 0600", perm)
	}
	info, err = os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("directory mode = %04o, want 0700", perm)
	}
}

func TestOpenLocked(t *testing.T) {
	s := openTemp(t)

	// bbolt's flock also excludes a second open from the same process
	_, err := Open(s.Path(), newKey(t), Options{Timeout: 50 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Errorf("second Open: error = %v, want one saying the file is locked", err)
	}
}

func TestOpenForeignFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "other.db")
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("something_else"))
		return err
	})

	_, err := Open(path, newKey(t), Options{})
	if err == nil || !strings.Contains(err.Error(), "not a piivault vault") {
		t.Errorf("Open of another bbolt file: error = %v, want one saying it is not a vault", err)
	}
}

func TestOpenFormatVersion(t *testing.T) {
	key := newKey(t)
	s := openTemp(t)
	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keyFormat, []byte("99"))
	})

	_, err := Open(path, key, Options{})
	if err == nil || !strings.Contains(err.Error(), "format version") {
		t.Errorf("Open of a newer format: error = %v, want one about the format version", err)
	}
}

// TestSwappedCiphertext moves sealed values between rows of the file. Every moved value
// must fail to decrypt, within a tenant and across tenants.
func TestSwappedCiphertext(t *testing.T) {
	key := newKey(t)
	s := openAt(t, filepath.Join(t.TempDir(), "vault.db"), key)
	a1 := create(t, s, "a1", `"a1 value"`, orgA)
	a2 := create(t, s, "a2", `"a2 value"`, orgA)
	b1 := create(t, s, "b1", `"b1 value"`, orgB)
	untouched := create(t, s, "untouched", `"untouched"`, orgB)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	rawUpdate(t, s.Path(), func(tx *bolt.Tx) error {
		values, err := allSealed(tx)
		if err != nil {
			return err
		}
		if err := setSealed(tx, a1.ID, values[a2.ID]); err != nil {
			return err
		}
		if err := setSealed(tx, a2.ID, values[b1.ID]); err != nil {
			return err
		}
		return setSealed(tx, b1.ID, values[a1.ID])
	})

	s = openAt(t, s.Path(), key)
	for _, id := range []string{a1.ID, a2.ID, b1.ID} {
		if _, err := s.Read(context.Background(), id); err == nil {
			t.Errorf("Read(%s) of a moved value succeeded", id)
		}
	}
	if got := readValue(t, s, untouched.ID); got != `"untouched"` {
		t.Errorf("Read of an untouched object = %q", got)
	}
}

// TestReplayedCiphertext puts an object's sealed value from before an update back into
// the file. The version ID is bound to the value, so the old value fails to decrypt.
func TestReplayedCiphertext(t *testing.T) {
	key := newKey(t)
	s := openAt(t, filepath.Join(t.TempDir(), "vault.db"), key)
	meta := create(t, s, "a", `"old"`, orgA)
	var old []byte
	err := s.db.View(func(tx *bolt.Tx) (err error) {
		old, err = sealedOf(tx, meta.ID)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(context.Background(), meta.ID, []byte(`"new"`), ""); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	rawUpdate(t, s.Path(), func(tx *bolt.Tx) error {
		return setSealed(tx, meta.ID, old)
	})

	s = openAt(t, s.Path(), key)
	if _, err := s.Read(context.Background(), meta.ID); err == nil {
		t.Error("Read of a value replayed from an older version succeeded")
	}
}

// TestDescribeWithoutDecrypt corrupts the sealed value and removes the tenant key from the
// file. Describe still works because it touches neither, and Read fails.
// openWithCorruptValue returns a store holding one object of orgA whose sealed value
// was altered in the file, so that it fails to decrypt, and the store's master key.
func openWithCorruptValue(t *testing.T) (*Store, vault.Metadata, []byte) {
	t.Helper()
	key := newKey(t)
	s := openAt(t, filepath.Join(t.TempDir(), "vault.db"), key)
	meta := create(t, s, "a", `"value"`, orgA)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	rawUpdate(t, s.Path(), func(tx *bolt.Tx) error {
		sealed, err := sealedOf(tx, meta.ID)
		if err != nil {
			return err
		}
		sealed[len(sealed)-1] ^= 0xff
		return setSealed(tx, meta.ID, sealed)
	})
	return openAt(t, s.Path(), key), meta, key
}

func TestDescribeWithoutDecrypt(t *testing.T) {
	s, meta, key := openWithCorruptValue(t)
	ctx := context.Background()
	got, err := s.Describe(ctx, meta.ID)
	if err != nil {
		t.Fatalf("Describe of a corrupted value: %v", err)
	}
	if got.VersionID != meta.VersionID || !got.Context.Equal(orgA) {
		t.Errorf("Describe = %+v, want the created metadata %+v", got, meta)
	}
	if _, err := s.Read(ctx, meta.ID); err == nil {
		t.Error("Read of a corrupted value succeeded")
	}

	// without the tenant key, Describe still works
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ring := readRing(t, s.Path())
	delete(ring.tenants, tenantIDOf(orgA))
	writeRing(t, s.Path(), ring)
	s = openAt(t, s.Path(), key)
	if _, err := s.Describe(ctx, meta.ID); err != nil {
		t.Errorf("Describe without the tenant key: %v", err)
	}
	if _, err := s.Read(ctx, meta.ID); !errors.Is(err, errNoTenantKey) {
		t.Errorf("Read without the tenant key: error = %v, want errNoTenantKey", err)
	}
}

func TestVersionConflict(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	meta := create(t, s, "a", `"v1"`, orgA)
	if _, err := s.Update(ctx, meta.ID, []byte(`"v2"`), meta.VersionID); err != nil {
		t.Fatalf("Update: %v", err)
	}

	_, err := s.Update(ctx, meta.ID, []byte(`"v3"`), meta.VersionID)
	if !errors.Is(err, vault.ErrVersionConflict) {
		t.Fatalf("Update with a stale version: error = %v, want ErrVersionConflict", err)
	}
	if strings.Contains(err.Error(), "v3") {
		t.Errorf("error %q contains the value", err)
	}
	if got := readValue(t, s, meta.ID); got != `"v2"` {
		t.Errorf("Read after a version conflict = %q, want %q", got, `"v2"`)
	}
}

func TestNameConflict(t *testing.T) {
	s := openTemp(t)
	create(t, s, "taken", `"first"`, orgA)

	_, err := s.Create(context.Background(), vault.NewObject{
		Name: "taken", Value: []byte(`"second"`), Context: orgB,
	})
	if !errors.Is(err, vault.ErrNameConflict) {
		t.Errorf("Create with a taken name: error = %v, want ErrNameConflict", err)
	}
}

func TestNameChecks(t *testing.T) {
	s := openTemp(t)
	for name, n := range map[string]int{"empty": 0, "too long": maxNameSize + 1} {
		_, err := s.Create(context.Background(), vault.NewObject{
			Name: strings.Repeat("n", n), Value: []byte(`1`), Context: orgA,
		})
		if err == nil {
			t.Errorf("Create with an %s name succeeded", name)
		}
	}
}

// TestInvalidIDBeforeLookup closes the file, so that any lookup would fail, and checks
// that invalid IDs still fail with ErrInvalidID: the check comes first.
func TestInvalidIDBeforeLookup(t *testing.T) {
	s := openTemp(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const bad = "secret_../../etc/passwd"

	_, err := s.Read(ctx, bad)
	checkInvalidID(t, "Read", err)
	_, err = s.Describe(ctx, bad)
	checkInvalidID(t, "Describe", err)
	_, err = s.Update(ctx, bad, []byte(`1`), "")
	checkInvalidID(t, "Update", err)
	checkInvalidID(t, "Delete", s.Delete(ctx, bad))

	_, errs := s.ReadBatch(ctx, []string{bad, "secret_0123456789ABCDEF0123456789ABCDEF"})
	checkInvalidID(t, "ReadBatch", errs[0])
	if errors.Is(errs[1], vault.ErrInvalidID) || errs[1] == nil {
		t.Errorf("ReadBatch of a valid ID on a closed file: error = %v, want a lookup error", errs[1])
	}
}

func checkInvalidID(t *testing.T, op string, err error) {
	t.Helper()
	if !errors.Is(err, vault.ErrInvalidID) {
		t.Errorf("%s: error = %v, want ErrInvalidID", op, err)
		return
	}
	if strings.Contains(err.Error(), "passwd") {
		t.Errorf("%s: error %q repeats the ID", op, err)
	}
}

func TestCreateBatchOneCommit(t *testing.T) {
	s := openTemp(t)
	objs := make([]vault.NewObject, 10)
	for i := range objs {
		kc := vault.KeyContext{"organization_id": fmt.Sprintf("org_%d", i%3)}
		objs[i] = vault.NewObject{Name: fmt.Sprint(i), Value: []byte(`1`), Context: kc}
	}

	before := s.commits.Load()
	if _, err := s.CreateBatch(context.Background(), objs); err != nil {
		t.Fatalf("CreateBatch: %v", err)
	}
	if got := s.commits.Load() - before; got != 1 {
		t.Errorf("CreateBatch of 10 objects made %d commits, want 1", got)
	}
}

func TestCreateBatchConcurrent(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	const workers, perBatch = 32, 10

	before := s.commits.Load()
	ids := make([][]string, workers)
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			ids[w], errs[w] = createWorkerBatch(ctx, s, w, perBatch)
		})
	}
	wg.Wait()

	// each call commits at most once, and concurrent calls may share a commit
	if got := s.commits.Load() - before; got > workers {
		t.Errorf("%d CreateBatch calls made %d commits, want at most %d", workers, got, workers)
	}
	for w := range workers {
		if errs[w] != nil {
			t.Fatalf("worker %d: %v", w, errs[w])
		}
		objs, readErrs := s.ReadBatch(ctx, ids[w])
		for i, err := range readErrs {
			if err != nil {
				t.Errorf("ReadBatch worker %d object %d: %v", w, i, err)
				continue
			}
			if want := fmt.Sprintf(`"%d/%d"`, w, i); string(objs[i].Value) != want {
				t.Errorf("ReadBatch worker %d object %d = %q, want %q", w, i, objs[i].Value, want)
			}
		}
	}
}

// createWorkerBatch creates one batch of n objects for worker w, all in a new tenant so
// that concurrent workers race to store the tenant key.
func createWorkerBatch(ctx context.Context, s *Store, w, n int) ([]string, error) {
	objs := make([]vault.NewObject, n)
	for i := range objs {
		objs[i] = vault.NewObject{
			Name:    fmt.Sprintf("%d/%d", w, i),
			Value:   []byte(fmt.Sprintf(`"%d/%d"`, w, i)),
			Context: vault.KeyContext{"organization_id": fmt.Sprintf("org_%d", w%4)},
		}
	}
	metas, err := s.CreateBatch(ctx, objs)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(metas))
	for i, meta := range metas {
		ids[i] = meta.ID
	}
	return ids, nil
}

func TestReadBatchForChecksContextFirst(t *testing.T) {
	// a corrupted value fails to decrypt, so an error other than a mismatch shows
	// that ReadBatchFor tried to decrypt
	s, meta, _ := openWithCorruptValue(t)
	ctx := context.Background()

	_, errs := s.ReadBatchFor(ctx, []string{meta.ID}, orgB, 0)
	if !errors.Is(errs[0], vault.ErrContextMismatch) {
		t.Errorf("ReadBatchFor of another tenant's object: error %v, want vault.ErrContextMismatch", errs[0])
	}
	_, errs = s.ReadBatchFor(ctx, []string{meta.ID}, orgA, 0)
	if errs[0] == nil || errors.Is(errs[0], vault.ErrContextMismatch) {
		t.Errorf("ReadBatchFor of the owner's corrupted object: error %v, want a decryption error", errs[0])
	}
}

func TestReadBatchForStopsAtBudget(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	objs := make([]vault.NewObject, 3)
	for i := range objs {
		objs[i] = vault.NewObject{Name: fmt.Sprintf("big/%d", i), Context: orgA,
			Value: bytes.Repeat([]byte("x"), 1000)}
	}
	metas, err := s.CreateBatch(ctx, objs)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{metas[0].ID, metas[1].ID, metas[2].ID}

	got, errs := s.ReadBatchFor(ctx, ids, orgA, 2500)
	for i := range 2 {
		if errs[i] != nil || len(got[i].Value) != 1000 {
			t.Errorf("object %d within the budget: error %v, %d bytes", i, errs[i], len(got[i].Value))
		}
	}
	if !errors.Is(errs[2], vault.ErrTooLarge) || got[2].Value != nil {
		t.Errorf("object past the budget: error %v, %d bytes, want vault.ErrTooLarge", errs[2], len(got[2].Value))
	}

	if _, errs := s.ReadBatchFor(ctx, ids, orgA, 0); errors.Join(errs...) != nil {
		t.Errorf("ReadBatchFor without a budget: %v", errors.Join(errs...))
	}
}
