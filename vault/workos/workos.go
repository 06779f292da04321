// Package workos implements vault.Store and vault.Batcher on WorkOS Vault, through the
// client of github.com/workos/workos-go/v4/pkg/vault (v4.46.1).
//
// WorkOS Vault has no batch endpoint and allows 6,000 calls per minute per API key. So the
// store runs the calls of a batch concurrently up to a bound and keeps every call under
// its own rate limit. It retries 429 after Retry-After within the call's deadline,
// retries 5xx only where a repeat is harmless, and caches object metadata.
//
// WorkOS Vault stores values as strings, so the store accepts only values that are valid
// UTF-8. Calls that fail because WorkOS is unavailable return an error that wraps
// *UnavailableError.
package workos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/workos/workos-go/v4/pkg/retryablehttp"
	wvault "github.com/workos/workos-go/v4/pkg/vault"
	"go.uber.org/zap"
	"golang.org/x/time/rate"

	"github.com/piivault/piivault/vault"
)

// Defaults of Config.
const (
	DefaultEndpoint       = "https://api.workos.com"
	DefaultTimeout        = 10 * time.Second // the default of workos-go v4
	DefaultMaxConcurrency = 20
	DefaultRate           = 90 // 5,400 calls per minute, under WorkOS's 6,000 per API key
	// DefaultBurst lets the 40 calls of a 20-value reveal start at once. Any 60-second
	// window then holds at most 100 + 60 × 90 = 5,500 calls, still under WorkOS's 6,000.
	DefaultBurst             = 100
	DefaultMetadataCacheSize = 10_000
)

// cleanupTimeout bounds the deletes that undo a failed create, which run after the
// caller's deadline when they must.
const cleanupTimeout = time.Minute

// userAgent identifies the store's own calls, such as read by name, which workos-go v4
// lacks.
const userAgent = "piivault (workos-go/v4.46.1)"

// Config configures a Store. Zero values take the defaults.
type Config struct {
	// APIKey is the WorkOS API key. Required. It is sent only in the Authorization header
	// and never appears in an error or a log line.
	APIKey string

	// Endpoint is the base URL of the WorkOS API. Default https://api.workos.com. Plain
	// http is accepted only for loopback hosts, such as the emulator on 127.0.0.1.
	Endpoint string

	// Timeout bounds each call to WorkOS, its retries and its waits for the rate limit
	// included. Default 10s. The caller's context can end a call sooner.
	Timeout time.Duration

	// MaxConcurrency is the number of calls of one batch in flight at once. Default 20.
	MaxConcurrency int

	// Rate is the number of calls per second that the store sends at most, retries
	// included. Default 90. Several stores that share an API key share WorkOS's limit,
	// so give each a part of it.
	Rate float64

	// Burst is the number of calls that may start at once after a quiet period. Default 20.
	Burst int

	// MetadataCacheSize is the number of objects whose metadata the store keeps. Default
	// 10,000. A negative size disables the cache.
	MetadataCacheSize int

	// Logger receives retries at debug level and failed cleanups at warn level. Default
	// no logging.
	Logger *zap.Logger
}

// String returns the configuration without the API key, so that printing a Config with
// fmt cannot leak it.
func (c Config) String() string {
	return fmt.Sprintf("workos.Config{Endpoint: %q, Timeout: %s, MaxConcurrency: %d, Rate: %g, "+
		"Burst: %d, MetadataCacheSize: %d}",
		c.Endpoint, c.Timeout, c.MaxConcurrency, c.Rate, c.Burst, c.MetadataCacheSize)
}

// GoString is String, for the %#v verb.
func (c Config) GoString() string { return c.String() }

// Store keeps objects in WorkOS Vault. It implements vault.Store and vault.Batcher, and
// is safe for concurrent use. Call Close when done with it.
type Store struct {
	client      *wvault.Client
	httpClient  *retryablehttp.HttpClient
	endpoint    string
	timeout     time.Duration
	concurrency int
	cache       *metadataCache
	log         *zap.Logger

	cleanups sync.WaitGroup // deletes of failed creates that outlive their call
}

// New returns a store for cfg. It checks the configuration and makes no call.
func New(cfg Config) (*Store, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, fmt.Errorf("workos: %w", err)
	}
	endpoint, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("workos: %w", err)
	}

	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = cfg.MaxConcurrency
	tr := &transport{
		base:    base,
		limiter: rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Burst),
		log:     cfg.Logger,
	}

	// the transport owns retries and deadlines. Redirects are not part of the API, and
	// following one could carry the API key elsewhere.
	httpClient := &retryablehttp.HttpClient{Client: http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}}

	return &Store{
		client:      &wvault.Client{APIKey: cfg.APIKey, HTTPClient: httpClient, Endpoint: endpoint},
		httpClient:  httpClient,
		endpoint:    endpoint,
		timeout:     cfg.Timeout,
		concurrency: cfg.MaxConcurrency,
		cache:       newMetadataCache(cfg.MetadataCacheSize),
		log:         cfg.Logger,
	}, nil
}

