package emulator

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Fault describes failures that the emulator injects into the calls it serves.
type Fault struct {
	// Endpoint limits the fault to one endpoint. Empty matches every endpoint.
	Endpoint Endpoint

	// Count is the number of matching calls that fail, after which the fault is removed.
	// Zero means that every matching call fails with probability Fraction, until
	// ClearFaults.
	Count int

	// Fraction is the probability that a matching call fails, when Count is zero. Zero
	// with a zero Count means that every matching call fails.
	Fraction float64

	// Status is the HTTP status of the failed call: 429 or a 5xx status. Default 500.
	Status int

	// RetryAfter is sent in the Retry-After header of a 429 or 503, rounded up to whole
	// seconds as the header requires. Zero sends no header.
	RetryAfter time.Duration

	// Hang makes the call send no response until the client gives up or Close is called,
	// in place of Status.
	Hang bool

	// AfterStore runs the call against the store before failing it, so that the call
	// takes effect and the client loses its response.
	AfterStore bool
}

// Call records one call that the emulator received with a valid API key.
type Call struct {
	Endpoint Endpoint
	At       time.Time // arrival, before injected latency
}

// maxCallLog bounds the calls that Calls returns, so that a long-running emulator does
// not grow without limit.
const maxCallLog = 100_000

type callState struct {
	latency time.Duration
	faults  []*Fault
	counts  map[Endpoint]int
	log     []Call
}

func newCallState() callState {
	return callState{counts: make(map[Endpoint]int)}
}

// SetLatency adds d to every call before it is served or failed.
func (e *Emulator) SetLatency(d time.Duration) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls.latency = d
}

// Inject adds a fault. A call takes the first matching fault, in the order injected.
func (e *Emulator) Inject(f Fault) {
	if f.Status == 0 {
		f.Status = http.StatusInternalServerError
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls.faults = append(e.calls.faults, &f)
}

// ClearFaults removes every fault and the added latency.
func (e *Emulator) ClearFaults() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls.faults = nil
	e.calls.latency = 0
}

// CallCount returns the number of calls to ep, failed ones included, since New or
// ResetCalls.
func (e *Emulator) CallCount(ep Endpoint) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls.counts[ep]
}

// TotalCalls returns the number of calls to every endpoint since New or ResetCalls.
func (e *Emulator) TotalCalls() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	total := 0
	for _, n := range e.calls.counts {
		total += n
	}
	return total
}

// Calls returns the most recent calls, at most 100,000, oldest first.
func (e *Emulator) Calls() []Call {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Call(nil), e.calls.log...)
}

// ResetCalls sets every counter to zero and empties the call log.
func (e *Emulator) ResetCalls() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls.counts = make(map[Endpoint]int)
	e.calls.log = nil
}

// beginCall counts a call to ep and returns the latency to add and the fault to apply.
func (e *Emulator) beginCall(ep Endpoint) (time.Duration, *Fault) {
	e.mu.Lock()
	defer e.mu.Unlock()

	s := &e.calls
	s.counts[ep]++
	if len(s.log) == maxCallLog {
		s.log = append(s.log[:0], s.log[maxCallLog/2:]...)
	}
	s.log = append(s.log, Call{Endpoint: ep, At: time.Now()})

	return s.latency, s.takeFault(ep)
}

func (s *callState) takeFault(ep Endpoint) *Fault {
	for i, f := range s.faults {
		if f.Endpoint != "" && f.Endpoint != ep {
			continue
		}

		switch {
		case f.Count > 0:
			f.Count--
			if f.Count == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
			c := *f
			return &c
		case f.Fraction > 0:
			if rand.Float64() < f.Fraction {
				c := *f
				return &c
			}
		default:
			c := *f
			return &c
		}
	}
	return nil
}

// sleep waits d, and reports false when the client gives up first.
func (e *Emulator) sleep(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}

	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-e.closed:
		return true
	}
}

func (e *Emulator) writeFault(w http.ResponseWriter, r *http.Request, f *Fault) {
	if f.Hang {
		select {
		case <-r.Context().Done():
		case <-e.closed:
			writeError(w, http.StatusServiceUnavailable, "server_error", "emulator closed")
		}
		return
	}

	if f.RetryAfter > 0 && (f.Status == http.StatusTooManyRequests || f.Status == http.StatusServiceUnavailable) {
		seconds := (f.RetryAfter + time.Second - 1) / time.Second
		w.Header().Set("Retry-After", strconv.FormatInt(int64(seconds), 10))
	}

	if f.Status == http.StatusTooManyRequests {
		writeError(w, f.Status, "rate_limit_exceeded", "too many requests (injected fault)")
		return
	}
	writeError(w, f.Status, "server_error", "server error (injected fault)")
}
