package caddymodule

import (
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// TestMixedLoad sends a few thousand valid and invalid requests over concurrent
// connections through one Caddy. Then it checks that no plaintext was forwarded, that
// every forwarded object is readable, and that the heap stayed flat in the second half.
func TestMixedLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test skipped with -short")
	}
	upstream := newRecordingUpstream(t)
	s := mustStartCaddy(t, localStoreGlobals(t.TempDir()), fmt.Sprintf(`
	pii_vault {
		context organization_id {http.request.header.X-Organization-Id}
		tokenize $.email $.profile.phone
		reveal $.email $.profile.phone
		max_body_size 8KiB
	}
	reverse_proxy %s`, upstream.hostPort()))

	const total, workers = 2400, 16
	bodies := []func(i int) (string, string){
		func(i int) (string, string) {
			return fmt.Sprintf(`{"email": "load%d@example.com", "profile": {"phone": "+1 555 %04d"}}`, i, i%10000), "application/json"
		},
		func(i int) (string, string) {
			return fmt.Sprintf(`{"email": "load%d@example.com",}`, i), "application/json"
		},
		func(i int) (string, string) {
			return fmt.Sprintf(`{"email": "x", "email": "load%d@example.com"}`, i), "application/json"
		},
		func(i int) (string, string) { return fmt.Sprintf(`{"email": "load%d@example.com"}`, i), "text/plain" },
		func(i int) (string, string) {
			return fmt.Sprintf(`{"email": "load%d@example.com", "pad": "%s"}`, i, strings.Repeat("x", 9000)), "application/json"
		},
	}

	var next atomic.Int64
	var mid runtime.MemStats
	var midOnce sync.Once
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1))
				if i > total {
					return
				}
				if i == total/2 {
					midOnce.Do(func() { runtime.GC(); runtime.ReadMemStats(&mid) })
				}
				body, ctype := bodies[i%len(bodies)](i)
				res := s.do("POST", "/", body, "Content-Type: "+ctype, "X-Organization-Id: org_a")
				if i%len(bodies) == 0 && res.status != 200 {
					t.Errorf("valid request %d: status %d", i, res.status)
				}
				if i%len(bodies) != 0 && res.status < 400 {
					t.Errorf("invalid request %d: status %d", i, res.status)
				}
			}
		})
	}
	wg.Wait()

	var end runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&end)
	if growth := int64(end.HeapInuse) - int64(mid.HeapInuse); growth > 32<<20 {
		t.Errorf("heap grew by %d MiB in the second half of the run", growth>>20)
	}

	forwarded := upstream.received()
	if want := total / len(bodies); len(forwarded) != want {
		t.Errorf("upstream received %d requests, want %d", len(forwarded), want)
	}
	for _, r := range forwarded {
		if strings.Contains(string(r.body), "@example.com") || strings.Contains(string(r.body), "+1 555") {
			t.Fatalf("upstream received plaintext: %s", r.body)
		}
	}

	// every forwarded object reveals again
	for _, r := range forwarded {
		upstream.replyJSON(string(r.body))
		res := s.do("GET", "/", "", "X-Organization-Id: org_a")
		if !strings.Contains(string(res.body), "@example.com") || !strings.Contains(string(res.body), "+1 555") {
			t.Errorf("objects of %s did not reveal: %s", r.body, res.body)
		}
	}
}
