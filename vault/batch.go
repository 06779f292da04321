package vault

import (
	"context"
	"errors"
	"sync"
)

// Batcher is implemented by stores that serve all the calls of one request in one trip.
// The local store commits the creates of a request in one transaction, and the WorkOS
// store runs the calls concurrently under its rate limit.
type Batcher interface {
	// CreateBatch stores every object or none: on error, no object of the batch remains.
	CreateBatch(ctx context.Context, objs []NewObject) ([]Metadata, error)

	// DescribeBatch returns metadata for each ID, with a per-ID error where it failed.
	DescribeBatch(ctx context.Context, ids []string) ([]Metadata, []error)

	// ReadBatch returns each object with its value, with a per-ID error where it failed.
	ReadBatch(ctx context.Context, ids []string) ([]Object, []error)
}

// fallbackConcurrency bounds the calls in flight for one batch on a store that is not a
// Batcher.
const fallbackConcurrency = 8

// CreateAll stores objs in s, in one batch where s is a Batcher. If any create fails, it
// deletes the objects of the batch that were created, so that no unreferenced object is
// left behind, and returns the first error.
func CreateAll(ctx context.Context, s Store, objs []NewObject) ([]Metadata, error) {
	if b, ok := s.(Batcher); ok {
		return b.CreateBatch(ctx, objs)
	}

	metas := make([]Metadata, len(objs))
	errs := make([]error, len(objs))
	forEach(len(objs), func(i int) {
		metas[i], errs[i] = s.Create(ctx, objs[i])
	})

	for _, err := range errs {
		if err == nil {
			continue
		}
		// the caller fails the request, so the created objects would be orphans
		cleanup := context.WithoutCancel(ctx)
		for i := range metas {
			if errs[i] == nil {
				_ = s.Delete(cleanup, metas[i].ID)
			}
		}
		return nil, err
	}
	return metas, nil
}

// DescribeAll returns the metadata of each ID, in one batch where s is a Batcher.
func DescribeAll(ctx context.Context, s Store, ids []string) ([]Metadata, []error) {
	if b, ok := s.(Batcher); ok {
		return b.DescribeBatch(ctx, ids)
	}

	metas := make([]Metadata, len(ids))
	errs := make([]error, len(ids))
	forEach(len(ids), func(i int) {
		metas[i], errs[i] = s.Describe(ctx, ids[i])
	})
	return metas, errs
}

// ReadAll returns each object with its value, in one batch where s is a Batcher.
func ReadAll(ctx context.Context, s Store, ids []string) ([]Object, []error) {
	if b, ok := s.(Batcher); ok {
		return b.ReadBatch(ctx, ids)
	}

	objs := make([]Object, len(ids))
	errs := make([]error, len(ids))
	forEach(len(ids), func(i int) {
		objs[i], errs[i] = s.Read(ctx, ids[i])
	})
	return objs, errs
}

// forEach calls fn for 0..n-1 with at most fallbackConcurrency calls running at once.
func forEach(n int, fn func(i int)) {
	if n == 1 {
		fn(0)
		return
	}

	var wg sync.WaitGroup
	slots := make(chan struct{}, fallbackConcurrency)
	for i := range n {
		slots <- struct{}{}
		wg.Go(func() {
			defer func() { <-slots }()
			fn(i)
		})
	}
	wg.Wait()
}

// BatchErrors returns n copies of err: the per-ID errors of a batch that failed as a
// whole, such as one sent to a store that is not open.
func BatchErrors(err error, n int) []error {
	errs := make([]error, n)
	for i := range errs {
		errs[i] = err
	}
	return errs
}

// ContextReader is implemented by stores that check each object's key context before
// decrypting it, in the same trip as the read, such as the local store. Reveal then
// needs no separate describe.
type ContextReader interface {
	// ReadBatchFor returns each object of kc with its value. An object of another
	// context gets an error wrapping ErrContextMismatch and is never decrypted.
	//
	// maxBytes, when positive, bounds the total size of the values that the call
	// decrypts: an object whose value would pass it gets an error wrapping ErrTooLarge
	// and is not decrypted, so that a few IDs of large values cost no more than the
	// caller can use.
	ReadBatchFor(ctx context.Context, ids []string, kc KeyContext, maxBytes int64) ([]Object, []error)
}

// ErrContextMismatch reports an object whose key context differs from the request's.
var ErrContextMismatch = errors.New("object belongs to another key context")