func (c *Config) applyDefaults() error {
	if c.APIKey == "" {
		return errors.New("missing api_key: set it to a WorkOS API key, for example {env.WORKOS_API_KEY}")
	}
	if c.Timeout < 0 || c.MaxConcurrency < 0 || c.Rate < 0 || c.Burst < 0 {
		return fmt.Errorf("invalid config %s: timeout, max concurrency, rate and burst cannot be negative", c)
	}

	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.MaxConcurrency == 0 {
		c.MaxConcurrency = DefaultMaxConcurrency
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Burst == 0 {
		c.Burst = DefaultBurst
	}
	if c.MetadataCacheSize == 0 {
		c.MetadataCacheSize = DefaultMetadataCacheSize
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	return nil
}

// parseEndpoint checks an endpoint URL and returns it without a trailing slash.
func parseEndpoint(s string) (string, error) {
	if s == "" {
		return DefaultEndpoint, nil
	}

	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("invalid endpoint %q: %w", s, err)
	}
	if u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("invalid endpoint %q: expected scheme://host[:port], such as %s", s, DefaultEndpoint)
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && isLoopback(u.Hostname()):
	case u.Scheme == "http":
		return "", fmt.Errorf("invalid endpoint %q: plain http would send the API key in cleartext; "+
			"use https, or http only on a loopback address", s)
	default:
		return "", fmt.Errorf("invalid endpoint %q: the scheme must be https", s)
	}
	return strings.TrimRight(u.String(), "/"), nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// String describes the store without its API key.
func (s *Store) String() string { return "workos.Store{Endpoint: " + s.endpoint + "}" }

// GoString is String, for the %#v verb.
func (s *Store) GoString() string { return s.String() }

// Close waits for the deletes that undo failed creates, at most one minute after the
// last one started, and closes idle connections.
func (s *Store) Close() error {
	s.cleanups.Wait()
	s.httpClient.CloseIdleConnections()
	return nil
}

// callContext returns the context of one call: ctx bounded by the store's timeout, and
// carrying info for the transport.
func (s *Store) callContext(ctx context.Context, info *callInfo) (context.Context, context.CancelFunc) {
	return context.WithTimeout(withCallInfo(ctx, info), s.timeout)
}

// checkNewObject rejects an object that WorkOS Vault cannot store or that the store
// could not find again by name.
func checkNewObject(obj vault.NewObject) error {
	switch {
	case obj.Name == "" || obj.Name == "." || obj.Name == "..":
		return errors.New(`invalid object name: it must not be empty, "." or ".."`)
	case !utf8.ValidString(obj.Name):
		return errors.New("invalid object name: it is not valid UTF-8")
	case len(obj.Context) == 0:
		return errors.New("missing key context: WorkOS Vault needs at least one entry")
	}
	return checkValue(obj.Value)
}

func checkValue(value []byte) error {
	if !utf8.Valid(value) {
		return errors.New("invalid value: WorkOS Vault stores strings, and the value is not valid UTF-8")
	}
	return nil
}

func toKeyContext(kc vault.KeyContext) wvault.KeyContext {
	out := make(wvault.KeyContext, len(kc))
	for k, v := range kc {
		out[k] = v
	}
	return out
}

func fromKeyContext(kc wvault.KeyContext) vault.KeyContext {
	out := make(vault.KeyContext, len(kc))
	for k, v := range kc {
		if s, ok := v.(string); ok {
			out[k] = s
		} else {
			out[k] = fmt.Sprint(v)
		}
	}
	return out
}

func fromMetadata(m wvault.ObjectMetadata, name string) vault.Metadata {
	return vault.Metadata{
		ID:        m.Id,
		Name:      name,
		Context:   fromKeyContext(m.Context),
		VersionID: m.VersionId,
		UpdatedAt: m.UpdatedAt,
	}
}

// fromObject converts a read, describe or update response about id. A response about
// another object is an error, because its context would be taken for id's.
func fromObject(id string, obj wvault.Object) (vault.Metadata, error) {
	if (obj.Id != "" && obj.Id != id) || (obj.Metadata.Id != "" && obj.Metadata.Id != id) {
		return vault.Metadata{}, errors.New("invalid response: it describes another object")
	}
	meta := fromMetadata(obj.Metadata, obj.Name)
	meta.ID = id
	return meta, nil
}
