package local

import (
	"crypto/sha256"
	"testing"
)

func TestKeyCacheEvictsOldest(t *testing.T) {
	c := newKeyCache(2)
	a, b, d := sha256.Sum256([]byte("a")), sha256.Sum256([]byte("b")), sha256.Sum256([]byte("d"))
	gen := c.generation()
	c.put(a, []byte("wa"), nil, gen)
	c.put(b, []byte("wb"), nil, gen)
	c.get(a, nil) // a is now the most recently used
	c.put(d, []byte("wd"), nil, gen)

	if _, _, ok := c.get(b, nil); ok {
		t.Error("the least recently used key was kept")
	}
	if _, _, ok := c.get(a, nil); !ok {
		t.Error("a recently used key was evicted")
	}
	if _, _, ok := c.get(d, []byte("wd")); !ok {
		t.Error("the newest key is missing")
	}
}

func TestKeyCacheWrappedMismatch(t *testing.T) {
	c := newKeyCache(4)
	a := sha256.Sum256([]byte("a"))
	c.put(a, []byte("old"), nil, c.generation())

	if _, _, ok := c.get(a, []byte("new")); ok {
		t.Error("get matched a key made from other wrapped bytes")
	}
}

// TestKeyCacheStalePut checks that a key read before an erasure is not cached after it.
func TestKeyCacheStalePut(t *testing.T) {
	c := newKeyCache(4)
	a := sha256.Sum256([]byte("a"))
	gen := c.generation()
	c.forget(a)
	c.put(a, []byte("w"), nil, gen)

	if _, _, ok := c.get(a, nil); ok {
		t.Error("a put from before forget was cached")
	}
}
