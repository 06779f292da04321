// Package app is the example "legacy" users API that piivault runs in front of.
//
// It contains no piivault code: it stores whatever JSON object a client sends, per
// organization (the X-Organization-Id header), and persists everything to one readable
// JSON file. Behind piivault that file holds object IDs where the clients sent personal
// data, which is the point of the demo.
//
// Routes:
//
//	POST   /users       create a user from any JSON object; 201 with the stored record
//	GET    /users       {"users": [...]} of the organization
//	GET    /users/{id}  one record
//	PUT    /users/{id}  replace a record, keeping its id
//	DELETE /users/{id}  204
//	GET    /export      all records of the organization as a JSON array
//	GET    /healthz     200 "ok", no organization needed
//
// Errors are application/problem+json (RFC 9457).
package app

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
)

// OrganizationHeader is the request header that selects the tenant.
const OrganizationHeader = "X-Organization-Id"

// MaxBodyBytes is the largest request body the app reads: 1 MiB.
const MaxBodyBytes = 1 << 20

// App is the users API. It is an http.Handler and is safe for concurrent use.
type App struct {
	path   string
	logger *slog.Logger
	mux    *http.ServeMux

	mu    sync.Mutex // serializes writes, including the file write
	state *state     // replaced, never modified, under mu
}

// Option configures an App.
type Option func(*App)

// WithLogger sets the logger for request and error logs. The default is slog.Default().
func WithLogger(logger *slog.Logger) Option {
	return func(a *App) {
		a.logger = logger
	}
}

// New returns an App that stores its data in the JSON file at dataPath. It loads the
// file if it exists and creates the file's directory (mode 0700) if it does not. The
// file itself is written on the first change.
func New(dataPath string, opts ...Option) (*App, error) {
	path, err := filepath.Abs(dataPath)
	if err != nil {
		return nil, fmt.Errorf("legacyapp: resolving data path %q: %w", dataPath, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("legacyapp: creating data directory: %w", err)
	}

	s, err := loadState(path)
	if err != nil {
		return nil, fmt.Errorf("legacyapp: %w", err)
	}

	a := &App{path: path, logger: slog.Default(), state: s}
	for _, opt := range opts {
		opt(a)
	}
	a.mux = a.routes()
	return a, nil
}

// DataPath returns the absolute path of the JSON data file.
func (a *App) DataPath() string {
	return a.path
}

// ServeHTTP serves the API and logs each request's method, path and status. Bodies
// and header values are never logged.
func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	a.mux.ServeHTTP(rec, r)

	a.logger.Info("request",
		"method", r.Method,
		"path", r.URL.Path,
		"status", rec.status,
	)
}

func (a *App) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", handleHealth)
	mux.HandleFunc("POST /users", a.withTenant(a.handleCreate))
	mux.HandleFunc("GET /users", a.withTenant(a.handleList))
	mux.HandleFunc("GET /users/{id}", a.withTenant(a.handleGet))
	mux.HandleFunc("PUT /users/{id}", a.withTenant(a.handleReplace))
	mux.HandleFunc("DELETE /users/{id}", a.withTenant(a.handleDelete))
	mux.HandleFunc("GET /export", a.withTenant(a.handleExport))
	return mux
}

// statusRecorder keeps the status code that a handler wrote, for the request log.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter {
	return r.ResponseWriter
}
