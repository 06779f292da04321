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
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/piivault/piivault/vault"
)

// checkStats compares the row counts of s with want.
func checkStats(t *testing.T, s *Store, want Stats) {
	t.Helper()
	got, err := s.Stats(context.Background())
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if got != want {
		t.Errorf("Stats = %+v, want %+v", got, want)
	}
}

// checkGone checks that every ID in ids fails to read and describe with ErrNotFound.
func checkGone(t *testing.T, s *Store, ids []string) {
	t.Helper()
	ctx := context.Background()
	for _, id := range ids {
		if _, err := s.Read(ctx, id); !errors.Is(err, vault.ErrNotFound) {
			t.Errorf("Read of former object %s: error = %v, want ErrNotFound", id, err)
		}
		if _, err := s.Describe(ctx, id); !errors.Is(err, vault.ErrNotFound) {
			t.Errorf("Describe of former object %s: error = %v, want ErrNotFound", id, err)
		}
	}
}

// TestLifecycleCRUDLeavesNoOrphans runs creates, reads, many updates, failed writes,
// deletes and a tenant erasure, and counts the rows of every index after each phase.
func TestLifecycleCRUDLeavesNoOrphans(t *testing.T) {
	key := newKey(t)
	s := openAt(t, filepath.Join(t.TempDir(), "vault.db"), key)
	ctx := context.Background()
	checkStats(t, s, Stats{})

	// create: 10 objects per tenant, half one by one and half in one batch
	tenants := []vault.KeyContext{orgA, orgB, orgC}
	ids := map[string][]string{}
	for _, kc := range tenants {
		var batch []vault.NewObject
		for i := range 10 {
			obj := vault.NewObject{Name: fmt.Sprintf("%s/%d", kc, i), Value: []byte(`"v0"`),
				Context: kc}
			if i < 5 {
				ids[kc.String()] = append(ids[kc.String()], create(t, s, obj.Name, `"v0"`, kc).ID)
				continue
			}
			batch = append(batch, obj)
		}
		metas, err := s.CreateBatch(ctx, batch)
		if err != nil {
			t.Fatalf("CreateBatch: %v", err)
		}
		for _, meta := range metas {
			ids[kc.String()] = append(ids[kc.String()], meta.ID)
		}
	}
	checkStats(t, s, Stats{Objects: 30, Values: 30, Names: 30, IndexEntries: 30, TenantKeys: 3})

	// writes that fail must add no row: a taken name, a batch with a taken name, an
	// update with a stale version
	if _, err := s.Create(ctx, vault.NewObject{Name: "org_a-taken", Value: []byte(`1`),
		Context: orgA}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	ids[orgA.String()] = append(ids[orgA.String()], s.mustFindName(t, "org_a-taken"))
	_, err := s.CreateBatch(ctx, []vault.NewObject{
		{Name: "fresh", Value: []byte(`1`), Context: orgB},
		{Name: "org_a-taken", Value: []byte(`1`), Context: orgB},
	})
	if !errors.Is(err, vault.ErrNameConflict) {
		t.Fatalf("CreateBatch with a taken name: error = %v, want ErrNameConflict", err)
	}

	// update every object 5 times with a version check, and read it after each update
	for _, list := range ids {
		for _, id := range list {
			updateMany(t, s, id, 5)
		}
	}
	checkStats(t, s, Stats{Objects: 31, Values: 31, Names: 31, IndexEntries: 31, TenantKeys: 3})
	if err := s.CheckIntegrity(ctx); err != nil {
		t.Fatalf("CheckIntegrity after updates: %v", err)
	}

	// delete half of tenant A and B one by one, and erase tenant C
	var deletedIDs []string
	for _, kc := range []vault.KeyContext{orgA, orgB} {
		for _, id := range ids[kc.String()][:5] {
			if err := s.Delete(ctx, id); err != nil {
				t.Fatalf("Delete(%s): %v", id, err)
			}
			deletedIDs = append(deletedIDs, id)
		}
	}
	n, err := s.EraseTenant(ctx, orgC)
	if err != nil || n != 10 {
		t.Fatalf("EraseTenant = %d, %v; want 10, nil", n, err)
	}
	deletedIDs = append(deletedIDs, ids[orgC.String()]...)
	checkStats(t, s, Stats{Objects: 11, Values: 11, Names: 11, IndexEntries: 11, TenantKeys: 2})
	checkTenantCounts(t, s, map[string]int{orgA.String(): 6, orgB.String(): 5, orgC.String(): 0})
	checkGone(t, s, deletedIDs)

	// delete the rest: only the tenant keys of A and B remain, which Delete keeps
	for _, kc := range []vault.KeyContext{orgA, orgB} {
		for _, id := range ids[kc.String()][5:] {
			if err := s.Delete(ctx, id); err != nil {
				t.Fatalf("Delete(%s): %v", id, err)
			}
			deletedIDs = append(deletedIDs, id)
		}
	}
	s = reopen(t, s, key)
	checkStats(t, s, Stats{TenantKeys: 2})
	if err := s.CheckIntegrity(ctx); err != nil {
		t.Errorf("CheckIntegrity at the end: %v", err)
	}
	checkGone(t, s, deletedIDs)
	for _, id := range deletedIDs {
		if _, err := s.Update(ctx, id, []byte(`"x"`), ""); !errors.Is(err, vault.ErrNotFound) {
			t.Errorf("Update of former object %s: error = %v, want ErrNotFound", id, err)
		}
		if err := s.Delete(ctx, id); !errors.Is(err, vault.ErrNotFound) {
			t.Errorf("Delete of former object %s: error = %v, want ErrNotFound", id, err)
		}
	}
	checkStats(t, s, Stats{TenantKeys: 2})
}

// mustFindName returns the object ID that the name index stores for name.
func (s *Store) mustFindName(t *testing.T, name string) string {
	t.Helper()
	metas, err := s.List(context.Background(), name)
	if err != nil || len(metas) != 1 {
		t.Fatalf("List(%q) = %d objects, %v; want 1", name, len(metas), err)
	}
	return metas[0].ID
}

// updateMany updates id n times with version checks, and also once with a stale version,
// reading the value back after each update.
func updateMany(t *testing.T, s *Store, id string, n int) {
	t.Helper()
	ctx := context.Background()
	meta, err := s.Describe(ctx, id)
	if err != nil {
		t.Fatalf("Describe(%s): %v", id, err)
	}
	stale := meta.VersionID
	for i := 1; i <= n; i++ {
		value := fmt.Sprintf(`"v%d"`, i)
		meta, err = s.Update(ctx, id, []byte(value), meta.VersionID)
		if err != nil {
			t.Fatalf("Update(%s) %d: %v", id, i, err)
		}
		if got := readValue(t, s, id); got != value {
			t.Fatalf("Read(%s) after update %d = %q, want %q", id, i, got, value)
		}
	}
	_, err = s.Update(ctx, id, []byte(`"stale"`), stale)
	if !errors.Is(err, vault.ErrVersionConflict) {
		t.Fatalf("Update(%s) with a stale version: error = %v, want ErrVersionConflict", id, err)
	}
}

// checkTenantCounts compares CountTenant of each context with want.
func checkTenantCounts(t *testing.T, s *Store, want map[string]int) {
	t.Helper()
	for _, kc := range []vault.KeyContext{orgA, orgB, orgC} {
		n, err := s.CountTenant(context.Background(), kc)
		if err != nil {
			t.Fatalf("CountTenant(%s): %v", kc, err)
		}
		if n != want[kc.String()] {
			t.Errorf("CountTenant(%s) = %d, want %d", kc, n, want[kc.String()])
		}
	}
}

// TestLifecycleCheckIntegrityFindsDamage damages the file in one way per case and checks
// that CheckIntegrity reports it.
func TestLifecycleCheckIntegrityFindsDamage(t *testing.T) {
	cases := map[string]struct {
		damage     func(tx *bolt.Tx, meta vault.Metadata) error
		damageRing func(c keyringContent, meta vault.Metadata)
		want       string
	}{
		"value missing": {
			func(tx *bolt.Tx, meta vault.Metadata) error {
				return setSealed(tx, meta.ID, nil)
			}, nil, "value missing"},
		"stale value of format 2": {
			func(tx *bolt.Tx, meta vault.Metadata) error {
				return tx.Bucket(bucketValues).Put([]byte(meta.ID), []byte("stale"))
			}, nil, "stale value"},
		"name entry missing": {
			func(tx *bolt.Tx, meta vault.Metadata) error {
				return tx.Bucket(bucketNames).Delete([]byte(meta.Name))
			}, nil, "name index does not point to it"},
		"index entry missing": {
			func(tx *bolt.Tx, meta vault.Metadata) error {
				k := tenantObjectKey(tenantOf(encodeContext(meta.Context)), meta.ID)
				return tx.Bucket(bucketTenObjs).Delete(k)
			}, nil, "tenant index entry missing"},
		"tenant key missing": {
			damageRing: func(c keyringContent, meta vault.Metadata) {
				delete(c.tenants, tenantIDOf(meta.Context))
			}, want: "tenant key missing from the keyring"},
		"record missing": {
			func(tx *bolt.Tx, meta vault.Metadata) error {
				return tx.Bucket(bucketObjects).Delete([]byte(meta.ID))
			}, nil, "object missing"},
		"index entry of another tenant": {
			func(tx *bolt.Tx, meta vault.Metadata) error {
				k := tenantObjectKey(tenantOf(encodeContext(orgB)), meta.ID)
				return tx.Bucket(bucketTenObjs).Put(k, nil)
			}, nil, "belongs to another tenant"},
	}
	for name, c := range cases {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			key := newKey(t)
			s := openAt(t, filepath.Join(t.TempDir(), "vault.db"), key)
			meta := create(t, s, "damaged", `"v"`, orgA)
			create(t, s, "other", `"v"`, orgB)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if c.damage != nil {
				rawUpdate(t, s.Path(), func(tx *bolt.Tx) error { return c.damage(tx, meta) })
			}
			if c.damageRing != nil {
				ring := readRing(t, s.Path())
				c.damageRing(ring, meta)
				writeRing(t, s.Path(), ring)
			}

			s = openAt(t, s.Path(), key)
			err := s.CheckIntegrity(context.Background())
			if !errors.Is(err, ErrInconsistent) {
				t.Fatalf("CheckIntegrity: error = %v, want ErrInconsistent", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("CheckIntegrity: error %q does not contain %q", err, c.want)
			}
			if strings.Contains(err.Error(), "damaged") {
				t.Errorf("CheckIntegrity: error %q contains an object name", err)
			}
		})
	}
}

