package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/piivault/piivault/vault"
)

// copyFile copies a closed vault file, as a backup would.
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// rawRows are the rows of one object, copied out of a file.
type rawRows struct {
	id, record, sealed []byte
}

// erasedFixture is a store with objects of tenants A and B, a copy of its store file and
// keyring taken before erasing tenant A, and the live store after the erasure.
type erasedFixture struct {
	key        []byte
	live       *Store
	backupPath string // store file copied before the erasure, with its keyring beside it
	a, b       []vault.Metadata
	erased     int
}

func newErasedFixture(t *testing.T) erasedFixture {
	t.Helper()
	f := erasedFixture{key: newKey(t)}
	dir := t.TempDir()
	s := openAt(t, filepath.Join(dir, "vault.db"), f.key)
	for i := range 3 {
		f.a = append(f.a, create(t, s, fmt.Sprintf("a/%d", i), fmt.Sprintf(`"a%d"`, i), orgA))
	}
	for i := range 2 {
		f.b = append(f.b, create(t, s, fmt.Sprintf("b/%d", i), fmt.Sprintf(`"b%d"`, i), orgB))
	}

	f.backupPath = filepath.Join(dir, "backup.db")
	s = reopen(t, s, f.key)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	copyVault(t, s.Path(), f.backupPath)

	f.live = openAt(t, s.Path(), f.key)
	n, err := f.live.EraseTenant(context.Background(), orgA)
	if err != nil {
		t.Fatalf("EraseTenant: %v", err)
	}
	f.erased = n
	return f
}

func TestEraseTenant(t *testing.T) {
	f := newErasedFixture(t)
	ctx := context.Background()

	if f.erased != len(f.a) {
		t.Errorf("EraseTenant returned %d, want %d", f.erased, len(f.a))
	}
	for _, meta := range f.a {
		_, err := f.live.Read(ctx, meta.ID)
		if !errors.Is(err, vault.ErrNotFound) {
			t.Errorf("Read of an erased object: error = %v, want ErrNotFound", err)
		}
		_, err = f.live.Describe(ctx, meta.ID)
		if !errors.Is(err, vault.ErrNotFound) {
			t.Errorf("Describe of an erased object: error = %v, want ErrNotFound", err)
		}
	}
	for i, meta := range f.b {
		if got, want := readValue(t, f.live, meta.ID), fmt.Sprintf(`"b%d"`, i); got != want {
			t.Errorf("Read of another tenant's object = %q, want %q", got, want)
		}
	}

	left, err := f.live.List(ctx, "a/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(left) != 0 {
		t.Errorf("List after erasure returned %d objects of the tenant, want 0", len(left))
	}
	n, err := f.live.EraseTenant(ctx, orgA)
	if err != nil || n != 0 {
		t.Errorf("second EraseTenant = %d, %v; want 0, nil", n, err)
	}
}

// TestEraseTenantRemovesRows checks the live files directly: the tenant key is gone from
// the keyring, and every row of the tenant from the store file.
func TestEraseTenantRemovesRows(t *testing.T) {
	f := newErasedFixture(t)
	if err := f.live.Close(); err != nil {
		t.Fatal(err)
	}

	tenant := tenantIDOf(orgA)
	ring := readRing(t, f.live.Path())
	if ring.tenants[tenant] != nil {
		t.Error("the tenant key is still in the keyring")
	}
	if ring.tenants[tenantIDOf(orgB)] == nil {
		t.Error("the key of tenant B is missing from the keyring")
	}
	rawUpdate(t, f.live.Path(), func(tx *bolt.Tx) error {
		for _, meta := range f.a {
			for _, bucket := range [][]byte{bucketObjects, bucketValues} {
				if tx.Bucket(bucket).Get([]byte(meta.ID)) != nil {
					t.Errorf("bucket %s still has erased object %s", bucket, meta.ID)
				}
			}
			if tx.Bucket(bucketNames).Get([]byte(meta.Name)) != nil {
				t.Errorf("name %q of an erased object is still indexed", meta.Name)
			}
		}
		k, _ := tx.Bucket(bucketTenObjs).Cursor().Seek(tenant[:])
		if hasPrefixKey(k, tenant[:]) {
			t.Error("the tenant's object index still has entries")
		}
		return nil
	})
}

