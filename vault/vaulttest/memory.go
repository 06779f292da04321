package vaulttest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/piivault/piivault/vault"
)

// memory is the store of NewMemory.
type memory struct {
	mu      sync.RWMutex
	objects map[string]*vault.Object // by object ID
	names   map[string]string        // name to object ID
}

// NewMemory returns an empty in-memory vault.Store with the semantics of the real stores:
// random "secret_" object IDs, unique names, a new version ID per write, version checks,
// and ID checks before any lookup. It keeps values in plaintext, so it is for tests only.
// It does not implement vault.Batcher; wrap it in a Failing for a store that does.
func NewMemory() vault.Store {
	return &memory{
		objects: make(map[string]*vault.Object),
		names:   make(map[string]string),
	}
}

// Create stores a copy of obj under a new object ID.
func (m *memory) Create(ctx context.Context, obj vault.NewObject) (vault.Metadata, error) {
	if err := ctx.Err(); err != nil {
		return vault.Metadata{}, fmt.Errorf("creating object: %w", err)
	}
	if obj.Name == "" {
		return vault.Metadata{}, errors.New("creating object: name is empty")
	}

	m.mu.Lock()
	defer m.mu.Unlock()

	if _, exists := m.names[obj.Name]; exists {
		return vault.Metadata{}, fmt.Errorf("creating object: %w", vault.ErrNameConflict)
	}
	stored := &vault.Object{
		Metadata: vault.Metadata{
			ID:        newID(),
			Name:      obj.Name,
			Context:   maps.Clone(obj.Context),
			VersionID: newVersion(),
			UpdatedAt: time.Now().UTC(),
		},
		Value: bytes.Clone(obj.Value),
	}
	m.objects[stored.ID] = stored
	m.names[obj.Name] = stored.ID
	return copyMetadata(stored.Metadata), nil
}

// Read returns a copy of an object with its value.
func (m *memory) Read(ctx context.Context, id string) (vault.Object, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()

	obj, err := m.find(ctx, id)
	if err != nil {
		return vault.Object{}, fmt.Errorf("reading object: %w", err)
	}
	return vault.Object{Metadata: copyMetadata(obj.Metadata), Value: bytes.Clone(obj.Value)}, nil
}

// Describe returns a copy of an object's metadata.
func (m *memory) Describe(ctx context.Context, id string) (vault.Metadata, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()

	obj, err := m.find(ctx, id)
	if err != nil {
		return vault.Metadata{}, fmt.Errorf("describing object: %w", err)
	}
	return copyMetadata(obj.Metadata), nil
}

// Update replaces an object's value after checking versionCheck, when it is set.
func (m *memory) Update(ctx context.Context, id string, value []byte,
	versionCheck string) (vault.Metadata, error) {
	m.mu.Lock()
	defer m.mu.Unlock()

	obj, err := m.find(ctx, id)
	if err != nil {
		return vault.Metadata{}, fmt.Errorf("updating object: %w", err)
	}
	if versionCheck != "" && versionCheck != obj.VersionID {
		return vault.Metadata{}, fmt.Errorf("updating object: %w", vault.ErrVersionConflict)
	}

	obj.Value = bytes.Clone(value)
	obj.VersionID = newVersion()
	obj.UpdatedAt = time.Now().UTC()
	return copyMetadata(obj.Metadata), nil
}

// Delete removes an object and frees its name.
func (m *memory) Delete(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()

	obj, err := m.find(ctx, id)
	if err != nil {
		return fmt.Errorf("deleting object: %w", err)
	}
	delete(m.objects, id)
	delete(m.names, obj.Name)
	return nil
}

// List returns the metadata of the objects whose names start with prefix, by name.
func (m *memory) List(ctx context.Context, prefix string) ([]vault.Metadata, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("listing objects: %w", err)
	}

	m.mu.RLock()
	defer m.mu.RUnlock()

	names := slices.Sorted(maps.Keys(m.names))
	metas := []vault.Metadata{}
	for _, name := range names {
		if strings.HasPrefix(name, prefix) {
			metas = append(metas, copyMetadata(m.objects[m.names[name]].Metadata))
		}
	}
	return metas, nil
}

// find returns the object of id. The caller holds m.mu.
func (m *memory) find(ctx context.Context, id string) (*vault.Object, error) {
	if err := vault.CheckID(id); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	obj, ok := m.objects[id]
	if !ok {
		return nil, vault.ErrNotFound
	}
	return obj, nil
}

// copyMetadata returns meta with its own context map, so callers cannot change the store.
func copyMetadata(meta vault.Metadata) vault.Metadata {
	meta.Context = maps.Clone(meta.Context)
	return meta
}

// newID returns an object ID in the shape of the local store's IDs.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return "secret_" + strings.ToUpper(hex.EncodeToString(b[:]))
}

// newVersion returns a random version ID.
func newVersion() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