func TestLifecycleCheckIntegrityLimit(t *testing.T) {
	key := newKey(t)
	s := openAt(t, filepath.Join(t.TempDir(), "vault.db"), key)
	for i := range maxProblems + 5 {
		create(t, s, fmt.Sprintf("n%d", i), `"v"`, orgA)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	rawUpdate(t, s.Path(), func(tx *bolt.Tx) error {
		return tx.DeleteBucket(bucketNames)
	})
	rawUpdate(t, s.Path(), func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket(bucketNames)
		return err
	})

	s = openAt(t, s.Path(), key)
	err := s.CheckIntegrity(context.Background())
	if err == nil || !strings.Contains(err.Error(), "and 5 more problems") {
		t.Errorf("CheckIntegrity with %d problems: error = %v", maxProblems+5, err)
	}
}

// TestLifecycleCompact checks that compaction keeps every object, leaves no temporary
// file, keeps mode 0600, and removes the bytes of deleted rows.
func TestLifecycleCompact(t *testing.T) {
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "vault.db")
	s := openAt(t, path, key)
	kept := create(t, s, "kept", `"kept"`, orgA)
	deleted := create(t, s, "deleted", `"deleted"`, orgA)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	sealedDeleted := rawValues(t, path)[deleted.ID]

	s = openAt(t, path, key)
	if err := s.Delete(context.Background(), deleted.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// a temporary file left by a compaction that crashed
	if err := os.WriteFile(path+".compact", []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}

	res, err := CompactFile(context.Background(), path, Options{})
	if err != nil {
		t.Fatalf("CompactFile: %v", err)
	}
	if res.SizeBefore <= 0 || res.SizeAfter <= 0 {
		t.Errorf("CompactFile sizes = %+v, want positive sizes", res)
	}
	if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file after CompactFile: %v, want none", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("mode after CompactFile = %04o, want 0600", perm)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(data, sealedDeleted) {
		t.Error("the sealed value of a deleted object is still in the compacted file")
	}
	checkReadable(t, path, key, map[string]string{kept.ID: `"kept"`})
}

func TestLifecycleCompactErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.db")
	if _, err := CompactFile(context.Background(), missing, Options{}); !errors.Is(err,
		os.ErrNotExist) {
		t.Errorf("CompactFile of a missing file: error = %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("CompactFile created the missing file: %v", err)
	}

	foreign := filepath.Join(dir, "foreign.db")
	rawUpdate(t, foreign, func(tx *bolt.Tx) error {
		_, err := tx.CreateBucket([]byte("something_else"))
		return err
	})
	_, err := CompactFile(context.Background(), foreign, Options{})
	if err == nil || !strings.Contains(err.Error(), "not a piivault vault") {
		t.Errorf("CompactFile of another bbolt file: error = %v", err)
	}

	s := openTemp(t)
	_, err = CompactFile(context.Background(), s.Path(), Options{Timeout: 50 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Errorf("CompactFile of an open file: error = %v, want one saying it is locked", err)
	}
}

// TestLifecycleOpenAfterReplace opens a file while CompactFile holds it, so that Open
// waits for the lock of a file that is then replaced. Open must end up with the new file.
func TestLifecycleOpenAfterReplace(t *testing.T) {
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "vault.db")
	s := openAt(t, path, key)
	meta := create(t, s, "a", `"a"`, orgA)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// hold the lock of the old file, and replace the file once Open has opened it
	old, err := openDB(path, time.Second, false)
	if err != nil {
		t.Fatal(err)
	}
	fileOpened := make(chan struct{}, 2)
	testHookFileOpened = func() { fileOpened <- struct{}{} }
	t.Cleanup(func() { testHookFileOpened = nil })

	opened := make(chan error, 1)
	var waiter *Store
	go func() {
		var err error
		waiter, err = Open(path, key, Options{})
		opened <- err
	}()
	<-fileOpened
	tmp := path + ".new"
	copyFile(t, path, tmp)
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	if err := <-opened; err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer waiter.Close()
	if len(fileOpened) != 1 {
		t.Errorf("Open opened the file %d times, want 2: once the old file, once the new one",
			1+len(fileOpened))
	}
	later := create(t, waiter, "b", `"b"`, orgA)
	if err := waiter.Close(); err != nil {
		t.Fatal(err)
	}
	checkReadable(t, path, key, map[string]string{meta.ID: `"a"`, later.ID: `"b"`})
}

