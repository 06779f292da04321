package local

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// testdata/format1.db is a store file of format 1, written by Open, Create, Update and
// Delete of this package before the keyring existed (commit 82526f6). Its master key is
// the 32 ASCII bytes of format1Key. It holds a/0, a/1 and a/2 (updated once) of tenant A,
// b/0 and b/1 of tenant B, and the key of tenant C, whose only object was deleted.
const format1Key = "piivault format 1 test key !!!!!"

// format1Values are the values of testdata/format1.db by object name.
var format1Values = map[string]string{
	"a/0": `"a0"`, "a/1": `"a1"`, "a/2": `"a2"`, "b/0": `"b0"`, "b/1": `{"n":1}`,
}

// copyFormat1 copies testdata/format1.db to a new temporary directory.
func copyFormat1(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "vault.db")
	copyFile(t, filepath.Join("testdata", "format1.db"), path)
	return path
}

// rawTenantKeysV1 returns the wrapped tenant keys of a closed store file of format 1.
func rawTenantKeysV1(t *testing.T, path string) map[tenantID][]byte {
	t.Helper()
	keys := map[tenantID][]byte{}
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTenantsV1).ForEach(func(k, v []byte) error {
			keys[tenantID(k)] = bytes.Clone(v)
			return nil
		})
	})
	return keys
}

// checkFormat1Values reads every object of testdata/format1.db from s by name.
func checkFormat1Values(t *testing.T, s *Store) {
	t.Helper()
	metas, err := s.List(context.Background(), "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(metas) != len(format1Values) {
		t.Errorf("List returned %d objects, want %d", len(metas), len(format1Values))
	}
	for _, meta := range metas {
		if got, want := readValue(t, s, meta.ID), format1Values[meta.Name]; got != want {
			t.Errorf("Read(%s) = %q, want %q", meta.Name, got, want)
		}
	}
}

func TestMigrateFormat1(t *testing.T) {
	path := copyFormat1(t)
	oldKeys := rawTenantKeysV1(t, path)
	if len(oldKeys) != 3 {
		t.Fatalf("testdata has %d tenant keys, want 3", len(oldKeys))
	}
	core, logs := observer.New(zap.InfoLevel)

	s, err := Open(path, []byte(format1Key), Options{Logger: zap.New(core)})
	if err != nil {
		t.Fatalf("Open of a format 1 file: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	checkFormat1Values(t, s)
	checkStats(t, s, Stats{Objects: 5, Values: 5, Names: 5, IndexEntries: 5, TenantKeys: 3})
	if err := s.CheckIntegrity(context.Background()); err != nil {
		t.Errorf("CheckIntegrity after migration: %v", err)
	}
	if logs.FilterMessageSnippet("migrated to format 3").Len() != 1 {
		t.Error("the migration was not logged")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// the keys moved unchanged, and the compacted store file no longer contains them
	ring := readRing(t, path)
	if !mapsEqualBytes(stringKeys(oldKeys), stringKeys(ring.tenants)) {
		t.Error("the keyring does not hold the tenant keys of the format 1 file")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for tenant, wrapped := range oldKeys {
		if bytes.Contains(data, wrapped) {
			t.Errorf("the migrated store file still contains the key of tenant %x", tenant[:8])
		}
	}
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := string(meta.Get(keyFormat)); v != formatVersion {
			t.Errorf("format version after migration = %q, want %q", v, formatVersion)
		}
		if meta.Get(keyKeyCheckV1) != nil || meta.Get(keyKeyIDV1) != nil {
			t.Error("the key check or key ID is still in the store file")
		}
		if tx.Bucket(bucketTenantsV1) != nil {
			t.Error("the tenants bucket is still in the store file")
		}
		return nil
	})

	// a second open reads the migrated files as they are
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, []byte(format1Key))
	checkFormat1Values(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("opening a migrated store file changed it")
	}
}

// stringKeys converts a map keyed by tenant ID for mapsEqualBytes.
func stringKeys(m map[tenantID][]byte) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[string(k[:])] = v
	}
	return out
}

