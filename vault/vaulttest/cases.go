package vaulttest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/piivault/piivault/vault"
)

func testRoundTrip(t *testing.T, s vault.Store) {
	name := names(t)
	kc := tenant("org_round_trip")
	for i, value := range jsonValues {
		meta := mustCreate(t, s, name(fmt.Sprint(i)), value, kc)
		obj := mustRead(t, s, meta.ID)
		checkValue(t, "Read", obj.Value, value)
		checkMetadata(t, "Read", obj.Metadata, meta)
	}
}

func testCreateMetadata(t *testing.T, s vault.Store) {
	name := names(t)
	kc := vault.KeyContext{"organization_id": "org_1", "region": "eu"}
	a := mustCreate(t, s, name("a"), `"a"`, kc)
	b := mustCreate(t, s, name("b"), `"b"`, kc)

	if !vault.ValidID(a.ID) {
		t.Errorf("ID %q does not pass vault.ValidID", a.ID)
	}
	if a.ID == b.ID {
		t.Errorf("two creates returned the same ID %q", a.ID)
	}
	if a.VersionID == "" {
		t.Error("VersionID is empty")
	}
	if a.VersionID == b.VersionID {
		t.Errorf("two creates returned the same version ID %q", a.VersionID)
	}
	if a.Name != name("a") {
		t.Errorf("Name = %q, want %q", a.Name, name("a"))
	}
	if !a.Context.Equal(kc) {
		t.Errorf("Context = %v, want %v", a.Context, kc)
	}
	if a.UpdatedAt.IsZero() {
		t.Error("UpdatedAt is zero")
	}
}

// testCopies checks that callers cannot change stored objects through the slices and maps
// that they pass in or get back.
func testCopies(t *testing.T, s vault.Store) {
	ctx := context.Background()
	name := names(t)
	value := []byte(`"original"`)
	kc := tenant("org_copies")
	meta, err := s.Create(ctx, vault.NewObject{Name: name("x"), Value: value, Context: kc})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}

	copy(value, `"changed!"`)
	kc["organization_id"] = "org_other"
	meta.Context["organization_id"] = "org_other"
	obj := mustRead(t, s, meta.ID)
	obj.Value[1] = 'X'
	obj.Context["organization_id"] = "org_other"

	again := mustRead(t, s, meta.ID)
	checkValue(t, "Read after changing the caller's copies", again.Value, `"original"`)
	if want := tenant("org_copies"); !again.Context.Equal(want) {
		t.Errorf("Context after changing the caller's copies = %v, want %v", again.Context, want)
	}
}

func testDescribe(t *testing.T, s vault.Store) {
	name := names(t)
	meta := mustCreate(t, s, name("x"), `{"ssn":"000-00-0000"}`, tenant("org_describe"))

	got, err := s.Describe(context.Background(), meta.ID)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	checkMetadata(t, "Describe", got, meta)
}

func testUpdateNoCheck(t *testing.T, s vault.Store) {
	ctx := context.Background()
	name := names(t)
	meta := mustCreate(t, s, name("x"), `"v1"`, tenant("org_update"))

	updated, err := s.Update(ctx, meta.ID, []byte(`"v2"`), "")
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if updated.VersionID == meta.VersionID {
		t.Errorf("Update kept version ID %q", meta.VersionID)
	}
	if updated.UpdatedAt.Before(meta.UpdatedAt) {
		t.Errorf("UpdatedAt went back from %v to %v", meta.UpdatedAt, updated.UpdatedAt)
	}
	want := meta
	want.VersionID = updated.VersionID
	checkMetadata(t, "Update", updated, want)

	obj := mustRead(t, s, meta.ID)
	checkValue(t, "Read after Update", obj.Value, `"v2"`)
	checkMetadata(t, "Read after Update", obj.Metadata, want)

	described, err := s.Describe(ctx, meta.ID)
	if err != nil {
		t.Fatalf("Describe after Update: %v", err)
	}
	checkMetadata(t, "Describe after Update", described, want)
}

