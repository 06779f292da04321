package local

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/piivault/piivault/vault"
)

// newRow is one object of a CreateBatch, sealed and encoded before the write transaction.
type newRow struct {
	id     []byte
	name   []byte
	record []byte
	sealed []byte
	index  []byte // key in the tenant's object index
}

// CreateBatch stores every object or none, in one write transaction that concurrent calls
// share. Each object gets a new random object ID.
func (s *Store) CreateBatch(ctx context.Context, objs []vault.NewObject) ([]vault.Metadata,
	error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("creating objects: %w", err)
	}
	for i, obj := range objs {
		if err := checkName(obj.Name); err != nil {
			return nil, fmt.Errorf("creating objects: object %d: %w", i, err)
		}
	}
	if len(objs) == 0 {
		return []vault.Metadata{}, nil
	}

	for attempt := 1; ; attempt++ {
		metas, err := s.createOnce(objs)
		if errors.Is(err, errTenantKeyChanged) && attempt < writeAttempts {
			s.log.Debug("retrying create after a tenant key change",
				zap.Int("objects", len(objs)), zap.Int("attempt", attempt))
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("creating objects: %w", err)
		}
		return metas, nil
	}
}

// createOnce seals the values under their tenant keys, then writes all rows in one shared
// transaction. The keys of new tenants are in the keyring before the transaction starts.
func (s *Store) createOnce(objs []vault.NewObject) ([]vault.Metadata, error) {
	gen := s.keys.generation()
	contexts, contextOf := batchContexts(objs)
	tenants := make(map[tenantID][]byte, len(contexts))
	for _, bc := range contexts {
		tenants[bc.tenant] = bc.encoded
	}
	keys, err := s.prepareTenantKeys(tenants, gen)
	if err != nil {
		return nil, err
	}

	now := time.Now().UnixNano()
	rows := make([]newRow, len(objs))
	metas := make([]vault.Metadata, len(objs))
	for i, obj := range objs {
		bc := contexts[contextOf[i]]
		rows[i], metas[i] = newObjectRow(obj, bc, keys[bc.tenant], now)
	}

	err = s.write(keys, func(l layout) error {
		// one cursor per bucket serves the checks of every row
		names, objects := l.names.Cursor(), l.objects.Cursor()
		if err := s.markFormat(l.tx); err != nil {
			return err
		}
		for i, row := range rows {
			if err := putRow(l, names, objects, row); err != nil {
				return fmt.Errorf("object %d: %w", i, err)
			}
		}
		return nil
	})
	s.cacheTenantKeys(keys, gen, err)
	if err != nil {
		return nil, err
	}
	return metas, nil
}

// batchContext is one of the distinct key contexts of a CreateBatch.
type batchContext struct {
	encoded []byte
	tenant  tenantID
	kc      vault.KeyContext // a copy, shared by the metadata of its objects
}

// batchContexts returns the distinct key contexts of objs, and for each object the index
// of its context. An object whose context equals the previous object's, as in the batch
// of one request, reuses its encoding.
func batchContexts(objs []vault.NewObject) ([]batchContext, []int) {
	var contexts []batchContext
	contextOf := make([]int, len(objs))
	for i, obj := range objs {
		if i > 0 && maps.Equal(obj.Context, objs[i-1].Context) {
			contextOf[i] = contextOf[i-1]
			continue
		}

		encoded := encodeContext(obj.Context)
		tenant := tenantOf(encoded)
		j := slices.IndexFunc(contexts, func(bc batchContext) bool { return bc.tenant == tenant })
		if j < 0 {
			j = len(contexts)
			contexts = append(contexts, batchContext{encoded: encoded, tenant: tenant, kc: maps.Clone(obj.Context)})
		}
		contextOf[i] = j
	}
	return contexts, contextOf
}

// newObjectRow assigns an object ID and version, and seals the value.
func newObjectRow(obj vault.NewObject, bc batchContext, key *tenantKey,
	now int64) (newRow, vault.Metadata) {
	id := newObjectID()
	r := record{name: obj.Name, version: newVersionID(), updated: now, context: bc.encoded}
	r.sealed = seal(key.aead, obj.Value, valueAAD(id, r.version, bc.encoded))

	// the three keys of the row share one allocation
	buf := make([]byte, 0, 2*len(id)+len(obj.Name)+len(key.tenant))
	buf = append(buf, id...)
	buf = append(buf, obj.Name...)
	buf = append(buf, key.tenant[:]...)
	buf = append(buf, id...)
	row := newRow{
		id:     buf[:len(id)],
		name:   buf[len(id) : len(id)+len(obj.Name)],
		record: r.encode(),
		index:  buf[len(id)+len(obj.Name):],
	}
	meta := vault.Metadata{
		ID:        id,
		Name:      obj.Name,
		Context:   bc.kc,
		VersionID: r.version,
		UpdatedAt: time.Unix(0, now).UTC(),
	}
	return row, meta
}

// putRow writes the rows of one new object, unless its name is taken. names and objects
// are cursors of those buckets.
func putRow(l layout, names, objects *bolt.Cursor, row newRow) error {
	if seekExact(names, row.name) != nil {
		return vault.ErrNameConflict
	}
	if seekExact(objects, row.id) != nil {
		// 80 random bits per millisecond make this practically impossible, but an
		// overwrite would lose an object, so fail instead.
		return errors.New("object ID already in use")
	}

	if err := l.objects.Put(row.id, row.record); err != nil {
		return err
	}
	if err := l.names.Put(row.name, row.id); err != nil {
		return err
	}
	return l.tenObjs.Put(row.index, nil)
}
