package local

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

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
	encoded := make([][]byte, len(objs))
	contexts := make(map[tenantID][]byte)
	for i, obj := range objs {
		encoded[i] = encodeContext(obj.Context)
		contexts[tenantOf(encoded[i])] = encoded[i]
	}
	keys, err := s.prepareTenantKeys(contexts, gen)
	if err != nil {
		return nil, err
	}

	now := time.Now().UnixNano()
	rows := make([]newRow, len(objs))
	metas := make([]vault.Metadata, len(objs))
	for i, obj := range objs {
		rows[i], metas[i] = newObjectRow(obj, encoded[i], keys[tenantOf(encoded[i])], now)
	}

	err = s.write(keys, func(l layout) error {
		for i, row := range rows {
			if err := putRow(l, row); err != nil {
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

// newObjectRow assigns an object ID and version, and seals the value.
func newObjectRow(obj vault.NewObject, encodedContext []byte, key *tenantKey,
	now int64) (newRow, vault.Metadata) {
	id := newObjectID()
	r := record{name: obj.Name, version: newVersionID(), updated: now, context: encodedContext}
	row := newRow{
		id:     []byte(id),
		name:   []byte(obj.Name),
		record: r.encode(),
		sealed: seal(key.aead, obj.Value, valueAAD(id, r.version, encodedContext)),
		index:  tenantObjectKey(key.tenant, id),
	}
	meta := vault.Metadata{
		ID:        id,
		Name:      obj.Name,
		Context:   maps.Clone(obj.Context),
		VersionID: r.version,
		UpdatedAt: time.Unix(0, now).UTC(),
	}
	return row, meta
}

// putRow writes the rows of one new object, unless its name is taken.
func putRow(l layout, row newRow) error {
	if l.names.Get(row.name) != nil {
		return vault.ErrNameConflict
	}
	if l.objects.Get(row.id) != nil {
		// 128 random bits make this practically impossible, but an overwrite would lose
		// an object, so fail instead.
		return errors.New("object ID already in use")
	}

	if err := l.objects.Put(row.id, row.record); err != nil {
		return err
	}
	if err := l.values.Put(row.id, row.sealed); err != nil {
		return err
	}
	if err := l.names.Put(row.name, row.id); err != nil {
		return err
	}
	return l.tenObjs.Put(row.index, nil)
}
