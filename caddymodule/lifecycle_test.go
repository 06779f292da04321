package caddymodule

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/piivault/piivault/vault"
	"github.com/piivault/piivault/vault/local"
	"github.com/piivault/piivault/vault/workos"
)

// lifecycleRoutes stores a user's email in one object per user, updated in place on
// every write, reveals it on GET, and erases it when the user is deleted.
func lifecycleRoutes(upstream string) string {
	return fmt.Sprintf(`
	handle /users/* {
		pii_vault {
			context organization_id {http.request.header.X-Organization-Id}
			tokenize $.email name users/{http.request.uri.path.1}/email
			reveal $.email
		}
		reverse_proxy %s
	}
	handle /erase/* {
		pii_vault {
			context organization_id {http.request.header.X-Organization-Id}
			erase $.email
		}
		reverse_proxy %s
	}`, upstream, upstream)
}

// countObjects returns the number of objects in the store of kind in dir. It stops
// Caddy, which holds the local store file open.
func countObjects(t *testing.T, kind storeKind, dir string) int {
	t.Helper()
	var store vault.Store
	if kind.name == "local" {
		if err := caddy.Stop(); err != nil {
			t.Fatal(err)
		}
		key, _, err := local.LoadOrCreateKeyFile(filepath.Join(dir, "master.key"))
		if err != nil {
			t.Fatal(err)
		}
		s, err := local.Open(filepath.Join(dir, "vault.db"), key, local.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		store = s
	} else {
		s, err := workos.New(workos.Config{APIKey: "test-api-key", Endpoint: startEmulator(t, dir).url})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		store = s
	}

	metas, err := store.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return len(metas)
}

func TestLifecycleLeavesNoOrphans(t *testing.T) {
	forEachStore(t, func(t *testing.T, kind storeKind) {
		dir := t.TempDir()
		upstream := newRecordingUpstream(t)
		s := mustStartCaddy(t, kind.globals(t, dir), lifecycleRoutes(upstream.hostPort()))

		put := func(user, email string) string {
			res := s.do("PUT", "/users/"+user, fmt.Sprintf(`{"email": %q}`, email),
				"Content-Type: application/json", "X-Organization-Id: org_a")
			if res.status != 200 {
				t.Fatalf("PUT %s: status %d: %s", user, res.status, res.body)
			}
			got := upstream.received()
			return string(got[len(got)-1].body)
		}

		var stored []string
		for _, user := range []string{"u1", "u2"} {
			first := put(user, "first@example.com")
			for i := range 5 {
				if again := put(user, fmt.Sprintf("v%d@example.com", i)); again != first {
					t.Fatalf("update of %s stored %s, want the same ID as %s", user, again, first)
				}
			}
			stored = append(stored, first)
		}

		// the last write wins, and reading reveals it
		upstream.replyJSON(stored[0])
		res := s.do("GET", "/users/u1", "", "X-Organization-Id: org_a")
		if got := res.json(t)["email"]; got != "v4@example.com" {
			t.Errorf("email after updates = %v, want the last write", got)
		}

		for _, body := range stored {
			upstream.replyJSON(body)
			if res := s.do("DELETE", "/erase/x", "", "X-Organization-Id: org_a"); res.status != 200 {
				t.Fatalf("erase: status %d: %s", res.status, res.body)
			}
		}
		if !logContains(t, `"logger":"pii_vault.audit"`, `"msg":"erase"`) {
			t.Error("no erase event in the audit log")
		}

		// every former ID fails to reveal
		upstream.replyJSON(stored[0])
		res = s.do("GET", "/users/u1", "", "X-Organization-Id: org_a")
		if strings.Contains(string(res.body), "@example.com") {
			t.Errorf("an erased object revealed: %s", res.body)
		}

		if n := countObjects(t, kind, dir); n != 0 {
			t.Errorf("%d objects left after erasing every user", n)
		}
	})
}

func TestConcurrentWritersNeverLoseSilently(t *testing.T) {
	dir := t.TempDir()
	upstream := newRecordingUpstream(t)
	s := mustStartCaddy(t, localStoreGlobals(dir), lifecycleRoutes(upstream.hostPort()))

	var mu sync.Mutex
	statuses := map[int]int{}
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			res := s.do("PUT", "/users/u1", fmt.Sprintf(`{"email": "w%d@example.com"}`, i),
				"Content-Type: application/json", "X-Organization-Id: org_a")
			mu.Lock()
			statuses[res.status]++
			mu.Unlock()
		})
	}
	wg.Wait()

	for status := range statuses {
		if status != 200 && status != 409 {
			t.Errorf("status %d, want 200 or 409", status)
		}
	}
	ids := map[string]bool{}
	for _, r := range upstream.received() {
		ids[string(r.body)] = true
	}
	if len(ids) != 1 {
		t.Errorf("%d different objects for one user, want 1", len(ids))
	}
	if n := countObjects(t, storeKinds[0], dir); n != 1 {
		t.Errorf("%d objects, want 1", n)
	}
}

func TestNameTemplateNeedsEverySegment(t *testing.T) {
	upstream := newRecordingUpstream(t)
	s := mustStartCaddy(t, localStoreGlobals(t.TempDir()), lifecycleRoutes(upstream.hostPort()))

	res := s.do("PUT", "/users/", `{"email": "alice@example.com"}`,
		"Content-Type: application/json", "X-Organization-Id: org_a")
	if res.status != 400 {
		t.Errorf("status %d, want 400: %s", res.status, res.body)
	}
	if n := len(upstream.received()); n != 0 {
		t.Errorf("upstream received %d requests", n)
	}
}

func TestAuditEventsHoldNoValues(t *testing.T) {
	s, _ := tokenizeEcho(t, `
		tokenize $.a $.b $.c $.d
		reveal $.a
		mask $.b last2
		describe $.c`)
	postJSON(s, `{"a": "alice@example.com", "b": "+1 555 0100", "c": "123-45-6789", "d": "x"}`)

	for _, event := range []string{"reveal", "mask", "describe"} {
		if !logContains(t, `"logger":"pii_vault.audit"`, fmt.Sprintf(`"msg":%q`, event)) {
			t.Errorf("no %s event in the audit log", event)
		}
	}
	data, err := os.ReadFile(suiteLog)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.Contains(line, "pii_vault.audit") {
			continue
		}
		for _, value := range []string{"alice@example.com", "+1 555 0100", "123-45-6789"} {
			if strings.Contains(line, value) {
				t.Errorf("audit line holds %q: %s", value, line)
			}
		}
	}
}
