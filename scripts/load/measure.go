package main

import (
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// request is the method, path and body of every request of a scenario.
type request struct {
	method string
	path   string
	body   []byte
}

// load is the pacing of a round. With rate zero, each connection sends its next request
// as soon as it has the last response (closed loop). Otherwise requests start at rate
// per second, whatever their latency (open loop).
type load struct {
	connections int
	rate        int
	duration    time.Duration
}

// round is the result of one round against one Caddy.
type round struct {
	requests  int
	errors    int
	firstErr  string
	elapsed   time.Duration
	latencies []time.Duration // of the successful requests, sorted
	cpu       time.Duration   // CPU time that Caddy used
	syscalls  int64           // read and write system calls that Caddy made
	peakRSS   int64           // highest resident set seen, when sampled
	peakAnon  int64           // highest anonymous part of it (heap, stacks), without mapped files
}

func (r round) throughput() float64 {
	return float64(len(r.latencies)) / r.elapsed.Seconds()
}

// quantile returns the q-quantile of the latencies, by the nearest-rank method.
func (r round) quantile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(q*float64(len(r.latencies))+0.5) - 1
	return r.latencies[min(max(i, 0), len(r.latencies)-1)]
}

// cpuPerRequest returns Caddy's CPU time per successful request.
func (r round) cpuPerRequest() time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	return r.cpu / time.Duration(len(r.latencies))
}

// syscallsPerRequest returns Caddy's read and write system calls per successful request.
func (r round) syscallsPerRequest() float64 {
	if len(r.latencies) == 0 {
		return 0
	}
	return float64(r.syscalls) / float64(len(r.latencies))
}

// attack sends req to the Caddy at base under l, and measures the round. With
// sampleRSS, it reads Caddy's resident set every 50 ms.
func attack(caddy *process, base string, req request, l load, sampleRSS bool) (round, error) {
	target := vegeta.Target{
		Method: req.method,
		URL:    base + req.path,
		Body:   req.body,
		Header: http.Header{"X-Organization-Id": {"org_bench"}},
	}
	if req.body != nil {
		target.Header.Set("Content-Type", "application/json")
	}
	attacker := vegeta.NewAttacker(
		vegeta.Workers(uint64(l.connections)),
		vegeta.MaxWorkers(uint64(l.connections)),
		vegeta.Connections(l.connections),
		vegeta.MaxConnections(l.connections),
		vegeta.KeepAlive(true),
		vegeta.Timeout(30*time.Second),
		vegeta.MaxBody(0), // drain responses without keeping them
	)

	cpuBefore, err := caddy.cpuTime()
	if err != nil {
		return round{}, err
	}
	callsBefore, err := caddy.syscalls()
	if err != nil {
		return round{}, err
	}
	stopSampling, peak, peakAnon := sampleMemory(caddy, sampleRSS)

	var r round
	start := time.Now()
	results := attacker.Attack(vegeta.NewStaticTargeter(target),
		vegeta.ConstantPacer{Freq: l.rate, Per: time.Second}, l.duration, "")
	for res := range results {
		r.requests++
		if res.Error != "" || res.Code < 200 || res.Code >= 300 {
			r.errors++
			if r.firstErr == "" {
				r.firstErr = fmt.Sprintf("status %d: %s", res.Code, res.Error)
			}
			continue
		}
		r.latencies = append(r.latencies, res.Latency)
	}
	r.elapsed = time.Since(start)

	stopSampling()
	r.peakRSS, r.peakAnon = *peak, *peakAnon
	cpuAfter, err := caddy.cpuTime()
	if err != nil {
		return round{}, err
	}
	r.cpu = cpuAfter - cpuBefore
	callsAfter, err := caddy.syscalls()
	if err != nil {
		return round{}, err
	}
	r.syscalls = callsAfter - callsBefore
	slices.Sort(r.latencies)
	return r, nil
}

// sampleMemory reads p's resident set every 50 ms until the returned stop is called,
// and keeps the highest values of all of it and of its anonymous part. The rest of it
// is mapped files, such as the vault file that bbolt maps.
// NOTE: a peak shorter than 50 ms can fall between two samples; VmHWM in the report has
// no such gap but covers the process's whole life.
func sampleMemory(p *process, enabled bool) (stop func(), peak, peakAnon *int64) {
	peak, peakAnon = new(int64), new(int64)
	if !enabled {
		return func() {}, peak, peakAnon
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if rss, err := p.memory("VmRSS"); err == nil && rss > *peak {
				*peak = rss
			}
			if anon, err := p.memory("RssAnon"); err == nil && anon > *peakAnon {
				*peakAnon = anon
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return func() {
		close(done)
		wg.Wait()
	}, peak, peakAnon
}

// median returns the median of values, the mean of the middle two for an even count.
func median(values []float64) float64 {
	if len(values) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(values))
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
