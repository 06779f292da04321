package local

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/piivault/piivault/vault"
)

func TestKeyringCreated(t *testing.T) {
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "vault.db")
	s := openAt(t, path, key)
	create(t, s, "a", `"a"`, orgA)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if KeyringPath(path) != path+".keys" {
		t.Errorf("KeyringPath(%s) = %s, want the path followed by .keys", path, KeyringPath(path))
	}
	checkMode(t, KeyringPath(path), 0o600)
	ring := readRing(t, path)
	if ring.header.MasterKeyID != KeyID(key) {
		t.Errorf("keyring master key ID = %s, want %s", ring.header.MasterKeyID, KeyID(key))
	}
	if len(ring.tenants) != 1 || ring.tenants[tenantIDOf(orgA)] == nil {
		t.Errorf("keyring has %d tenant keys, want only the key of tenant A", len(ring.tenants))
	}
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		if id := string(tx.Bucket(bucketMeta).Get(keyStoreID)); id != ring.header.StoreID {
			t.Errorf("store ID of the store file = %q, of the keyring = %q", id,
				ring.header.StoreID)
		}
		if v := string(tx.Bucket(bucketMeta).Get(keyFormat)); v != formatVersion {
			t.Errorf("format version = %q, want %q", v, formatVersion)
		}
		return nil
	})
}

// TestKeyringStoreFileHoldsNoKeys checks that the store file contains none of the key
// material: no wrapped tenant key, no key check and no key ID.
func TestKeyringStoreFileHoldsNoKeys(t *testing.T) {
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "vault.db")
	s := openAt(t, path, key)
	for i, kc := range []vault.KeyContext{orgA, orgB, orgC} {
		create(t, s, fmt.Sprint(i), `"v"`, kc)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ring := readRing(t, path)
	for tenant, wrapped := range ring.tenants {
		if bytes.Contains(data, wrapped) {
			t.Errorf("the store file contains the wrapped key of tenant %x", tenant[:8])
		}
	}
	if bytes.Contains(data, ring.header.KeyCheck) {
		t.Error("the store file contains the key check")
	}
	if bytes.Contains(data, []byte(KeyID(key))) {
		t.Error("the store file contains the master key ID")
	}
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketTenantsV1) != nil {
			t.Error("the store file has a tenants bucket")
		}
		return nil
	})
}

// TestKeyringMissing removes the keyring of a store file with objects. Open must fail,
// name both files, and create no keyring.
func TestKeyringMissing(t *testing.T) {
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "vault.db")
	s := openAt(t, path, key)
	create(t, s, "a", `"a"`, orgA)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(KeyringPath(path)); err != nil {
		t.Fatal(err)
	}

	for _, opts := range []Options{{}, {MustExist: true}} {
		_, err := Open(path, key, opts)
		if err == nil {
			t.Fatalf("Open without keyring (%+v) succeeded", opts)
		}
		for _, want := range []string{"keyring " + KeyringPath(path) + " is missing",
			"store file " + path, "restore the keyring"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("Open without keyring: error %q does not contain %q", err, want)
			}
		}
	}
	if _, err := os.Stat(KeyringPath(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open created a keyring for a store file with objects: %v", err)
	}
}

// TestKeyringMissingEmptyStore removes the keyring of a store file whose objects were all
// deleted. Nothing needs the old keys, so Open creates a new keyring.
func TestKeyringMissingEmptyStore(t *testing.T) {
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "vault.db")
	s := openAt(t, path, key)
	meta := create(t, s, "a", `"a"`, orgA)
	if err := s.Delete(context.Background(), meta.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	storeID := readRing(t, path).header.StoreID
	if err := os.Remove(KeyringPath(path)); err != nil {
		t.Fatal(err)
	}

	s = openAt(t, path, key)
	later := create(t, s, "b", `"b"`, orgA)
	s = reopen(t, s, key)
	if got := readValue(t, s, later.ID); got != `"b"` {
		t.Errorf("Read after a new keyring = %q", got)
	}
	if got := readRing(t, path).header.StoreID; got != storeID {
		t.Errorf("new keyring has store ID %s, want the store file's %s", got, storeID)
	}
}

func TestKeyringOfAnotherStore(t *testing.T) {
	key := newKey(t)
	dir := t.TempDir()
	one := openAt(t, filepath.Join(dir, "one.db"), key)
	create(t, one, "a", `"a"`, orgA)
	two := openAt(t, filepath.Join(dir, "two.db"), key)
	create(t, two, "a", `"a"`, orgA)
	for _, s := range []*Store{one, two} {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, KeyringPath(two.Path()), KeyringPath(one.Path()))

	_, err := Open(one.Path(), key, Options{})
	if err == nil || !strings.Contains(err.Error(), "belongs to another store file") {
		t.Errorf("Open with the keyring of another store: error = %v, want one saying it "+
			"belongs to another store file", err)
	}
}

