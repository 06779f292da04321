package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/piivault/piivault/examples/legacyapp/app"
)

// newServer starts the app on 127.0.0.1 with its data file at path.
func newServer(t *testing.T, path string) (*app.App, *httptest.Server) {
	t.Helper()

	a, err := app.New(path, app.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatalf("app.New(%q): %v", path, err)
	}
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return a, srv
}

// call sends one request for the organization org ("" sends no header) and returns the
// status and the body.
func call(t *testing.T, srv *httptest.Server, method, path, org, body string) (int, []byte) {
	t.Helper()

	status, data, err := send(srv, method, path, org, body)
	if err != nil {
		t.Fatal(err)
	}
	return status, data
}

// send is call for goroutines other than the test's, which must not call t.Fatal.
func send(srv *httptest.Server, method, path, org, body string) (int, []byte, error) {
	var reader io.Reader
	if body != "" {
		reader = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, srv.URL+path, reader)
	if err != nil {
		return 0, nil, fmt.Errorf("building %s %s: %w", method, path, err)
	}
	if org != "" {
		req.Header.Set(app.OrganizationHeader, org)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := srv.Client().Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()

	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, nil, fmt.Errorf("reading response of %s %s: %w", method, path, err)
	}
	return resp.StatusCode, data, nil
}

func decodeObject(t *testing.T, data []byte) map[string]any {
	t.Helper()

	var obj map[string]any
	if err := json.Unmarshal(data, &obj); err != nil {
		t.Fatalf("decoding %s: %v", data, err)
	}
	return obj
}

// createUser posts body and returns the assigned id.
func createUser(t *testing.T, srv *httptest.Server, org, body string) string {
	t.Helper()

	status, data := call(t, srv, http.MethodPost, "/users", org, body)
	if status != http.StatusCreated {
		t.Fatalf("POST /users: status %d, want 201; body %s", status, data)
	}
	id, _ := decodeObject(t, data)["id"].(string)
	if id == "" {
		t.Fatalf("POST /users: no id in %s", data)
	}
	return id
}

func listIDs(t *testing.T, srv *httptest.Server, org string) []string {
	t.Helper()

	status, data := call(t, srv, http.MethodGet, "/users", org, "")
	if status != http.StatusOK {
		t.Fatalf("GET /users: status %d, want 200; body %s", status, data)
	}

	var list struct {
		Users []struct {
			ID string `json:"id"`
		} `json:"users"`
	}
	if err := json.Unmarshal(data, &list); err != nil {
		t.Fatalf("decoding %s: %v", data, err)
	}

	ids := make([]string, 0, len(list.Users))
	for _, u := range list.Users {
		ids = append(ids, u.ID)
	}
	return ids
}

const alice = `{
	"email": "alice@example.com",
	"phone": "+1 555 0100",
	"name": "Alice",
	"addresses": [{"line1": "1 Main St", "city": "Springfield"}],
	"ssn": "078-05-1120",
	"date_of_birth": "1990-01-02",
	"score": 12345678901234567890,
	"notes": null
}`

