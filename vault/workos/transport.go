package workos

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/time/rate"
)

// Retry policy. workos-go v4.46.1 retries 5xx for every method, POST included, and never
// retries 429. The transport replaces that policy: it never hands a 429 or 5xx response
// to workos-go, so workos-go's own retry loop never runs.
const (
	maxServerErrorRetries = 3                      // per call, for idempotent calls only
	maxRateLimitRetries   = 8                      // per call, within its deadline
	defaultRetryAfter     = time.Second            // for a 429 without Retry-After
	maxPause              = time.Minute            // WorkOS counts calls per minute
	backoffBase           = 100 * time.Millisecond // first wait after a 5xx
	backoffMax            = 2 * time.Second
)

// callInfo travels in a request's context from the store to the transport, and back.
type callInfo struct {
	// idempotent allows retries after a 5xx or a connection error: GET, DELETE, and PUT
	// with a version check. A 429 is retried for every call, because WorkOS rejected it
	// before processing it.
	idempotent bool

	// idempotencyKey is sent as the Idempotency-Key header, on creates.
	idempotencyKey string

	// uncertain is set by the transport when an attempt was sent and may have taken
	// effect without a response that reports it: a 5xx, a connection error or a timeout.
	uncertain bool
}

type callInfoKey struct{}

func withCallInfo(ctx context.Context, info *callInfo) context.Context {
	return context.WithValue(ctx, callInfoKey{}, info)
}

func callInfoFrom(ctx context.Context) *callInfo {
	if info, ok := ctx.Value(callInfoKey{}).(*callInfo); ok {
		return info
	}
	return &callInfo{}
}

// transport sends the store's calls under its rate limit and retries them: 429 after
// Retry-After within the call's deadline, and 5xx with backoff for idempotent calls only.
// It returns an *UnavailableError where it gives up, never a 429 or 5xx response.
type transport struct {
	base    http.RoundTripper
	limiter *rate.Limiter
	log     *zap.Logger

	// pausedUntil is when the last Retry-After of a 429 ends, in Unix nanoseconds. Every
	// call waits for it, so that one 429 slows all calls and not only the one that got it.
	pausedUntil atomic.Int64
}

// RoundTrip implements http.RoundTripper.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	info := callInfoFrom(ctx)
	serverErrors, rateLimits := 0, 0

	for attempt := 0; ; attempt++ {
		if err := t.acquire(ctx); err != nil {
			return nil, err
		}

		res, err := t.send(req, info, attempt)
		if err != nil {
			info.uncertain = true
			if ctx.Err() != nil {
				return nil, &UnavailableError{Err: ctx.Err()}
			}
			if !info.idempotent || serverErrors >= maxServerErrorRetries {
				return nil, &UnavailableError{Err: err}
			}
			serverErrors++
			if err := t.backoff(ctx, req, 0, serverErrors, 0); err != nil {
				return nil, err
			}
			continue
		}

		switch {
		case res.StatusCode == http.StatusTooManyRequests:
			wait := retryAfter(res.Header, defaultRetryAfter)
			requestID := res.Header.Get("X-Request-Id")
			discard(res)
			t.pause(min(wait, maxPause))

			// the next acquire waits for the pause, or gives up when it passes the deadline
			rateLimits++
			if rateLimits > maxRateLimitRetries || !fits(ctx, wait) {
				return nil, &UnavailableError{StatusCode: res.StatusCode, RetryAfter: wait, RequestID: requestID}
			}
			t.logRetry(req, res.StatusCode, wait, attempt)

		case res.StatusCode >= http.StatusInternalServerError:
			info.uncertain = true
			hint := retryAfter(res.Header, 0)
			requestID := res.Header.Get("X-Request-Id")
			discard(res)

			serverErrors++
			if !info.idempotent || serverErrors > maxServerErrorRetries {
				return nil, &UnavailableError{StatusCode: res.StatusCode, RetryAfter: hint, RequestID: requestID}
			}
			if err := t.backoff(ctx, req, res.StatusCode, serverErrors, hint); err != nil {
				return nil, &UnavailableError{StatusCode: res.StatusCode, RetryAfter: hint, RequestID: requestID}
			}

		default:
			return res, nil
		}
	}
}

