package caddymodule

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// compress encodes s in coding.
func compress(t *testing.T, coding, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	switch coding {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "deflate":
		w = zlib.NewWriter(&buf)
	case "br":
		w = brotli.NewWriter(&buf)
	case "zstd":
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	}
	if _, err := io.WriteString(w, s); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestRequestEncodingsDecoded(t *testing.T) {
	upstream := newRecordingUpstream(t)
	s := mustStartCaddy(t, localStoreGlobals(t.TempDir()), fmt.Sprintf(`
	pii_vault {
		context organization_id {http.request.header.X-Organization-Id}
		tokenize $.email
		request_encodings gzip deflate br zstd
		max_body_size 64KiB
	}
	reverse_proxy %s`, upstream.hostPort()))

	send := func(coding string, body []byte) response {
		return s.send("POST", "/", bytes.NewReader(body), []string{
			"Content-Type: application/json", "Content-Encoding: " + coding, "X-Organization-Id: org_a",
		})
	}

	for _, coding := range []string{"gzip", "deflate", "br", "zstd"} {
		t.Run(coding, func(t *testing.T) {
			res := send(coding, compress(t, coding, `{"email": "alice@example.com"}`))
			if res.status != 200 {
				t.Fatalf("status %d: %s", res.status, res.body)
			}
			got := upstream.received()
			last := got[len(got)-1]
			if bytes.Contains(last.body, []byte("alice")) {
				t.Errorf("upstream received plaintext: %s", last.body)
			}
			if ce := last.header.Get("Content-Encoding"); ce != "" {
				t.Errorf("upstream got Content-Encoding %q for an uncompressed body", ce)
			}
		})
	}

	t.Run("bomb", func(t *testing.T) {
		before := len(upstream.received())
		bomb := `{"pad": "` + strings.Repeat("0", 10<<20) + `", "email": "alice@example.com"}`
		res := send("gzip", compress(t, "gzip", bomb))
		if res.status != http.StatusRequestEntityTooLarge {
			t.Errorf("status %d, want 413", res.status)
		}
		if len(upstream.received()) != before {
			t.Error("upstream received the bomb")
		}
	})

	t.Run("corrupt", func(t *testing.T) {
		res := send("gzip", []byte("not gzip"))
		if res.status != 400 {
			t.Errorf("status %d, want 400", res.status)
		}
	})

	t.Run("stacked", func(t *testing.T) {
		res := send("gzip, br", compress(t, "br", string(compress(t, "gzip", `{"email": "a"}`))))
		if res.status != 415 {
			t.Errorf("status %d, want 415", res.status)
		}
	})
}
