package examples_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/piivault/piivault/caddymodule"
	"github.com/piivault/piivault/examples/legacyapp/app"
)

// TestMain keeps Caddy's own storage out of the home directory.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "piivault-examples-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))

	code := m.Run()
	_ = caddy.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

// alice is a user with every field that the sidecar policy handles.
const alice = `{
	"name": "Alice",
	"email": "alice@example.com",
	"phone": "+1 555 0100",
	"addresses": [{"line1": "1 Main St", "city": "Springfield"}],
	"date_of_birth": "1990-01-02",
	"ssn": "078-05-1120"
}`

// alicePlaintext are the values of alice that must never reach the app.
var alicePlaintext = []string{
	"alice@example.com", "+1 555 0100", "1 Main St", "1990-01-02", "078-05-1120",
}

func TestCaddyfilesAdapt(t *testing.T) {
	files, err := filepath.Glob("*.Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no *.Caddyfile in examples")
	}

	configs := make(map[string][]byte)
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		configs[name] = data
	}
	configs["kubernetes/configmap.yaml"] = configMapCaddyfile(t, "kubernetes/configmap.yaml")

	for name, data := range configs {
		adapter := caddyconfig.GetAdapter("caddyfile")
		_, warnings, err := adapter.Adapt(data, map[string]any{"filename": name})
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for _, w := range warnings {
			t.Errorf("%s: warning: %s", name, w.String())
		}
	}
}

// configMapCaddyfile returns the Caddyfile embedded in a ConfigMap manifest as the
// block scalar of the key "Caddyfile", indented by four spaces.
func configMapCaddyfile(t *testing.T, path string) []byte {
	t.Helper()

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, block, found := strings.Cut(string(data), "\n  Caddyfile: |\n")
	if !found {
		t.Fatalf("%s: no \"Caddyfile: |\" key", path)
	}

	var out strings.Builder
	for line := range strings.Lines(block) {
		if strings.TrimSpace(line) == "" {
			out.WriteString("\n")
			continue
		}
		text, indented := strings.CutPrefix(line, "    ")
		if !indented {
			break // the next key of the manifest
		}
		out.WriteString(text)
	}
	return []byte(out.String())
}

func TestSidecarPolicy(t *testing.T) {
	dir := t.TempDir()
	users := startApp(t, filepath.Join(dir, "legacyapp.json"))
	site := startExample(t, "sidecar.Caddyfile", dir, map[string]string{
		"reverse_proxy 127.0.0.1:9001": "reverse_proxy " + users.addr,
	}, "http://127.0.0.1:8080")

	created := site.do(t, "POST", "/users", "org_1", alice)
	if created.status != http.StatusCreated {
		t.Fatalf("POST /users: status %d, want 201; body %s", created.status, created.body)
	}
	id := created.field(t, "id")
	if email := created.field(t, "email"); email == "alice@example.com" || email == "" {
		t.Errorf("POST /users response: email = %q, want an object ID", email)
	}
	if ssn := created.object(t)["ssn"]; ssn != nil {
		t.Errorf("POST /users response: ssn = %v, want null", ssn)
	}

	// the app's file holds object IDs in place of every tokenized field
	stored := users.file(t)
	for _, value := range alicePlaintext {
		if bytes.Contains(stored, []byte(value)) {
			t.Errorf("the app's data file contains %q", value)
		}
	}
	if !bytes.Contains(stored, []byte("Springfield")) {
		t.Errorf("the app's data file lost the untokenized city: %s", stored)
	}

	// GET /users/{id} reveals, for the organization that created the user only
	got := site.do(t, "GET", "/users/"+id, "org_1", "")
	if got.status != http.StatusOK {
		t.Fatalf("GET /users/%s: status %d, want 200; body %s", id, got.status, got.body)
	}
	for _, value := range alicePlaintext[:4] {
		if !bytes.Contains(got.body, []byte(`"`+value+`"`)) {
			t.Errorf("GET /users/%s: %q not revealed; body %s", id, value, got.body)
		}
	}
	if bytes.Contains(got.body, []byte("078-05-1120")) {
		t.Errorf("GET /users/%s: ssn revealed; body %s", id, got.body)
	}

	other := site.do(t, "GET", "/users/"+id, "org_2", "")
	if other.status != http.StatusNotFound {
		t.Errorf("GET /users/%s as org_2: status %d, want 404", id, other.status)
	}

	// an object ID copied into another organization's record is never revealed to it
	copiedBody := fmt.Sprintf(`{"email": %q}`, created.field(t, "email"))
	copied := site.do(t, "POST", "/users", "org_2", copiedBody)
	if copied.status != http.StatusCreated {
		t.Fatalf("POST /users as org_2: status %d, want 201; body %s", copied.status, copied.body)
	}
	copiedID := copied.field(t, "id")
	revealed := site.do(t, "GET", "/users/"+copiedID, "org_2", "")
	if bytes.Contains(revealed.body, []byte("alice@example.com")) {
		t.Errorf("GET /users/%s as org_2 revealed org_1's email: %s", copiedID, revealed.body)
	}

	// lists and exports carry object IDs only
	for _, path := range []string{"/users", "/export"} {
		res := site.do(t, "GET", path, "org_1", "")
		if res.status != http.StatusOK {
			t.Errorf("GET %s: status %d, want 200; body %s", path, res.status, res.body)
		}
		for _, value := range alicePlaintext {
			if bytes.Contains(res.body, []byte(value)) {
				t.Errorf("GET %s: contains %q; body %s", path, value, res.body)
			}
		}
	}
}

