package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/caddyserver/caddy/v2"

	"github.com/piivault/piivault/proxy"
	"github.com/piivault/piivault/vault/vaulttest"
)

// The collectors are shared by every test of the package, so these tests compare the
// values after their requests with the values before.

// histogramCount returns how many observations a histogram holds.
func histogramCount(t *testing.T, h prometheus.Observer) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func value(action, outcome string) float64 {
	return testutil.ToFloat64(valuesTotal.WithLabelValues(action, outcome))
}

func TestMetricsCountValues(t *testing.T) {
	s, upstream := tokenizeEcho(t, `
		tokenize $.email $.phone
		reveal $.email $.phone`)
	tokenized, revealed := value("tokenize", "ok"), value("reveal", "ok")
	creates := histogramCount(t, storeCallDuration.WithLabelValues("create", "ok"))
	reads := histogramCount(t, storeCallDuration.WithLabelValues("read", "ok"))
	requestBytes := testutil.ToFloat64(rewrittenBytes.WithLabelValues("request"))
	responseBytes := testutil.ToFloat64(rewrittenBytes.WithLabelValues("response"))

	res := postJSON(s, `{"email": "alice@example.com", "phone": "+1 555 0100"}`)
	if res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	forwarded := upstream.received()[0].body

	if got := value("tokenize", "ok") - tokenized; got != 2 {
		t.Errorf("tokenize ok grew by %v, want 2", got)
	}
	if got := value("reveal", "ok") - revealed; got != 2 {
		t.Errorf("reveal ok grew by %v, want 2", got)
	}
	if got := histogramCount(t, storeCallDuration.WithLabelValues("create", "ok")) - creates; got != 1 {
		t.Errorf("create calls grew by %d, want 1 batch", got)
	}
	if got := histogramCount(t, storeCallDuration.WithLabelValues("read", "ok")) - reads; got != 1 {
		t.Errorf("read calls grew by %d, want 1 batch", got)
	}
	if got := testutil.ToFloat64(rewrittenBytes.WithLabelValues("request")) - requestBytes; got != float64(len(forwarded)) {
		t.Errorf("request bytes grew by %v, want %d", got, len(forwarded))
	}
	if got := testutil.ToFloat64(rewrittenBytes.WithLabelValues("response")) - responseBytes; got != float64(len(res.body)) {
		t.Errorf("response bytes grew by %v, want %d", got, len(res.body))
	}
}

func TestMetricsCountDeniedAndKept(t *testing.T) {
	s, upstream := tokenizeEcho(t, `
		tokenize $.email
		reveal $.email $.other`)
	res := postJSON(s, `{"email": "alice@example.com"}`)
	id := string(upstream.received()[0].body)
	kept, denied := value("tokenize", "kept"), value("reveal", "denied")

	// the client sends its own ID back, and the upstream adds an ID it cannot own
	upstream.replyJSON(`{"other": "secret_00000000000000000000000000000000"}`)
	res = postJSON(s, id)
	if res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}

	if got := value("tokenize", "kept") - kept; got != 1 {
		t.Errorf("tokenize kept grew by %v, want 1", got)
	}
	if got := value("reveal", "denied") - denied; got != 1 {
		t.Errorf("reveal denied grew by %v, want 1", got)
	}
}

