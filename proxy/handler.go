// Package proxy is piivault's net/http core. It reads and limits bodies, applies the
// tokenize, reveal, mask, redact, describe and erase rules of a route, calls the vault,
// and responds to failures itself, so that nothing it could not rewrite reaches the
// upstream or the client.
//
// The package does not import Caddy. Handler.ServeHTTP has the shape of a Caddy
// middleware, and Handler.Wrap adapts it to a plain http.Handler.
package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"slices"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/piivault/piivault/rules"
	"github.com/piivault/piivault/vault"
)

// DefaultMaxBodySize is the largest request or response body that a Handler reads when
// Config.MaxBodySize is zero: 1 MiB.
const DefaultMaxBodySize = 1 << 20

// DefaultMaxValues is the largest number of values of one body that go to the vault when
// Config.MaxValues is zero.
const DefaultMaxValues = 1000

// Config configures a Handler.
type Config struct {
	// Store keeps the objects. Required when a rule other than redact is configured.
	Store vault.Store

	// Request and Response are the rules of each phase.
	Request  Phase
	Response Phase

	// KeyContext returns the tenant's key context of a request. A returned *Error is
	// sent as it is, and any other error as a 400 problem. Required when Store is.
	KeyContext func(r *http.Request) (vault.KeyContext, error)

	// ExpandName expands the placeholders of a TokenizeNamed template for a request. A
	// returned *Error is sent as it is, and any other error as a 400 problem. Required
	// when a TokenizeNamed rule is configured.
	ExpandName func(r *http.Request, template string) (string, error)

	// MaxBodySize is the largest body, in bytes, read in either direction. Default
	// DefaultMaxBodySize.
	MaxBodySize int64

	// RequestEncodings are the request Content-Encodings that are decoded, from gzip,
	// deflate, br and zstd; a body in any other coding gets 415. The decoded body counts
	// against MaxBodySize and goes to the upstream uncompressed. Default: none.
	RequestEncodings []string

	// MaxDepth is the deepest nesting of arrays and objects accepted. Default
	// rules.DefaultMaxDepth.
	MaxDepth int

	// MaxValues is the largest number of values in one body that rules may send to the
	// vault, so that a small body cannot make thousands of objects. Default
	// DefaultMaxValues.
	MaxValues int

	// FoldedKeys decides what happens to a member name that differs from a rule's
	// member name only by case or Unicode folding, such as "Email" for $.email. Go's
	// encoding/json would read it as the rule's field. "reject" (the default) rejects the
	// body; "tokenize" makes the rules select such members as well.
	FoldedKeys string

	// OnDenied decides what reveal, mask and describe do with a value they must not
	// reveal: an ID of another tenant, an unknown ID or a value that is no ID. "keep"
	// (the default) leaves it as it is, "null" replaces it with null.
	OnDenied string

	// Metrics receives counts and timings of the handler's work. Default: none.
	Metrics Metrics

	// CrossFieldReveal decides whether reveal and mask may reveal an object at a member
	// other than the one it was tokenized from, such as an email's ID that the app copied
	// into a message's "to". "deny" (the default) rejects that, so that an ID moved
	// inside the app's database cannot show a masked value in full through a revealed
	// field. "allow" permits it, for egress routes that reveal what the app put together.
	CrossFieldReveal string

	// Logger receives operational logs, Audit one event per denial. Default: no logs.
	Logger *zap.Logger
	Audit  *zap.Logger
}

// Handler applies the rules of one route.
type Handler struct {
	cfg        Config
	request    []rule
	response   []rule
	fold       bool // folded keys are tokenized instead of rejected
	nullDeny   bool
	crossField bool     // CrossFieldReveal is "allow"
	names      []string // member names that the rules mention, for the folding check
	logger     *zap.Logger
	audit      *zap.Logger
	metrics    Metrics
}

// New checks cfg and compiles its rules.
func New(cfg Config) (*Handler, error) {
	h := &Handler{cfg: cfg, logger: cfg.Logger, audit: cfg.Audit, metrics: cfg.Metrics}
	if h.metrics == nil {
		h.metrics = noMetrics{}
	}
	if h.logger == nil {
		h.logger = zap.NewNop()
	}
	if h.audit == nil {
		h.audit = zap.NewNop()
	}
	if h.cfg.MaxBodySize == 0 {
		h.cfg.MaxBodySize = DefaultMaxBodySize
	}
	if h.cfg.MaxBodySize < 0 {
		return nil, fmt.Errorf("max body size %d is negative", h.cfg.MaxBodySize)
	}
	if h.cfg.MaxDepth == 0 {
		h.cfg.MaxDepth = rules.DefaultMaxDepth
	}
	if h.cfg.MaxValues == 0 {
		h.cfg.MaxValues = DefaultMaxValues
	}

	if err := checkEncodings(cfg.RequestEncodings); err != nil {
		return nil, err
	}

	switch cfg.FoldedKeys {
	case "", "reject":
	case "tokenize":
		h.fold = true
	default:
		return nil, fmt.Errorf("invalid folded_keys %q: use reject or tokenize", cfg.FoldedKeys)
	}
	switch cfg.CrossFieldReveal {
	case "", "deny":
	case "allow":
		h.crossField = true
	default:
		return nil, fmt.Errorf("invalid cross_field_reveal %q: use deny or allow", cfg.CrossFieldReveal)
	}
	switch cfg.OnDenied {
	case "", "keep":
	case "null":
		h.nullDeny = true
	default:
		return nil, fmt.Errorf("invalid on_denied %q: use keep or null", cfg.OnDenied)
	}

	var err error
	if h.request, err = cfg.Request.compile("request"); err != nil {
		return nil, err
	}
	if h.response, err = cfg.Response.compile("response"); err != nil {
		return nil, err
	}
	h.names = ruleNames(h.request, h.response)

	if h.usesVault() && (cfg.Store == nil || cfg.KeyContext == nil) {
		return nil, errors.New("rules other than redact need a store and a key context")
	}
	if (len(cfg.Request.TokenizeNamed) > 0 || len(cfg.Response.TokenizeNamed) > 0) && cfg.ExpandName == nil {
		return nil, errors.New("tokenize rules with a name template need a name expander")
	}
	return h, nil
}

