package caddymodule

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/caddyserver/caddy/v2"

	"github.com/piivault/piivault/proxy"
)

// The collectors exist once per process. Caddy gives every config load a fresh
// registry, so each Provision registers them again and a reload keeps their counts.
// Labels take values from small fixed sets: never a tenant, an object ID or a value.
var (
	valuesTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "pii_vault",
		Name:      "values_total",
		Help: "Values that pii_vault processed, by action (tokenize, reveal, mask, describe, " +
			"redact, erase) and outcome (ok, kept, denied, failed).",
	}, []string{"action", "outcome"})

	storeCallDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy",
		Subsystem: "pii_vault",
		Name:      "store_call_duration_seconds",
		Help:      "Duration of the batch calls that pii_vault made to the vault store, by operation and result.",
		// from tens of microseconds (a cached read of the local store) to seconds (a
		// remote store that retries)
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
	}, []string{"operation", "result"})

	rewrittenBytes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "pii_vault",
		Name:      "rewritten_bytes_total",
		Help:      "Size of the bodies that pii_vault rewrote, as sent on, by phase (request, response).",
	}, []string{"phase"})

	problemsTotal = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy",
		Subsystem: "pii_vault",
		Name:      "problems_total",
		Help:      "Requests that pii_vault answered itself with an error, by HTTP status code.",
	}, []string{"code"})
)

// registerMetrics registers the collectors with the registry of ctx's config, and
// returns the proxy.Metrics that feeds them, or nil when ctx has no registry.
func registerMetrics(ctx caddy.Context) (proxy.Metrics, error) {
	// a Context without a registry, such as the zero Context, turns the metrics off
	reg := ctx.GetMetricsRegistry()
	if reg == nil {
		return nil, nil
	}

	collectors := []prometheus.Collector{valuesTotal, storeCallDuration, rewrittenBytes, problemsTotal}
	for _, c := range collectors {
		// a config with several pii_vault handlers registers the same collectors again
		var already prometheus.AlreadyRegisteredError
		if err := reg.Register(c); err != nil && !errors.As(err, &already) {
			return nil, fmt.Errorf("registering metrics: %w", err)
		}
	}
	return promMetrics{}, nil
}

// promMetrics implements proxy.Metrics with the package's collectors.
type promMetrics struct{}

func (promMetrics) CountValues(action, outcome string, n int) {
	valuesTotal.WithLabelValues(action, outcome).Add(float64(n))
}

func (promMetrics) ObserveStoreCall(operation string, d time.Duration, failed bool) {
	result := "ok"
	if failed {
		result = "error"
	}
	storeCallDuration.WithLabelValues(operation, result).Observe(d.Seconds())
}

func (promMetrics) CountRewrittenBytes(phase string, n int) {
	rewrittenBytes.WithLabelValues(phase).Add(float64(n))
}

func (promMetrics) CountProblem(status int) {
	problemsTotal.WithLabelValues(strconv.Itoa(status)).Inc()
}

// Interface guard
var _ proxy.Metrics = promMetrics{}