func TestSidecarRejectsUnroutedRequests(t *testing.T) {
	dir := t.TempDir()
	users := startApp(t, filepath.Join(dir, "legacyapp.json"))
	site := startExample(t, "sidecar.Caddyfile", dir, map[string]string{
		"reverse_proxy 127.0.0.1:9001": "reverse_proxy " + users.addr,
	}, "http://127.0.0.1:8080")

	cases := []struct {
		method, path, org string
		want              int
	}{
		{"POST", "/users", "", http.StatusBadRequest},
		{"POST", "/users", "org 1", http.StatusBadRequest},
		{"GET", "/export", "", http.StatusBadRequest},
		{"PATCH", "/users/u_1", "org_1", http.StatusNotFound},
		{"POST", "/import", "org_1", http.StatusNotFound},
		{"GET", "/healthz", "", http.StatusOK},
	}
	for _, tc := range cases {
		res := site.do(t, tc.method, tc.path, tc.org, alice)
		if res.status != tc.want {
			t.Errorf("%s %s (organization %q): status %d, want %d", tc.method, tc.path, tc.org,
				res.status, tc.want)
		}
	}

	// only the health check reached the app, so no plaintext was stored
	if _, err := os.Stat(users.app.DataPath()); err == nil {
		t.Errorf("a rejected request reached the app: %s", users.file(t))
	}
}

