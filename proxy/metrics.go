package proxy

import "time"

// Metrics receives the counts and timings of a Handler's work, for a monitoring system
// such as Prometheus. Its methods run on the request path, concurrently, so they must
// be cheap and safe for concurrent use. Their arguments are drawn from small fixed sets
// and never carry a tenant, an object ID or a value.
type Metrics interface {
	// CountValues adds n values that one action processed with one outcome. action is
	// "tokenize", "reveal", "mask", "describe", "redact" or "erase", and outcome is one
	// of the Outcome constants.
	CountValues(action, outcome string, n int)

	// ObserveStoreCall records one batch call to the vault store: its operation
	// ("create", "upsert", "describe", "read" or "delete"), how long it took and whether
	// it failed.
	ObserveStoreCall(operation string, d time.Duration, failed bool)

	// CountRewrittenBytes adds the size of a body that was rewritten in phase
	// ("request" or "response"), in bytes as sent on.
	CountRewrittenBytes(phase string, n int)

	// CountProblem counts a request that the Handler rejected with a problem response,
	// by HTTP status.
	CountProblem(status int)
}

// Outcomes of a value, for Metrics.CountValues.
const (
	// OutcomeOK is a value that was rewritten: tokenized, revealed, masked, described
	// or redacted.
	OutcomeOK = "ok"

	// OutcomeKept is a value that tokenize left unchanged, because it already is an
	// object ID of the request's tenant.
	OutcomeKept = "kept"

	// OutcomeDenied is a value that reveal, mask or describe must not reveal: an ID of
	// another tenant, an unknown ID or a value that is no ID.
	OutcomeDenied = "denied"

	// OutcomeFailed is a value of a body that piivault rejected because the vault
	// failed, so no value of that body was rewritten.
	OutcomeFailed = "failed"
)

// outcomes indexes the outcome names, for valueCounts.
var outcomes = [...]string{OutcomeOK, OutcomeKept, OutcomeDenied, OutcomeFailed}

const (
	outcomeOK = iota
	outcomeKept
	outcomeDenied
	outcomeFailed
)

// valueCounts counts the values of one body by action and outcome, so that a body adds
// to each metric once however many values it has.
type valueCounts [len(actionNames)][len(outcomes)]int

// flush sends the counts to m.
func (c *valueCounts) flush(m Metrics) {
	for a := range c {
		for o, n := range c[a] {
			if n > 0 {
				m.CountValues(actionNames[a], outcomes[o], n)
			}
		}
	}
}

// add counts one value of target t with outcome o.
func (c *valueCounts) add(t target, o int) { c[t.rule.action][o]++ }

// countValues sends the value counts of one body to the Handler's metrics. When err is
// set, no value of the body was rewritten, so every target counts as failed.
func (res *resolver) countValues(targets []target, err error) {
	if err != nil {
		res.counts = valueCounts{}
		for _, t := range targets {
			res.counts.add(t, outcomeFailed)
		}
	}
	res.counts.flush(res.h.metrics)
}

// storeFailed reports whether a batch call failed as a whole or for one ID, as opposed
// to IDs that are unknown.
func storeFailed(errs []error) bool {
	for _, err := range errs {
		if err != nil && !isUnknown(err) {
			return true
		}
	}
	return false
}

// noMetrics is the Metrics of a Handler whose Config has none.
type noMetrics struct{}

func (noMetrics) CountValues(string, string, int)              {}
func (noMetrics) ObserveStoreCall(string, time.Duration, bool) {}
func (noMetrics) CountRewrittenBytes(string, int)              {}
func (noMetrics) CountProblem(int)                             {}
