package local

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/piivault/piivault/vault"
)

// ErrInconsistent is wrapped by the error of CheckIntegrity when rows of the file do not
// agree with each other.
var ErrInconsistent = errors.New("vault file is inconsistent")

// maxProblems bounds the problems that CheckIntegrity lists in its error.
const maxProblems = 20

// Stats counts the rows of each part of a store file, and the keys of its keyring.
type Stats struct {
	Objects      int // metadata records
	Values       int // sealed values, in records and in the values bucket of format 2
	Names        int // entries of the name index
	IndexEntries int // entries of the per-tenant object index
	TenantKeys   int // wrapped tenant keys in the keyring
}

// Stats counts the rows of the store file in one read transaction, and the keys of the
// keyring. In a consistent file, Objects, Values, Names and IndexEntries are equal.
// TenantKeys can be larger than the number of tenants with objects, because deleting a
// tenant's last object keeps its key, and so does a failed first create of a tenant. Only
// EraseTenant and RotateMasterKey delete tenant keys.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, fmt.Errorf("counting rows: %w", err)
	}

	var st Stats
	err := s.db.View(func(tx *bolt.Tx) error {
		l := bucketsOf(tx)
		st = Stats{
			Objects:      l.objects.Stats().KeyN,
			Values:       l.values.Stats().KeyN + recordsWithValue(l),
			Names:        l.names.Stats().KeyN,
			IndexEntries: l.tenObjs.Stats().KeyN,
		}
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("counting rows: %w", err)
	}
	st.TenantKeys = s.ring.len()
	return st, nil
}

// recordsWithValue counts the records that hold their sealed value.
func recordsWithValue(l layout) int {
	n := 0
	_ = l.objects.ForEach(func(_, v []byte) error {
		if len(v) > 0 && v[0] == recordWithValue {
			n++
		}
		return nil
	})
	return n
}

// CountTenant returns the number of objects in the index of the tenant kc, which are the
// objects that EraseTenant would delete.
func (s *Store) CountTenant(ctx context.Context, kc vault.KeyContext) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("counting objects of tenant %s: %w", kc, err)
	}
	tenant := tenantOf(encodeContext(kc))

	count := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketTenObjs).Cursor()
		for k, _ := c.Seek(tenant[:]); hasPrefixKey(k, tenant[:]); k, _ = c.Next() {
			count++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("counting objects of tenant %s: %w", kc, err)
	}
	return count, nil
}

// CheckIntegrity verifies in one read transaction that the rows of the store file agree
// with each other and with the keyring. Every object must have a value, a name index
// entry that points back to it, a tenant index entry and a tenant key in the keyring. An
// object without its tenant key is left by an erasure that stopped between removing the
// key and deleting the objects, and running the erasure again deletes it. Every value and
// index entry must belong to an existing object.
// It returns nil for a consistent file, or an error that wraps ErrInconsistent and lists
// up to 20 problems by object ID. Names are left out, because they may carry tenant data.
// CheckIntegrity decrypts nothing.
func (s *Store) CheckIntegrity(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("checking integrity: %w", err)
	}

	var p problems
	err := s.db.View(func(tx *bolt.Tx) error {
		l := bucketsOf(tx)
		checkObjects(l, s.ring, &p)
		checkValues(l, &p)
		checkNames(l, &p)
		checkTenantIndex(l, &p)
		return nil
	})
	if err != nil {
		return fmt.Errorf("checking integrity: %w", err)
	}
	return p.err()
}

// problems collects the first maxProblems findings of CheckIntegrity and counts the rest.
type problems struct {
	list []error
	more int
}

func (p *problems) addf(format string, args ...any) {
	if len(p.list) == maxProblems {
		p.more++
		return
	}
	p.list = append(p.list, fmt.Errorf(format, args...))
}

func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	if p.more > 0 {
		p.list = append(p.list, fmt.Errorf("and %d more problems", p.more))
	}
	return fmt.Errorf("%w: %w", ErrInconsistent, errors.Join(p.list...))
}

// checkObjects checks the rows and the tenant key that each object record requires.
func checkObjects(l layout, ring *keyring, p *problems) {
	_ = l.objects.ForEach(func(k, raw []byte) error {
		r, err := parseRecord(raw)
		if err != nil {
			p.addf("object %s: %w", k, err)
			return nil
		}
		tenant := tenantOf(r.context)
		switch hasApart := l.values.Get(k) != nil; {
		case r.sealed == nil && !hasApart, r.sealed != nil && len(r.sealed) < sealOverhead:
			p.addf("object %s: value missing", k)
		case r.sealed != nil && hasApart:
			p.addf("object %s: a stale value of format 2 remains beside the record's", k)
		}
		if !bytes.Equal(l.names.Get(r.name), k) {
			p.addf("object %s: name index does not point to it", k)
		}
		if l.tenObjs.Get(tenantObjectKey(tenant, string(k))) == nil {
			p.addf("object %s: tenant index entry missing", k)
		}
		if ring.get(tenant) == nil {
			p.addf("object %s: tenant key missing from the keyring", k)
		}
		return nil
	})
}

