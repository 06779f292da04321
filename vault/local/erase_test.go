package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

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

// erasedFixture is a file with objects of tenants A and B, a backup taken before erasing
// tenant A, and the live store after the erasure.
type erasedFixture struct {
	key        []byte
	live       *Store
	backupPath string
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
	copyFile(t, s.Path(), f.backupPath)

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

// TestEraseTenantRemovesRows checks the live file directly: the tenant key and every row
// of the tenant are gone.
func TestEraseTenantRemovesRows(t *testing.T) {
	f := newErasedFixture(t)
	if err := f.live.Close(); err != nil {
		t.Fatal(err)
	}

	tenant := tenantOf(encodeContext(orgA))
	rawUpdate(t, f.live.Path(), func(tx *bolt.Tx) error {
		if tx.Bucket(bucketTenants).Get(tenant[:]) != nil {
			t.Error("the tenant key is still in the file")
		}
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
	rawUpdate(t, f.live.Path(), func(tx *bolt.Tx) error {
		for _, row := range rows {
			if err := tx.Bucket(bucketObjects).Put(row.id, row.record); err != nil {
				return err
			}
			if err := tx.Bucket(bucketValues).Put(row.id, row.sealed); err != nil {
				return err
			}
		}
		return nil
	})

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

// TestEraseTenantBackupKeepsKey states the limit of erasure: a copy of the file taken
// before it keeps the wrapped tenant key, so the master key still decrypts the copy.
func TestEraseTenantBackupKeepsKey(t *testing.T) {
	f := newErasedFixture(t)
	backup := openAt(t, f.backupPath, f.key)
	for i, meta := range f.a {
		if got, want := readValue(t, backup, meta.ID), fmt.Sprintf(`"a%d"`, i); got != want {
			t.Errorf("Read from the backup = %q, want %q", got, want)
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
				sealed: bytes.Clone(tx.Bucket(bucketValues).Get(id)),
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
