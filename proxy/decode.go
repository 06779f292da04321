package proxy

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// decoders are the request Content-Encodings that Config.RequestEncodings may allow.
// HTTP's "deflate" is the zlib format (RFC 9110, section 8.4.1.2).
var decoders = map[string]func(io.Reader) (io.Reader, error){
	"gzip":    func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) },
	"deflate": func(r io.Reader) (io.Reader, error) { return zlib.NewReader(r) },
	"br":      func(r io.Reader) (io.Reader, error) { return brotli.NewReader(r), nil },
	"zstd": func(r io.Reader) (io.Reader, error) {
		// a frame may ask for a window of up to 8 MiB; a larger one is an error
		return zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(8<<20))
	},
}

// checkEncodings checks that every coding in allowed can be decoded.
func checkEncodings(allowed []string) error {
	for _, c := range allowed {
		if _, ok := decoders[c]; !ok {
			return fmt.Errorf("unknown request encoding %q: use gzip, deflate, br or zstd", c)
		}
	}
	return nil
}

// requestCoding returns the one content coding of r's body, "" for none, when allowed
// lists it. Stacked codings are rejected: no client needs them.
func requestCoding(r *http.Request, allowed []string) (string, error) {
	values := r.Header.Values("Content-Encoding")
	if len(values) == 0 || isIdentity(values) {
		return "", nil
	}

	coding := strings.ToLower(strings.TrimSpace(strings.Join(values, ",")))
	if len(values) == 1 && !strings.Contains(coding, ",") && slices.Contains(allowed, coding) {
		return coding, nil
	}
	if len(allowed) == 0 {
		return "", problemf(http.StatusUnsupportedMediaType,
			"request Content-Encoding is not supported on this route: send the body uncompressed")
	}
	return "", problemf(http.StatusUnsupportedMediaType,
		"request Content-Encoding must be one of %s on this route", strings.Join(allowed, ", "))
}

// decodeBody decodes a body in coding, up to max decoded bytes.
func decodeBody(coding string, data []byte, max int64) ([]byte, error) {
	invalid := func(err error) error {
		return &Error{Status: http.StatusBadRequest,
			Detail: "request body is not valid " + coding + " data", Err: err}
	}

	dec, err := decoders[coding](bytes.NewReader(data))
	if err != nil {
		return nil, invalid(err)
	}
	if c, ok := dec.(io.Closer); ok {
		defer c.Close()
	}
	if z, ok := dec.(*zstd.Decoder); ok {
		defer z.Close()
	}

	out, err := io.ReadAll(io.LimitReader(dec, max+1))
	if err != nil {
		return nil, invalid(err)
	}
	if int64(len(out)) > max {
		return nil, problemf(http.StatusRequestEntityTooLarge,
			"decoded request body is larger than the limit of %d bytes", max)
	}
	return out, nil
}