func TestCRUDRoundTrip(t *testing.T) {
	_, srv := newServer(t, filepath.Join(t.TempDir(), "users.json"))
	id := createUser(t, srv, "org_1", alice)

	status, data := call(t, srv, http.MethodGet, "/users/"+id, "org_1", "")
	if status != http.StatusOK {
		t.Fatalf("GET: status %d, want 200; body %s", status, data)
	}
	got := decodeObject(t, data)
	if got["email"] != "alice@example.com" {
		t.Errorf("GET: email = %v, want alice@example.com", got["email"])
	}
	addresses, _ := got["addresses"].([]any)
	if len(addresses) != 1 {
		t.Fatalf("GET: addresses = %v, want one address", got["addresses"])
	}
	if line1 := addresses[0].(map[string]any)["line1"]; line1 != "1 Main St" {
		t.Errorf("GET: addresses[0].line1 = %v, want 1 Main St", line1)
	}
	if !bytes.Contains(data, []byte(`"score":12345678901234567890`)) {
		t.Errorf("GET: a large number lost precision: %s", data)
	}

	// PUT replaces the whole record and keeps the id, whatever id the body has
	status, data = call(t, srv, http.MethodPut, "/users/"+id, "org_1",
		`{"id": "u_999", "email": "alice@new.example"}`)
	if status != http.StatusOK {
		t.Fatalf("PUT: status %d, want 200; body %s", status, data)
	}
	got = decodeObject(t, data)
	if got["id"] != id {
		t.Errorf("PUT: id = %v, want %s", got["id"], id)
	}
	if _, ok := got["phone"]; ok {
		t.Errorf("PUT: phone survived the replacement: %s", data)
	}
	_, data = call(t, srv, http.MethodGet, "/users/"+id, "org_1", "")
	if email := decodeObject(t, data)["email"]; email != "alice@new.example" {
		t.Errorf("GET after PUT: email = %v, want alice@new.example", email)
	}

	status, data = call(t, srv, http.MethodDelete, "/users/"+id, "org_1", "")
	if status != http.StatusNoContent {
		t.Fatalf("DELETE: status %d, want 204; body %s", status, data)
	}
	status, _ = call(t, srv, http.MethodGet, "/users/"+id, "org_1", "")
	if status != http.StatusNotFound {
		t.Errorf("GET after DELETE: status %d, want 404", status)
	}
	status, _ = call(t, srv, http.MethodDelete, "/users/"+id, "org_1", "")
	if status != http.StatusNotFound {
		t.Errorf("second DELETE: status %d, want 404", status)
	}
}

func TestCreateOverridesClientID(t *testing.T) {
	_, srv := newServer(t, filepath.Join(t.TempDir(), "users.json"))

	first := createUser(t, srv, "org_1", `{"id": "u_1"}`)
	second := createUser(t, srv, "org_1", `{"id": "u_1"}`)
	if first == second {
		t.Errorf("two creates with a client id got the same id %s", first)
	}
}

func TestListAndExport(t *testing.T) {
	_, srv := newServer(t, filepath.Join(t.TempDir(), "users.json"))

	if ids := listIDs(t, srv, "org_1"); len(ids) != 0 {
		t.Errorf("empty list = %v, want none", ids)
	}
	status, data := call(t, srv, http.MethodGet, "/export", "org_1", "")
	if status != http.StatusOK || strings.TrimSpace(string(data)) != "[]" {
		t.Errorf("empty export: status %d, body %s; want 200 []", status, data)
	}

	ids := []string{
		createUser(t, srv, "org_1", `{"name": "a"}`),
		createUser(t, srv, "org_1", `{"name": "b"}`),
		createUser(t, srv, "org_1", `{"name": "c"}`),
	}
	if got := listIDs(t, srv, "org_1"); fmt.Sprint(got) != fmt.Sprint(ids) {
		t.Errorf("list = %v, want %v in creation order", got, ids)
	}

	_, data = call(t, srv, http.MethodGet, "/export", "org_1", "")
	var records []map[string]any
	if err := json.Unmarshal(data, &records); err != nil {
		t.Fatalf("export is not a JSON array: %v; body %s", err, data)
	}
	if len(records) != 3 {
		t.Errorf("export has %d records, want 3", len(records))
	}
}

func TestPersistenceAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "data", "users.json")
	first, srv := newServer(t, path)
	id := createUser(t, srv, "org_1", alice)
	deleted := createUser(t, srv, "org_1", `{"name": "gone"}`)
	call(t, srv, http.MethodDelete, "/users/"+deleted, "org_1", "")
	srv.Close()

	second, srv2 := newServer(t, path)
	if second.DataPath() != first.DataPath() {
		t.Fatalf("DataPath = %s, want %s", second.DataPath(), first.DataPath())
	}

	status, data := call(t, srv2, http.MethodGet, "/users/"+id, "org_1", "")
	if status != http.StatusOK {
		t.Fatalf("GET after restart: status %d, want 200; body %s", status, data)
	}
	if email := decodeObject(t, data)["email"]; email != "alice@example.com" {
		t.Errorf("GET after restart: email = %v, want alice@example.com", email)
	}
	if ids := listIDs(t, srv2, "org_1"); len(ids) != 1 {
		t.Errorf("list after restart = %v, want only %s", ids, id)
	}

	// the counter survives too, so a restart never reuses an id
	next := createUser(t, srv2, "org_1", `{}`)
	if next == id || next == deleted {
		t.Errorf("create after restart reused id %s", next)
	}
}

