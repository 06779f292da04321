package examples_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/piivault/piivault/vault/emulator"
	"github.com/piivault/piivault/vault/vaulttest"
)

func TestWorkOSPolicy(t *testing.T) {
	// the emulator replaces WorkOS Vault, as the file's header comment describes
	emulated := emulator.New(vaulttest.NewMemory(), "test-api-key")
	vaultServer := httptest.NewServer(emulated)
	t.Cleanup(vaultServer.Close)
	t.Setenv("WORKOS_API_KEY", "test-api-key")
	t.Setenv("WORKOS_ENDPOINT", vaultServer.URL)

	dir := t.TempDir()
	users := startApp(t, filepath.Join(dir, "legacyapp.json"))
	site := startExample(t, "workos.Caddyfile", dir, map[string]string{
		"reverse_proxy 127.0.0.1:9001": "reverse_proxy " + users.addr,
	}, "http://127.0.0.1:8080")

	created := site.do(t, "POST", "/users", "org_1", alice)
	if created.status != http.StatusCreated {
		t.Fatalf("POST /users: status %d, want 201; body %s", created.status, created.body)
	}
	stored := users.file(t)
	for _, value := range alicePlaintext {
		if bytes.Contains(stored, []byte(value)) {
			t.Errorf("the app's data file contains %q", value)
		}
	}

	id := created.field(t, "id")
	got := site.do(t, "GET", "/users/"+id, "org_1", "")
	if email := got.field(t, "email"); email != "alice@example.com" {
		t.Errorf("GET /users/%s: email = %q, want alice@example.com", id, email)
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
}
