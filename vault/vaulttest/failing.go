package vaulttest

import (
	"context"
	"fmt"
	"math/bits"
	"sync/atomic"

	"github.com/piivault/piivault/vault"
)

// Op is a set of store operations, for Failing.
type Op uint

// Operations of vault.Store. The batch methods of Failing count as their single
// counterparts: CreateBatch as OpCreate, DescribeBatch as OpDescribe, ReadBatch as OpRead.
const (
	OpCreate Op = 1 << iota
	OpRead
	OpDescribe
	OpUpdate
	OpDelete
	OpList

	// OpAll is every operation.
	OpAll = OpCreate | OpRead | OpDescribe | OpUpdate | OpDelete | OpList
)

// numOps is the number of single operations in OpAll.
const numOps = 6

// String returns the lower-case name of a single operation, such as "create".
func (op Op) String() string {
	switch op {
	case OpCreate:
		return "create"
	case OpRead:
		return "read"
	case OpDescribe:
		return "describe"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	case OpList:
		return "list"
	}
	return fmt.Sprintf("Op(%#x)", uint(op))
}

// Failing wraps a vault.Store and fails chosen operations with a chosen error, for tests
// that check how callers behave when the store fails. It is safe for concurrent use, and
// failures can be switched on and off while calls are running.
//
// Failing implements vault.Batcher whether or not the wrapped store does: its batch
// methods fail as a whole, or pass the batch to vault.CreateAll, DescribeAll or ReadAll on
// the wrapped store.
type Failing struct {
	store vault.Store
	errs  [numOps]atomic.Pointer[error]
	calls [numOps]atomic.Int64
}

// NewFailing returns a Failing that passes every call to store until Fail is called.
func NewFailing(store vault.Store) *Failing {
	return &Failing{store: store}
}

// Fail makes the operations in ops return an error that wraps err, without calling the
// wrapped store. A nil err makes them pass through again.
func (f *Failing) Fail(ops Op, err error) {
	for i := range numOps {
		if ops&(1<<i) == 0 {
			continue
		}
		if err == nil {
			f.errs[i].Store(nil)
		} else {
			f.errs[i].Store(&err)
		}
	}
}

// Reset makes every operation pass through again.
func (f *Failing) Reset() {
	f.Fail(OpAll, nil)
}

// Calls returns how many times the single operation op was requested, failed or not. A
// batch counts once per object or ID in it.
func (f *Failing) Calls(op Op) int64 {
	return f.calls[opIndex(op)].Load()
}

// Unwrap returns the wrapped store.
func (f *Failing) Unwrap() vault.Store {
	return f.store
}

// check counts n requests of op and returns the error set for it.
func (f *Failing) check(op Op, n int) error {
	i := opIndex(op)
	f.calls[i].Add(int64(n))
	if err := f.errs[i].Load(); err != nil {
		return fmt.Errorf("%s (injected by vaulttest.Failing): %w", op, *err)
	}
	return nil
}

// opIndex returns the index of a single operation in the arrays of Failing.
func opIndex(op Op) int {
	if bits.OnesCount(uint(op)) != 1 || op > OpAll {
		panic(fmt.Sprintf("vaulttest: %v is not a single operation", op))
	}
	return bits.TrailingZeros(uint(op))
}

// Create calls the wrapped store unless creates fail.
func (f *Failing) Create(ctx context.Context, obj vault.NewObject) (vault.Metadata, error) {
	if err := f.check(OpCreate, 1); err != nil {
		return vault.Metadata{}, err
	}
	return f.store.Create(ctx, obj)
}

// Read calls the wrapped store unless reads fail.
func (f *Failing) Read(ctx context.Context, id string) (vault.Object, error) {
	if err := f.check(OpRead, 1); err != nil {
		return vault.Object{}, err
	}
	return f.store.Read(ctx, id)
}

// Describe calls the wrapped store unless describes fail.
func (f *Failing) Describe(ctx context.Context, id string) (vault.Metadata, error) {
	if err := f.check(OpDescribe, 1); err != nil {
		return vault.Metadata{}, err
	}
	return f.store.Describe(ctx, id)
}

// Update calls the wrapped store unless updates fail.
func (f *Failing) Update(ctx context.Context, id string, value []byte,
	versionCheck string) (vault.Metadata, error) {
	if err := f.check(OpUpdate, 1); err != nil {
		return vault.Metadata{}, err
	}
	return f.store.Update(ctx, id, value, versionCheck)
}

// Delete calls the wrapped store unless deletes fail.
func (f *Failing) Delete(ctx context.Context, id string) error {
	if err := f.check(OpDelete, 1); err != nil {
		return err
	}
	return f.store.Delete(ctx, id)
}

// List calls the wrapped store unless lists fail.
func (f *Failing) List(ctx context.Context, prefix string) ([]vault.Metadata, error) {
	if err := f.check(OpList, 1); err != nil {
		return nil, err
	}
	return f.store.List(ctx, prefix)
}

// CreateBatch fails as a whole when creates fail, and otherwise calls vault.CreateAll on
// the wrapped store.
func (f *Failing) CreateBatch(ctx context.Context, objs []vault.NewObject) ([]vault.Metadata,
	error) {
	if err := f.check(OpCreate, len(objs)); err != nil {
		return nil, err
	}
	return vault.CreateAll(ctx, f.store, objs)
}

// DescribeBatch returns the error for every ID when describes fail, and otherwise calls
// vault.DescribeAll on the wrapped store.
func (f *Failing) DescribeBatch(ctx context.Context, ids []string) ([]vault.Metadata, []error) {
	if err := f.check(OpDescribe, len(ids)); err != nil {
		return make([]vault.Metadata, len(ids)), vault.BatchErrors(err, len(ids))
	}
	return vault.DescribeAll(ctx, f.store, ids)
}

// ReadBatch returns the error for every ID when reads fail, and otherwise calls
// vault.ReadAll on the wrapped store.
func (f *Failing) ReadBatch(ctx context.Context, ids []string) ([]vault.Object, []error) {
	if err := f.check(OpRead, len(ids)); err != nil {
		return make([]vault.Object, len(ids)), vault.BatchErrors(err, len(ids))
	}
	return vault.ReadAll(ctx, f.store, ids)
}

// Interface guards.
var (
	_ vault.Store   = (*Failing)(nil)
	_ vault.Batcher = (*Failing)(nil)
)
