package local

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/piivault/piivault/vault"
)

// testdata/format2.db and its keyring format2.db.keys are a store file of format 2,
// written by Open, Create, Update and Delete of this package before records held their
// values (commit fdef421). Its master key is the 32 ASCII bytes of format2Key. It holds
// a/0, a/1 and a/2 (updated once) of org_a, b/0 and b/1 of org_b, and the key of org_c,
// whose only object was deleted.
const format2Key = "piivault format 2 test key !!!!!"

// format2Values are the values of testdata/format2.db by object name.
var format2Values = map[string]string{
	"a/0": `"a0"`, "a/1": `"a1"`, "a/2": `"a2"`, "b/0": `"b0"`, "b/1": `{"n":1}`,
}

// copyFormat2 copies testdata/format2.db and its keyring to a new temporary directory.
func copyFormat2(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vault.db")
	copyFile(t, filepath.Join("testdata", "format2.db"), path)
	copyFile(t, filepath.Join("testdata", "format2.db.keys"), KeyringPath(path))
	return path
}

// formatOf returns the format version in the header of a closed store file.
func formatOf(t *testing.T, path string) string {
	t.Helper()
	var format string
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		format = string(tx.Bucket(bucketMeta).Get(keyFormat))
		return nil
	})
	return format
}

// idsByName returns the object IDs of s by name.
func idsByName(t *testing.T, s *Store) map[string]string {
	t.Helper()
	metas, err := s.List(context.Background(), "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	ids := map[string]string{}
	for _, m := range metas {
		ids[m.Name] = m.ID
	}
	return ids
}

// TestFormat2Reads opens the file of format 2 and reads it with every tool that does not
// create or update: none of them marks the file as format 3.
func TestFormat2Reads(t *testing.T) {
	path := copyFormat2(t)
	key := []byte(format2Key)
	s := openAt(t, path, key)
	ctx := context.Background()
	if err := s.CheckIntegrity(ctx); err != nil {
		t.Fatalf("CheckIntegrity: %v", err)
	}
	checkStats(t, s, Stats{Objects: 5, Values: 5, Names: 5, IndexEntries: 5, TenantKeys: 3})
	ids := idsByName(t, s)
	for name, want := range format2Values {
		if got := readValue(t, s, ids[name]); got != want {
			t.Errorf("Read(%s) = %q, want %q", name, got, want)
		}
	}

	if err := s.Delete(ctx, ids["a/1"]); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	n, err := s.EraseTenant(ctx, vault.KeyContext{"organization_id": "org_b"})
	if err != nil {
		t.Fatalf("EraseTenant: %v", err)
	}
	if n != 2 {
		t.Errorf("EraseTenant erased %d objects, want 2", n)
	}
	if _, err := s.Create(ctx, vault.NewObject{Name: "a/0", Value: []byte(`"x"`),
		Context: vault.KeyContext{"organization_id": "org_a"}}); !errors.Is(err, vault.ErrNameConflict) {
		t.Fatalf("Create of a taken name: %v, want vault.ErrNameConflict", err)
	}
	if err := s.CheckIntegrity(ctx); err != nil {
		t.Errorf("CheckIntegrity after Delete and EraseTenant: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := formatOf(t, path); got != formatV2 {
		t.Errorf("format after reads, deletes and a failed create = %q, want %q", got, formatV2)
	}

	newKey := []byte("piivault format 2 rotated key !!")
	if _, err := RotateMasterKey(ctx, path, key, newKey, Options{}); err != nil {
		t.Fatalf("RotateMasterKey: %v", err)
	}
	if _, err := CompactFile(ctx, path, Options{}); err != nil {
		t.Fatalf("CompactFile: %v", err)
	}
	if got := formatOf(t, path); got != formatV2 {
		t.Errorf("format after rotation and compaction = %q, want %q", got, formatV2)
	}
	checkReadable(t, path, newKey, map[string]string{ids["a/0"]: `"a0"`, ids["a/2"]: `"a2"`})
}

// TestFormat2Writes updates and creates objects in the file of format 2: the updated
// object's value moves into its record, the others stay where they are, and the file is
// marked as format 3.
func TestFormat2Writes(t *testing.T) {
	path := copyFormat2(t)
	s := openAt(t, path, []byte(format2Key))
	ctx := context.Background()
	ids := idsByName(t, s)
	if _, err := s.Update(ctx, ids["a/0"], []byte(`"a0 new"`), ""); err != nil {
		t.Fatalf("Update: %v", err)
	}
	created := create(t, s, "a/3", `"a3"`, vault.KeyContext{"organization_id": "org_a"})
	if err := s.CheckIntegrity(ctx); err != nil {
		t.Errorf("CheckIntegrity after writes: %v", err)
	}
	checkStats(t, s, Stats{Objects: 6, Values: 6, Names: 6, IndexEntries: 6, TenantKeys: 3})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if got := formatOf(t, path); got != formatVersion {
		t.Errorf("format after writes = %q, want %q", got, formatVersion)
	}
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		values := tx.Bucket(bucketValues)
		if values.Get([]byte(ids["a/0"])) != nil {
			t.Error("the updated object's old value is still in the values bucket")
		}
		if values.Get([]byte(ids["b/0"])) == nil {
			t.Error("an untouched object's value left the values bucket")
		}
		return nil
	})
	want := map[string]string{ids["a/0"]: `"a0 new"`, ids["b/0"]: `"b0"`, created.ID: `"a3"`}
	checkReadable(t, path, []byte(format2Key), want)
}

