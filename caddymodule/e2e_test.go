package caddymodule

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/piivault/piivault/examples/legacyapp/app"
	"github.com/piivault/piivault/vault"
	"github.com/piivault/piivault/vault/emulator"
	"github.com/piivault/piivault/vault/local"
)

// plaintexts are the values that the tests tokenize. None may appear in a log line.
var plaintexts = []string{
	"alice@example.com", "+1 555 0100", "1 Infinite Loop", "1984-01-24", "123-45-6789",
	"bob@example.org", "+44 20 7946 0958", "221B Baker Street", "1970-12-31", "987-65-4321",
}

// sidecar is the root Caddyfile in front of the example app.
type sidecar struct {
	*site
	app     *app.App
	dir     string
	globals string // the pii_vault global option in use, for further sites
}

// storeKind is a store that the end-to-end tests run against. globals returns the
// pii_vault global option for a store whose files are in dir.
type storeKind struct {
	name    string
	globals func(t *testing.T, dir string) string
}

// storeKinds are the stores of the end-to-end table: the local store, and WorkOS Vault
// through the emulator over HTTP.
var storeKinds = []storeKind{
	{"local", func(_ *testing.T, dir string) string { return localStoreGlobals(dir) }},
	{"workos", func(t *testing.T, dir string) string { return workosGlobals(t, dir) }},
}

// forEachStore runs test once per store kind.
func forEachStore(t *testing.T, test func(t *testing.T, kind storeKind)) {
	for _, kind := range storeKinds {
		t.Run(kind.name, func(t *testing.T) { test(t, kind) })
	}
}

// emulators holds one emulator per store directory, so that a restarted Caddy finds
// the objects it created before.
var emulators sync.Map // dir -> *testEmulator

// testEmulator is a WorkOS Vault emulator over a local store, served on loopback.
type testEmulator struct {
	*emulator.Emulator
	url string
}

