package caddymodule

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/piivault/piivault/vault"
	"github.com/piivault/piivault/vault/workos"
)

func TestEraseCommandWorkOSTenant(t *testing.T) {
	dir := t.TempDir()
	emu := startEmulator(t, dir)
	upstream := newRecordingUpstream(t)
	s := mustStartCaddy(t, workosGlobals(t, dir), fmt.Sprintf(`
	pii_vault {
		context organization_id {http.request.header.X-Organization-Id}
		tokenize $.email $.phone
	}
	reverse_proxy %s`, upstream.hostPort()))

	// org_1:x shares org_1's name prefix; erasing org_1 must leave it alone
	for _, org := range []string{"org_1", "org_1", "org_1:x"} {
		res := s.do("POST", "/", `{"email": "alice@example.com", "phone": "+1 555 0100"}`,
			"Content-Type: application/json", "X-Organization-Id: "+org)
		if res.status != 200 {
			t.Fatalf("status %d: %s", res.status, res.body)
		}
	}

	config := filepath.Join(t.TempDir(), "Caddyfile")
	writeConfigFile(t, config, fmt.Sprintf(`{
	pii_vault {
		store workos {
			api_key test-api-key
			endpoint %s
		}
	}
}
:0 {
	respond ok
}
`, emu.url))

	r := runEraseArgs(t, "--config", config, "--context", "organization_id=org_1")
	checkCommandSuccess(t, r)
	if r.out != "deleted 4 objects\n" {
		t.Errorf("output %q, want 4 objects deleted", r.out)
	}

	client, err := workos.New(workos.Config{APIKey: "test-api-key", Endpoint: emu.url})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	left, err := client.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 2 {
		t.Fatalf("%d objects left, want org_1:x's 2", len(left))
	}
	for _, m := range left {
		if !m.Context.Equal(vault.KeyContext{"organization_id": "org_1:x"}) {
			t.Errorf("object of %s left", m.Context)
		}
	}
}
