package proxy

import (
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/piivault/piivault/vault"
	"github.com/piivault/piivault/vault/emulator"
	"github.com/piivault/piivault/vault/local"
	"github.com/piivault/piivault/vault/workos"
)

// emulatorLatency is the latency that BenchmarkWorkOSRoundTrips adds to every vault
// call, so that the time of a request counts its round trips.
const emulatorLatency = 30 * time.Millisecond

// BenchmarkWorkOSRoundTrips measures the latency that a 20-value body adds through the
// workos store, against the emulator with 30 ms per call, in round trips: p50 latency
// divided by 30 ms. Cold reveals use a store with an empty metadata cache. The store
// runs with its default rate limit, whose burst admits the calls of one request at once.
//
//	go test -run '^$' -bench WorkOSRoundTrips -benchtime 20x ./proxy/
func BenchmarkWorkOSRoundTrips(b *testing.B) {
	dir := b.TempDir()
	key, _, err := local.LoadOrCreateKeyFile(filepath.Join(dir, "emulator.key"))
	if err != nil {
		b.Fatal(err)
	}
	backing, err := local.Open(filepath.Join(dir, "emulator.db"), key, local.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer backing.Close()
	emu := emulator.New(backing, "key")
	srv := httptest.NewServer(emu)
	defer srv.Close()
	emu.SetLatency(emulatorLatency)

	newStore := func() vault.Store {
		s, err := workos.New(workos.Config{APIKey: "key", Endpoint: srv.URL})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		return s
	}
	paths := make([]string, 20)
	fields := make([]string, 20)
	for i := range paths {
		paths[i] = fmt.Sprintf("$.f%d", i)
		fields[i] = fmt.Sprintf(`"f%d": "value %d"`, i, i)
	}
	body := "{" + strings.Join(fields, ", ") + "}"

	var tokenize, cold, warm []time.Duration
	writer := newTestHandler(b, newStore(), Phase{Tokenize: paths}, Phase{})
	for b.Loop() {
		u := &upstream{}
		start := time.Now()
		post(writer.Wrap(u), "org_a", body)
		tokenize = append(tokenize, time.Since(start))

		reader := newTestHandler(b, newStore(), Phase{}, Phase{Reveal: paths})
		for _, out := range []*[]time.Duration{&cold, &warm} {
			start = time.Now()
			rec := post(reader.Wrap(&replay{body: u.body}), "org_a", "")
			*out = append(*out, time.Since(start))
			if !strings.Contains(rec.Body.String(), "value 19") {
				b.Fatalf("reveal failed: %s", rec.Body)
			}
		}
	}

	b.ReportMetric(roundTrips(tokenize), "tokenize-RT")
	b.ReportMetric(roundTrips(cold), "reveal-cold-RT")
	b.ReportMetric(roundTrips(warm), "reveal-warm-RT")
}

// roundTrips returns the median of ds in units of emulatorLatency.
func roundTrips(ds []time.Duration) float64 {
	slices.Sort(ds)
	return float64(ds[len(ds)/2]) / float64(emulatorLatency)
}
