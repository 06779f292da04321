package proxy

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/piivault/piivault/vault"
	"github.com/piivault/piivault/vault/local"
	"github.com/piivault/piivault/vault/vaulttest"
)

// The benchmarks run the handler alone, without Caddy or a network: a request goes
// through Handler.ServeHTTP to a next handler in the same goroutine. One op is one
// request. scripts/load measures the same cases through the caddy binary.

// benchFields is the number of values that the tokenize and reveal benchmarks rewrite.
const benchFields = 10

// benchRules lists the paths of the benchmark fields, $.f0 to $.f9.
func benchRules() []string {
	paths := make([]string, benchFields)
	for i := range paths {
		paths[i] = fmt.Sprintf("$.f%d", i)
	}
	return paths
}

// benchBody returns a JSON object of about size bytes: the fields f0 to f9 with the
// given values, when values is not nil, and a padding string.
func benchBody(size int, values []string) []byte {
	var b bytes.Buffer
	b.WriteString(`{"id":"u_1","name":"Alice Example"`)
	for i, v := range values {
		fmt.Fprintf(&b, `,"f%d":%q`, i, v)
	}
	b.WriteString(`,"notes":"`)
	pad := size - b.Len() - len(`"}`)
	b.WriteString(strings.Repeat("x", max(pad, 0)))
	b.WriteString(`"}`)
	return b.Bytes()
}

// plainValues returns benchFields plaintext values.
func plainValues() []string {
	values := make([]string, benchFields)
	for i := range values {
		values[i] = fmt.Sprintf("user%d@example.com", i)
	}
	return values
}

// benchNext is the upstream of the benchmarks: it drains the request body and responds
// with reply, as JSON.
func benchNext(reply []byte) Next {
	return nextFunc(func(w http.ResponseWriter, r *http.Request) error {
		if r.Body != nil {
			_, _ = io.Copy(io.Discard, r.Body)
		}
		w.Header().Set("Content-Type", "application/json")
		_, err := w.Write(reply)
		return err
	})
}

// discardWriter is a ResponseWriter that keeps only the status, so that the writer
// allocates nothing the handler would not allocate behind Caddy.
type discardWriter struct {
	header http.Header
	status int
}

func (w *discardWriter) Header() http.Header         { return w.header }
func (w *discardWriter) WriteHeader(status int)      { w.status = status }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }

// serveBench sends one request with body (GET without one when body is nil) through h
// and fails b unless the status is 200.
func serveBench(b *testing.B, h *Handler, body []byte, next Next) {
	method := http.MethodGet
	var rd io.Reader
	if body != nil {
		method = http.MethodPost
		rd = bytes.NewReader(body)
	}
	req := httptest.NewRequest(method, "/users", rd)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("X-Org", "org_a")

	w := &discardWriter{header: make(http.Header)}
	if err := h.ServeHTTP(w, req, next); err != nil {
		b.Fatal(err)
	}
	if w.status != 0 && w.status != http.StatusOK {
		b.Fatalf("status %d", w.status)
	}
}

// openLocal opens a vault/local store on a file in b's temporary directory.
func openLocal(b testing.TB) vault.Store {
	b.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	s, err := local.Open(filepath.Join(b.TempDir(), "vault.db"), key, local.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	return s
}

// BenchmarkPassThrough is the cost of the benchmark's request and upstream without
// any rule, the floor of the others.
func BenchmarkPassThrough(b *testing.B) {
	h := newTestHandler(b, nil, Phase{}, Phase{})
	body := benchBody(1024, plainValues())
	next := benchNext(body)

	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		serveBench(b, h, body, next)
	}
}

// BenchmarkNoMatch sends a 1 KB body through request and response rules that select
// nothing in it: both bodies are read and parsed, and neither is rewritten.
func BenchmarkNoMatch(b *testing.B) {
	h := newTestHandler(b, vaulttest.NewMemory(),
		Phase{Tokenize: []string{"$.email", "$.phone", "$.addresses[*].line1"}},
		Phase{Reveal: []string{"$.email", "$.phone", "$.addresses[*].line1"}})
	body := benchBody(1024, plainValues())
	next := benchNext(body)

	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		serveBench(b, h, body, next)
	}
}

// BenchmarkTokenize10Memory tokenizes 10 fields of a 1 KB body into an in-memory store.
func BenchmarkTokenize10Memory(b *testing.B) {
	benchTokenize(b, vaulttest.NewMemory())
}

