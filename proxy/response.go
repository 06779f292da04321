package proxy

import (
	"bytes"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"sync"

	"go.uber.org/zap"

	"github.com/piivault/piivault/vault"
)

// serveResponse calls next with a writer that buffers JSON responses, then rewrites
// the buffered body by the response rules.
func (h *Handler) serveResponse(w http.ResponseWriter, r *http.Request, kc vault.KeyContext, next Next) error {
	// a partial body cannot be parsed, and a compressed one cannot be rewritten
	r.Header.Del("Range")
	r.Header.Del("If-Range")
	r.Header.Set("Accept-Encoding", "identity")

	rec := newRecorder(w, r.Method, h.cfg.MaxBodySize)
	defer rec.release()

	if err := rec.serve(next, r); err != nil {
		if rec.failure != nil {
			return h.fail(w, r, rec.failure)
		}
		return err
	}
	if rec.failure != nil {
		return h.fail(w, r, rec.failure)
	}
	if !rec.buffering {
		if !rec.wroteHeader {
			w.WriteHeader(http.StatusOK)
		}
		return nil
	}

	body := rec.buf.Bytes()
	out, changed, err := h.rewrite(r, h.response, body, kc, phaseResponse)
	if err != nil {
		return h.fail(w, r, err)
	}
	return h.writeRewritten(w, rec.status, out, changed)
}

// writeRewritten sends the final response. When changed, the headers that described the
// upstream's bytes are dropped, and the response must not be cached, because it may now
// carry plaintext that only this tenant may see.
func (h *Handler) writeRewritten(w http.ResponseWriter, status int, body []byte, changed bool) error {
	hdr := w.Header()
	if changed {
		for _, name := range upstreamHeaders {
			hdr.Del(name)
		}
		hdr.Set("Cache-Control", "no-store")
	}
	if cl, err := parseLength(hdr.Get("Content-Length")); changed || err != nil || cl != int64(len(body)) {
		hdr.Set("Content-Length", strconv.Itoa(len(body)))
	}

	w.WriteHeader(status)
	if _, err := w.Write(body); err != nil {
		// the client went away, so there is no one left to respond to
		h.logger.Debug("writing response failed", zap.Error(err))
	}
	return nil
}

// bufferPool holds the buffers of response bodies. Buffers that grew past
// maxPooledBuffer are dropped, so one large response does not pin its memory.
var bufferPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

const maxPooledBuffer = 1 << 20

// recorder is the response writer that next writes to. It buffers a response that the
// rules may rewrite, up to a limit, and passes any other response straight through.
type recorder struct {
	w      http.ResponseWriter
	method string
	max    int64

	wroteHeader bool
	buffering   bool
	status      int
	buf         *bytes.Buffer
	failure     *Error // set when the response cannot be rewritten and must not pass
}

func newRecorder(w http.ResponseWriter, method string, max int64) *recorder {
	return &recorder{w: w, method: method, max: max}
}

func (rec *recorder) release() {
	if rec.buf != nil && rec.buf.Cap() <= maxPooledBuffer {
		rec.buf.Reset()
		bufferPool.Put(rec.buf)
	}
	rec.buf = nil
}

// serve calls next with rec as its writer. When the upstream's body ends early, Caddy's
// reverse proxy aborts the handler with http.ErrAbortHandler, because it assumes that the
// client has the headers already. A response that rec buffers or drops has sent the
// client nothing, so the abort becomes a 502 problem instead of a dropped connection.
func (rec *recorder) serve(next Next, r *http.Request) error {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if v != http.ErrAbortHandler || !(rec.buffering || rec.failure != nil) {
			panic(v)
		}
		rec.release()
		rec.buffering = false
		rec.failure = problemf(http.StatusBadGateway,
			"upstream response body was cut off before its end")
	}()
	return next.ServeHTTP(rec, r)
}

// Header returns the client's header map, so that next's headers apply unchanged to a
// response that passes through.
func (rec *recorder) Header() http.Header { return rec.w.Header() }