// closedStoreWith creates a store file with one object of orgA, named "a", and closes it.
func closedStoreWith(t *testing.T, value string) (path string, key []byte, meta vault.Metadata) {
	t.Helper()
	key = newKey(t)
	path = filepath.Join(t.TempDir(), "vault.db")
	s := openAt(t, path, key)
	meta = create(t, s, "a", value, orgA)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path, key, meta
}

// TestNewFileIsFormat3 checks the header and the record layout of a new store file.
func TestNewFileIsFormat3(t *testing.T) {
	path, _, meta := closedStoreWith(t, `"v"`)

	if got := formatOf(t, path); got != formatVersion {
		t.Errorf("format = %q, want %q", got, formatVersion)
	}
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		if record := tx.Bucket(bucketObjects).Get([]byte(meta.ID)); record[0] != recordWithValue {
			t.Errorf("record version %d, want %d", record[0], recordWithValue)
		}
		if tx.Bucket(bucketValues).Stats().KeyN != 0 {
			t.Error("the values bucket of a new file has entries")
		}
		return nil
	})
}

// TestTruncatedRecords cuts a record with a value at every length. A cut before the
// value fails to parse, and a cut that leaves the value short is a missing value to
// CheckIntegrity and a failed Read.
func TestTruncatedRecords(t *testing.T) {
	path, key, meta := closedStoreWith(t, `"value"`)
	var full []byte
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		full = append(full, tx.Bucket(bucketObjects).Get([]byte(meta.ID))...)
		return nil
	})

	valueStart := len(full) - len(`"value"`) - sealOverhead
	for n := range len(full) {
		v, err := parseRecord(full[:n])
		if n < valueStart && err == nil {
			t.Errorf("record cut to %d bytes, before its value at %d, parsed", n, valueStart)
		}
		if n >= valueStart && (err != nil || len(v.sealed) != n-valueStart) {
			t.Errorf("record cut to %d bytes: error %v, %d bytes of value", n, err, len(v.sealed))
		}
	}

	rawUpdate(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketObjects).Put([]byte(meta.ID), full[:valueStart+sealOverhead-1])
	})
	s := openAt(t, path, key)
	err := s.CheckIntegrity(context.Background())
	if err == nil || !strings.Contains(err.Error(), "value missing") {
		t.Errorf("CheckIntegrity of a record whose value is cut short: %v, want value missing", err)
	}
	if _, err := s.Read(context.Background(), meta.ID); err == nil {
		t.Error("Read of a record whose value is cut short succeeded")
	}
}

// TestFormat2ConcurrentFirstWrites updates and creates from several goroutines at once on
// the file of format 2, so that the first writes race for the header's mark.
func TestFormat2ConcurrentFirstWrites(t *testing.T) {
	path := copyFormat2(t)
	s := openAt(t, path, []byte(format2Key))
	ctx := context.Background()
	ids := idsByName(t, s)
	orgA := vault.KeyContext{"organization_id": "org_a"}

	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			var err error
			if i%2 == 0 {
				_, err = s.Update(ctx, ids["a/1"], []byte(`"a1 new"`), "")
			} else {
				_, err = s.Create(ctx, vault.NewObject{Name: fmt.Sprintf("c/%d", i),
					Value: []byte(`"c"`), Context: orgA})
			}
			if err != nil {
				t.Errorf("write %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if err := s.CheckIntegrity(ctx); err != nil {
		t.Errorf("CheckIntegrity: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := formatOf(t, path); got != formatVersion {
		t.Errorf("format after concurrent writes = %q, want %q", got, formatVersion)
	}
}