func testUpdateVersionCheck(t *testing.T, s vault.Store) {
	ctx := context.Background()
	name := names(t)
	meta := mustCreate(t, s, name("x"), `"v1"`, tenant("org_check"))

	updated, err := s.Update(ctx, meta.ID, []byte(`"v2"`), meta.VersionID)
	if err != nil {
		t.Fatalf("Update with the current version: %v", err)
	}

	_, err = s.Update(ctx, meta.ID, []byte(`"v3"`), meta.VersionID)
	checkIs(t, "Update with a stale version", err, vault.ErrVersionConflict)
	_, err = s.Update(ctx, meta.ID, []byte(`"v3"`), "no-such-version")
	checkIs(t, "Update with an unknown version", err, vault.ErrVersionConflict)

	obj := mustRead(t, s, meta.ID)
	checkValue(t, "Read after failed updates", obj.Value, `"v2"`)
	if obj.VersionID != updated.VersionID {
		t.Errorf("VersionID after failed updates = %q, want %q", obj.VersionID, updated.VersionID)
	}
}

func testUpdateKeepsContext(t *testing.T, s vault.Store) {
	ctx := context.Background()
	name := names(t)
	kc := vault.KeyContext{"organization_id": "org_keep", "environment": "test"}
	meta := mustCreate(t, s, name("x"), `"v1"`, kc)

	for i := range 3 {
		if _, err := s.Update(ctx, meta.ID, []byte(fmt.Sprintf(`"v%d"`, i+2)), ""); err != nil {
			t.Fatalf("Update %d: %v", i, err)
		}
	}

	obj := mustRead(t, s, meta.ID)
	if !obj.Context.Equal(kc) {
		t.Errorf("Context after updates = %v, want %v", obj.Context, kc)
	}
	if obj.Name != meta.Name {
		t.Errorf("Name after updates = %q, want %q", obj.Name, meta.Name)
	}
	checkValue(t, "Read after updates", obj.Value, `"v4"`)
}

func testDelete(t *testing.T, s vault.Store) {
	ctx := context.Background()
	name := names(t)
	meta := mustCreate(t, s, name("x"), `"gone"`, tenant("org_delete"))
	untouched := mustCreate(t, s, name("y"), `"untouched"`, tenant("org_delete"))

	if err := s.Delete(ctx, meta.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}

	_, err := s.Read(ctx, meta.ID)
	checkIs(t, "Read after Delete", err, vault.ErrNotFound)
	_, err = s.Describe(ctx, meta.ID)
	checkIs(t, "Describe after Delete", err, vault.ErrNotFound)
	_, err = s.Update(ctx, meta.ID, []byte(`"back"`), "")
	checkIs(t, "Update after Delete", err, vault.ErrNotFound)
	checkIs(t, "Delete after Delete", s.Delete(ctx, meta.ID), vault.ErrNotFound)

	metas, err := s.List(ctx, name("x"))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(metas) != 0 {
		t.Errorf("List after Delete returned %d objects, want 0", len(metas))
	}
	checkValue(t, "Read of another object", mustRead(t, s, untouched.ID).Value, `"untouched"`)

	// a deleted object's name is free again
	again := mustCreate(t, s, name("x"), `"again"`, tenant("org_delete"))
	if again.ID == meta.ID {
		t.Errorf("Create after Delete reused ID %q", meta.ID)
	}
}

func testNotFound(t *testing.T, s vault.Store) {
	ctx := context.Background()
	for _, id := range unknownIDs {
		_, err := s.Read(ctx, id)
		checkIs(t, "Read "+id, err, vault.ErrNotFound)
		_, err = s.Describe(ctx, id)
		checkIs(t, "Describe "+id, err, vault.ErrNotFound)
		_, err = s.Update(ctx, id, []byte(`"x"`), "")
		checkIs(t, "Update "+id, err, vault.ErrNotFound)
		checkIs(t, "Delete "+id, s.Delete(ctx, id), vault.ErrNotFound)
	}
}