func TestMetricsCountFailures(t *testing.T) {
	upstream := newRecordingUpstream(t)
	s := mustStartCaddy(t, failingGlobals, fmt.Sprintf(`
	pii_vault {
		context organization_id {http.request.header.X-Organization-Id}
		tokenize $.email $.phone
	}
	reverse_proxy %s`, upstream.hostPort()))
	t.Cleanup(failing.Reset)
	failed := value("tokenize", "failed")
	createErrors := histogramCount(t, storeCallDuration.WithLabelValues("create", "error"))
	problems503 := testutil.ToFloat64(problemsTotal.WithLabelValues("503"))
	problems415 := testutil.ToFloat64(problemsTotal.WithLabelValues("415"))

	failing.Fail(vaulttest.OpCreate, errors.New("disk on fire"))
	res := postJSON(s, `{"email": "alice@example.com", "phone": "+1 555 0100"}`)
	if res.status != 503 {
		t.Fatalf("status %d, want 503: %s", res.status, res.body)
	}
	res = s.do("POST", "/", `{}`, "Content-Type: text/plain", "X-Organization-Id: org_a")
	if res.status != 415 {
		t.Fatalf("status %d, want 415: %s", res.status, res.body)
	}

	if got := value("tokenize", "failed") - failed; got != 2 {
		t.Errorf("tokenize failed grew by %v, want 2", got)
	}
	if got := histogramCount(t, storeCallDuration.WithLabelValues("create", "error")) - createErrors; got != 1 {
		t.Errorf("failed create calls grew by %d, want 1", got)
	}
	if got := testutil.ToFloat64(problemsTotal.WithLabelValues("503")) - problems503; got != 1 {
		t.Errorf("problems with code 503 grew by %v, want 1", got)
	}
	if got := testutil.ToFloat64(problemsTotal.WithLabelValues("415")) - problems415; got != 1 {
		t.Errorf("problems with code 415 grew by %v, want 1", got)
	}
}

// provisionRedact provisions a handler that redacts $.ssn in a new config context, as
// a config load or a reload does, and returns it with the context's registry.
func provisionRedact(t *testing.T) (*Handler, *prometheus.Registry) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)

	h := &Handler{Response: proxy.Phase{Redact: []string{"$.ssn"}}}
	if err := h.Provision(ctx); err != nil {
		t.Fatalf("provisioning: %v", err)
	}
	return h, ctx.GetMetricsRegistry()
}

// serveRedact sends one response with an SSN through h.
func serveRedact(t *testing.T, h *Handler) {
	t.Helper()
	next := nextHandler(func(w http.ResponseWriter, r *http.Request) error {
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write([]byte(`{"ssn": "123-45-6789"}`))
		return err
	})
	rec := httptest.NewRecorder()
	if err := h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil), next); err != nil {
		t.Fatal(err)
	}
	if rec.Body.String() != `{"ssn": null}` {
		t.Fatalf("body %s, want the SSN redacted", rec.Body)
	}
}

type nextHandler func(w http.ResponseWriter, r *http.Request) error

func (f nextHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) error { return f(w, r) }

// gathered returns the value of values_total{action,outcome} in reg.
func gathered(t *testing.T, reg prometheus.Gatherer, action, outcome string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "caddy_pii_vault_values_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["action"] == action && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("registry has no caddy_pii_vault_values_total{action=%q,outcome=%q}", action, outcome)
	return 0
}

func TestMetricsSurviveReload(t *testing.T) {
	first, firstReg := provisionRedact(t)
	serveRedact(t, first)
	before := gathered(t, firstReg, "redact", "ok")

	// a reload provisions new handlers with a new registry; two handlers register twice
	second, secondReg := provisionRedact(t)
	if err := (&Handler{}).Provision(caddy.Context{}); err != nil {
		t.Fatalf("provisioning without a registry: %v", err)
	}
	serveRedact(t, second)
	serveRedact(t, first) // the old config may still finish a request

	if got := gathered(t, secondReg, "redact", "ok"); got != before+2 {
		t.Errorf("after the reload the count is %v, want %v", got, before+2)
	}
}

func TestMetricsNamesAndLabels(t *testing.T) {
	_, reg := provisionRedact(t)
	problems, err := testutil.GatherAndLint(reg,
		"caddy_pii_vault_values_total", "caddy_pii_vault_store_call_duration_seconds",
		"caddy_pii_vault_rewritten_bytes_total", "caddy_pii_vault_problems_total")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("metric %s: %s", p.Metric, p.Text)
	}

	// labels with a tenant, an ID or a value would grow without bound and leak data
	allowed := map[string]bool{"action": true, "outcome": true, "operation": true,
		"result": true, "phase": true, "code": true}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "caddy_pii_vault_") {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if !allowed[l.GetName()] {
					t.Errorf("metric %s has label %s", f.GetName(), l.GetName())
				}
			}
		}
	}
}
