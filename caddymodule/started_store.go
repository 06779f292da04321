package caddymodule

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/piivault/piivault/vault"
	"github.com/piivault/piivault/vault/local"
)

// starter is a store module that opens its store when the pii_vault app starts, not
// when it is provisioned.
type starter interface {
	Start() error
}

// errNotStarted is the error of a store used before the pii_vault app started, in the
// moment between Caddy's HTTP server starting and the app opening the store. Callers
// treat it as an unavailable store.
var errNotStarted = errors.New("the vault store is not open yet")

// startedStore is the local store once LocalStore.Start has opened it. Handlers get it
// at provision time, before the store file is open.
type startedStore atomic.Pointer[local.Store]

func (p *startedStore) store() (*local.Store, error) {
	s := (*atomic.Pointer[local.Store])(p).Load()
	if s == nil {
		return nil, errNotStarted
	}
	return s, nil
}

func (p *startedStore) Create(ctx context.Context, obj vault.NewObject) (vault.Metadata, error) {
	s, err := p.store()
	if err != nil {
		return vault.Metadata{}, err
	}
	return s.Create(ctx, obj)
}

func (p *startedStore) Read(ctx context.Context, id string) (vault.Object, error) {
	s, err := p.store()
	if err != nil {
		return vault.Object{}, err
	}
	return s.Read(ctx, id)
}

func (p *startedStore) Describe(ctx context.Context, id string) (vault.Metadata, error) {
	s, err := p.store()
	if err != nil {
		return vault.Metadata{}, err
	}
	return s.Describe(ctx, id)
}

func (p *startedStore) Update(ctx context.Context, id string, value []byte, versionCheck string) (vault.Metadata, error) {
	s, err := p.store()
	if err != nil {
		return vault.Metadata{}, err
	}
	return s.Update(ctx, id, value, versionCheck)
}

func (p *startedStore) Delete(ctx context.Context, id string) error {
	s, err := p.store()
	if err != nil {
		return err
	}
	return s.Delete(ctx, id)
}

func (p *startedStore) List(ctx context.Context, prefix string) ([]vault.Metadata, error) {
	s, err := p.store()
	if err != nil {
		return nil, err
	}
	return s.List(ctx, prefix)
}

func (p *startedStore) CreateBatch(ctx context.Context, objs []vault.NewObject) ([]vault.Metadata, error) {
	s, err := p.store()
	if err != nil {
		return nil, err
	}
	return s.CreateBatch(ctx, objs)
}

func (p *startedStore) DescribeBatch(ctx context.Context, ids []string) ([]vault.Metadata, []error) {
	s, err := p.store()
	if err != nil {
		return make([]vault.Metadata, len(ids)), vault.BatchErrors(err, len(ids))
	}
	return s.DescribeBatch(ctx, ids)
}

func (p *startedStore) ReadBatch(ctx context.Context, ids []string) ([]vault.Object, []error) {
	s, err := p.store()
	if err != nil {
		return make([]vault.Object, len(ids)), vault.BatchErrors(err, len(ids))
	}
	return s.ReadBatch(ctx, ids)
}

func (p *startedStore) ReadBatchFor(ctx context.Context, ids []string, kc vault.KeyContext,
	maxBytes int64) ([]vault.Object, []error) {
	s, err := p.store()
	if err != nil {
		return make([]vault.Object, len(ids)), vault.BatchErrors(err, len(ids))
	}
	return s.ReadBatchFor(ctx, ids, kc, maxBytes)
}

// Interface guards
var (
	_ vault.Store         = (*startedStore)(nil)
	_ vault.Batcher       = (*startedStore)(nil)
	_ vault.ContextReader = (*startedStore)(nil)
)
