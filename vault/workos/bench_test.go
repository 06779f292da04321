package workos

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/piivault/piivault/vault/vaulttest"
)

// benchLatency is the latency that the emulator adds to every call in the benchmarks,
// about that of a WorkOS call from a nearby region.
const benchLatency = 30 * time.Millisecond

// benchBatch is the number of objects per batch.
const benchBatch = 20

// benchConfig lifts the rate limit out of the way, so that the benchmarks measure round
// trips and not the limit.
var benchConfig = Config{Rate: 1e6, Burst: 1000, MaxConcurrency: benchBatch}

// reportRoundTrips reports the time per batch in units of the emulator's latency.
func reportRoundTrips(b *testing.B) {
	perOp := float64(b.Elapsed()) / float64(b.N)
	b.ReportMetric(perOp/float64(benchLatency), "roundtrips/op")
}

// BenchmarkCreateBatch creates batches without a rate limit, and with the default rate
// of 90 calls per second, which caps a steady stream of batches of 20 at 4.5 per second.
func BenchmarkCreateBatch(b *testing.B) {
	configs := []struct {
		name string
		cfg  Config
	}{
		{"unlimited", benchConfig},
		{"default_rate", Config{MaxConcurrency: benchBatch}},
	}
	for _, c := range configs {
		b.Run(c.name, func(b *testing.B) {
			env := newTestEnv(b, vaulttest.NewMemory(), c.cfg)
			env.emu.SetLatency(benchLatency)
			ctx := context.Background()

			for i := 0; b.Loop(); i++ {
				objs := newObjects(fmt.Sprintf("bench%d", i), benchBatch)
				if _, err := env.store.CreateBatch(ctx, objs); err != nil {
					b.Fatal(err)
				}
			}
			reportRoundTrips(b)
		})
	}
}

// BenchmarkDescribeReadBatch describes a batch and then reads it, as the proxy does on
// reveal: cold with the metadata cache disabled, warm with it filled.
func BenchmarkDescribeReadBatch(b *testing.B) {
	env := newTestEnv(b, vaulttest.NewMemory(), benchConfig)
	ctx := context.Background()
	metas, err := env.store.CreateBatch(ctx, newObjects("reveal", benchBatch))
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, len(metas))
	for i, m := range metas {
		ids[i] = m.ID
	}
	env.emu.SetLatency(benchLatency)

	cold := benchConfig
	cold.MetadataCacheSize = -1
	stores := []struct {
		name  string
		store *Store
	}{
		{"cold", env.openStore(b, cold)},
		{"warm", env.store}, // the creates filled its cache
	}
	for _, s := range stores {
		b.Run(s.name, func(b *testing.B) {
			for b.Loop() {
				describeAndRead(b, s.store, ids)
			}
			reportRoundTrips(b)
		})
	}
}

func describeAndRead(b *testing.B, s *Store, ids []string) {
	ctx := context.Background()
	if _, errs := s.DescribeBatch(ctx, ids); firstError(errs) != nil {
		b.Fatal(firstError(errs))
	}
	if _, errs := s.ReadBatch(ctx, ids); firstError(errs) != nil {
		b.Fatal(firstError(errs))
	}
}

func firstError(errs []error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