// startEmulator returns the emulator for dir, starting it on first use.
func startEmulator(t *testing.T, dir string) *testEmulator {
	if e, ok := emulators.Load(dir); ok {
		return e.(*testEmulator)
	}
	key, _, err := local.LoadOrCreateKeyFile(filepath.Join(dir, "emulator.key"))
	if err != nil {
		t.Fatal(err)
	}
	store, err := local.Open(filepath.Join(dir, "emulator.db"), key, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	emu := emulator.New(store, "test-api-key")
	srv := httptest.NewServer(emu)
	t.Cleanup(func() {
		emu.Close()
		srv.Close()
		store.Close()
		emulators.Delete(dir)
	})

	e := &testEmulator{Emulator: emu, url: srv.URL}
	emulators.Store(dir, e)
	return e
}

// workosGlobals configures the workos store against the emulator of dir, with extra
// store options.
func workosGlobals(t *testing.T, dir string, options ...string) string {
	return fmt.Sprintf(`
	pii_vault {
		store workos {
			api_key test-api-key
			endpoint %s
			%s
		}
	}`, startEmulator(t, dir).url, strings.Join(options, "\n\t\t\t"))
}

// globalBlock is the pii_vault global option of the root Caddyfile.
var globalBlock = regexp.MustCompile(`(?s)\n\tpii_vault \{.*?\n\t\}\n`)

// startSidecar runs the example app and the repository's Caddyfile in front of it, with
// the store of kind and every file in dir.
func startSidecar(t *testing.T, kind storeKind, dir string) *sidecar {
	t.Helper()
	a, err := app.New(filepath.Join(dir, "legacyapp.json"), app.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	upstream := httptest.NewServer(a)
	t.Cleanup(upstream.Close)

	port := freePort(t)
	cfg := rootCaddyfile(t, port, strings.TrimPrefix(upstream.URL, "http://"), dir)
	globals := kind.globals(t, dir)
	if kind.name != "local" {
		cfg = globalBlock.ReplaceAllLiteralString(cfg, globals+"\n")
		if strings.Contains(cfg, "store local") {
			t.Fatal("the root Caddyfile's store block was not replaced")
		}
	}

	s, err := loadCaddyfile(t, cfg, port)
	if err != nil {
		t.Fatalf("starting caddy: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	return &sidecar{site: s, app: a, dir: dir, globals: globals}
}

const aliceJSON = `{"name": "Alice", "email": "alice@example.com", "phone": "+1 555 0100",
	"date_of_birth": "1984-01-24", "ssn": "123-45-6789", "age": 42,
	"addresses": [{"line1": "1 Infinite Loop", "city": "Cupertino"}]}`

const bobJSON = `{"name": "Bob", "email": "bob@example.org", "phone": "+44 20 7946 0958",
	"date_of_birth": "1970-12-31", "ssn": "987-65-4321",
	"addresses": [{"line1": "221B Baker Street", "city": "London"}]}`

// createUser posts a user for org and returns the record the app stored.
func (s *sidecar) createUser(org, body string) map[string]any {
	s.t.Helper()
	res := s.do("POST", "/users", body, "Content-Type: application/json", "X-Organization-Id: "+org)
	if res.status != 201 {
		s.t.Fatalf("POST /users for %s: status %d: %s", org, res.status, res.body)
	}
	return res.json(s.t)
}

func TestSidecarStoresOnlyIDs(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		s := startSidecar(t, kind, t.TempDir())
		alice := s.createUser("org_a", aliceJSON)
		s.createUser("org_b", bobJSON)

		data, err := os.ReadFile(s.app.DataPath())
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range plaintexts {
			if strings.Contains(string(data), p) {
				t.Errorf("app storage holds plaintext %q", p)
			}
		}

		for _, field := range []string{"email", "phone", "date_of_birth", "ssn"} {
			if id, _ := alice[field].(string); !vault.ValidID(id) {
				t.Errorf("stored %s = %v, want an object ID", field, alice[field])
			}
		}
		line1 := alice["addresses"].([]any)[0].(map[string]any)["line1"]
		if id, _ := line1.(string); !vault.ValidID(id) {
			t.Errorf("stored addresses[0].line1 = %v, want an object ID", line1)
		}
		if alice["name"] != "Alice" || alice["age"] != 42.0 {
			t.Errorf("fields without rules changed: name %v, age %v", alice["name"], alice["age"])
		}
	})
}

func TestSidecarRevealsToOwner(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		s := startSidecar(t, kind, t.TempDir())
		id := s.createUser("org_a", aliceJSON)["id"].(string)

		res := s.do("GET", "/users/"+id, "", "X-Organization-Id: org_a")
		if res.status != 200 {
			t.Fatalf("status %d: %s", res.status, res.body)
		}
		got := res.json(t)
		want := map[string]any{
			"email": "alice@example.com", "phone": "+1 555 0100", "date_of_birth": "1984-01-24",
			"ssn": "*******6789",
		}
		for field, value := range want {
			if got[field] != value {
				t.Errorf("%s = %v, want %v", field, got[field], value)
			}
		}
		if line1 := got["addresses"].([]any)[0].(map[string]any)["line1"]; line1 != "1 Infinite Loop" {
			t.Errorf("addresses[0].line1 = %v, want the plaintext", line1)
		}
		if cc := res.header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control = %q, want no-store", cc)
		}
		if res.header.Get("Etag") != "" {
			t.Errorf("Etag %q passed on a revealed body", res.header.Get("Etag"))
		}
	})
}

