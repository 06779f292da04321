package caddymodule

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/piivault/piivault/vault"
	"github.com/piivault/piivault/vault/emulator"
)

// workosSite starts a Caddy with the workos store against an emulator, tokenizing and
// revealing $.email and $.phone, in front of a recording upstream that echoes.
func workosSite(t *testing.T, options ...string) (*site, *testEmulator, *recordingUpstream) {
	t.Helper()
	dir := t.TempDir()
	emu := startEmulator(t, dir)
	upstream := newRecordingUpstream(t)
	s := mustStartCaddy(t, workosGlobals(t, dir, options...), fmt.Sprintf(`
	pii_vault {
		context organization_id {http.request.header.X-Organization-Id}
		tokenize $.email $.phone
		reveal $.email $.phone
	}
	reverse_proxy %s`, upstream.hostPort()))
	return s, emu, upstream
}

const plainUser = `{"email": "alice@example.com", "phone": "+1 555 0100"}`

func TestWorkOSFaultsAnswer503(t *testing.T) {
	tests := []struct {
		name  string
		fault emulator.Fault
	}{
		{"429", emulator.Fault{Endpoint: emulator.EndpointCreate, Status: 429, RetryAfter: 30 * time.Second}},
		{"500", emulator.Fault{Endpoint: emulator.EndpointCreate, Status: 500}},
		{"503", emulator.Fault{Endpoint: emulator.EndpointCreate, Status: 503}},
		{"timeout", emulator.Fault{Endpoint: emulator.EndpointCreate, Hang: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, emu, upstream := workosSite(t, "timeout 300ms")
			emu.Inject(tt.fault)

			res := postJSON(s, plainUser)
			if res.status != 503 {
				t.Errorf("status %d, want 503: %s", res.status, res.body)
			}
			if res.header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			if tt.fault.RetryAfter > 0 && res.header.Get("Retry-After") != "30" {
				t.Errorf("Retry-After %q, want WorkOS's 30", res.header.Get("Retry-After"))
			}
			if n := len(upstream.received()); n != 0 {
				t.Errorf("upstream received %d requests", n)
			}
		})
	}
}

func TestWorkOSFaultsLoseNothing(t *testing.T) {
	s, emu, upstream := workosSite(t, "timeout 2s")
	emu.Inject(emulator.Fault{Status: 429, RetryAfter: time.Second, Fraction: 0.1})
	emu.Inject(emulator.Fault{Status: 503, Fraction: 0.1})
	emu.Inject(emulator.Fault{Endpoint: emulator.EndpointCreate, Status: 500, Fraction: 0.05, AfterStore: true})

	var (
		mu       sync.Mutex
		accepted []map[string]any
		failed   int
	)
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			body := fmt.Sprintf(`{"email": "user%d@example.com", "phone": "+1 555 %04d"}`, i, i)
			res := s.do("POST", "/", body, "Content-Type: application/json", "X-Organization-Id: org_a")
			mu.Lock()
			defer mu.Unlock()
			switch res.status {
			case 200:
				accepted = append(accepted, map[string]any{"i": i, "body": string(res.body)})
			case 503:
				failed++
			default:
				t.Errorf("request %d: status %d: %s", i, res.status, res.body)
			}
		})
	}
	wg.Wait()
	t.Logf("%d accepted, %d answered 503", len(accepted), failed)

	// every forwarded body holds IDs only
	forwarded := upstream.received()
	for _, r := range forwarded {
		if strings.Contains(string(r.body), "@example.com") {
			t.Errorf("upstream received plaintext: %s", r.body)
		}
	}

	// every accepted request's objects are readable afterwards
	emu.ClearFaults()
	for _, r := range forwarded {
		upstream.replyJSON(string(r.body))
		res := s.do("GET", "/", "", "X-Organization-Id: org_a")
		if !strings.Contains(string(res.body), "@example.com") {
			t.Errorf("objects of %s not readable: %s", r.body, res.body)
		}
	}
	// a request can reach the upstream and still get 503, when revealing its response
	// fails; one that got 200 must have reached it
	if len(forwarded) < len(accepted) {
		t.Errorf("upstream received %d requests, %d were accepted", len(forwarded), len(accepted))
	}
	for _, a := range accepted {
		if !strings.Contains(a["body"].(string), "@example.com") {
			t.Errorf("accepted request %v got no plaintext back", a["i"])
		}
	}
}

func TestWorkOSRejectsSteeringIDs(t *testing.T) {
	s, emu, upstream := workosSite(t)
	upstream.replyJSON(`{"email": "secret_0123456789ABCDEF0123456789ABCDEF/../../kv", ` +
		`"phone": "../keys/data-key"}`)

	emu.ResetCalls()
	res := s.do("GET", "/", "", "X-Organization-Id: org_a")
	if res.status != 200 {
		t.Fatalf("status %d: %s", res.status, res.body)
	}
	if n := emu.TotalCalls(); n != 0 {
		t.Errorf("malformed IDs caused %d vault calls", n)
	}
	if vault.ValidID("secret_0123456789ABCDEF0123456789ABCDEF/../../kv") {
		t.Error("an ID with a path passes the ID check")
	}
}
