package proxy

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/piivault/piivault/vault"
)

// rewriteRequest applies the request rules to r's body and replaces the body with the
// result. On error, r must not be forwarded: its body is consumed or unreadable.
func (h *Handler) rewriteRequest(r *http.Request, kc vault.KeyContext) error {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil
	}
	coding, err := requestCoding(r, h.cfg.RequestEncodings)
	if err != nil {
		return err
	}
	if err := checkRequestHeaders(r, h.cfg.MaxBodySize); err != nil {
		return err
	}

	body, err := readBody(r.Body, r.ContentLength, h.cfg.MaxBodySize)
	if err != nil {
		return err
	}
	if coding != "" {
		if body, err = decodeBody(coding, body, h.cfg.MaxBodySize); err != nil {
			return err
		}
		// the upstream gets the rewritten body uncompressed
		r.Header.Del("Content-Encoding")
	}
	if len(body) == 0 {
		setRequestBody(r, body)
		return nil
	}

	out, _, err := h.rewrite(r, h.request, body, kc, phaseRequest)
	if err != nil {
		return err
	}
	setRequestBody(r, out)
	return nil
}

// checkRequestHeaders rejects, before any byte is read, a request body that piivault
// could not read: not JSON, or declared larger than max.
func checkRequestHeaders(r *http.Request, max int64) error {
	types := r.Header.Values("Content-Type")
	if len(types) != 1 {
		return problemf(http.StatusUnsupportedMediaType,
			"request needs exactly one Content-Type header, application/json or a +json type")
	}
	if err := checkJSONType(types[0]); err != nil {
		return err
	}

	if r.ContentLength > max {
		return problemf(http.StatusRequestEntityTooLarge,
			"request body of %d bytes is larger than the limit of %d bytes", r.ContentLength, max)
	}
	return nil
}

// checkJSONType accepts application/json and structured +json types, in UTF-8.
func checkJSONType(value string) error {
	if value == "application/json" {
		return nil // the common case, without the allocations of parsing
	}
	mediaType, params, err := mime.ParseMediaType(value)
	if err != nil || !isJSONType(mediaType) {
		return problemf(http.StatusUnsupportedMediaType,
			"Content-Type must be application/json or a +json type on this route")
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return problemf(http.StatusUnsupportedMediaType,
			"JSON must be UTF-8 on this route: remove the charset parameter or set it to utf-8")
	}
	return nil
}

func isJSONType(mediaType string) bool {
	return mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")
}

// isIdentity reports whether the Content-Encoding values name no coding at all.
func isIdentity(values []string) bool {
	for _, v := range values {
		for _, coding := range strings.Split(v, ",") {
			coding = strings.TrimSpace(coding)
			if coding != "" && !strings.EqualFold(coding, "identity") {
				return false
			}
		}
	}
	return true
}

// readBody reads body up to max bytes and closes it. A longer body is an error. length
// is the declared length, or -1 when unknown; it sizes the buffer.
func readBody(body io.ReadCloser, length, max int64) ([]byte, error) {
	defer body.Close()

	data, err := readAll(io.LimitReader(body, max+1), length)
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return nil, problemf(http.StatusRequestEntityTooLarge,
				"request body is larger than the limit of %d bytes", maxErr.Limit)
		}
		return nil, &Error{Status: http.StatusBadRequest, Detail: "reading the request body failed", Err: err}
	}
	if int64(len(data)) > max {
		return nil, problemf(http.StatusRequestEntityTooLarge,
			"request body is larger than the limit of %d bytes", max)
	}
	return data, nil
}

// readAll is io.ReadAll with a first buffer of length+1 bytes when length is known, so
// that a body of the declared length is read into one allocation: the spare byte lets
// the last Read report EOF without growing the buffer.
func readAll(r io.Reader, length int64) ([]byte, error) {
	size := 512
	if length >= 0 {
		size = int(length) + 1
	}
	data := make([]byte, 0, size)
	for {
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
		n, err := r.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			return data, nil
		}
		if err != nil {
			return data, err
		}
	}
}

// setRequestBody replaces r's body with data, with a length that matches it.
func setRequestBody(r *http.Request, data []byte) {
	r.Body = newBodyReader(data)
	r.GetBody = func() (io.ReadCloser, error) {
		return newBodyReader(data), nil
	}
	if r.ContentLength != int64(len(data)) {
		// an unchanged length is in the header already, as the client sent it
		r.ContentLength = int64(len(data))
		r.Header.Set("Content-Length", strconv.Itoa(len(data)))
	}
	r.TransferEncoding = nil

	// the body is read already, so the upstream has no reason to wait for a 100
	r.Header.Del("Expect")
}

// bodyReader is a request body in memory: a bytes.Reader that closes, in one allocation
// where io.NopCloser around a bytes.Reader takes two.
type bodyReader struct{ bytes.Reader }

func newBodyReader(data []byte) *bodyReader {
	br := new(bodyReader)
	br.Reset(data)
	return br
}

// Close does nothing: the body is in memory.
func (*bodyReader) Close() error { return nil }