// TestEraseTenantRowsUndecryptable copies the erased tenant's rows from the backup into
// the live file. With the tenant key gone, they cannot be decrypted, even after a new key
// is made for the same context.
func TestEraseTenantRowsUndecryptable(t *testing.T) {
	f := newErasedFixture(t)
	rows := readRawRows(t, f.backupPath, f.a)
	if err := f.live.Close(); err != nil {
		t.Fatal(err)
	}
	rawUpdate(t, f.live.Path(), func(tx *bolt.Tx) error { return putRows(tx, rows) })

	live := openAt(t, f.live.Path(), f.key)
	ctx := context.Background()
	for _, meta := range f.a {
		if _, err := live.Read(ctx, meta.ID); err == nil {
			t.Errorf("Read of erased object %s copied back into the file succeeded", meta.ID)
		}
	}

	// a new object makes a new tenant key, which does not decrypt the old rows either
	newer := create(t, live, "a/new", `"new"`, orgA)
	if got := readValue(t, live, newer.ID); got != `"new"` {
		t.Errorf("Read of a new object of the erased tenant = %q", got)
	}
	for _, meta := range f.a {
		if _, err := live.Read(ctx, meta.ID); err == nil {
			t.Errorf("Read of erased object %s under the new tenant key succeeded", meta.ID)
		}
	}
}

// TestEraseTenantStoreCopyLiveKeyring checks the guarantee of erasure. A copy of the store
// file taken before the erasure is opened with the master key and the keyring as it is
// after the erasure. It must fail to decrypt every object of the erased tenant, and still
// decrypt every object of the other tenants.
func TestEraseTenantStoreCopyLiveKeyring(t *testing.T) {
	f := newErasedFixture(t)
	copyFile(t, KeyringPath(f.live.Path()), KeyringPath(f.backupPath))
	rows := readRawRows(t, f.backupPath, f.a)

	backup := openAt(t, f.backupPath, f.key)
	ctx := context.Background()
	for _, meta := range f.a {
		_, err := backup.Read(ctx, meta.ID)
		if err == nil {
			t.Errorf("Read of erased object %s from the copy succeeded", meta.ID)
			continue
		}
		if !errors.Is(err, errNoTenantKey) {
			t.Errorf("Read of erased object %s from the copy: error = %v, want "+
				"errNoTenantKey", meta.ID, err)
		}
		if !errors.Is(err, vault.ErrNotFound) {
			t.Errorf("Read of erased object %s from the copy: error = %v, want vault.ErrNotFound, "+
				"so that callers do not retry it", meta.ID, err)
		}
	}
	for i, meta := range f.b {
		if got, want := readValue(t, backup, meta.ID), fmt.Sprintf(`"b%d"`, i); got != want {
			t.Errorf("Read of tenant B from the copy = %q, want %q", got, want)
		}
	}

	// with the master key, no key of the live keyring unwraps under tenant A's context,
	// and the key of tenant B does not open A's values
	ring := readRing(t, f.live.Path())
	for _, wrapped := range ring.tenants {
		if _, err := unseal(backup.wrapper, wrapped, wrapAAD(encodeContext(orgA))); err == nil {
			t.Error("a key of the live keyring unwraps under the erased tenant's context")
		}
		key, err := unseal(backup.wrapper, wrapped, wrapAAD(encodeContext(orgB)))
		if err != nil {
			continue
		}
		aead, err := newAEAD(key)
		if err != nil {
			t.Fatal(err)
		}
		for i, row := range rows {
			aad := valueAAD(f.a[i].ID, f.a[i].VersionID, encodeContext(orgA))
			if _, err := unseal(aead, row.sealed, aad); err == nil {
				t.Errorf("a key of the live keyring decrypts erased object %s", f.a[i].ID)
			}
		}
	}
}

// TestEraseTenantCopiesOfBoth states the limit of erasure: a copy of the keyring taken
// before the erasure keeps the wrapped tenant key, so with the master key it still
// decrypts a store file copy from that time.
func TestEraseTenantCopiesOfBoth(t *testing.T) {
	f := newErasedFixture(t)
	backup := openAt(t, f.backupPath, f.key)
	for i, meta := range f.a {
		if got, want := readValue(t, backup, meta.ID), fmt.Sprintf(`"a%d"`, i); got != want {
			t.Errorf("Read from the copies = %q, want %q", got, want)
		}
	}
}

// readRawRows copies the rows of objects out of a closed file.
func readRawRows(t *testing.T, path string, metas []vault.Metadata) []rawRows {
	t.Helper()
	var rows []rawRows
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		for _, meta := range metas {
			id := []byte(meta.ID)
			rows = append(rows, rawRows{
				id:     id,
				record: bytes.Clone(tx.Bucket(bucketObjects).Get(id)),
				sealed: bytes.Clone(tx.Bucket(bucketValues).Get(id)), // format 2
			})
		}
		return nil
	})
	return rows
}

