package workos

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/piivault/piivault/vault"
)

// errSkipped marks the creates of a batch that were not sent because another failed.
var errSkipped = errors.New("not sent: another create of the batch failed")

// CreateBatch stores every object or none. The creates run concurrently, up to
// MaxConcurrency at once. When one fails, no further create starts, and the store deletes
// what the batch created (see Create for creates whose outcome is unknown). The deletes
// hold the caller until they finish or its context ends, and continue in the background
// after that.
func (s *Store) CreateBatch(ctx context.Context, objs []vault.NewObject) ([]vault.Metadata, error) {
	if err := checkBatch(objs); err != nil {
		return nil, err
	}

	metas := make([]vault.Metadata, len(objs))
	errs := make([]error, len(objs))
	unknown := make([]bool, len(objs))
	var failed atomic.Bool
	s.forEach(len(objs), func(i int) {
		if failed.Load() {
			errs[i] = errSkipped
			return
		}
		op := fmt.Sprintf("create object %d of %d", i+1, len(objs))
		metas[i], unknown[i], errs[i] = s.create(ctx, objs[i], op)
		if errs[i] != nil {
			failed.Store(true)
		}
	})
	if !failed.Load() {
		return metas, nil
	}

	var created []vault.Metadata
	var uncertain []vault.NewObject
	var first error
	for i, err := range errs {
		switch {
		case err == nil:
			created = append(created, metas[i])
		case unknown[i]:
			uncertain = append(uncertain, objs[i])
		}
		if first == nil && err != nil && err != errSkipped {
			first = err
		}
	}
	s.cleanup(ctx, created, uncertain)
	return nil, first
}

// checkBatch checks every object before any call, so that an invalid object fails the
// batch before anything is created. Names must be unique within the batch, because
// WorkOS would reject the second create of a name after the first had succeeded.
func checkBatch(objs []vault.NewObject) error {
	names := make(map[string]int, len(objs))
	for i, obj := range objs {
		if err := checkNewObject(obj); err != nil {
			return fmt.Errorf("workos: create object %d of %d: %w", i+1, len(objs), err)
		}
		if j, ok := names[obj.Name]; ok {
			return fmt.Errorf("workos: create object %d of %d: %w: object %d has the same name",
				i+1, len(objs), vault.ErrNameConflict, j+1)
		}
		names[obj.Name] = i
	}
	return nil
}

// DescribeBatch returns the metadata of each ID. Cached objects cost no call, an ID that
// appears more than once costs one, and the rest run concurrently, up to MaxConcurrency
// at once.
func (s *Store) DescribeBatch(ctx context.Context, ids []string) ([]vault.Metadata, []error) {
	metas := make([]vault.Metadata, len(ids))
	errs := make([]error, len(ids))

	var misses []string
	firstIndex := make(map[string]int)
	for i, id := range ids {
		if err := vault.CheckID(id); err != nil {
			errs[i] = fmt.Errorf("workos: describe object: %w", err)
			continue
		}
		if meta, ok := s.cache.get(id); ok {
			metas[i] = meta
			continue
		}
		if _, ok := firstIndex[id]; !ok {
			firstIndex[id] = i
			misses = append(misses, id)
		}
	}

	s.forEach(len(misses), func(j int) {
		i := firstIndex[misses[j]]
		metas[i], errs[i] = s.describe(ctx, misses[j])
	})
	fillDuplicates(ids, firstIndex, func(i, first int) {
		metas[i], errs[i] = cloneMetadata(metas[first]), errs[first]
	})
	return metas, errs
}

// ReadBatch returns each object with its value. An ID that appears more than once costs
// one call, and the calls run concurrently, up to MaxConcurrency at once.
func (s *Store) ReadBatch(ctx context.Context, ids []string) ([]vault.Object, []error) {
	objs := make([]vault.Object, len(ids))
	errs := make([]error, len(ids))

	var unique []string
	firstIndex := make(map[string]int)
	for i, id := range ids {
		if err := vault.CheckID(id); err != nil {
			errs[i] = fmt.Errorf("workos: read object: %w", err)
			continue
		}
		if _, ok := firstIndex[id]; !ok {
			firstIndex[id] = i
			unique = append(unique, id)
		}
	}

	s.forEach(len(unique), func(j int) {
		i := firstIndex[unique[j]]
		objs[i], errs[i] = s.Read(ctx, unique[j])
	})
	fillDuplicates(ids, firstIndex, func(i, first int) {
		objs[i] = objs[first]
		objs[i].Metadata = cloneMetadata(objs[first].Metadata)
		objs[i].Value = append([]byte(nil), objs[first].Value...)
		errs[i] = errs[first]
	})
	return objs, errs
}

// fillDuplicates calls fill for each index whose ID was fetched at another index.
func fillDuplicates(ids []string, firstIndex map[string]int, fill func(i, first int)) {
	for i, id := range ids {
		if first, ok := firstIndex[id]; ok && first != i {
			fill(i, first)
		}
	}
}

// forEach calls fn for 0..n-1, with at most MaxConcurrency calls running at once.
func (s *Store) forEach(n int, fn func(i int)) {
	if n == 1 {
		fn(0)
		return
	}

	var wg sync.WaitGroup
	slots := make(chan struct{}, s.concurrency)
	for i := range n {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			fn(i)
		})
	}
	wg.Wait()
}

// Interface guards.
var (
	_ vault.Store   = (*Store)(nil)
	_ vault.Batcher = (*Store)(nil)
)