// TestKeyringWithoutStoreFile opens a missing store file whose keyring holds tenant keys,
// as after the store file was lost. Open must not start a new store beside the keyring.
func TestKeyringWithoutStoreFile(t *testing.T) {
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "vault.db")
	s := openAt(t, path, key)
	create(t, s, "a", `"a"`, orgA)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(KeyringPath(path))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}

	_, err = Open(path, key, Options{})
	if err == nil || !strings.Contains(err.Error(), "contains tenant keys (1)") {
		t.Errorf("Open of a new store file beside a keyring: error = %v", err)
	}
	after, err := os.ReadFile(KeyringPath(path))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("a failed Open changed the keyring")
	}
}

// TestKeyringEmptyWithoutStoreFile opens a missing store file beside a keyring without
// tenant keys, as a crash while creating a store can leave. Open keeps the keyring, and
// still checks its master key.
func TestKeyringEmptyWithoutStoreFile(t *testing.T) {
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "vault.db")
	s := openAt(t, path, key)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	storeID := readRing(t, path).header.StoreID
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}

	_, err := Open(path, newKey(t), Options{})
	if !errors.Is(err, ErrWrongMasterKey) {
		t.Errorf("Open with another key beside an empty keyring: error = %v, want "+
			"ErrWrongMasterKey", err)
	}
	s = openAt(t, path, key)
	meta := create(t, s, "a", `"a"`, orgA)
	s = reopen(t, s, key)
	if got := readValue(t, s, meta.ID); got != `"a"` {
		t.Errorf("Read = %q", got)
	}
	if got := readRing(t, path).header.StoreID; got != storeID {
		t.Errorf("keyring store ID = %s, want the kept %s", got, storeID)
	}
}

// TestKeyringTornTail appends part of a line to the keyring, as a crash during an append
// leaves it. Open drops the partial line, rewrites the file, and every key is kept.
func TestKeyringTornTail(t *testing.T) {
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "vault.db")
	s := openAt(t, path, key)
	meta := create(t, s, "a", `"a"`, orgA)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(KeyringPath(path), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"tenant":"00ff`); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	s = openAt(t, path, key)
	if got := readValue(t, s, meta.ID); got != `"a"` {
		t.Errorf("Read after a torn keyring = %q", got)
	}
	b := create(t, s, "b", `"b"`, orgB)
	s = reopen(t, s, key)
	if got := readValue(t, s, b.ID); got != `"b"` {
		t.Errorf("Read of a key appended after the repair = %q", got)
	}
	if n := len(readRing(t, path).tenants); n != 2 {
		t.Errorf("keyring has %d tenant keys, want 2", n)
	}
}

func TestKeyringDamaged(t *testing.T) {
	cases := map[string]struct {
		edit func(data []byte) []byte
		want string
	}{
		"damaged line": {
			func(data []byte) []byte { return append(data, "not json\n"...) },
			"damaged keyring: line 3"},
		"short tenant ID": {
			func(data []byte) []byte {
				return append(data, `{"tenant":"00ff","key":"AAAA"}`+"\n"...)
			}, "not 64 hex digits"},
		"other format": {
			func(data []byte) []byte {
				return bytes.Replace(data, []byte(keyringFormat), []byte("other"), 1)
			}, "not a piivault keyring"},
		"newer version": {
			func(data []byte) []byte {
				return bytes.Replace(data, []byte(`"version":1`), []byte(`"version":9`), 1)
			}, "unsupported keyring version 9"},
		"no header": {
			func([]byte) []byte { return nil }, "header line is missing"},
	}
	for name, c := range cases {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			key := newKey(t)
			path := filepath.Join(t.TempDir(), "vault.db")
			s := openAt(t, path, key)
			create(t, s, "a", `"a"`, orgA)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(KeyringPath(path))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(KeyringPath(path), c.edit(data), 0o600); err != nil {
				t.Fatal(err)
			}

			_, err = Open(path, key, Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Open: error = %v, want one containing %q", err, c.want)
			}
		})
	}
}

// TestKeyringStaleTemp leaves a temporary keyring behind, as a crash during a replacement
// does. Open removes it.
func TestKeyringStaleTemp(t *testing.T) {
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "vault.db")
	s := openAt(t, path, key)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	tmp := KeyringPath(path) + tempSuffix
	if err := os.WriteFile(tmp, []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}

	openAt(t, path, key)
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary keyring after Open: %v, want none", err)
	}
}

