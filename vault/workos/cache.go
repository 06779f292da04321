package workos

import (
	"container/list"
	"maps"
	"sync"

	"github.com/piivault/piivault/vault"
)

// metadataCache is a bounded LRU cache of object metadata by object ID, without values.
// An object's context never changes, so a cached context is always right. The cached
// version ID and update time are those of the last call through this store.
type metadataCache struct {
	mu    sync.Mutex
	size  int
	order *list.List // of vault.Metadata, most recently used first
	items map[string]*list.Element
}

// newMetadataCache returns a cache of at most size entries, or nil (no caching) when
// size is not positive. A nil cache is valid and empty.
func newMetadataCache(size int) *metadataCache {
	if size <= 0 {
		return nil
	}
	return &metadataCache{size: size, order: list.New(), items: make(map[string]*list.Element)}
}

func (c *metadataCache) get(id string) (vault.Metadata, bool) {
	if c == nil {
		return vault.Metadata{}, false
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[id]
	if !ok {
		return vault.Metadata{}, false
	}
	c.order.MoveToFront(el)
	return cloneMetadata(el.Value.(vault.Metadata)), true
}

func (c *metadataCache) put(meta vault.Metadata) {
	if c == nil || meta.ID == "" {
		return
	}
	meta = cloneMetadata(meta)

	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[meta.ID]; ok {
		el.Value = meta
		c.order.MoveToFront(el)
		return
	}
	c.items[meta.ID] = c.order.PushFront(meta)
	if c.order.Len() > c.size {
		oldest := c.order.Back()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(vault.Metadata).ID)
	}
}

func (c *metadataCache) remove(id string) {
	if c == nil {
		return
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[id]; ok {
		c.order.Remove(el)
		delete(c.items, id)
	}
}

func (c *metadataCache) len() int {
	if c == nil {
		return 0
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// cloneMetadata copies the context map, so that callers cannot change cached entries.
func cloneMetadata(m vault.Metadata) vault.Metadata {
	m.Context = maps.Clone(m.Context)
	return m
}
