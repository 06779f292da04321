package proxy

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Error is a failure that piivault responds to itself, with an RFC 9457 problem. Detail is sent
// to the client, so it names the rule, path, header or byte offset involved and never a
// value from a body. Err is the cause, for the log only.
type Error struct {
	Status     int
	Detail     string
	RetryAfter time.Duration
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%d %s: %s: %v", e.Status, http.StatusText(e.Status), e.Detail, e.Err)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Detail)
}

func (e *Error) Unwrap() error { return e.Err }

// problemf returns an *Error with a formatted detail.
func problemf(status int, format string, args ...any) *Error {
	return &Error{Status: status, Detail: fmt.Sprintf(format, args...)}
}

// problem is the JSON body of an RFC 9457 problem.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// writeProblem sends e to the client as application/problem+json. It replaces every
// header that described the upstream's response, because none of them apply.
func writeProblem(w http.ResponseWriter, e *Error) error {
	body, err := json.Marshal(problem{
		Type:   "about:blank",
		Title:  http.StatusText(e.Status),
		Status: e.Status,
		Detail: e.Detail,
	})
	if err != nil {
		return err
	}

	h := w.Header()
	for _, name := range upstreamHeaders {
		h.Del(name)
	}
	h.Set("Content-Type", "application/problem+json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(int((e.RetryAfter+time.Second-1)/time.Second)))
	}

	w.WriteHeader(e.Status)
	_, err = w.Write(body)
	return err
}

// upstreamHeaders are the response headers that describe a body, dropped when piivault
// replaces or rewrites it.
var upstreamHeaders = []string{
	"Content-Encoding",
	"Content-Length",
	"Content-Range",
	"Content-Md5",
	"Content-Digest",
	"Repr-Digest",
	"Digest",
	"Accept-Ranges",
	"Etag",
	"Last-Modified",
	"Transfer-Encoding",
}
