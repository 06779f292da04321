package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// TestMain points Caddy's data directory at a temporary one, so that default store
// files land there, and collects every log line of the run for TestLogsHoldNoPlaintext.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "piivault-caddy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	suiteLog = filepath.Join(dir, "suite.log")

	code := m.Run()
	_ = caddy.Stop()

	// no log line of the whole run may hold a tokenized value
	found, err := checkSuiteLog()
	if err != nil && !os.IsNotExist(err) {
		fmt.Fprintln(os.Stderr, "reading the suite log:", err)
		code = 1
	}
	if len(found) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: the suite log holds %d plaintext values\n", len(found))
		code = 1
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// suiteLog is the file that every Caddy started by these tests logs to.
var suiteLog string

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// site is a running Caddy with one site on a loopback port.
type site struct {
	t   *testing.T
	url string
}

// testGlobals are the global options of every Caddy these tests start.
func testGlobals() string {
	return fmt.Sprintf(`
	auto_https off
	persist_config off
	log {
		output file %q
		format json
		level DEBUG
	}`, suiteLog)
}

// startCaddy loads a Caddyfile with the global options globals and one site on a free
// port whose block is body. It replaces any config already running.
func startCaddy(t *testing.T, globals, body string) (*site, error) {
	t.Helper()
	port := freePort(t)
	cfg := fmt.Sprintf("{\n\tadmin off\n%s\n%s\n}\n\nhttp://127.0.0.1:%d {\n\tbind 127.0.0.1\n%s\n}\n",
		testGlobals(), globals, port, body)
	return loadCaddyfile(t, cfg, port)
}

// rootCaddyfile returns the repository's Caddyfile, with its site on port, its upstream
// at upstream, its files in dir and the test logging added.
func rootCaddyfile(t *testing.T, port int, upstream, dir string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer(
		"http://127.0.0.1:8080", fmt.Sprintf("http://127.0.0.1:%d", port),
		"127.0.0.1:9001", upstream,
		"./data/", dir+"/",
		"\tadmin off\n", "\tadmin off\n"+testGlobals()+"\n",
	).Replace(string(data))
	return text
}

// loadCaddyfile loads a whole Caddyfile whose site listens on port.
func loadCaddyfile(t *testing.T, cfg string, port int) (*site, error) {
	t.Helper()
	adapter := caddyconfig.GetAdapter("caddyfile")
	js, warnings, err := adapter.Adapt([]byte(cfg), nil)
	if err != nil {
		return nil, fmt.Errorf("adapting Caddyfile: %w", err)
	}
	for _, w := range warnings {
		if !strings.Contains(w.Message, "not formatted") {
			t.Logf("caddyfile warning: %s", w)
		}
	}
	if err := caddy.Load(js, true); err != nil {
		return nil, err
	}
	return &site{t: t, url: fmt.Sprintf("http://127.0.0.1:%d", port)}, nil
}

// mustStartCaddy is startCaddy that fails the test on error.
func mustStartCaddy(t *testing.T, globals, body string) *site {
	t.Helper()
	s, err := startCaddy(t, globals, body)
	if err != nil {
		t.Fatalf("starting caddy: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	return s
}

// response is what a client received.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal(r.body, &v); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, r.body)
	}
	return v
}

// do sends a request; headers are "Name: value" lines.
func (s *site) do(method, path, body string, headers ...string) response {
	s.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	return s.send(method, path, rd, headers)
}

// doChunked sends a request whose body has no declared length, so it goes chunked.
func (s *site) doChunked(method, path, body string, headers ...string) response {
	s.t.Helper()
	return s.send(method, path, io.MultiReader(strings.NewReader(body)), headers)
}

func (s *site) send(method, path string, body io.Reader, headers []string) response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.url+path, body)
	if err != nil {
		s.t.Fatal(err)
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		// only ASCII spaces are trimmed, so tests can send other white space
		req.Header.Add(strings.TrimSpace(name), strings.Trim(value, " "))
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: data}
}

// recordingUpstream is an upstream that records every request it receives. It echoes the
// request body as JSON, unless setReply sets another response.
type recordingUpstream struct {
	*httptest.Server
	mu       sync.Mutex
	requests []recorded
	reply    func(w http.ResponseWriter, r *http.Request, body []byte)
}

type recorded struct {
	method string
	path   string
	header http.Header
	body   []byte
}

func newRecordingUpstream(t *testing.T) *recordingUpstream {
	u := &recordingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.requests = append(u.requests, recorded{r.Method, r.URL.Path, r.Header.Clone(), body})
		reply := u.reply
		u.mu.Unlock()
		if reply != nil {
			reply(w, r, body)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	}))
	t.Cleanup(u.Close)
	return u
}

// hostPort returns the upstream's address for reverse_proxy.
func (u *recordingUpstream) hostPort() string { return strings.TrimPrefix(u.URL, "http://") }

func (u *recordingUpstream) received() []recorded {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]recorded(nil), u.requests...)
}

// setReply sets how the upstream responds from now on.
func (u *recordingUpstream) setReply(f func(w http.ResponseWriter, r *http.Request, body []byte)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.reply = f
}

// replyJSON makes the upstream respond to every request with body.
func (u *recordingUpstream) replyJSON(body string) {
	u.setReply(func(w http.ResponseWriter, _ *http.Request, _ []byte) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.Copy(w, bytes.NewReader([]byte(body)))
	})
}