func testInvalidID(t *testing.T, s vault.Store) {
	ctx := context.Background()
	for _, id := range invalidIDs {
		_, err := s.Read(ctx, id)
		checkInvalid(t, "Read", id, err)
		_, err = s.Describe(ctx, id)
		checkInvalid(t, "Describe", id, err)
		_, err = s.Update(ctx, id, []byte(`"x"`), "")
		checkInvalid(t, "Update", id, err)
		checkInvalid(t, "Delete", id, s.Delete(ctx, id))
	}

	_, errs := vault.ReadAll(ctx, s, invalidIDs)
	for i, err := range errs {
		checkInvalid(t, "ReadAll", invalidIDs[i], err)
	}
	_, errs = vault.DescribeAll(ctx, s, invalidIDs)
	for i, err := range errs {
		checkInvalid(t, "DescribeAll", invalidIDs[i], err)
	}
}

// checkInvalid reports an error that does not wrap vault.ErrInvalidID, or that repeats
// the invalid ID.
func checkInvalid(t *testing.T, op, id string, err error) {
	t.Helper()
	if !errors.Is(err, vault.ErrInvalidID) {
		t.Errorf("%s(%q): error = %v, want one wrapping %q", op, id, err, vault.ErrInvalidID)
		return
	}
	if strings.Contains(err.Error(), "evil") {
		t.Errorf("%s(%q): error %q repeats the invalid ID", op, id, err)
	}
}

func testNameConflict(t *testing.T, s vault.Store) {
	ctx := context.Background()
	name := names(t)
	first := mustCreate(t, s, name("taken"), `"first"`, tenant("org_a"))

	_, err := s.Create(ctx, vault.NewObject{
		Name: name("taken"), Value: []byte(`"second"`), Context: tenant("org_b"),
	})
	checkIs(t, "Create with a taken name", err, vault.ErrNameConflict)

	obj := mustRead(t, s, first.ID)
	checkValue(t, "Read of the first object", obj.Value, `"first"`)
	if !obj.Context.Equal(tenant("org_a")) {
		t.Errorf("Context of the first object = %v, want %v", obj.Context, tenant("org_a"))
	}
}

func testList(t *testing.T, s vault.Store) {
	ctx := context.Background()
	name := names(t)
	created := map[string]vault.Metadata{}
	for _, suffix := range []string{"b", "a/2", "a/10", "a/1", "c", "ab"} {
		created[suffix] = mustCreate(t, s, name(suffix), `"`+suffix+`"`, tenant("org_list"))
	}

	cases := []struct {
		prefix string
		want   []string
	}{
		{"a/", []string{"a/1", "a/10", "a/2"}},
		{"a", []string{"a/1", "a/10", "a/2", "ab"}},
		{"", []string{"a/1", "a/10", "a/2", "ab", "b", "c"}},
		{"a/1", []string{"a/1", "a/10"}},
		{"c", []string{"c"}},
		{"d", nil},
	}
	for _, tc := range cases {
		metas, err := s.List(ctx, name(tc.prefix))
		if err != nil {
			t.Fatalf("List(%q): %v", tc.prefix, err)
		}
		if len(metas) != len(tc.want) {
			t.Errorf("List(%q) returned %d objects, want %d", tc.prefix, len(metas), len(tc.want))
			continue
		}
		for i, suffix := range tc.want {
			checkMetadata(t, fmt.Sprintf("List(%q)[%d]", tc.prefix, i), metas[i], created[suffix])
		}
	}
}

func testBatch(t *testing.T, s vault.Store) {
	ctx := context.Background()
	name := names(t)
	objs := make([]vault.NewObject, 5)
	for i := range objs {
		objs[i] = vault.NewObject{
			Name:    name(fmt.Sprint(i)),
			Value:   []byte(jsonValues[i]),
			Context: tenant(fmt.Sprintf("org_batch_%d", i%2)),
		}
	}

	metas, err := vault.CreateAll(ctx, s, objs)
	if err != nil {
		t.Fatalf("CreateAll: %v", err)
	}
	if len(metas) != len(objs) {
		t.Fatalf("CreateAll returned %d objects, want %d", len(metas), len(objs))
	}

	ids := make([]string, 0, len(metas)+2)
	for _, meta := range metas {
		ids = append(ids, meta.ID)
	}
	ids = append(ids, unknownIDs[0], invalidIDs[2])
	checkDescribeAll(t, s, ids, objs, metas)
	checkReadAll(t, s, ids, objs, metas)
}

