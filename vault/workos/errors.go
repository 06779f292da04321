package workos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/workos/workos-go/v4/pkg/workos_errors"

	"github.com/piivault/piivault/vault"
)

// UnavailableError reports that WorkOS Vault did not serve a call in time. Either WorkOS
// responded with 429 or a 5xx status after the store's retries, or no response arrived
// before the call's deadline, or the store's own rate limit would have delayed the call
// past it. Callers find it with errors.As and respond with 503 and a Retry-After header
// of RetryAfter.
type UnavailableError struct {
	// StatusCode is the HTTP status of the last response: 429, a 5xx status, or 0 when no
	// response arrived.
	StatusCode int

	// RetryAfter is how long to wait before trying again: the last Retry-After header of
	// WorkOS, or the wait of the store's own rate limit. Zero when unknown.
	RetryAfter time.Duration

	// RequestID is the X-Request-ID of the last response, for WorkOS support.
	RequestID string

	// Err is the cause when it is not a status, such as context.DeadlineExceeded or a
	// connection error.
	Err error
}

// Error returns a message with the status, the wait and the cause. It contains no API key.
func (e *UnavailableError) Error() string {
	var b strings.Builder
	b.WriteString("workos vault unavailable")
	if e.StatusCode != 0 {
		fmt.Fprintf(&b, ": status %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, ", retry after %s", e.RetryAfter)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request id %s)", e.RequestID)
	}
	return b.String()
}

// Unwrap returns the cause, so that errors.Is(err, context.DeadlineExceeded) holds for a
// call that timed out.
func (e *UnavailableError) Unwrap() error { return e.Err }

// RetryAfterDuration returns RetryAfter. Packages that do not import this one can match
// the error with errors.As against interface{ RetryAfterDuration() time.Duration }.
func (e *UnavailableError) RetryAfterDuration() time.Duration { return e.RetryAfter }

// errRateLimited is the cause of an UnavailableError from the store's own rate limit.
var errRateLimited = errors.New("the store's rate limit would delay the call past its deadline")

// callError maps an error of a WorkOS call to the errors of package vault. conflict is
// the vault error that a 409 means for this call, or nil. The result never contains the
// API key: the HTTP errors carry status, request ID and the server's message only.
func callError(op string, err error, conflict error) error {
	// http.Client wraps transport errors with the method and URL, which the op repeats
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		err = urlErr.Err
	}

	var unavailable *UnavailableError
	if errors.As(err, &unavailable) {
		return fmt.Errorf("workos: %s: %w", op, unavailable)
	}

	var httpErr workos_errors.HTTPError
	if errors.As(err, &httpErr) {
		return httpError(op, httpErr, conflict)
	}

	// a deadline can also pass while the response body is read
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("workos: %s: %w", op, &UnavailableError{Err: err})
	}
	return fmt.Errorf("workos: %s: %w", op, err)
}

// httpError maps a WorkOS status to the errors of package vault.
//
// NOTE: WorkOS does not document the status of a stale version_check or of a taken name
// on create. The store takes 409 and 412 as conflicts, and the emulator sends 409.
func httpError(op string, e workos_errors.HTTPError, conflict error) error {
	switch {
	case e.Code == http.StatusNotFound:
		return fmt.Errorf("workos: %s: %w (request id %s)", op, vault.ErrNotFound, e.RequestID)
	case conflict != nil && (e.Code == http.StatusConflict || e.Code == http.StatusPreconditionFailed):
		return fmt.Errorf("workos: %s: %w (request id %s)", op, conflict, e.RequestID)
	case e.Code == http.StatusUnauthorized || e.Code == http.StatusForbidden:
		return fmt.Errorf("workos: %s: WorkOS rejected the API key with status %d (request id %s): "+
			"check api_key", op, e.Code, e.RequestID)
	}
	return fmt.Errorf("workos: %s: %w", op, e)
}

func isStatus(err error, codes ...int) bool {
	var httpErr workos_errors.HTTPError
	if !errors.As(err, &httpErr) {
		return false
	}
	for _, c := range codes {
		if httpErr.Code == c {
			return true
		}
	}
	return false
}