// usesVault reports whether any rule calls the vault.
func (h *Handler) usesVault() bool {
	for _, set := range [][]rule{h.request, h.response} {
		for _, r := range set {
			if r.action.usesVault() {
				return true
			}
		}
	}
	return false
}

// ruleNames returns the member names that the rules' name selectors mention, each once,
// because the folding check compares every member of a body with each of them.
func ruleNames(sets ...[]rule) []string {
	var names []string
	for _, set := range sets {
		for _, r := range set {
			names = append(names, r.query.Names()...)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// Next is the rest of a middleware chain, such as caddyhttp.Handler.
type Next interface {
	ServeHTTP(w http.ResponseWriter, r *http.Request) error
}

// ServeHTTP rewrites r's body by the request rules, calls next, and rewrites the response
// by the response rules. Failures that piivault detects are sent to the client as
// problems, before next is called where they concern the request. Errors from next are
// returned unchanged.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next Next) error {
	if len(h.request) == 0 && len(h.response) == 0 {
		return next.ServeHTTP(w, r)
	}

	// header checks come first, so a rejected client never uploads its body
	if err := checkUpgrade(r); err != nil {
		return h.fail(w, r, err)
	}
	var kc vault.KeyContext
	if h.usesVault() {
		var err error
		if kc, err = h.keyContext(r); err != nil {
			return h.fail(w, r, err)
		}
	}

	if len(h.request) > 0 {
		if err := h.rewriteRequest(r, kc); err != nil {
			return h.fail(w, r, err)
		}
	}
	if len(h.response) == 0 {
		return next.ServeHTTP(w, r)
	}
	return h.serveResponse(w, r, kc, next)
}

// Wrap returns next behind h, for use as plain net/http middleware. piivault's own
// failures are sent as problems; an error left over, such as a failed write to the
// client, is logged.
func (h *Handler) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h.ServeHTTP(w, r, nextFunc(func(w http.ResponseWriter, r *http.Request) error {
			next.ServeHTTP(w, r)
			return nil
		}))
		if err != nil {
			h.logger.Error("handler failed", zap.Error(err))
		}
	})
}

type nextFunc func(w http.ResponseWriter, r *http.Request) error

func (f nextFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) error { return f(w, r) }

// keyContext resolves the request's key context, which every vault call is scoped to.
func (h *Handler) keyContext(r *http.Request) (vault.KeyContext, error) {
	kc, err := h.cfg.KeyContext(r)
	if err == nil && len(kc) == 0 {
		err = errors.New("empty key context")
	}
	if err != nil {
		var perr *Error
		if errors.As(err, &perr) {
			return nil, perr
		}
		return nil, &Error{Status: http.StatusBadRequest, Detail: err.Error()}
	}
	return kc, nil
}

// checkUpgrade rejects protocol switches, whose bytes piivault cannot read.
func checkUpgrade(r *http.Request) error {
	if r.Method == http.MethodConnect {
		return problemf(http.StatusMethodNotAllowed,
			"CONNECT is not supported on a route with piivault rules")
	}
	if r.Header.Get("Upgrade") != "" {
		return problemf(http.StatusBadRequest,
			"protocol upgrades are not supported on a route with piivault rules")
	}
	return nil
}

// fail sends err to the client as a problem and logs it. The log and the problem
// name rules, paths and offsets, never body content.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) error {
	var perr *Error
	if !errors.As(err, &perr) {
		perr = &Error{Status: http.StatusInternalServerError, Detail: "internal error", Err: err}
	}
	h.metrics.CountProblem(perr.Status)

	level := zapcore.DebugLevel
	if perr.Status >= 500 {
		level = zapcore.ErrorLevel
	}
	if c := h.logger.Check(level, "request rejected by piivault"); c != nil {
		c.Write(
			zap.Int("status", perr.Status),
			zap.String("detail", perr.Detail),
			zap.String("method", r.Method),
			zap.String("uri", r.URL.Path),
			zap.NamedError("cause", perr.Err),
		)
	}
	return writeProblem(w, perr)
}