func TestSidecarDeniesOtherTenant(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		dir := t.TempDir()
		s := startSidecar(t, kind, dir)
		alice := s.createUser("org_a", aliceJSON)
		aliceEmail := alice["email"].(string)

		// org_b sends org_a's ID as a value: to org_b it is plain data, tokenized anew
		mallory := s.createUser("org_b", fmt.Sprintf(`{"name": "Mallory", "email": %q}`, aliceEmail))
		if mallory["email"] == aliceEmail {
			t.Errorf("org_b's copy of org_a's ID was stored as that ID")
		}

		// an upstream that hands org_a's ID to anyone, on a reveal route
		upstream := newRecordingUpstream(t)
		upstream.replyJSON(fmt.Sprintf(`{"email": %q}`, aliceEmail))
		leaky := mustStartCaddy(t, s.globals, fmt.Sprintf(`
	pii_vault {
		context organization_id {http.request.header.X-Organization-Id}
		reveal $.email
	}
	reverse_proxy %s`, upstream.hostPort()))

		res := leaky.do("GET", "/", "", "X-Organization-Id: org_b")
		if got := res.json(t)["email"]; got != aliceEmail {
			t.Errorf("org_b got email %v, want the ID unrevealed", got)
		}
		if res.header.Get("Cache-Control") == "no-store" {
			t.Error("a response that revealed nothing is marked no-store")
		}
		if !logContains(t, `"msg":"denied"`, aliceEmail, "another key context") {
			t.Error("the denial is not in the audit log")
		}

		res = leaky.do("GET", "/", "", "X-Organization-Id: org_a")
		if got := res.json(t)["email"]; got != "alice@example.com" {
			t.Errorf("org_a got email %v, want the plaintext", got)
		}
	})
}

// localStoreGlobals configures the local store with its files in dir.
func localStoreGlobals(dir string) string {
	return fmt.Sprintf(`
	pii_vault {
		store local {
			path %s/vault.db
			master_key_file %s/master.key
		}
	}`, dir, dir)
}

func TestSidecarListingReturnsIDs(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		s := startSidecar(t, kind, t.TempDir())
		s.createUser("org_a", aliceJSON)

		for _, path := range []string{"/users", "/export"} {
			res := s.do("GET", path, "", "X-Organization-Id: org_a")
			if res.status != 200 {
				t.Fatalf("GET %s: status %d", path, res.status)
			}
			for _, p := range plaintexts {
				if strings.Contains(string(res.body), p) {
					t.Errorf("GET %s returned plaintext %q", path, p)
				}
			}
		}
	})
}

func TestSidecarSurvivesRestart(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		dir := t.TempDir()
		s := startSidecar(t, kind, dir)
		id := s.createUser("org_a", aliceJSON)["id"].(string)
		if err := caddy.Stop(); err != nil {
			t.Fatal(err)
		}

		s = startSidecar(t, kind, dir)
		res := s.do("GET", "/users/"+id, "", "X-Organization-Id: org_a")
		if got := res.json(t)["email"]; got != "alice@example.com" {
			t.Errorf("after restart email = %v, want the plaintext", got)
		}
	})
}

func TestWrongMasterKeyFailsAtStart(t *testing.T) {
	dir := t.TempDir()
	startSidecar(t, storeKinds[0], dir)
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}

	key, err := os.ReadFile(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	other := strings.Map(func(r rune) rune {
		if r == 'A' {
			return 'B'
		}
		return 'A'
	}, strings.TrimSpace(string(key))[:43]) + "="
	if err := os.WriteFile(filepath.Join(dir, "master.key"), []byte(other+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	port := freePort(t)
	_, err = loadCaddyfile(t, rootCaddyfile(t, port, "127.0.0.1:1", dir), port)
	if err == nil {
		_ = caddy.Stop()
		t.Fatal("caddy started with the wrong master key")
	}
	if !strings.Contains(err.Error(), "master key") {
		t.Errorf("error %q does not name the master key", err)
	}
	if strings.Contains(err.Error(), other) {
		t.Error("error contains the key")
	}
}

// logContains reports whether a line of the suite's log holds every one of parts.
func logContains(t *testing.T, parts ...string) bool {
	t.Helper()
	data, err := os.ReadFile(suiteLog)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return true
		}
	}
	return false
}

