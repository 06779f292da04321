package local

import (
	"context"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// toFormat2 rewrites a closed store file as format 2 wrote it: every sealed value in the
// values bucket, records without values, and version 2 in the header.
func toFormat2(t *testing.T, path string) {
	t.Helper()
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		values, err := allSealed(tx)
		if err != nil {
			return err
		}
		for id, sealed := range values {
			if err := setSealed(tx, id, nil); err != nil {
				return err
			}
			if err := tx.Bucket(bucketValues).Put([]byte(id), sealed); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyFormat, []byte(formatV2))
	})
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

// TestFormat2FileStaysReadable opens a file of format 2 and uses it: its objects read,
// update into records with values, and delete, and the first write marks the file as
// format 3.
func TestFormat2FileStaysReadable(t *testing.T) {
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "vault.db")
	s := openAt(t, path, key)
	kept := create(t, s, "kept", `"kept"`, orgA)
	updated := create(t, s, "updated", `"old"`, orgA)
	deleted := create(t, s, "deleted", `"deleted"`, orgB)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	toFormat2(t, path)

	s = openAt(t, path, key)
	ctx := context.Background()
	if err := s.CheckIntegrity(ctx); err != nil {
		t.Fatalf("CheckIntegrity of a format 2 file: %v", err)
	}
	checkStats(t, s, Stats{Objects: 3, Values: 3, Names: 3, IndexEntries: 3, TenantKeys: 2})
	if got := readValue(t, s, kept.ID); got != `"kept"` {
		t.Errorf("Read of a format 2 record = %q", got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := formatOf(t, path); got != formatV2 {
		t.Errorf("format after reads = %q, want %q: reads must not write", got, formatV2)
	}

	s = openAt(t, path, key)
	if _, err := s.Update(ctx, updated.ID, []byte(`"new"`), ""); err != nil {
		t.Fatalf("Update of a format 2 record: %v", err)
	}
	if err := s.Delete(ctx, deleted.ID); err != nil {
		t.Fatalf("Delete of a format 2 record: %v", err)
	}
	if got := readValue(t, s, updated.ID); got != `"new"` {
		t.Errorf("Read after Update = %q", got)
	}
	if err := s.CheckIntegrity(ctx); err != nil {
		t.Errorf("CheckIntegrity after writes: %v", err)
	}
	checkStats(t, s, Stats{Objects: 2, Values: 2, Names: 2, IndexEntries: 2, TenantKeys: 2})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if got := formatOf(t, path); got != formatVersion {
		t.Errorf("format after writes = %q, want %q", got, formatVersion)
	}
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketValues).Get([]byte(updated.ID)) != nil {
			t.Error("the updated object's old value is still in the values bucket")
		}
		if tx.Bucket(bucketValues).Get([]byte(kept.ID)) == nil {
			t.Error("the untouched object's value left the values bucket")
		}
		return nil
	})
}

// TestNewFileIsFormat3 checks the header and the record layout of a new store file.
func TestNewFileIsFormat3(t *testing.T) {
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "vault.db")
	s := openAt(t, path, key)
	meta := create(t, s, "a", `"v"`, orgA)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

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