// checkValues finds values without an object.
func checkValues(l layout, p *problems) {
	_ = l.values.ForEach(func(k, _ []byte) error {
		if l.objects.Get(k) == nil {
			p.addf("value of object %s: object missing", k)
		}
		return nil
	})
}

// checkNames finds name index entries whose object is missing or has another name.
func checkNames(l layout, p *problems) {
	_ = l.names.ForEach(func(name, id []byte) error {
		r, err := findRecord(l, string(id))
		switch {
		case errors.Is(err, vault.ErrNotFound):
			p.addf("name index entry of object %s: object missing", id)
		case err != nil:
			// checkObjects reports the damaged record
		case r.name != string(name):
			p.addf("name index entry of object %s: the object has another name", id)
		}
		return nil
	})
}

// checkTenantIndex finds tenant index entries whose object is missing or belongs to
// another tenant.
func checkTenantIndex(l layout, p *problems) {
	size := len(tenantID{})
	_ = l.tenObjs.ForEach(func(k, _ []byte) error {
		if len(k) <= size {
			p.addf("tenant index entry of %d bytes is too short", len(k))
			return nil
		}
		id := k[size:]
		r, err := findRecord(l, string(id))
		switch {
		case errors.Is(err, vault.ErrNotFound):
			p.addf("tenant index entry of object %s: object missing", id)
		case err != nil:
			// checkObjects reports the damaged record
		case tenantOf(r.context) != tenantID(k[:size]):
			p.addf("tenant index entry of object %s: the object belongs to another tenant", id)
		}
		return nil
	})
}

// maxLoggedContexts bounds the key contexts that warnObjectsWithoutKey logs.
const maxLoggedContexts = 10

// warnObjectsWithoutKey logs the tenants of the store file that have objects but no key in
// the keyring: an erasure stopped before it deleted the objects, or the keyring is older
// than the objects. Open does not delete such objects, because with a keyring restored
// from an old backup, the right keyring could still decrypt them.
func warnObjectsWithoutKey(db *bolt.DB, ring *keyring, log *zap.Logger) {
	var tenants int
	var contexts []string
	_ = db.View(func(tx *bolt.Tx) error {
		l := bucketsOf(tx)
		for _, tenant := range indexedTenants(l.tenObjs) {
			if ring.get(tenant) != nil {
				continue
			}
			tenants++
			if len(contexts) < maxLoggedContexts {
				contexts = append(contexts, contextString(contextFromIndex(l, tenant)))
			}
		}
		return nil
	})
	if tenants == 0 {
		return
	}
	log.Warn("objects of some tenants have no tenant key in the keyring and cannot be "+
		"decrypted: erase these tenants to delete the objects, or restore the keyring that "+
		"has their keys",
		zap.Int("tenants", tenants), zap.Strings("key_contexts", contexts))
}

// indexedTenants returns each tenant ID of the tenant index once, with one seek per
// tenant rather than a step per object.
func indexedTenants(b *bolt.Bucket) []tenantID {
	var tenants []tenantID
	c := b.Cursor()
	for k, _ := c.First(); k != nil; {
		if len(k) < len(tenantID{}) {
			k, _ = c.Next()
			continue
		}
		tenant := tenantID(k[:len(tenantID{})])
		tenants = append(tenants, tenant)
		after, ok := nextPrefix(tenant)
		if !ok {
			break
		}
		k, _ = c.Seek(after[:])
	}
	return tenants
}

// nextPrefix returns the smallest tenant ID greater than tenant, and false when tenant is
// the largest.
func nextPrefix(tenant tenantID) (tenantID, bool) {
	for i := len(tenant) - 1; i >= 0; i-- {
		tenant[i]++
		if tenant[i] != 0 {
			return tenant, true
		}
	}
	return tenant, false
}

// contextString returns the key context of an encoded context for a log line, or a
// placeholder when it does not decode.
func contextString(encoded []byte) string {
	kc, _, err := decodeContext(encoded)
	if err != nil || encoded == nil {
		return "(unknown)"
	}
	return kc.String()
}