// TestEraseTenantOthersUntouched checks that erasing tenant A changes no row of tenant B:
// records, sealed values and the tenant key are byte for byte the same.
func TestEraseTenantOthersUntouched(t *testing.T) {
	key := newKey(t)
	path := filepath.Join(t.TempDir(), "vault.db")
	s := openAt(t, path, key)
	values := map[string]string{}
	for i := range 3 {
		create(t, s, fmt.Sprintf("a/%d", i), `"a"`, orgA)
		value := fmt.Sprintf(`"b%d"`, i)
		values[create(t, s, fmt.Sprintf("b/%d", i), value, orgB).ID] = value
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	before := rawTenantRows(t, path, orgB)

	s = openAt(t, path, key)
	if _, err := s.EraseTenant(context.Background(), orgA); err != nil {
		t.Fatalf("EraseTenant: %v", err)
	}
	checkStats(t, s, Stats{Objects: 3, Values: 3, Names: 3, IndexEntries: 3, TenantKeys: 1})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if after := rawTenantRows(t, path, orgB); !mapsEqualBytes(before, after) {
		t.Error("erasing tenant A changed rows of tenant B")
	}
	checkReadable(t, path, key, values)
}

// rawTenantRows returns the tenant key of kc in the keyring and every row of kc in a
// closed store file, keyed by bucket and row key.
func rawTenantRows(t *testing.T, path string, kc vault.KeyContext) map[string][]byte {
	t.Helper()
	tenant := tenantOf(encodeContext(kc))
	rows := map[string][]byte{"tenant key": readRing(t, path).tenants[tenant]}
	rawUpdate(t, path, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketTenObjs).Cursor()
		for k, _ := c.Seek(tenant[:]); hasPrefixKey(k, tenant[:]); k, _ = c.Next() {
			id := k[len(tenant):]
			rows["index "+string(id)] = nil
			rows["object "+string(id)] = bytes.Clone(tx.Bucket(bucketObjects).Get(id))
			rows["value "+string(id)] = bytes.Clone(tx.Bucket(bucketValues).Get(id)) // format 2
		}
		return nil
	})
	return rows
}

