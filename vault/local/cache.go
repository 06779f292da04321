package local

import (
	"bytes"
	"container/list"
	"crypto/cipher"
	"sync"
)

// keyCache keeps the unwrapped keys of recently used tenants, least recently used first
// out, so that reads and writes do not unwrap a tenant key on every call.
//
// An entry is valid only for the wrapped bytes it was made from. Callers compare them with
// the wrapped key that they read from the file, so a tenant key that was erased and created
// anew is never confused with the old one.
type keyCache struct {
	mu      sync.Mutex
	max     int
	gen     uint64 // increases on every forget, see put
	entries map[tenantID]*list.Element
	order   *list.List // front is most recently used
}

// cachedKey is the value of an element of keyCache.order.
type cachedKey struct {
	tenant  tenantID
	wrapped []byte
	aead    cipher.AEAD
}

func newKeyCache(max int) *keyCache {
	return &keyCache{
		max:     max,
		entries: make(map[tenantID]*list.Element),
		order:   list.New(),
	}
}

// get returns the key of tenant when it was made from wrapped. A nil wrapped matches any
// entry, for writers that check the wrapped key inside their transaction.
func (c *keyCache) get(tenant tenantID, wrapped []byte) (cipher.AEAD, []byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()

	el, ok := c.entries[tenant]
	if !ok {
		return nil, nil, false
	}
	entry := el.Value.(*cachedKey)
	if wrapped != nil && !bytes.Equal(entry.wrapped, wrapped) {
		return nil, nil, false
	}
	c.order.MoveToFront(el)
	return entry.aead, entry.wrapped, true
}

// generation returns the current generation, which callers pass to put.
func (c *keyCache) generation() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen
}

// put stores a tenant key unless a tenant was forgotten since gen was read. That keeps a
// reader that read a key just before its erasure from putting the erased key back.
func (c *keyCache) put(tenant tenantID, wrapped []byte, aead cipher.AEAD, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()

	if gen != c.gen || c.max <= 0 {
		return
	}
	entry := &cachedKey{tenant: tenant, wrapped: bytes.Clone(wrapped), aead: aead}
	if el, ok := c.entries[tenant]; ok {
		el.Value = entry
		c.order.MoveToFront(el)
		return
	}
	c.entries[tenant] = c.order.PushFront(entry)

	for c.order.Len() > c.max {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.entries, oldest.Value.(*cachedKey).tenant)
	}
}

// forget removes the key of tenant.
func (c *keyCache) forget(tenant tenantID) {
	c.mu.Lock()
	defer c.mu.Unlock()

	c.gen++
	if el, ok := c.entries[tenant]; ok {
		c.order.Remove(el)
		delete(c.entries, tenant)
	}
}
