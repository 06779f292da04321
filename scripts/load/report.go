package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// report collects the results of a run and prints them as Markdown.
type report struct {
	opts     options
	started  time.Time
	loadFrom string
	loadTo   string
	closed   []result
	halfRate []result
	hwmA     int64
	hwmB     int64
}

func newReport(o options) *report {
	return &report{opts: o, started: time.Now(), loadFrom: loadAverage()}
}

func (r *report) add(res result)         { r.closed = append(r.closed, res) }
func (r *report) addHalfRate(res result) { r.halfRate = append(r.halfRate, res) }

// finish records the state of the machine and the Caddys at the end of the run.
func (r *report) finish(c *cluster) {
	r.loadTo = loadAverage()
	r.hwmA, _ = c.a.memory("VmHWM")
	r.hwmB, _ = c.b.memory("VmHWM")
}

// medianOf returns the median of f over rounds.
func medianOf(rounds []round, f func(round) float64) float64 {
	values := make([]float64, len(rounds))
	for i, r := range rounds {
		values[i] = f(r)
	}
	return median(values)
}

func (res result) throughputA() float64 {
	return medianOf(res.a, func(r round) float64 { return r.throughput() })
}

func (res result) throughputB() float64 {
	return medianOf(res.b, func(r round) float64 { return r.throughput() })
}

func millis(q float64) func(round) float64 {
	return func(r round) float64 { return float64(r.quantile(q)) / float64(time.Millisecond) }
}

func cpuMicros(r round) float64 { return float64(r.cpuPerRequest()) / float64(time.Microsecond) }

func peakMiB(r round) float64 { return float64(r.peakRSS) / (1 << 20) }

func peakAnonMiB(r round) float64 { return float64(r.peakAnon) / (1 << 20) }

func errorCount(rounds []round) (n int, first string) {
	for _, r := range rounds {
		n += r.errors
		if first == "" {
			first = r.firstErr
		}
	}
	return n, first
}

func (r *report) print(w io.Writer) {
	out := bufio.NewWriter(w)
	defer out.Flush()

	rounds := "rounds"
	if r.opts.rounds == 1 {
		rounds = "round"
	}
	fmt.Fprintf(out, "Run of %s: %d %s of %s per Caddy and scenario, %d connections, warm-up %s.\n",
		r.started.UTC().Format(time.RFC3339), r.opts.rounds, rounds, r.opts.duration,
		r.opts.connections, r.opts.warmup)
	fmt.Fprintf(out, "Machine: %d CPUs (%s), load average %s at the start and %s at the end.\n\n",
		runtime.NumCPU(), cpuModel(), r.loadFrom, r.loadTo)

	fmt.Fprintln(out, "| scenario | A req/s | B req/s | B/A | A p50 ms | B p50 ms | A p99 ms | B p99 ms | p99 B/A | A CPU µs/req | B CPU µs/req | target | met |")
	fmt.Fprintln(out, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
	for _, res := range r.closed {
		r.printClosed(out, res)
	}

	fmt.Fprintln(out, "\n| scenario | A read+write syscalls/req | B read+write syscalls/req |")
	fmt.Fprintln(out, "| --- | ---: | ---: |")
	for _, res := range r.closed {
		perRequest := func(r round) float64 { return r.syscallsPerRequest() }
		fmt.Fprintf(out, "| %s | %.1f | %.1f |\n", res.scenario.name,
			medianOf(res.a, perRequest), medianOf(res.b, perRequest))
	}

	if len(r.halfRate) > 0 {
		fmt.Fprintln(out, "\n| open loop | A p50 ms | B p50 ms | A p99 ms | B p99 ms | p99 growth ms | target | met |")
		fmt.Fprintln(out, "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |")
		for _, res := range r.halfRate {
			r.printHalfRate(out, res)
		}
	}

	for _, res := range r.closed {
		if res.scenario.sampleRSS {
			a := medianOf(res.a, peakMiB)
			b := medianOf(res.b, peakMiB)
			fmt.Fprintf(out, "\nPeak RSS in %s (median over rounds of the highest 50 ms sample): "+
				"A %.0f MiB, B %.0f MiB, of which anonymous (heap and stacks, without mapped "+
				"files such as the vault) A %.0f MiB, B %.0f MiB; target B ≤ %d MiB: %s.\n",
				res.scenario.name, a, b, medianOf(res.a, peakAnonMiB), medianOf(res.b, peakAnonMiB),
				maxRSS>>20, verdict(b <= maxRSS>>20))
		}
	}
	fmt.Fprintf(out, "\nPeak RSS over the whole run (VmHWM): A %.0f MiB, B %.0f MiB.\n",
		float64(r.hwmA)/(1<<20), float64(r.hwmB)/(1<<20))

	for _, res := range append(append([]result(nil), r.closed...), r.halfRate...) {
		for side, rounds := range map[string][]round{"A": res.a, "B": res.b} {
			if n, first := errorCount(rounds); n > 0 {
				fmt.Fprintf(out, "\n%s: %s had %d failed requests, the first: %s\n",
					res.scenario.name, side, n, first)
			}
		}
	}
}

func (r *report) printClosed(out io.Writer, res result) {
	s := res.scenario
	tputA, tputB := res.throughputA(), res.throughputB()
	p99A, p99B := medianOf(res.a, millis(0.99)), medianOf(res.b, millis(0.99))

	target, met := "", "-"
	if s.minRatio > 0 {
		target = fmt.Sprintf("≥ %.2fx", s.minRatio)
		ok := tputB/tputA >= s.minRatio
		if s.maxP99Ratio > 0 {
			target += fmt.Sprintf(", p99 ≤ %.2fx", s.maxP99Ratio)
			ok = ok && p99B/p99A <= s.maxP99Ratio
		}
		met = verdict(ok)
	}
	fmt.Fprintf(out, "| %s | %.0f | %.0f | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f | %.0f | %s | %s |\n",
		s.name, tputA, tputB, tputB/tputA,
		medianOf(res.a, millis(0.5)), medianOf(res.b, millis(0.5)), p99A, p99B, p99B/p99A,
		medianOf(res.a, cpuMicros), medianOf(res.b, cpuMicros), target, met)
}

func (r *report) printHalfRate(out io.Writer, res result) {
	p99A, p99B := medianOf(res.a, millis(0.99)), medianOf(res.b, millis(0.99))
	growth := p99B - p99A
	met := verdict(growth <= maxP99GrowthMillis)
	if p99A > res.closedP99A {
		// at half of its maximum rate A must not wait longer than at its maximum, so a
		// round where it does ran on a machine too busy for the growth to mean anything
		met = fmt.Sprintf("invalid: A's p99 exceeds its closed-loop p99 of %.2f ms", res.closedP99A)
	}
	fmt.Fprintf(out, "| %s | %.2f | %.2f | %.2f | %.2f | %.2f | ≤ %.1f ms | %s |\n",
		res.scenario.name, medianOf(res.a, millis(0.5)), medianOf(res.b, millis(0.5)),
		p99A, p99B, growth, maxP99GrowthMillis, met)
}

func verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "**no**"
}

// loadAverage returns the 1, 5 and 15 minute load averages from /proc/loadavg.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	fields := strings.Fields(string(data))
	if len(fields) < 3 {
		return "unknown"
	}
	return strings.Join(fields[:3], " ")
}

// cpuModel returns the model name of the first CPU in /proc/cpuinfo.
func cpuModel() string {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown model"
	}
	for line := range strings.Lines(string(data)) {
		if name, value, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return "unknown model"
}
