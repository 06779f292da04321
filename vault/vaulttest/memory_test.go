package vaulttest

import (
	"testing"

	"github.com/piivault/piivault/vault"
)

func TestMemory(t *testing.T) {
	Run(t, func(t *testing.T) vault.Store { return NewMemory() })
}

// TestFailingPassThrough runs the suite through a Failing that fails nothing, which also
// covers the vault.Batcher path on top of the memory store.
func TestFailingPassThrough(t *testing.T) {
	Run(t, func(t *testing.T) vault.Store { return NewFailing(NewMemory()) })
}