// BenchmarkTokenize10Local tokenizes 10 fields of a 1 KB body into vault/local, from
// one goroutine, so that each request waits for its own commit and fsync.
func BenchmarkTokenize10Local(b *testing.B) {
	benchTokenize(b, openLocal(b))
}

// BenchmarkTokenize10LocalParallel tokenizes from 32 goroutines, so that concurrent
// requests share commits, as they do under load.
func BenchmarkTokenize10LocalParallel(b *testing.B) {
	h := newTestHandler(b, openLocal(b), Phase{Tokenize: benchRules()}, Phase{})
	body := benchBody(1024, plainValues())
	next := benchNext([]byte(`{"ok":true}`))

	b.ReportAllocs()
	b.SetParallelism(max(1, 32/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			serveBench(b, h, body, next)
		}
	})
}

func benchTokenize(b *testing.B, store vault.Store) {
	h := newTestHandler(b, store, Phase{Tokenize: benchRules()}, Phase{})
	body := benchBody(1024, plainValues())
	next := benchNext([]byte(`{"ok":true}`))

	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		serveBench(b, h, body, next)
	}
}

// BenchmarkReveal10Memory reveals 10 object IDs of a 1 KB response from an in-memory
// store.
func BenchmarkReveal10Memory(b *testing.B) {
	benchReveal(b, vaulttest.NewMemory())
}

// BenchmarkReveal10Local reveals 10 object IDs of a 1 KB response from vault/local.
func BenchmarkReveal10Local(b *testing.B) {
	benchReveal(b, openLocal(b))
}

func benchReveal(b *testing.B, store vault.Store) {
	h := newTestHandler(b, store, Phase{}, Phase{Reveal: benchRules()})
	reply := benchBody(1024, createIDs(b, store, benchFields))
	next := benchNext(reply)

	b.ReportAllocs()
	b.SetBytes(int64(len(reply)))
	for b.Loop() {
		serveBench(b, h, nil, next)
	}
}

// BenchmarkLargeRedact redacts 1,000 values of a 100 KB response: the parse, select
// and splice cost without a vault call.
func BenchmarkLargeRedact(b *testing.B) {
	h := newTestHandler(b, nil, Phase{}, Phase{Redact: []string{"$.items[*].email"}})
	reply := largeBody(b, func(i int) string { return fmt.Sprintf("user%d@example.com", i) })

	b.ReportAllocs()
	b.SetBytes(int64(len(reply)))
	next := benchNext(reply)
	for b.Loop() {
		serveBench(b, h, nil, next)
	}
}

// BenchmarkLargeReveal reveals 1,000 object IDs of a 100 KB response from vault/local.
func BenchmarkLargeReveal(b *testing.B) {
	store := openLocal(b)
	h := newTestHandler(b, store, Phase{}, Phase{Reveal: []string{"$.items[*].email"}})
	ids := createIDs(b, store, 1000)
	reply := largeBody(b, func(i int) string { return ids[i] })

	b.ReportAllocs()
	b.SetBytes(int64(len(reply)))
	next := benchNext(reply)
	for b.Loop() {
		serveBench(b, h, nil, next)
	}
}

// largeBody returns {"items":[...]} with 1,000 items of about 100 bytes, whose email
// member is email(i).
func largeBody(b *testing.B, email func(i int) string) []byte {
	b.Helper()
	var buf bytes.Buffer
	buf.WriteString(`{"items":[`)
	for i := range 1000 {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `{"id":"u_%d","email":%q,"name":"User %d","pad":"%s"}`,
			i, email(i), i, strings.Repeat("y", 30))
	}
	buf.WriteString(`]}`)
	return buf.Bytes()
}

// createIDs stores n values for org_a through the store and returns their object IDs.
func createIDs(b *testing.B, store vault.Store, n int) []string {
	b.Helper()
	objs := make([]vault.NewObject, n)
	for i := range objs {
		objs[i] = vault.NewObject{
			Name:    fmt.Sprintf("bench/%d", i),
			Value:   []byte(fmt.Sprintf(`"user%d@example.com"`, i)),
			Context: vault.KeyContext{"organization_id": "org_a"},
		}
	}
	metas, err := vault.CreateAll(b.Context(), store, objs)
	if err != nil {
		b.Fatal(err)
	}
	ids := make([]string, n)
	for i, m := range metas {
		ids[i] = m.ID
	}
	return ids
}
