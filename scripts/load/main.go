// Command load measures piivault against plain Caddy: it starts an upstream, then the same
// caddy binary twice, A without the pii_vault handler and B with it, and sends the same
// requests to both in alternating rounds. It prints the medians, B's ratios to A and
// the targets as a Markdown report.
//
// Everything runs on 127.0.0.1 and ends after a bounded time: rounds × 2 × duration per
// scenario, plus warm-ups. The load generator is vegeta, as a library, in this process.
//
//	go -C scripts/load build -o ../../bin/load . && bin/load -caddy bin/caddy
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"
)

// options are the flags of a run.
type options struct {
	caddy       string
	rounds      int
	duration    time.Duration
	warmup      time.Duration
	connections int
	only        string
	keep        bool
	pprof       string
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "upstream" {
		if err := serveUpstream(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}

	var o options
	flag.StringVar(&o.caddy, "caddy", "bin/caddy", "the caddy binary with piivault, built by go build -o bin/caddy ./cmd/caddy")
	flag.IntVar(&o.rounds, "rounds", 3, "rounds per Caddy and scenario; the report shows medians")
	flag.DurationVar(&o.duration, "duration", 3*time.Second, "length of one round")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "unmeasured load per Caddy before each scenario")
	flag.IntVar(&o.connections, "connections", 32, "concurrent connections of the load generator")
	flag.StringVar(&o.only, "scenarios", "", "comma-separated scenarios to run; default all")
	flag.BoolVar(&o.keep, "keep", false, "keep the temporary directory with the Caddyfiles, logs and store")
	flag.StringVar(&o.pprof, "pprof", "", "directory for CPU and heap profiles of each Caddy, one per scenario, from its first round")
	flag.Parse()

	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "load:", err)
		os.Exit(1)
	}
}

// cluster is the processes of a run.
type cluster struct {
	upstream, a, b *process
	upstreamURL    string
	urlA, urlB     string
	adminA, adminB string // the admin endpoints, when profiling
}

func (c *cluster) stop() {
	for _, p := range []*process{c.a, c.b, c.upstream} {
		if p != nil {
			p.stop()
		}
	}
}

func run(o options) error {
	if _, err := os.Stat(o.caddy); err != nil {
		return fmt.Errorf("caddy binary: %w; build it with: go build -o bin/caddy ./cmd/caddy", err)
	}
	if o.pprof != "" {
		if err := os.MkdirAll(o.pprof, 0o755); err != nil {
			return fmt.Errorf("creating the profile directory: %w", err)
		}
	}
	dir, err := os.MkdirTemp("", "piivault-load-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(os.Stderr, "keeping", dir)
	} else {
		defer os.RemoveAll(dir)
	}

	c, err := startCluster(o.caddy, dir, o.pprof != "")
	if c != nil {
		defer c.stop()
		stopOnInterrupt(c, dir, o.keep)
	}
	if err != nil {
		return err
	}

	f, err := prepare(c.urlB, c.upstreamURL)
	if err != nil {
		return fmt.Errorf("preparing fixtures: %w", err)
	}

	rep := newReport(o)
	for _, s := range scenarios(f) {
		if o.only != "" && !strings.Contains(","+o.only+",", ","+s.name+",") {
			continue
		}
		fmt.Fprintf(os.Stderr, "scenario %s\n", s.name)
		res, err := runScenario(c, s, o, load{connections: o.connections, duration: o.duration})
		if err != nil {
			return fmt.Errorf("scenario %s: %w", s.name, err)
		}
		rep.add(res)

		if s.name == "reveal10" {
			if err := runHalfRate(c, s, o, res, rep); err != nil {
				return err
			}
		}
	}
	rep.finish(c)
	rep.print(os.Stdout)
	return nil
}

// runHalfRate runs the reveal scenario in open loop at half of A's maximum rate, where
// the added latency of B shows without queueing.
func runHalfRate(c *cluster, s scenario, o options, closed result, rep *report) error {
	rate := int(closed.throughputA() / 2)
	fmt.Fprintf(os.Stderr, "scenario %s at %d requests/s\n", s.name, rate)
	s.name += fmt.Sprintf(" at %d/s", rate)
	res, err := runScenario(c, s, o, load{connections: o.connections, rate: rate, duration: o.duration})
	if err != nil {
		return fmt.Errorf("scenario %s: %w", s.name, err)
	}
	res.closedP99A = medianOf(closed.a, millis(0.99))
	rep.addHalfRate(res)
	return nil
}