// TestEraseTenantConcurrentCreates erases a tenant while other goroutines create objects
// for it. Every object that survives must be readable: no create may commit under a key
// that the erasure removed.
func TestEraseTenantConcurrentCreates(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()

	var wg sync.WaitGroup
	errs := make(chan error, 8*20)
	for w := range 8 {
		wg.Go(func() {
			for i := range 20 {
				obj := vault.NewObject{
					Name: fmt.Sprintf("%d/%d", w, i), Value: []byte(`"v"`), Context: orgA,
				}
				if _, err := s.Create(ctx, obj); err != nil {
					errs <- err
				}
			}
		})
	}
	// three erasures cost a create at most seven of its eight attempts, see writeAttempts
	for range 3 {
		if _, err := s.EraseTenant(ctx, orgA); err != nil {
			t.Errorf("EraseTenant: %v", err)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Create during erasure: %v", err)
	}

	metas, err := s.List(ctx, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, meta := range metas {
		if got := readValue(t, s, meta.ID); got != `"v"` {
			t.Errorf("Read(%s) = %q", meta.ID, got)
		}
	}
}

// TestEraseTenantInterrupted stops an erasure after it removed the tenant key and before
// it deleted the objects, as a crash there would. The objects left cannot be decrypted,
// CheckIntegrity reports them, and erasing the tenant again deletes them.
func TestEraseTenantInterrupted(t *testing.T) {
	key := newKey(t)
	s := openAt(t, filepath.Join(t.TempDir(), "vault.db"), key)
	a := create(t, s, "a", `"a"`, orgA)
	b := create(t, s, "b", `"b"`, orgB)
	testHookKeyRemoved = func() error { return errInjected }
	t.Cleanup(func() { testHookKeyRemoved = nil })

	ctx := context.Background()
	if _, err := s.EraseTenant(ctx, orgA); !errors.Is(err, errInjected) {
		t.Fatalf("EraseTenant: error = %v, want the injected failure", err)
	}
	testHookKeyRemoved = nil
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.WarnLevel)
	s, err := Open(s.Path(), key, Options{Logger: zap.New(core)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	warnings := logs.FilterMessageSnippet("no tenant key in the keyring").All()
	if len(warnings) != 1 {
		t.Fatalf("Open logged %d warnings about objects without a key, want 1", len(warnings))
	}
	if got := fmt.Sprint(warnings[0].ContextMap()["key_contexts"]); got != "["+
		orgA.String()+"]" {
		t.Errorf("warning names key contexts %s, want [%s]", got, orgA)
	}

	if _, err := s.Read(ctx, a.ID); !errors.Is(err, errNoTenantKey) {
		t.Errorf("Read of an object whose key was removed: error = %v, want errNoTenantKey",
			err)
	}
	err = s.CheckIntegrity(ctx)
	if !errors.Is(err, ErrInconsistent) || !strings.Contains(err.Error(), a.ID+": tenant "+
		"key missing from the keyring") {
		t.Errorf("CheckIntegrity: error = %v, want one naming object %s", err, a.ID)
	}

	n, err := s.EraseTenant(ctx, orgA)
	if err != nil || n != 1 {
		t.Fatalf("second EraseTenant = %d, %v; want 1, nil", n, err)
	}
	if err := s.CheckIntegrity(ctx); err != nil {
		t.Errorf("CheckIntegrity after the second erasure: %v", err)
	}
	if got := readValue(t, s, b.ID); got != `"b"` {
		t.Errorf("Read of tenant B = %q", got)
	}
}

// TestEraseTenantConcurrentNewTenants erases tenant A while other goroutines create the
// first objects of new tenants, whose keys are appended to the keyring that the erasure
// replaces. No new key may be lost: every object reads after reopening the store.
func TestEraseTenantConcurrentNewTenants(t *testing.T) {
	key := newKey(t)
	s := openAt(t, filepath.Join(t.TempDir(), "vault.db"), key)
	ctx := context.Background()
	create(t, s, "a/0", `"a"`, orgA)

	const workers, perWorker = 8, 10
	ids := make([][]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				kc := vault.KeyContext{"organization_id": fmt.Sprintf("new_%d_%d", w, i)}
				meta, err := s.Create(ctx, vault.NewObject{
					Name: fmt.Sprintf("%d/%d", w, i), Value: []byte(`"v"`), Context: kc,
				})
				if err != nil {
					t.Errorf("Create: %v", err)
					return
				}
				ids[w] = append(ids[w], meta.ID)
			}
		})
	}
	for i := range 3 {
		if _, err := s.EraseTenant(ctx, orgA); err != nil {
			t.Errorf("EraseTenant: %v", err)
		}
		create(t, s, fmt.Sprintf("a/%d", i+1), `"a"`, orgA)
	}
	wg.Wait()

	s = reopen(t, s, key)
	for w := range workers {
		for _, id := range ids[w] {
			if got := readValue(t, s, id); got != `"v"` {
				t.Errorf("Read(%s) after reopening = %q", id, got)
			}
		}
	}
	if err := s.CheckIntegrity(ctx); err != nil {
		t.Errorf("CheckIntegrity: %v", err)
	}
	checkStats(t, s, Stats{Objects: workers*perWorker + 1, Values: workers*perWorker + 1,
		Names: workers*perWorker + 1, IndexEntries: workers*perWorker + 1,
		TenantKeys: workers*perWorker + 1})
}