// TestMigrateFormat1WrongKey checks that a wrong key changes neither file, and that the
// error names the key ID that the format 1 file stores.
func TestMigrateFormat1WrongKey(t *testing.T) {
	path := copyFormat1(t)
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	_, err = Open(path, newKey(t), Options{})
	if !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("Open with a wrong key: error = %v, want ErrWrongMasterKey", err)
	}
	if want := "needs the master key with ID " + KeyID([]byte(format1Key)); !strings.Contains(
		err.Error(), want) {
		t.Errorf("Open with a wrong key: error %q does not contain %q", err, want)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("a failed migration changed the store file")
	}
	if _, err := os.Stat(KeyringPath(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed migration created a keyring: %v", err)
	}
}

// TestMigrateFormat1Interrupted stops a migration after the keyring is written and before
// the store file is changed, as a crash there would. The next Open completes the
// migration with the keys of both files.
func TestMigrateFormat1Interrupted(t *testing.T) {
	path := copyFormat1(t)
	oldKeys := rawTenantKeysV1(t, path)
	testHookKeyringMigrated = func() error { return errInjected }
	t.Cleanup(func() { testHookKeyringMigrated = nil })

	_, err := Open(path, []byte(format1Key), Options{})
	if !errors.Is(err, errInjected) {
		t.Fatalf("Open: error = %v, want the injected failure", err)
	}
	if got := rawTenantKeysV1(t, path); !mapsEqualBytes(stringKeys(oldKeys), stringKeys(got)) {
		t.Error("the interrupted migration changed the store file's tenant keys")
	}
	ring := readRing(t, path)
	if !mapsEqualBytes(stringKeys(oldKeys), stringKeys(ring.tenants)) {
		t.Error("the keyring written before the stop does not hold the tenant keys")
	}

	testHookKeyringMigrated = nil
	s := openAt(t, path, []byte(format1Key))
	checkFormat1Values(t, s)
	if got := readRing(t, path).header.StoreID; got != ring.header.StoreID {
		t.Errorf("the second run changed the store ID from %s to %s", ring.header.StoreID, got)
	}
}

// TestMigrateFormat1WithoutKeyID migrates a format 1 file written before key IDs existed.
// A wrong key cannot be named before the migration, and is named after it.
func TestMigrateFormat1WithoutKeyID(t *testing.T) {
	path := copyFormat1(t)
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Delete(keyKeyIDV1)
	})

	wrong := newKey(t)
	_, err := Open(path, wrong, Options{})
	if !errors.Is(err, ErrWrongMasterKey) || !strings.Contains(err.Error(), "another master key") {
		t.Errorf("Open of a file without key ID: error = %v", err)
	}
	s := openAt(t, path, []byte(format1Key))
	checkFormat1Values(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkWrongKey(t, path, wrong, []byte(format1Key))
}

// TestMigrateFormat1ThenErase erases a tenant of a migrated store and opens a copy of the
// store file taken after the migration with the live keyring: the erased tenant's objects
// do not decrypt.
func TestMigrateFormat1ThenErase(t *testing.T) {
	path := copyFormat1(t)
	s := openAt(t, path, []byte(format1Key))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	copyFile(t, path, copyPath)

	s = openAt(t, path, []byte(format1Key))
	if n, err := s.EraseTenant(context.Background(), orgA); err != nil || n != 3 {
		t.Fatalf("EraseTenant = %d, %v; want 3, nil", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	copyFile(t, KeyringPath(path), KeyringPath(copyPath))

	c := openAt(t, copyPath, []byte(format1Key))
	metas, err := c.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, meta := range metas {
		_, err := c.Read(context.Background(), meta.ID)
		erased := meta.Context.Equal(orgA)
		if erased && err == nil {
			t.Errorf("Read of erased object %s from the copy succeeded", meta.Name)
		}
		if !erased && err != nil {
			t.Errorf("Read of %s from the copy: %v", meta.Name, err)
		}
	}
}

// TestMigrateFormat1ByRotation rotates the master key of a format 1 file, which migrates
// it first.
func TestMigrateFormat1ByRotation(t *testing.T) {
	path := copyFormat1(t)
	newMaster := newKey(t)

	res, err := RotateMasterKey(context.Background(), path, []byte(format1Key), newMaster,
		Options{})
	if err != nil {
		t.Fatalf("RotateMasterKey of a format 1 file: %v", err)
	}
	if res.Rewrapped != 2 || res.Dropped != 1 {
		t.Errorf("RotateMasterKey = %d rewrapped, %d dropped; want 2, 1", res.Rewrapped,
			res.Dropped)
	}
	checkWrongKey(t, path, []byte(format1Key), newMaster)
	s := openAt(t, path, newMaster)
	checkFormat1Values(t, s)
}