// checkDescribeAll checks DescribeAll on the IDs of metas followed by an unknown and an
// invalid ID.
func checkDescribeAll(t *testing.T, s vault.Store, ids []string, objs []vault.NewObject,
	metas []vault.Metadata) {
	t.Helper()
	described, errs := vault.DescribeAll(context.Background(), s, ids)
	if len(described) != len(ids) || len(errs) != len(ids) {
		t.Fatalf("DescribeAll returned %d metadata and %d errors for %d IDs",
			len(described), len(errs), len(ids))
	}
	for i, meta := range metas {
		if errs[i] != nil {
			t.Errorf("DescribeAll[%d]: %v", i, errs[i])
			continue
		}
		checkMetadata(t, fmt.Sprintf("DescribeAll[%d]", i), described[i], meta)
		if !described[i].Context.Equal(objs[i].Context) {
			t.Errorf("DescribeAll[%d]: Context = %v, want %v", i, described[i].Context,
				objs[i].Context)
		}
	}
	n := len(metas)
	checkIs(t, "DescribeAll of an unknown ID", errs[n], vault.ErrNotFound)
	checkInvalid(t, "DescribeAll", ids[n+1], errs[n+1])
}

// checkReadAll checks ReadAll on the IDs of metas followed by an unknown and an invalid
// ID.
func checkReadAll(t *testing.T, s vault.Store, ids []string, objs []vault.NewObject,
	metas []vault.Metadata) {
	t.Helper()
	read, errs := vault.ReadAll(context.Background(), s, ids)
	if len(read) != len(ids) || len(errs) != len(ids) {
		t.Fatalf("ReadAll returned %d objects and %d errors for %d IDs",
			len(read), len(errs), len(ids))
	}
	for i, meta := range metas {
		if errs[i] != nil {
			t.Errorf("ReadAll[%d]: %v", i, errs[i])
			continue
		}
		checkMetadata(t, fmt.Sprintf("ReadAll[%d]", i), read[i].Metadata, meta)
		checkValue(t, fmt.Sprintf("ReadAll[%d]", i), read[i].Value, string(objs[i].Value))
	}
	n := len(metas)
	checkIs(t, "ReadAll of an unknown ID", errs[n], vault.ErrNotFound)
	checkInvalid(t, "ReadAll", ids[n+1], errs[n+1])
}

// testBatchAtomic checks that a batch with one failing create leaves none of its objects.
func testBatchAtomic(t *testing.T, s vault.Store) {
	ctx := context.Background()
	name := names(t)
	mustCreate(t, s, name("taken"), `"first"`, tenant("org_atomic"))

	batches := map[string][]string{
		"taken name":        {"new/1", "taken", "new/2"},
		"name twice in one": {"new/3", "new/4", "new/3"},
	}
	for kind, suffixes := range batches {
		objs := make([]vault.NewObject, len(suffixes))
		for i, suffix := range suffixes {
			objs[i] = vault.NewObject{
				Name: name(suffix), Value: []byte(`"v"`), Context: tenant("org_atomic"),
			}
		}
		metas, err := vault.CreateAll(ctx, s, objs)
		checkIs(t, "CreateAll with a "+kind, err, vault.ErrNameConflict)
		if metas != nil {
			t.Errorf("CreateAll with a %s returned %d objects, want none", kind, len(metas))
		}
	}

	left, err := s.List(ctx, name("new/"))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, meta := range left {
		t.Errorf("object %q of a failed batch remains", meta.Name)
	}
}

func testBatchEmpty(t *testing.T, s vault.Store) {
	ctx := context.Background()
	metas, err := vault.CreateAll(ctx, s, nil)
	if err != nil {
		t.Errorf("CreateAll(nil): %v", err)
	}
	if len(metas) != 0 {
		t.Errorf("CreateAll(nil) returned %d objects", len(metas))
	}
	described, errs := vault.DescribeAll(ctx, s, nil)
	if len(described) != 0 || len(errs) != 0 {
		t.Errorf("DescribeAll(nil) returned %d metadata and %d errors", len(described), len(errs))
	}
	read, errs := vault.ReadAll(ctx, s, nil)
	if len(read) != 0 || len(errs) != 0 {
		t.Errorf("ReadAll(nil) returned %d objects and %d errors", len(read), len(errs))
	}
}

