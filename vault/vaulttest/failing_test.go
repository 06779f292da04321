package vaulttest

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/piivault/piivault/vault"
)

var errDown = errors.New("vault is down")

func TestFailingCreates(t *testing.T) {
	ctx := context.Background()
	f := NewFailing(NewMemory())
	f.Fail(OpCreate, errDown)

	_, err := f.Create(ctx, vault.NewObject{Name: "a", Value: []byte(`"x"`)})
	if !errors.Is(err, errDown) {
		t.Errorf("Create: error = %v, want one wrapping %q", err, errDown)
	}
	metas, err := vault.CreateAll(ctx, f, []vault.NewObject{{Name: "b"}, {Name: "c"}})
	if !errors.Is(err, errDown) {
		t.Errorf("CreateAll: error = %v, want one wrapping %q", err, errDown)
	}
	if metas != nil {
		t.Errorf("CreateAll returned %d objects, want none", len(metas))
	}

	left, err := f.Unwrap().List(ctx, "")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(left) != 0 {
		t.Errorf("the wrapped store has %d objects, want 0", len(left))
	}
	if got := f.Calls(OpCreate); got != 3 {
		t.Errorf("Calls(OpCreate) = %d, want 3", got)
	}
}

func TestFailingReadsKeepOthers(t *testing.T) {
	ctx := context.Background()
	f := NewFailing(NewMemory())
	meta, err := f.Create(ctx, vault.NewObject{Name: "a", Value: []byte(`"x"`)})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	f.Fail(OpRead|OpDescribe, vault.ErrNotFound)

	_, err = f.Read(ctx, meta.ID)
	if !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("Read: error = %v, want one wrapping %q", err, vault.ErrNotFound)
	}
	_, errs := vault.DescribeAll(ctx, f, []string{meta.ID, meta.ID})
	for i, err := range errs {
		if !errors.Is(err, vault.ErrNotFound) {
			t.Errorf("DescribeAll[%d]: error = %v, want one wrapping %q", i, err, vault.ErrNotFound)
		}
	}
	if _, err := f.Update(ctx, meta.ID, []byte(`"y"`), ""); err != nil {
		t.Errorf("Update, which is not set to fail: %v", err)
	}
}

func TestFailingReset(t *testing.T) {
	ctx := context.Background()
	f := NewFailing(NewMemory())
	f.Fail(OpAll, errDown)
	if _, err := f.List(ctx, ""); !errors.Is(err, errDown) {
		t.Errorf("List while failing: error = %v, want one wrapping %q", err, errDown)
	}

	f.Reset()
	if _, err := f.List(ctx, ""); err != nil {
		t.Errorf("List after Reset: %v", err)
	}
	f.Fail(OpList, errDown)
	f.Fail(OpList, nil)
	if _, err := f.List(ctx, ""); err != nil {
		t.Errorf("List after Fail(OpList, nil): %v", err)
	}
}

// TestFailingSwitchConcurrent switches failures on and off while other goroutines call
// the store, for the race detector.
func TestFailingSwitchConcurrent(t *testing.T) {
	ctx := context.Background()
	f := NewFailing(NewMemory())
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				_, _ = f.Create(ctx, vault.NewObject{Name: newID(), Value: []byte(`1`)})
				_, _ = vault.ReadAll(ctx, f, []string{newID()})
			}
		})
	}
	for i := range 50 {
		if i%2 == 0 {
			f.Fail(OpCreate|OpRead, errDown)
		} else {
			f.Reset()
		}
	}
	wg.Wait()

	if got := f.Calls(OpCreate); got != 200 {
		t.Errorf("Calls(OpCreate) = %d, want 200", got)
	}
}

func TestOpString(t *testing.T) {
	if got := OpDescribe.String(); got != "describe" {
		t.Errorf("OpDescribe.String() = %q, want %q", got, "describe")
	}
	if got := (OpRead | OpList).String(); got != "Op(0x22)" {
		t.Errorf("(OpRead|OpList).String() = %q, want %q", got, "Op(0x22)")
	}
}

func TestCallsPanicsOnSet(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Calls(OpRead|OpList) did not panic")
		}
	}()
	NewFailing(NewMemory()).Calls(OpRead | OpList)
}
