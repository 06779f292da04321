package local

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/piivault/piivault/vault"
)

// benchBatch is the number of values per request in the benchmarks, about what one JSON
// body with a few tokenized fields sends.
const benchBatch = 10

// benchObjects returns a batch of benchBatch new objects with unique names.
func benchObjects(next *atomic.Int64) []vault.NewObject {
	objs := make([]vault.NewObject, benchBatch)
	for i := range objs {
		n := next.Add(1)
		objs[i] = vault.NewObject{
			Name:    fmt.Sprintf("bench/%d", n),
			Value:   []byte(`"alice@example.com"`),
			Context: vault.KeyContext{"organization_id": fmt.Sprintf("org_%d", n%8)},
		}
	}
	return objs
}

// BenchmarkCreateBatch10Parallel runs CreateBatch of 10 values from 32 goroutines, the
// case that group commit is for. One op is one request of 10 values.
func BenchmarkCreateBatch10Parallel(b *testing.B) {
	s := openTemp(b)
	ctx := context.Background()
	var next atomic.Int64

	// RunParallel starts parallelism × GOMAXPROCS goroutines
	b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
	before := s.commits.Load()
	writesBefore := pageWrites(s)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.CreateBatch(ctx, benchObjects(&next)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	commits := s.commits.Load() - before
	reportWrites(b, commits)
	if commits > 0 {
		// each page write is one pwrite system call, a cost that grows with the pages
		// that a commit dirties
		writes := pageWrites(s) - writesBefore
		b.ReportMetric(float64(writes)/float64(commits), "page-writes/commit")
	}
}

// BenchmarkCreateBatch10Serial runs CreateBatch of 10 values from one goroutine, so every
// request waits for its own commit.
func BenchmarkCreateBatch10Serial(b *testing.B) {
	s := openTemp(b)
	ctx := context.Background()
	var next atomic.Int64

	before := s.commits.Load()
	for b.Loop() {
		if _, err := s.CreateBatch(ctx, benchObjects(&next)); err != nil {
			b.Fatal(err)
		}
	}
	reportWrites(b, s.commits.Load()-before)
}

// reportWrites reports values per second and commits per request.
// pageWrites returns the number of pages that the store's commits have written.
func pageWrites(s *Store) int64 {
	stats := s.db.Stats()
	return stats.TxStats.GetWrite()
}

func reportWrites(b *testing.B, commits uint64) {
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "values/s")
	b.ReportMetric(float64(commits)/float64(b.N), "commits/op")
}

// BenchmarkReadBatch10 reads 10 values of two tenants in one call.
func BenchmarkReadBatch10(b *testing.B) {
	s, ids := benchReadSetup(b)
	ctx := context.Background()

	for b.Loop() {
		_, errs := s.ReadBatch(ctx, ids)
		if errs[0] != nil {
			b.Fatal(errs[0])
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "values/s")
}

// BenchmarkReadBatch10Parallel reads 10 values per call from GOMAXPROCS goroutines.
func BenchmarkReadBatch10Parallel(b *testing.B) {
	s, ids := benchReadSetup(b)
	ctx := context.Background()

	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, errs := s.ReadBatch(ctx, ids); errs[0] != nil {
				b.Error(errs[0])
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*benchBatch)/b.Elapsed().Seconds(), "values/s")
}

// BenchmarkDescribeBatch10 describes 10 objects in one call.
func BenchmarkDescribeBatch10(b *testing.B) {
	s, ids := benchReadSetup(b)
	ctx := context.Background()

	for b.Loop() {
		if _, errs := s.DescribeBatch(ctx, ids); errs[0] != nil {
			b.Fatal(errs[0])
		}
	}
}

// benchReadSetup creates one batch of objects and returns their IDs.
func benchReadSetup(b *testing.B) (*Store, []string) {
	s := openTemp(b)
	var next atomic.Int64
	metas, err := s.CreateBatch(context.Background(), benchObjects(&next))
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, len(metas))
	for i, meta := range metas {
		ids[i] = meta.ID
	}
	return s, ids
}

// BenchmarkCreateNewTenant creates the first object of a new tenant per op, so every op
// appends a key to the keyring and syncs it before the object's commit.
func BenchmarkCreateNewTenant(b *testing.B) {
	s := openTemp(b)
	ctx := context.Background()
	before := s.ring.writes.Load()

	for i := 0; b.Loop(); i++ {
		obj := vault.NewObject{
			Name:    fmt.Sprintf("new/%d", i),
			Value:   []byte(`"alice@example.com"`),
			Context: vault.KeyContext{"organization_id": fmt.Sprintf("org_%d", i)},
		}
		if _, err := s.Create(ctx, obj); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(s.ring.writes.Load()-before)/float64(b.N), "keyring-writes/op")
}

// BenchmarkEraseTenant1000Tenants erases one tenant of a store with 1,000 tenants per op,
// which rewrites the keyring, and creates the tenant's object again outside the timer.
func BenchmarkEraseTenant1000Tenants(b *testing.B) {
	s := openTemp(b)
	ctx := context.Background()
	objs := make([]vault.NewObject, 1000)
	for i := range objs {
		objs[i] = vault.NewObject{
			Name:    fmt.Sprintf("obj/%d", i),
			Value:   []byte(`"value"`),
			Context: vault.KeyContext{"organization_id": fmt.Sprintf("org_%d", i)},
		}
	}
	if _, err := s.CreateBatch(ctx, objs); err != nil {
		b.Fatal(err)
	}

	for i := 0; b.Loop(); i++ {
		obj := objs[i%len(objs)]
		if n, err := s.EraseTenant(ctx, obj.Context); err != nil || n != 1 {
			b.Fatalf("EraseTenant = %d, %v", n, err)
		}
		b.StopTimer()
		if _, err := s.Create(ctx, obj); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