func TestEgressPolicy(t *testing.T) {
	dir := t.TempDir()
	users := startApp(t, filepath.Join(dir, "legacyapp.json"))
	provider := startApp(t, filepath.Join(dir, "provider.json"))
	ingressPort, egressPort := freePort(t), freePort(t)
	startExample(t, "egress.Caddyfile", dir, map[string]string{
		"reverse_proxy 127.0.0.1:9001": "reverse_proxy " + users.addr,
		"reverse_proxy 127.0.0.1:9002": "reverse_proxy " + provider.addr,
		"http://127.0.0.1:8080":        fmt.Sprintf("http://127.0.0.1:%d", ingressPort),
		"http://127.0.0.1:8082":        fmt.Sprintf("http://127.0.0.1:%d", egressPort),
	}, "")
	ingress := exampleSite{url: fmt.Sprintf("http://127.0.0.1:%d", ingressPort)}
	egress := exampleSite{url: fmt.Sprintf("http://127.0.0.1:%d", egressPort)}

	created := ingress.do(t, "POST", "/users", "org_1", `{"email": "alice@example.com"}`)
	if created.status != http.StatusCreated {
		t.Fatalf("POST /users: status %d, want 201; body %s", created.status, created.body)
	}
	emailID := created.field(t, "email")

	message := fmt.Sprintf(`{"to": %q, "template": "welcome"}`, emailID)
	sent := egress.do(t, "POST", "/v1/messages", "org_1", message)
	if sent.status != http.StatusCreated {
		t.Fatalf("POST /v1/messages: status %d, want 201; body %s", sent.status, sent.body)
	}
	if to := sent.object(t)["to"]; to != nil {
		t.Errorf("POST /v1/messages response: to = %v, want null", to)
	}

	if !bytes.Contains(provider.file(t), []byte("alice@example.com")) {
		t.Errorf("the provider did not receive the address: %s", provider.file(t))
	}
	if bytes.Contains(users.file(t), []byte("alice@example.com")) {
		t.Errorf("the app's data file contains the address: %s", users.file(t))
	}

	// another organization cannot have the address sent with a copied object ID
	stolen := egress.do(t, "POST", "/v1/messages", "org_2", message)
	if n := bytes.Count(provider.file(t), []byte("alice@example.com")); n != 1 {
		t.Errorf("the provider received the address %d times, want once: org_2 sent org_1's "+
			"object ID with status %d", n, stolen.status)
	}
}

// testApp is a legacy app on a loopback port.
type testApp struct {
	app  *app.App
	addr string
}

func startApp(t *testing.T, path string) *testApp {
	t.Helper()

	a, err := app.New(path, app.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return &testApp{app: a, addr: srv.Listener.Addr().String()}
}

func (a *testApp) file(t *testing.T) []byte {
	t.Helper()

	data, err := os.ReadFile(a.app.DataPath())
	if err != nil {
		t.Fatalf("reading the app's data file: %v", err)
	}
	return data
}

// exampleSite is a site of a running example configuration.
type exampleSite struct {
	url string
}

// startExample loads the example Caddyfile name with its vault files in dir, the text
// replacements in replace, and Caddy's logs discarded. If siteAddr is not empty, it is
// replaced with a free loopback port, and the returned site has that address.
func startExample(
	t *testing.T, name, dir string, replace map[string]string, siteAddr string,
) exampleSite {
	t.Helper()

	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(data), "./data/", dir+"/")
	text = strings.Replace(text, "\tadmin off\n", "\tadmin off\n\tlog {\n\t\toutput discard\n\t}\n", 1)
	for old, replacement := range replace {
		if !strings.Contains(text, old) {
			t.Fatalf("%s does not contain %q", name, old)
		}
		text = strings.ReplaceAll(text, old, replacement)
	}

	var site exampleSite
	if siteAddr != "" {
		addr := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
		text = strings.ReplaceAll(text, siteAddr, addr)
		site.url = addr
	}

	adapter := caddyconfig.GetAdapter("caddyfile")
	cfg, _, err := adapter.Adapt([]byte(text), map[string]any{"filename": name})
	if err != nil {
		t.Fatalf("adapting %s: %v", name, err)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("loading %s: %v", name, err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	return site
}

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

type response struct {
	status int
	body   []byte
}

// do sends a request as organization org ("" sends no header) with an optional body.
func (s exampleSite) do(t *testing.T, method, path, org, body string) response {
	t.Helper()

	var reader io.Reader
	if body != "" && method != "GET" {
		reader = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, s.url+path, reader)
	if err != nil {
		t.Fatal(err)
	}
	if org != "" {
		req.Header.Set(app.OrganizationHeader, org)
	}
	if reader != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()

	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, body: data}
}

func (r response) object(t *testing.T) map[string]any {
	t.Helper()

	var obj map[string]any
	if err := json.Unmarshal(r.body, &obj); err != nil {
		t.Fatalf("response is not a JSON object: %v; body %s", err, r.body)
	}
	return obj
}

// field returns a string field of the response object, or "" if it is not a string.
func (r response) field(t *testing.T, name string) string {
	t.Helper()

	value, _ := r.object(t)[name].(string)
	return value
}