// checkSuiteLog returns the plaintext values found in the suite's log.
func checkSuiteLog() ([]string, error) {
	data, err := os.ReadFile(suiteLog)
	if err != nil {
		return nil, err
	}
	var found []string
	for _, p := range plaintexts {
		quoted, _ := json.Marshal(p)
		if strings.Contains(string(data), p) || strings.Contains(string(data), string(quoted[1:len(quoted)-1])) {
			found = append(found, p)
		}
	}
	return found, nil
}

func TestRevealPathTricks(t *testing.T) {
	s := startSidecar(t, storeKinds[0], t.TempDir())
	id := s.createUser("org_a", aliceJSON)["id"].(string)

	paths := []string{
		"/users/" + id, "/users/" + id + "/", "//users/" + id, "/users/./" + id,
		"/users/../users/" + id, "/users/%2e%2e/users/" + id, "/users%2f" + id,
		"/users/" + id + "%2f", `/users\` + id, "/users/" + id + "..;", "/users/..;/users/" + id,
		"/users/" + id + "?x=1", "/users/" + id + "#f", "/USERS/" + id, "/export", "/users",
	}
	for _, path := range paths {
		for _, method := range []string{"GET", "HEAD", "OPTIONS", "DELETE"} {
			res := s.do(method, path, "", "X-Organization-Id: org_b")
			for _, p := range plaintexts {
				if strings.Contains(string(res.body), p) {
					t.Errorf("%s %s as org_b: got plaintext %q", method, path, p)
				}
			}
		}
	}
}

func TestSidecarIDsStayInTheirField(t *testing.T) {
	s := startSidecar(t, storeKinds[0], t.TempDir())
	alice := s.createUser("org_a", aliceJSON)
	id := alice["id"].(string)

	// the client learned the SSN's ID from the create response; it moves it to email
	moved := fmt.Sprintf(`{"email": %q, "ssn": %q}`, alice["ssn"], alice["ssn"])
	res := s.do("PUT", "/users/"+id, moved, "Content-Type: application/json", "X-Organization-Id: org_a")
	if res.status != 200 {
		t.Fatalf("PUT: status %d: %s", res.status, res.body)
	}
	stored := res.json(t)
	if stored["ssn"] != alice["ssn"] {
		t.Errorf("the SSN's own ID was not passed through: %v", stored["ssn"])
	}

	res = s.do("GET", "/users/"+id, "", "X-Organization-Id: org_a")
	got := res.json(t)
	if got["email"] == "123-45-6789" {
		t.Fatal("the SSN was revealed through the email field")
	}
	if got["ssn"] != "*******6789" {
		t.Errorf("ssn = %v, want the mask", got["ssn"])
	}
}

func TestRevealKeepsObjectsInTheirField(t *testing.T) {
	dir := t.TempDir()
	s := startSidecar(t, storeKinds[0], dir)
	alice := s.createUser("org_a", aliceJSON)
	ssnID := alice["ssn"].(string)

	// the app itself copies the SSN's ID into email, behind piivault's back
	for _, tt := range []struct {
		setting string
		want    any
	}{
		{"", ssnID},
		{"cross_field_reveal allow", "123-45-6789"},
	} {
		upstream := newRecordingUpstream(t)
		upstream.replyJSON(fmt.Sprintf(`{"email": %q, "ssn": %q}`, ssnID, ssnID))
		site := mustStartCaddy(t, localStoreGlobals(dir), fmt.Sprintf(`
	pii_vault {
		context organization_id {http.request.header.X-Organization-Id}
		reveal $.email
		mask $.ssn last4
		%s
	}
	reverse_proxy %s`, tt.setting, upstream.hostPort()))

		got := site.do("GET", "/", "", "X-Organization-Id: org_a").json(t)
		if got["email"] != tt.want {
			t.Errorf("with %q: email = %v, want %v", tt.setting, got["email"], tt.want)
		}
		if got["ssn"] != "*******6789" {
			t.Errorf("with %q: ssn = %v, want the mask", tt.setting, got["ssn"])
		}
	}
	if !logContains(t, `"msg":"denied"`, "object of another field", ssnID) {
		t.Error("the denial is not in the audit log")
	}
}
