package caddymodule

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/piivault/piivault/proxy"
	"github.com/piivault/piivault/vault"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler is the http.handlers.pii_vault middleware: it tokenizes, reveals, masks,
// redacts and describes JSON fields of the bodies on its route.
type Handler struct {
	// Context is the key context of a request: keys with placeholder values, such as
	// {"organization_id": "{http.request.header.X-Organization-Id}"}. Every object is
	// created with it and revealed only to requests whose context is equal. Required
	// when any rule other than redact is configured.
	Context map[string]string `json:"context,omitempty"`

	// Request holds the rules applied to request bodies before they reach the upstream.
	Request proxy.Phase `json:"request,omitzero"`

	// Response holds the rules applied to response bodies before the client sees them.
	Response proxy.Phase `json:"response,omitzero"`

	// MaxBodySize is the largest body read in either direction, in bytes. Larger request
	// bodies get 413, larger response bodies 502. Default 1 MiB.
	MaxBodySize int64 `json:"max_body_size,omitempty"`

	// RequestEncodings are the request Content-Encodings decoded, from gzip, deflate, br
	// and zstd. A body in another coding gets 415. Default: none, so compressed request
	// bodies are rejected.
	RequestEncodings []string `json:"request_encodings,omitempty"`

	// MaxValues is the largest number of values of one body that rules send to the
	// vault. Larger request bodies get 413, larger response bodies 502. Default 1000.
	MaxValues int `json:"max_values,omitempty"`

	// MaxDepth is the deepest nesting of arrays and objects accepted. Default 64.
	MaxDepth int `json:"max_depth,omitempty"`

	// FoldedKeys is "reject" (default) or "tokenize": what to do with a member name that
	// differs from a rule's name only by case or Unicode folding.
	FoldedKeys string `json:"folded_keys,omitempty"`

	// CrossFieldReveal is "deny" (default) or "allow": whether reveal and mask may reveal
	// an object at a member other than the one it was tokenized from. Egress routes that
	// reveal IDs the app copied into a message, say, set "allow".
	CrossFieldReveal string `json:"cross_field_reveal,omitempty"`

	// OnDenied is "keep" (default) or "null": what reveal, mask and describe do with an
	// ID they must not reveal.
	OnDenied string `json:"on_denied,omitempty"`

	core *proxy.Handler
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.pii_vault",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision compiles the rules and connects the handler to the pii_vault app's store.
func (h *Handler) Provision(ctx caddy.Context) error {
	cfg := proxy.Config{
		Request:          h.Request,
		Response:         h.Response,
		MaxBodySize:      h.MaxBodySize,
		MaxDepth:         h.MaxDepth,
		RequestEncodings: h.RequestEncodings,
		MaxValues:        h.MaxValues,
		FoldedKeys:       h.FoldedKeys,
		OnDenied:         h.OnDenied,
		CrossFieldReveal: h.CrossFieldReveal,
		Logger:           ctx.Logger(),
		Audit:            caddy.Log().Named("pii_vault.audit"),
	}

	metrics, err := registerMetrics(ctx)
	if err != nil {
		return fmt.Errorf("pii_vault: %w", err)
	}
	cfg.Metrics = metrics

	if needsVault(h.Request) || needsVault(h.Response) {
		if len(h.Context) == 0 {
			return fmt.Errorf("pii_vault: a key context is required, " +
				"such as: context organization_id {http.request.header.X-Organization-Id}")
		}
		app, err := ctx.App("pii_vault")
		if err != nil {
			return fmt.Errorf("loading pii_vault app: %w", err)
		}
		cfg.Store = app.(*App).Store()
		cfg.KeyContext = h.keyContext
		cfg.ExpandName = expandName
	}

	core, err := proxy.New(cfg)
	if err != nil {
		return fmt.Errorf("pii_vault: %w", err)
	}
	h.core = core
	return nil
}

// needsVault reports whether a phase has a rule that calls the vault.
func needsVault(p proxy.Phase) bool {
	return len(p.Tokenize)+len(p.Reveal)+len(p.Mask)+len(p.Describe)+len(p.TokenizeNamed)+len(p.Erase) > 0
}

// maxObjectName is the longest expanded name template accepted, in bytes.
const maxObjectName = 512

// expandName expands a name template of a tokenize rule for r. Every placeholder must
// expand to a value, or records whose path lacks a segment would share one object.
func expandName(r *http.Request, template string) (string, error) {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	name, err := repl.ReplaceOrErr(template, true, true)
	if err != nil {
		return "", contextProblem("object name %s cannot be expanded for this request: %v", template, err)
	}
	if len(name) > maxObjectName || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return "", contextProblem("object name %s is invalid for this request: at most %d bytes, no control characters",
			template, maxObjectName)
	}
	return name, nil
}

// maxContextValue is the longest key context value accepted, in bytes.
const maxContextValue = 256

// keyContext expands the context placeholders for r. Each value must be present and
// single: the header placeholders join repeated headers with commas, which would let a
// client name two tenants at once.
func (h *Handler) keyContext(r *http.Request) (vault.KeyContext, error) {
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if name, ok := hopByHopContextHeader(r, h.Context); ok {
		// Caddy would drop the header before the upstream, which would then file the
		// record under no tenant, or reject it and leave its objects behind
		return nil, contextProblem("the Connection header lists %s, which the key context needs: remove it", name)
	}

	kc := make(vault.KeyContext, len(h.Context))
	for key, tmpl := range h.Context {
		value := repl.ReplaceAll(tmpl, "")
		switch {
		case value == "":
			return nil, contextProblem("key context %s is missing: %s is empty", key, tmpl)
		case strings.Contains(value, ","):
			return nil, contextProblem("key context %s has several values: send %s once", key, tmpl)
		case len(value) > maxContextValue || !utf8.ValidString(value) ||
			strings.IndexFunc(value, unicode.IsControl) >= 0 || strings.TrimSpace(value) != value:
			// an app that trims or decodes the value differently would file the
			// record under another tenant than its objects
			return nil, contextProblem("key context %s is invalid: use at most %d bytes of UTF-8, "+
				"without control characters or surrounding spaces", key, maxContextValue)
		}
		kc[key] = value
	}
	return kc, nil
}

// contextHeader matches a request header placeholder in a key context template.
var contextHeader = regexp.MustCompile(`\{http\.request\.header\.([^}]+)\}`)

// hopByHopContextHeader returns a header that the key context reads and that r's
// Connection header names, which makes it hop-by-hop.
func hopByHopContextHeader(r *http.Request, context map[string]string) (string, bool) {
	tokens := r.Header.Values("Connection")
	if len(tokens) == 0 {
		return "", false
	}
	for _, tmpl := range context {
		for _, m := range contextHeader.FindAllStringSubmatch(tmpl, -1) {
			for _, value := range tokens {
				for _, token := range strings.Split(value, ",") {
					if strings.EqualFold(strings.TrimSpace(token), m[1]) {
						return m[1], true
					}
				}
			}
		}
	}
	return "", false
}

func contextProblem(format string, args ...any) *proxy.Error {
	return &proxy.Error{Status: http.StatusBadRequest, Detail: fmt.Sprintf(format, args...)}
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return h.core.ServeHTTP(w, r, next)
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