func TestDataFile(t *testing.T) {
	a, srv := newServer(t, filepath.Join(t.TempDir(), "users.json"))
	createUser(t, srv, "org_1", alice)

	info, err := os.Stat(a.DataPath())
	if err != nil {
		t.Fatalf("stat data file: %v", err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("data file mode = %o, want 600", mode)
	}

	data, err := os.ReadFile(a.DataPath())
	if err != nil {
		t.Fatalf("reading data file: %v", err)
	}
	if !json.Valid(data) {
		t.Errorf("data file is not valid JSON: %s", data)
	}
	if !bytes.Contains(data, []byte("alice@example.com")) {
		t.Errorf("data file does not hold the stored record: %s", data)
	}

	entries, err := os.ReadDir(filepath.Dir(a.DataPath()))
	if err != nil {
		t.Fatalf("reading data directory: %v", err)
	}
	if len(entries) != 1 {
		t.Errorf("data directory has %d entries, want only the data file", len(entries))
	}
}

func TestCorruptDataFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	if err := os.WriteFile(path, []byte(`{"organizations": `), 0o600); err != nil {
		t.Fatal(err)
	}

	if _, err := app.New(path); err == nil {
		t.Error("app.New accepted a truncated data file")
	}
}

func TestFailedWriteChangesNothing(t *testing.T) {
	a, srv := newServer(t, filepath.Join(t.TempDir(), "users.json"))
	id := createUser(t, srv, "org_1", `{"name": "kept"}`)

	// a non-empty directory in place of the data file makes the rename fail
	if err := os.Remove(a.DataPath()); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(a.DataPath(), "blocker"), 0o700); err != nil {
		t.Fatal(err)
	}

	status, data := call(t, srv, http.MethodPost, "/users", "org_1", `{"name": "lost"}`)
	if status != http.StatusInternalServerError {
		t.Errorf("POST with a broken data file: status %d, want 500; body %s", status, data)
	}
	status, _ = call(t, srv, http.MethodDelete, "/users/"+id, "org_1", "")
	if status != http.StatusInternalServerError {
		t.Errorf("DELETE with a broken data file: status %d, want 500", status)
	}
	if ids := listIDs(t, srv, "org_1"); fmt.Sprint(ids) != fmt.Sprint([]string{id}) {
		t.Errorf("list after failed writes = %v, want [%s]", ids, id)
	}
}

func TestTenantSeparation(t *testing.T) {
	_, srv := newServer(t, filepath.Join(t.TempDir(), "users.json"))
	idA := createUser(t, srv, "org_a", `{"email": "a@example.com"}`)
	idB := createUser(t, srv, "org_b", `{"email": "b@example.com"}`)

	if idA == idB {
		t.Fatalf("two organizations got the same id %s", idA)
	}
	if ids := listIDs(t, srv, "org_a"); fmt.Sprint(ids) != fmt.Sprint([]string{idA}) {
		t.Errorf("org_a list = %v, want [%s]", ids, idA)
	}

	cases := []struct {
		method string
		body   string
	}{
		{http.MethodGet, ""},
		{http.MethodPut, `{"email": "takeover@example.com"}`},
		{http.MethodDelete, ""},
	}
	for _, tc := range cases {
		status, _ := call(t, srv, tc.method, "/users/"+idA, "org_b", tc.body)
		if status != http.StatusNotFound {
			t.Errorf("%s of org_a's user as org_b: status %d, want 404", tc.method, status)
		}
	}

	_, data := call(t, srv, http.MethodGet, "/export", "org_b", "")
	if bytes.Contains(data, []byte("a@example.com")) {
		t.Errorf("org_b export contains org_a's data: %s", data)
	}
	_, data = call(t, srv, http.MethodGet, "/users/"+idA, "org_a", "")
	if email := decodeObject(t, data)["email"]; email != "a@example.com" {
		t.Errorf("org_a's user changed by org_b: email = %v", email)
	}
}

