package caddymodule

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/piivault/piivault/vault/local"
)

func TestInvalidQueryInCaddyfile(t *testing.T) {
	_, err := startCaddy(t, "", `
	pii_vault {
		context organization_id {http.request.header.X-Organization-Id}
		tokenize $.email $.users[?@.x
	}
	respond ok`)
	if err == nil {
		t.Fatal("a Caddyfile with an invalid query loaded")
	}
	for _, want := range []string{"tokenize", "position 12", "Caddyfile:"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestInvalidQueryInJSON(t *testing.T) {
	cfg := `{"admin": {"disabled": true}, "apps": {"http": {"servers": {"s": {
		"listen": ["127.0.0.1:0"],
		"routes": [{"handle": [{"handler": "pii_vault", "response": {"redact": ["$.a", "$[1:2:"]}}]}]
	}}}}}`
	err := caddy.Load([]byte(cfg), true)
	if err == nil {
		_ = caddy.Stop()
		t.Fatal("a JSON config with an invalid query loaded")
	}
	for _, want := range []string{"response phase", "redact", "position"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestRootCaddyfileAdapts(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	_, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt(data, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range warnings {
		t.Errorf("warning: %s", w)
	}
}

// runCommand runs a cobra subcommand of `caddy pii` with args and stdin, and returns
// what it printed and its error.
func runCheckCommand(t *testing.T, cmd *cobra.Command, stdin string, args ...string) (string, error) {
	t.Helper()
	if err := cmd.ParseFlags(args); err != nil {
		t.Fatal(err)
	}

	oldIn, oldOut := os.Stdin, os.Stdout
	in, err := os.CreateTemp(t.TempDir(), "stdin")
	if err != nil {
		t.Fatal(err)
	}
	_, _ = in.WriteString(stdin)
	_, _ = in.Seek(0, 0)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	os.Stdin, os.Stdout = in, w
	_, runErr := runCheck(caddycmd.Flags{FlagSet: cmd.Flags()})
	os.Stdin, os.Stdout = oldIn, oldOut
	w.Close()

	var out bytes.Buffer
	_, _ = out.ReadFrom(r)
	return out.String(), runErr
}

func TestCheckCommand(t *testing.T) {
	out, err := runCheckCommand(t, checkCommand(), `{"a": {"email": 1}, "email": 2}`, "--query", "$..email")
	if err != nil {
		t.Fatal(err)
	}
	if want := `["$['email']","$['a']['email']"]`; strings.TrimSpace(out) != want {
		t.Errorf("output %s, want %s", out, want)
	}

	_, err = runCheckCommand(t, checkCommand(), `{}`, "--query", "$[?@.x")
	if err == nil || !strings.Contains(err.Error(), "position 6") {
		t.Errorf("invalid query: error %v, want the position", err)
	}

	_, err = runCheckCommand(t, checkCommand(), `{"a": 1, "a": 2}`, "--query", "$.a")
	if err == nil || !strings.Contains(err.Error(), "duplicate member name") {
		t.Errorf("invalid document: error %v, want the reason", err)
	}
}

func TestValidateOpensNoStore(t *testing.T) {
	dir := t.TempDir()
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(fmt.Sprintf(`{
	admin off
	%s
}
http://127.0.0.1:%d {
	pii_vault {
		context organization_id {http.request.header.X-Organization-Id}
		tokenize $.email
	}
	respond ok
}`, localStoreGlobals(dir), freePort(t))), nil)
	if err != nil {
		t.Fatal(err)
	}
	var cfg caddy.Config
	if err := json.Unmarshal(adapted, &cfg); err != nil {
		t.Fatal(err)
	}

	if err := caddy.Validate(&cfg); err != nil {
		t.Fatalf("validate: %v", err)
	}
	for _, name := range []string{"vault.db", "vault.db.keys", "master.key"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			t.Errorf("validate created %s", name)
		}
	}

	// a running Caddy holds the store file's lock; validate must not wait for it
	mustStartCaddy(t, localStoreGlobals(dir), `respond ok`)
	key, err := local.ReadKeyFile(filepath.Join(dir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	held, err := local.Open(filepath.Join(dir, "other.db"), key, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	other := strings.ReplaceAll(string(adapted), filepath.Join(dir, "vault.db"), filepath.Join(dir, "other.db"))
	var cfg2 caddy.Config
	if err := json.Unmarshal([]byte(other), &cfg2); err != nil {
		t.Fatal(err)
	}
	if err := caddy.Validate(&cfg2); err != nil {
		t.Errorf("validate with the store file locked: %v", err)
	}
}