// TestEraseTenantThenRotate erases a tenant, rotates the master key and compacts the file.
// The erased tenant's rows, copied back from a backup, must fail to decrypt, and its
// wrapped key must be in neither live file. The backup still needs the old master key.
func TestEraseTenantThenRotate(t *testing.T) {
	f := newErasedFixture(t)
	if err := f.live.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	erasedKey := readRing(t, f.backupPath).tenants[tenantIDOf(orgA)]
	if erasedKey == nil {
		t.Fatal("the backup keyring has no key of the erased tenant")
	}

	newMaster := newKey(t)
	res, err := RotateMasterKey(ctx, f.live.Path(), f.key, newMaster, Options{})
	if err != nil {
		t.Fatalf("RotateMasterKey: %v", err)
	}
	if res.Rewrapped != 1 || res.Dropped != 0 {
		t.Errorf("RotateMasterKey = %d rewrapped, %d dropped; want 1, 0",
			res.Rewrapped, res.Dropped)
	}
	if _, err := CompactFile(ctx, f.live.Path(), Options{}); err != nil {
		t.Fatalf("CompactFile: %v", err)
	}
	for _, path := range []string{f.live.Path(), KeyringPath(f.live.Path())} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, erasedKey) ||
			bytes.Contains(data, []byte(base64.StdEncoding.EncodeToString(erasedKey))) {
			t.Errorf("the erased tenant key is still in %s", filepath.Base(path))
		}
	}

	rows := readRawRows(t, f.backupPath, f.a)
	rawUpdate(t, f.live.Path(), func(tx *bolt.Tx) error { return putRows(tx, rows) })
	live := openAt(t, f.live.Path(), newMaster)
	for _, meta := range f.a {
		if _, err := live.Read(ctx, meta.ID); err == nil {
			t.Errorf("Read of erased object %s copied into the rotated file succeeded", meta.ID)
		}
	}
	for i, meta := range f.b {
		if got, want := readValue(t, live, meta.ID), fmt.Sprintf(`"b%d"`, i); got != want {
			t.Errorf("Read of tenant B after erasure and rotation = %q, want %q", got, want)
		}
	}
	checkWrongKey(t, f.backupPath, newMaster, f.key)
}

func TestLifecycleOpenMustExist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "missing.db")
	_, err := Open(path, newKey(t), Options{MustExist: true})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open of a missing file with MustExist: error = %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(filepath.Dir(path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open with MustExist created the directory: %v", err)
	}
}