// startCluster starts the upstream and the two Caddys. It returns what it started even
// on error, so that the caller can stop it.
func startCluster(bin, dir string, admin bool) (*cluster, error) {
	c := &cluster{}
	up, addr, err := startUpstream()
	if err != nil {
		return nil, err
	}
	c.upstream, c.upstreamURL = up, "http://"+addr

	for _, side := range []struct {
		name, text string
		proc       **process
		url        *string
	}{{"A", caddyfileA, &c.a, &c.urlA}, {"B", caddyfileB, &c.b, &c.urlB}} {
		port, err := freePort()
		if err != nil {
			return c, err
		}
		cfg := caddyConfig{Port: port, Upstream: addr, Dir: dir, Admin: "off"}
		if admin {
			adminPort, err := freePort()
			if err != nil {
				return c, err
			}
			cfg.Admin = fmt.Sprintf("127.0.0.1:%d", adminPort)
			if side.name == "A" {
				c.adminA = "http://" + cfg.Admin
			} else {
				c.adminB = "http://" + cfg.Admin
			}
		}
		if *side.proc, *side.url, err = startCaddy(bin, side.name, side.text, cfg, dir); err != nil {
			return c, err
		}
	}
	return c, nil
}

// stopOnInterrupt stops the cluster and exits when the run is interrupted.
func stopOnInterrupt(c *cluster, dir string, keep bool) {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, os.Interrupt)
	go func() {
		<-signals
		c.stop()
		if !keep {
			os.RemoveAll(dir)
		}
		os.Exit(130)
	}()
}

// result holds the rounds of one scenario.
type result struct {
	scenario scenario
	a, b     []round

	// closedP99A is A's p99 in the closed-loop rounds of an open-loop scenario's
	// requests, in milliseconds, for the check that the machine kept A's rate
	closedP99A float64
}

// runScenario warms both Caddys up, then runs o.rounds rounds on each, in the order
// ABBA ABBA..., so that a drift of the machine's speed during the scenario affects
// both sides alike.
func runScenario(c *cluster, s scenario, o options, l load) (result, error) {
	res := result{scenario: s}
	warm := l
	warm.duration = o.warmup
	for _, side := range []struct {
		p   *process
		url string
	}{{c.a, c.urlA}, {c.b, c.urlB}} {
		if _, err := attack(side.p, side.url, s.req, warm, false); err != nil {
			return res, err
		}
	}

	for i := range 2 * o.rounds {
		useB := i%4 == 1 || i%4 == 2
		p, url, side, admin, done := c.a, c.urlA, "A", c.adminA, len(res.a)
		if useB {
			p, url, side, admin, done = c.b, c.urlB, "B", c.adminB, len(res.b)
		}
		finish := func() {}
		if o.pprof != "" && l.rate == 0 && done == 0 {
			finish = startProfile(admin, l.duration, filepath.Join(o.pprof, s.name+"-"+side))
		}
		r, err := attack(p, url, s.req, l, s.sampleRSS)
		finish()
		if err != nil {
			return res, err
		}
		if useB {
			res.b = append(res.b, r)
		} else {
			res.a = append(res.a, r)
		}
	}
	return res, nil
}

// startProfile starts a CPU profile of the Caddy whose admin endpoint is admin, for most
// of d, and returns the function that waits for it and then takes a heap profile. The
// profiles go to prefix.pprof and prefix.heap.pprof. A profile that fails is reported,
// and the round still counts.
func startProfile(admin string, d time.Duration, prefix string) (finish func()) {
	done := make(chan error, 1)
	seconds := max(1, int((d - 500*time.Millisecond).Seconds()))
	go func() {
		done <- fetchProfile(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", admin, seconds), prefix+".pprof")
	}()
	return func() {
		err := errors.Join(<-done, fetchProfile(admin+"/debug/pprof/heap", prefix+".heap.pprof"))
		if err != nil {
			fmt.Fprintf(os.Stderr, "profile %s: %v\n", prefix, err)
		}
	}
}

// fetchProfile saves the profile at url into file.
func fetchProfile(url, file string) error {
	res, err := http.Get(url)
	if err != nil {
		return fmt.Errorf("profiling: %w", err)
	}
	defer res.Body.Close()

	f, err := os.Create(file)
	if err != nil {
		return fmt.Errorf("profiling: %w", err)
	}
	_, err = io.Copy(f, res.Body)
	return errors.Join(err, f.Close())
}