func TestMissingOrganization(t *testing.T) {
	_, srv := newServer(t, filepath.Join(t.TempDir(), "users.json"))

	routes := []struct{ method, path, body string }{
		{http.MethodPost, "/users", `{}`},
		{http.MethodGet, "/users", ""},
		{http.MethodGet, "/users/u_1", ""},
		{http.MethodPut, "/users/u_1", `{}`},
		{http.MethodDelete, "/users/u_1", ""},
		{http.MethodGet, "/export", ""},
	}
	for _, rt := range routes {
		status, data := call(t, srv, rt.method, rt.path, "", rt.body)
		if status != http.StatusBadRequest {
			t.Errorf("%s %s without organization: status %d, want 400", rt.method, rt.path, status)
		}
		if detail := decodeObject(t, data)["detail"]; detail != "missing X-Organization-Id header" {
			t.Errorf("%s %s without organization: detail %q", rt.method, rt.path, detail)
		}
	}
}

func TestInvalidBody(t *testing.T) {
	_, srv := newServer(t, filepath.Join(t.TempDir(), "users.json"))

	cases := map[string]string{
		"not JSON":      `{"email": `,
		"array":         `[{"email": "a@example.com"}]`,
		"string":        `"a@example.com"`,
		"null":          `null`,
		"two objects":   `{} {}`,
		"trailing data": `{"email": "a@example.com"} x`,
	}
	for name, body := range cases {
		status, data := call(t, srv, http.MethodPost, "/users", "org_1", body)
		if status != http.StatusBadRequest {
			t.Errorf("%s: status %d, want 400; body %s", name, status, data)
		}
		if bytes.Contains(data, []byte("a@example.com")) {
			t.Errorf("%s: the problem response echoes the body: %s", name, data)
		}
	}
	if ids := listIDs(t, srv, "org_1"); len(ids) != 0 {
		t.Errorf("invalid bodies were stored: %v", ids)
	}
}

func TestBodyTooLarge(t *testing.T) {
	_, srv := newServer(t, filepath.Join(t.TempDir(), "users.json"))

	body := `{"notes": "` + strings.Repeat("x", app.MaxBodyBytes) + `"}`
	status, data := call(t, srv, http.MethodPost, "/users", "org_1", body)
	if status != http.StatusRequestEntityTooLarge {
		t.Errorf("status %d, want 413; body %s", status, data)
	}
}

func TestHealthz(t *testing.T) {
	_, srv := newServer(t, filepath.Join(t.TempDir(), "users.json"))

	status, data := call(t, srv, http.MethodGet, "/healthz", "", "")
	if status != http.StatusOK {
		t.Errorf("status %d, want 200", status)
	}
	if string(data) != "ok" {
		t.Errorf("body %q, want ok", data)
	}
}

func TestConcurrentWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	_, srv := newServer(t, path)

	const workers, perWorker = 8, 10
	orgs := []string{"org_a", "org_b"}

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			org := orgs[w%len(orgs)]
			for i := range perWorker {
				if err := createAndReplace(srv, org, fmt.Sprintf(`{"worker": %d, "n": %d}`, w, i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()

	// every create is in memory and, after a restart, in the file, with no id twice
	want := workers * perWorker / len(orgs)
	_, restarted := newServer(t, path)
	seen := make(map[string]bool)
	for _, org := range orgs {
		ids := listIDs(t, restarted, org)
		if len(ids) != want {
			t.Errorf("%s has %d users after restart, want %d", org, len(ids), want)
		}
		for _, id := range ids {
			if seen[id] {
				t.Errorf("id %s assigned twice", id)
			}
			seen[id] = true
		}
	}
}

// createAndReplace creates a user, replaces it and lists the organization, as one
// worker of TestConcurrentWrites.
func createAndReplace(srv *httptest.Server, org, body string) error {
	status, data, err := send(srv, http.MethodPost, "/users", org, body)
	if err != nil {
		return err
	}
	if status != http.StatusCreated {
		return fmt.Errorf("POST /users: status %d, want 201; body %s", status, data)
	}

	var created struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(data, &created); err != nil {
		return fmt.Errorf("decoding %s: %w", data, err)
	}

	status, data, err = send(srv, http.MethodPut, "/users/"+created.ID, org, `{"updated": true}`)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("PUT /users/%s: status %d, want 200; body %s", created.ID, status, data)
	}

	status, _, err = send(srv, http.MethodGet, "/users", org, "")
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET /users: status %d, want 200", status)
	}
	return nil
}