// TestKeyringWritesOnFirstCreate counts writes of the keyring: one for the first object of
// a new tenant, one for a batch with several new tenants, and none for later objects.
func TestKeyringWritesOnFirstCreate(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	writes := func() uint64 { return s.ring.writes.Load() }

	before := writes()
	create(t, s, "a/0", `"a"`, orgA)
	if got := writes() - before; got != 1 {
		t.Errorf("first create of a tenant wrote the keyring %d times, want 1", got)
	}

	before = writes()
	for i := 1; i <= 5; i++ {
		create(t, s, fmt.Sprintf("a/%d", i), `"a"`, orgA)
	}
	meta := create(t, s, "a/updated", `"v1"`, orgA)
	if _, err := s.Update(ctx, meta.ID, []byte(`"v2"`), ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, meta.ID); err != nil {
		t.Fatal(err)
	}
	if got := writes() - before; got != 0 {
		t.Errorf("later writes of the tenant wrote the keyring %d times, want 0", got)
	}

	before = writes()
	objs := []vault.NewObject{
		{Name: "b", Value: []byte(`1`), Context: orgB},
		{Name: "c", Value: []byte(`1`), Context: orgC},
		{Name: "a/batch", Value: []byte(`1`), Context: orgA},
	}
	if _, err := s.CreateBatch(ctx, objs); err != nil {
		t.Fatalf("CreateBatch: %v", err)
	}
	if got := writes() - before; got != 1 {
		t.Errorf("a batch with 2 new tenants wrote the keyring %d times, want 1", got)
	}
}

// TestKeyringConcurrentNewTenants creates the first objects of many tenants at once, with
// several goroutines racing for each tenant. Concurrent appends share writes, each tenant
// ends with one key, and every object reads after reopening the store.
func TestKeyringConcurrentNewTenants(t *testing.T) {
	key := newKey(t)
	s := openAt(t, filepath.Join(t.TempDir(), "vault.db"), key)
	ctx := context.Background()
	const tenants, perTenant = 16, 4

	before := s.ring.writes.Load()
	values := sync.Map{}
	var wg sync.WaitGroup
	for i := range tenants * perTenant {
		wg.Go(func() {
			kc := vault.KeyContext{"organization_id": fmt.Sprintf("org_%d", i%tenants)}
			value := fmt.Sprintf(`"%d"`, i)
			meta, err := s.Create(ctx, vault.NewObject{
				Name: fmt.Sprint(i), Value: []byte(value), Context: kc,
			})
			if err != nil {
				t.Errorf("Create %d: %v", i, err)
				return
			}
			values.Store(meta.ID, value)
		})
	}
	wg.Wait()
	if got := s.ring.writes.Load() - before; got > tenants {
		t.Errorf("%d new tenants wrote the keyring %d times, want at most %d", tenants, got,
			tenants)
	}

	s = reopen(t, s, key)
	checkStats(t, s, Stats{Objects: tenants * perTenant, Values: tenants * perTenant,
		Names: tenants * perTenant, IndexEntries: tenants * perTenant, TenantKeys: tenants})
	values.Range(func(id, value any) bool {
		if got := readValue(t, s, id.(string)); got != value.(string) {
			t.Errorf("Read(%s) after reopening = %q, want %q", id, got, value)
		}
		return true
	})
}

// TestKeyringAppendFailure removes the keyring while the store is open, so that the
// append of a new tenant key fails. The create fails and commits nothing, and the next
// new key rewrites the whole keyring from memory.
func TestKeyringAppendFailure(t *testing.T) {
	key := newKey(t)
	s := openAt(t, filepath.Join(t.TempDir(), "vault.db"), key)
	a := create(t, s, "a", `"a"`, orgA)
	if err := os.Remove(KeyringPath(s.Path())); err != nil {
		t.Fatal(err)
	}

	_, err := s.Create(context.Background(), vault.NewObject{
		Name: "b", Value: []byte(`"b"`), Context: orgB,
	})
	if err == nil || !strings.Contains(err.Error(), "appending to keyring") {
		t.Fatalf("Create with a failing keyring append: error = %v", err)
	}
	checkStats(t, s, Stats{Objects: 1, Values: 1, Names: 1, IndexEntries: 1, TenantKeys: 1})

	c := create(t, s, "c", `"c"`, orgC)
	s = reopen(t, s, key)
	for id, want := range map[string]string{a.ID: `"a"`, c.ID: `"c"`} {
		if got := readValue(t, s, id); got != want {
			t.Errorf("Read(%s) after the keyring was rewritten = %q, want %q", id, got, want)
		}
	}
}

// TestKeyringHoldsNoPlainKeys checks that the keyring stores tenant keys only wrapped: an
// unwrapped tenant key taken from the cache does not appear in it.
func TestKeyringHoldsNoPlainKeys(t *testing.T) {
	key := newKey(t)
	s := openAt(t, filepath.Join(t.TempDir(), "vault.db"), key)
	create(t, s, "a", `"a"`, orgA)
	wrapped := s.ring.get(tenantIDOf(orgA))
	plain, err := unseal(s.wrapper, wrapped, wrapAAD(encodeContext(orgA)))
	if err != nil {
		t.Fatal(err)
	}

	data, err := os.ReadFile(KeyringPath(s.Path()))
	if err != nil {
		t.Fatal(err)
	}
	for _, form := range [][]byte{plain, []byte(base64.StdEncoding.EncodeToString(plain))} {
		if bytes.Contains(data, form) {
			t.Error("the keyring contains an unwrapped tenant key")
		}
	}
}
