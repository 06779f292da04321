// Package vaulttest helps test code that uses a vault.Store: Run checks that a store keeps
// the shared semantics, NewMemory is a store without a file, and Failing makes a store
// fail on demand.
package vaulttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/piivault/piivault/vault"
)

// Run checks that the stores returned by open have the semantics of vault.Store. It covers
// create, read, describe, update with and without a version check, delete, list by name
// prefix, the error kinds and ID checks. It also runs the batch helpers of package vault,
// which use vault.Batcher when the store implements it.
//
// Each subtest calls open for its store. The store need not be empty: every subtest uses
// names under a random prefix of its own.
func Run(t *testing.T, open func(t *testing.T) vault.Store) {
	t.Helper()

	tests := []struct {
		name string
		fn   func(t *testing.T, s vault.Store)
	}{
		{"RoundTrip", testRoundTrip},
		{"CreateMetadata", testCreateMetadata},
		{"Copies", testCopies},
		{"Describe", testDescribe},
		{"UpdateNoCheck", testUpdateNoCheck},
		{"UpdateVersionCheck", testUpdateVersionCheck},
		{"UpdateKeepsContext", testUpdateKeepsContext},
		{"Delete", testDelete},
		{"NotFound", testNotFound},
		{"InvalidID", testInvalidID},
		{"NameConflict", testNameConflict},
		{"List", testList},
		{"Batch", testBatch},
		{"BatchAtomic", testBatchAtomic},
		{"BatchEmpty", testBatchEmpty},
		{"Batcher", testBatcher},
		{"Concurrent", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// jsonValues are the values of the round trip test: every JSON value type, as the proxy
// stores them, and text that is not JSON.
var jsonValues = []string{
	`"alice@example.com"`,
	`""`,
	`"unicode \u00fc 😀 ü and escapes \" \\ \n"`,
	`42`,
	`-1.5e-10`,
	`true`,
	`false`,
	`null`,
	`{"street":"1 Main St","zip":[1,2,{"x":null}]}`,
	`[]`,
	`{}`,
	"not JSON: plain text with spaces",
}

// unknownIDs have the shape of object IDs but name no object.
var unknownIDs = []string{
	"secret_0123456789ABCDEF0123456789ABCDEF",
	"0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0",
}

// invalidIDs do not have the shape of object IDs. Each contains "evil" or is short, so a
// test can check that errors do not repeat them.
var invalidIDs = []string{
	"",
	"secret_",
	"secret_evil",
	"secret_0123456789ABCDEF0123456789ABCDEG",
	"secret_0123456789ABCDEF0123456789ABCDEF0",
	"../secret_0123456789ABCDEF0123456789ABCDEF",
	"secret_0123456789ABCDEF0123456789ABCDEF/../evil",
	"secret_0123456789ABCDEF0123456789ABCDEF?evil=1",
	"secret_0123456789ABCDEF0123456789ABCDEF\n",
	" secret_0123456789ABCDEF0123456789ABCDEF",
	"SECRET_0123456789ABCDEF0123456789ABCDEF",
	"evil\x00",
}

// names returns a function that makes object names under a prefix that no other test
// uses.
func names(t *testing.T) func(suffix string) string {
	t.Helper()
	var b [8]byte
	rand.Read(b[:])
	prefix := "vaulttest/" + hex.EncodeToString(b[:]) + "/"
	return func(suffix string) string { return prefix + suffix }
}

// tenant returns a key context for tenant org.
func tenant(org string) vault.KeyContext {
	return vault.KeyContext{"organization_id": org}
}

// mustCreate creates an object and fails the test on error.
func mustCreate(t *testing.T, s vault.Store, name, value string,
	kc vault.KeyContext) vault.Metadata {
	t.Helper()
	meta, err := s.Create(context.Background(), vault.NewObject{
		Name: name, Value: []byte(value), Context: kc,
	})
	if err != nil {
		t.Fatalf("Create(%q): %v", name, err)
	}
	return meta
}

// mustRead reads an object and fails the test on error.
func mustRead(t *testing.T, s vault.Store, id string) vault.Object {
	t.Helper()
	obj, err := s.Read(context.Background(), id)
	if err != nil {
		t.Fatalf("Read(%s): %v", id, err)
	}
	return obj
}

// checkMetadata reports every field of got that differs from want. UpdatedAt is only
// required to be set, because stores may round it differently between calls.
func checkMetadata(t *testing.T, call string, got, want vault.Metadata) {
	t.Helper()
	if got.ID != want.ID {
		t.Errorf("%s: ID = %q, want %q", call, got.ID, want.ID)
	}
	if got.Name != want.Name {
		t.Errorf("%s: Name = %q, want %q", call, got.Name, want.Name)
	}
	if !got.Context.Equal(want.Context) {
		t.Errorf("%s: Context = %v, want %v", call, got.Context, want.Context)
	}
	if got.VersionID != want.VersionID {
		t.Errorf("%s: VersionID = %q, want %q", call, got.VersionID, want.VersionID)
	}
	if got.UpdatedAt.IsZero() {
		t.Errorf("%s: UpdatedAt is zero", call)
	}
}

// checkValue reports a value that differs from want.
func checkValue(t *testing.T, call string, got []byte, want string) {
	t.Helper()
	if !bytes.Equal(got, []byte(want)) {
		t.Errorf("%s: value = %q, want %q", call, got, want)
	}
}

// checkIs reports an error that does not wrap target.
func checkIs(t *testing.T, call string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error = %v, want one wrapping %q", call, err, target)
	}
}