// send sends one attempt. Retries need a fresh body, and the Idempotency-Key header goes
// on a clone because a RoundTripper must not modify its request.
func (t *transport) send(req *http.Request, info *callInfo, attempt int) (*http.Response, error) {
	if attempt == 0 && info.idempotencyKey == "" {
		return t.base.RoundTrip(req)
	}

	r := req.Clone(req.Context())
	if attempt > 0 && req.Body != nil && req.Body != http.NoBody {
		if req.GetBody == nil {
			return nil, errors.New("cannot retry: the request body cannot be read again")
		}
		body, err := req.GetBody()
		if err != nil {
			return nil, err
		}
		r.Body = body
	}
	if info.idempotencyKey != "" {
		r.Header.Set("Idempotency-Key", info.idempotencyKey)
	}
	return t.base.RoundTrip(r)
}

// acquire waits for a pause that a 429 started and then for a token of the rate limit. It
// returns an *UnavailableError at once when the wait would pass ctx's deadline.
//
// NOTE: tokens are reserved ahead, so after a stall of this process the calls whose turn
// came during the stall are sent together. Any minute, the window WorkOS counts, still
// holds at most Burst + 60*Rate calls.
func (t *transport) acquire(ctx context.Context) error {
	if wait := time.Until(time.Unix(0, t.pausedUntil.Load())); wait > 0 {
		if !fits(ctx, wait) {
			return &UnavailableError{StatusCode: http.StatusTooManyRequests, RetryAfter: wait}
		}
		if err := sleep(ctx, wait); err != nil {
			return &UnavailableError{StatusCode: http.StatusTooManyRequests, RetryAfter: wait, Err: err}
		}
	}

	r := t.limiter.Reserve()
	wait := r.Delay()
	if wait == 0 {
		return nil
	}
	if !fits(ctx, wait) {
		r.Cancel()
		return &UnavailableError{RetryAfter: wait, Err: errRateLimited}
	}
	if err := sleep(ctx, wait); err != nil {
		r.Cancel()
		return &UnavailableError{RetryAfter: wait, Err: err}
	}
	return nil
}

// pause makes every call wait d from now, unless a longer pause is running.
func (t *transport) pause(d time.Duration) {
	until := time.Now().Add(d).UnixNano()
	for {
		cur := t.pausedUntil.Load()
		if cur >= until || t.pausedUntil.CompareAndSwap(cur, until) {
			return
		}
	}
}

// backoff waits before retry n after a 5xx or a connection error: exponential with
// jitter, and at least the server's Retry-After. It fails when the wait does not fit the
// deadline.
func (t *transport) backoff(ctx context.Context, req *http.Request, status, n int, hint time.Duration) error {
	wait := min(backoffBase<<(n-1), backoffMax)
	wait = wait/2 + rand.N(wait/2+1) // jitter spreads the retries of concurrent calls
	wait = max(wait, hint)

	if !fits(ctx, wait) {
		return &UnavailableError{StatusCode: status, RetryAfter: hint, Err: context.DeadlineExceeded}
	}
	t.logRetry(req, status, wait, n)
	if err := sleep(ctx, wait); err != nil {
		return &UnavailableError{StatusCode: status, RetryAfter: hint, Err: err}
	}
	return nil
}

func (t *transport) logRetry(req *http.Request, status int, wait time.Duration, attempt int) {
	if ce := t.log.Check(zapcore.DebugLevel, "retrying workos vault call"); ce != nil {
		ce.Write(
			zap.String("method", req.Method),
			zap.String("path", req.URL.Path),
			zap.Int("status", status),
			zap.Duration("wait", wait),
			zap.Int("attempt", attempt+1),
		)
	}
}

// retryAfter reads a Retry-After header in seconds or as an HTTP date, or returns def.
func retryAfter(h http.Header, def time.Duration) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return def
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
		return time.Duration(min(s, int64(24*time.Hour/time.Second))) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(time.Until(at), 0)
	}
	return def
}

// fits reports whether waiting d ends before ctx's deadline.
func fits(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	deadline, ok := ctx.Deadline()
	return !ok || time.Until(deadline) > d
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// discard drains a little of a response body, so that its connection can be reused.
func discard(res *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
	_ = res.Body.Close()
}