// testBatcher calls the batch methods of a vault.Batcher directly, with objects of two
// tenants.
func testBatcher(t *testing.T, s vault.Store) {
	b, ok := s.(vault.Batcher)
	if !ok {
		t.Skip("the store does not implement vault.Batcher")
	}
	ctx := context.Background()
	name := names(t)

	objs := []vault.NewObject{
		{Name: name("1"), Value: []byte(`"one"`), Context: tenant("org_x")},
		{Name: name("2"), Value: []byte(`2`), Context: tenant("org_y")},
	}
	metas, err := b.CreateBatch(ctx, objs)
	if err != nil {
		t.Fatalf("CreateBatch: %v", err)
	}
	if len(metas) != len(objs) {
		t.Fatalf("CreateBatch returned %d objects, want %d", len(metas), len(objs))
	}
	ids := []string{metas[0].ID, metas[1].ID, unknownIDs[1], invalidIDs[7]}

	described, errs := b.DescribeBatch(ctx, ids)
	for i := range metas {
		if errs[i] != nil {
			t.Fatalf("DescribeBatch[%d]: %v", i, errs[i])
		}
		checkMetadata(t, fmt.Sprintf("DescribeBatch[%d]", i), described[i], metas[i])
	}
	checkIs(t, "DescribeBatch of an unknown ID", errs[2], vault.ErrNotFound)
	checkInvalid(t, "DescribeBatch", ids[3], errs[3])

	read, errs := b.ReadBatch(ctx, ids)
	for i := range metas {
		if errs[i] != nil {
			t.Fatalf("ReadBatch[%d]: %v", i, errs[i])
		}
		checkValue(t, fmt.Sprintf("ReadBatch[%d]", i), read[i].Value, string(objs[i].Value))
	}
	checkIs(t, "ReadBatch of an unknown ID", errs[2], vault.ErrNotFound)
	checkInvalid(t, "ReadBatch", ids[3], errs[3])
}

// testConcurrent creates, reads and updates from several goroutines at once, for the race
// detector and for stores that share commits between calls.
func testConcurrent(t *testing.T, s vault.Store) {
	ctx := context.Background()
	name := names(t)
	const workers, perWorker = 8, 5

	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Go(func() {
			objs := make([]vault.NewObject, perWorker)
			for i := range objs {
				objs[i] = vault.NewObject{
					Name:    name(fmt.Sprintf("%d/%d", w, i)),
					Value:   []byte(fmt.Sprintf(`"%d-%d"`, w, i)),
					Context: tenant(fmt.Sprintf("org_%d", w%3)),
				}
			}
			errs <- createAndCheck(ctx, s, objs)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}

	metas, err := s.List(ctx, name(""))
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(metas) != workers*perWorker {
		t.Errorf("List returned %d objects, want %d", len(metas), workers*perWorker)
	}
}

// createAndCheck creates objs in one batch, then updates and reads each of them back.
func createAndCheck(ctx context.Context, s vault.Store, objs []vault.NewObject) error {
	metas, err := vault.CreateAll(ctx, s, objs)
	if err != nil {
		return fmt.Errorf("CreateAll: %w", err)
	}
	for i, meta := range metas {
		value := append([]byte(nil), objs[i].Value...)
		value = append(value, ' ')
		if _, err := s.Update(ctx, meta.ID, value, meta.VersionID); err != nil {
			return fmt.Errorf("Update %s: %w", meta.Name, err)
		}
		obj, err := s.Read(ctx, meta.ID)
		if err != nil {
			return fmt.Errorf("Read %s: %w", meta.Name, err)
		}
		if string(obj.Value) != string(value) || !obj.Context.Equal(objs[i].Context) {
			return fmt.Errorf("Read %s returned another value or context", meta.Name)
		}
	}
	return nil
}