// WriteHeader decides, from the status and headers, whether the response is buffered
// for rewriting, passed through, or failed.
func (rec *recorder) WriteHeader(status int) {
	if rec.wroteHeader {
		return
	}
	if status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		rec.w.WriteHeader(status) // interim responses such as 103 pass at once
		return
	}
	rec.wroteHeader = true
	rec.status = status

	switch rec.decide(status, rec.w.Header()) {
	case modeBuffer:
		rec.buffering = true
		rec.buf = bufferPool.Get().(*bytes.Buffer)
		// growing to the declared length at once allocates the body once, instead of
		// doubling up to twice its size, and keeps the buffer small enough to pool
		if cl, err := parseLength(rec.w.Header().Get("Content-Length")); err == nil && cl > 0 {
			rec.buf.Grow(int(cl))
		}
	case modeFail:
		// the body is dropped and the handler responds with rec.failure
	default:
		rec.w.WriteHeader(status)
	}
}

type mode uint8

const (
	modePass mode = iota
	modeBuffer
	modeFail
)

// decide picks the mode of a response. Only a complete, identity-coded JSON body can be
// rewritten. A JSON body that piivault cannot read fails, so that values the rules
// should have rewritten never pass. Other bodies pass: they carry no JSON fields.
func (rec *recorder) decide(status int, hdr http.Header) mode {
	if status == http.StatusNoContent || status == http.StatusNotModified ||
		status == http.StatusPartialContent || status < 200 {
		return modePass
	}
	if ct := hdr.Get("Content-Type"); ct != "application/json" {
		mediaType, _, err := mime.ParseMediaType(ct)
		if err != nil || !isJSONType(mediaType) {
			return modePass
		}
	}
	if rec.method == http.MethodHead {
		// the length of the rewritten body is unknown without the body
		hdr.Del("Content-Length")
		return modePass
	}

	if ce := hdr.Values("Content-Encoding"); len(ce) > 0 && !isIdentity(ce) {
		rec.failure = problemf(http.StatusBadGateway,
			"upstream response has a Content-Encoding that piivault cannot rewrite; "+
				"configure the upstream to honor Accept-Encoding: identity")
		return modeFail
	}
	// an absent length is skipped before ParseInt, whose error would allocate
	if cl, err := parseLength(hdr.Get("Content-Length")); err == nil && cl > rec.max {
		rec.failure = rec.tooLarge()
		return modeFail
	}
	return modeBuffer
}

// parseLength parses a Content-Length value; an empty one is an error.
func parseLength(value string) (int64, error) {
	if value == "" {
		return 0, errNoLength
	}
	return strconv.ParseInt(value, 10, 64)
}

var errNoLength = errors.New("no Content-Length")

func (rec *recorder) tooLarge() *Error {
	return problemf(http.StatusBadGateway,
		"upstream response body is larger than the limit of %d bytes", rec.max)
}

// Write buffers p, or passes it through, by the mode WriteHeader chose. Past the limit
// it drops the buffer and keeps accepting bytes, so that next ends normally and the
// handler can respond with 502.
func (rec *recorder) Write(p []byte) (int, error) {
	if !rec.wroteHeader {
		rec.WriteHeader(http.StatusOK)
	}
	switch {
	case rec.failure != nil:
		return len(p), nil
	case !rec.buffering:
		return rec.w.Write(p)
	}

	if int64(rec.buf.Len()+len(p)) > rec.max {
		rec.failure = rec.tooLarge()
		rec.release()
		rec.buffering = false
		return len(p), nil
	}
	return rec.buf.Write(p)
}

// FlushError flushes a response that passes through; a buffered one is flushed whole
// once rewritten.
func (rec *recorder) FlushError() error {
	if !rec.wroteHeader || rec.buffering || rec.failure != nil {
		return nil
	}
	err := http.NewResponseController(rec.w).Flush()
	if errors.Is(err, http.ErrNotSupported) {
		return nil
	}
	return err
}

// Unwrap lets http.ResponseController reach the client's writer for deadlines and
// hijacking.
func (rec *recorder) Unwrap() http.ResponseWriter { return rec.w }
