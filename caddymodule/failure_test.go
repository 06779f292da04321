package caddymodule

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/piivault/piivault/vault"
	"github.com/piivault/piivault/vault/vaulttest"
)

func init() {
	caddy.RegisterModule(failingStore{})
}

// failing is the store behind the pii_vault.stores.failing_test module: an in-memory
// store that tests switch into failure.
var failing = vaulttest.NewFailing(vaulttest.NewMemory())

// failingStore is a store module for tests only.
type failingStore struct{}

func (failingStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "pii_vault.stores.failing_test",
		New: func() caddy.Module { return new(failingStore) },
	}
}

func (failingStore) Store() vault.Store { return failing }

func (*failingStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	return nil
}

const failingGlobals = `
	pii_vault {
		store failing_test
	}`

// failingSite starts a Caddy that tokenizes and reveals $.email with the failing store,
// in front of a recording upstream that echoes, and resets the store's failures after
// the test.
func failingSite(t *testing.T) (*site, *recordingUpstream) {
	upstream := newRecordingUpstream(t)
	s := mustStartCaddy(t, failingGlobals, fmt.Sprintf(`
	pii_vault {
		context organization_id {http.request.header.X-Organization-Id}
		tokenize $.email
		reveal $.email
	}
	reverse_proxy %s`, upstream.hostPort()))
	t.Cleanup(failing.Reset)
	return s, upstream
}

func TestStoreFailureAnswers503(t *testing.T) {
	s, upstream := failingSite(t)

	failing.Fail(vaulttest.OpCreate, errors.New("disk on fire"))
	res := s.do("POST", "/users", `{"email": "alice@example.com"}`,
		"Content-Type: application/json", "X-Organization-Id: org_a")

	if res.status != 503 {
		t.Errorf("status %d, want 503: %s", res.status, res.body)
	}
	if res.header.Get("Retry-After") == "" {
		t.Error("503 without Retry-After")
	}
	if n := len(upstream.received()); n != 0 {
		t.Errorf("upstream received %d requests", n)
	}
}

func TestStoreFailureOnReveal(t *testing.T) {
	s, upstream := failingSite(t)

	// the upstream echoes the tokenized body, which the response phase reveals
	res := s.do("POST", "/users", `{"email": "alice@example.com"}`,
		"Content-Type: application/json", "X-Organization-Id: org_a")
	if got := res.json(t)["email"]; got != "alice@example.com" {
		t.Fatalf("echo revealed %v, want the plaintext", got)
	}
	id := string(upstream.received()[0].body)

	failing.Fail(vaulttest.OpRead, errors.New("disk on fire"))
	upstream.replyJSON(id)
	res = s.do("GET", "/users/1", "", "X-Organization-Id: org_a")
	if res.status != 503 {
		t.Errorf("status %d, want 503: %s", res.status, res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("Content-Type %q, want application/problem+json", ct)
	}
}

func TestRevealReadsEachIDOnce(t *testing.T) {
	s, upstream := failingSite(t)
	res := s.do("POST", "/", `{"email": "`+strings.Repeat("a", 2000)+`@example.com"}`,
		"Content-Type: application/json", "X-Organization-Id: org_a")
	if res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	var stored struct{ Email string }
	if err := json.Unmarshal(upstream.received()[0].body, &stored); err != nil {
		t.Fatal(err)
	}

	// 1,000 copies of one 2 KB value's ID would reveal to 2 MB, past the 1 MiB limit
	copies := strings.TrimSuffix(strings.Repeat(fmt.Sprintf(`{"email": %q},`, stored.Email), 1000), ",")
	upstream.replyJSON(`[` + copies + `]`)
	s2 := mustStartCaddy(t, failingGlobals, fmt.Sprintf(`
	pii_vault {
		context organization_id {http.request.header.X-Organization-Id}
		reveal $[*].email
	}
	reverse_proxy %s`, upstream.hostPort()))

	before := failing.Calls(vaulttest.OpRead)
	res = s2.do("GET", "/", "", "X-Organization-Id: org_a")
	if res.status != http.StatusBadGateway {
		t.Errorf("status %d, want 502", res.status)
	}
	if n := failing.Calls(vaulttest.OpRead) - before; n != 1 {
		t.Errorf("%d reads for one ID repeated 1,000 times, want 1", n)
	}
}
