package caddymodule

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/piivault/piivault/vault"
	"github.com/piivault/piivault/vault/local"
)

var (
	tenantOne = vault.KeyContext{"organization_id": "org_1"}
	tenantTwo = vault.KeyContext{"organization_id": "org_2"}
)

// offlineStore is a closed local store file with objects of two tenants, and the file
// with its master key.
type offlineStore struct {
	dir     string
	path    string
	keyFile string
	key     []byte
	one     map[string]string // object ID -> value, tenant one
	two     map[string]string // object ID -> value, tenant two
}

func newOfflineStore(t *testing.T) offlineStore {
	t.Helper()
	dir := t.TempDir()
	o := offlineStore{
		dir:     dir,
		path:    filepath.Join(dir, "vault.db"),
		keyFile: filepath.Join(dir, "master.key"),
		one:     map[string]string{},
		two:     map[string]string{},
	}
	key, _, err := local.LoadOrCreateKeyFile(o.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	o.key = key

	s, err := local.Open(o.path, key, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range 3 {
		id := createOfflineObject(t, s, fmt.Sprintf("one/%d", i), tenantOne)
		o.one[id] = fmt.Sprintf(`"one %d"`, i)
	}
	for i := range 2 {
		id := createOfflineObject(t, s, fmt.Sprintf("two/%d", i), tenantTwo)
		o.two[id] = fmt.Sprintf(`"two %d"`, i)
	}
	return o
}

// createOfflineObject stores the object name with a value derived from it and returns its ID.
func createOfflineObject(t *testing.T, s *local.Store, name string, kc vault.KeyContext) string {
	t.Helper()
	value := `"` + strings.ReplaceAll(name, "/", " ") + `"`
	meta, err := s.Create(context.Background(), vault.NewObject{
		Name: name, Value: []byte(value), Context: kc,
	})
	if err != nil {
		t.Fatalf("Create(%s): %v", name, err)
	}
	return meta.ID
}

// openOffline opens the store file with key and closes it when the test ends.
func openOffline(t *testing.T, path string, key []byte) *local.Store {
	t.Helper()
	s, err := local.Open(path, key, local.Options{MustExist: true})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// checkStoreValues reads every object of values from s.
func checkStoreValues(t *testing.T, s *local.Store, values map[string]string) {
	t.Helper()
	for id, want := range values {
		obj, err := s.Read(context.Background(), id)
		if err != nil {
			t.Errorf("Read(%s): %v", id, err)
			continue
		}
		if string(obj.Value) != want {
			t.Errorf("Read(%s) = %q, want %q", id, obj.Value, want)
		}
	}
}

// commandRun is the outcome of a subcommand's run function.
type commandRun struct {
	code int
	out  string
	err  error
}

// runLifecycleCommand parses args with the flag set of cmd and calls run, as Caddy's
// wrapper does.
func runLifecycleCommand(t *testing.T, cmd *cobra.Command,
	run func(caddycmd.Flags, io.Writer) (int, error), args ...string) commandRun {
	t.Helper()
	if err := cmd.Flags().Parse(args); err != nil {
		t.Fatalf("parsing flags %q: %v", args, err)
	}
	var out bytes.Buffer
	code, err := run(caddycmd.Flags{FlagSet: cmd.Flags()}, &out)
	return commandRun{code: code, out: out.String(), err: err}
}

func runRotateKeyArgs(t *testing.T, args ...string) commandRun {
	t.Helper()
	return runLifecycleCommand(t, rotateKeyCommand(), runRotateKey, args...)
}

func runEraseArgs(t *testing.T, args ...string) commandRun {
	t.Helper()
	return runLifecycleCommand(t, eraseCommand(), runErase, args...)
}

// checkCommandSuccess checks the exit code and error of a run that should succeed.
func checkCommandSuccess(t *testing.T, r commandRun) {
	t.Helper()
	if r.err != nil {
		t.Fatalf("run: %v", r.err)
	}
	if r.code != caddy.ExitCodeSuccess {
		t.Fatalf("exit code = %d, want %d", r.code, caddy.ExitCodeSuccess)
	}
}

// checkCommandFailure checks that a run failed with exit code 1 and an error containing want.
func checkCommandFailure(t *testing.T, r commandRun, want string) {
	t.Helper()
	if r.err == nil {
		t.Fatalf("run succeeded with output %q, want an error containing %q", r.out, want)
	}
	if r.code != caddy.ExitCodeFailedStartup {
		t.Errorf("exit code = %d, want %d", r.code, caddy.ExitCodeFailedStartup)
	}
	if !strings.Contains(r.err.Error(), want) {
		t.Errorf("error %q does not contain %q", r.err, want)
	}
}

// checkOutputHasNoKeys checks that neither the output nor the error of r contains any of keys, in
// any base64 alphabet.
func checkOutputHasNoKeys(t *testing.T, r commandRun, keys ...[]byte) {
	t.Helper()
	text := r.out
	if r.err != nil {
		text += r.err.Error()
	}
	for _, key := range keys {
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding,
			base64.URLEncoding, base64.RawURLEncoding} {
			if strings.Contains(text, enc.EncodeToString(key)) {
				t.Errorf("output or error contains a master key: %q", text)
			}
		}
	}
}

// writeRandomKeyFile writes a new random key to a file with mode 0600 and returns the key.
func writeRandomKeyFile(t *testing.T, path string) []byte {
	t.Helper()
	key, created, err := local.LoadOrCreateKeyFile(path)
	if err != nil || !created {
		t.Fatalf("creating key file %s: created = %t, %v", path, created, err)
	}
	return key
}

func TestRotateKeyCommandFlags(t *testing.T) {
	o := newOfflineStore(t)
	newKeyFile := filepath.Join(o.dir, "new.key")

	r := runRotateKeyArgs(t, "--path", o.path, "--old-key-file", o.keyFile,
		"--new-key-file", newKeyFile)
	checkCommandSuccess(t, r)
	for _, want := range []string{
		"tenant keys rewrapped: 2\n",
		"unused tenant keys deleted: 0\n",
		"created the new master key file " + newKeyFile,
		"compacted " + o.path,
		"copies of the keyring " + local.KeyringPath(o.path) + " made before the rotation",
	} {
		if !strings.Contains(r.out, want) {
			t.Errorf("output %q does not contain %q", r.out, want)
		}
	}

	info, err := os.Stat(newKeyFile)
	if err != nil {
		t.Fatalf("new key file: %v", err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("new key file mode = %04o, want 0600", perm)
	}
	newKey, err := local.ReadKeyFile(newKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	checkOutputHasNoKeys(t, r, o.key, newKey)
	if !strings.Contains(r.out, local.KeyID(newKey)) {
		t.Errorf("output %q does not name the new key ID %s", r.out, local.KeyID(newKey))
	}

	_, err = local.Open(o.path, o.key, local.Options{MustExist: true})
	if !errors.Is(err, local.ErrWrongMasterKey) {
		t.Errorf("Open with the old key after rotation: error = %v, want ErrWrongMasterKey", err)
	}
	s := openOffline(t, o.path, newKey)
	checkStoreValues(t, s, o.one)
	checkStoreValues(t, s, o.two)
}

func TestRotateKeyCommandEnv(t *testing.T) {
	o := newOfflineStore(t)
	newKey, err := local.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("PIIVAULT_TEST_OLD_KEY", base64.StdEncoding.EncodeToString(o.key))
	t.Setenv("PIIVAULT_TEST_NEW_KEY", newKey)

	r := runRotateKeyArgs(t, "--path", o.path, "--old-key", "{env.PIIVAULT_TEST_OLD_KEY}",
		"--new-key", "{env.PIIVAULT_TEST_NEW_KEY}", "--compact=false")
	checkCommandSuccess(t, r)
	if !strings.Contains(r.out, "tenant keys rewrapped: 2\n") {
		t.Errorf("output %q does not count 2 tenant keys", r.out)
	}
	if strings.Contains(r.out, "compacted") {
		t.Errorf("output %q reports a compaction despite --compact=false", r.out)
	}
	parsed, err := local.ParseKey(newKey)
	if err != nil {
		t.Fatal(err)
	}
	checkOutputHasNoKeys(t, r, o.key, parsed)
	checkStoreValues(t, openOffline(t, o.path, parsed), o.one)
}

// TestRotateKeyCommandTwice runs the same rotation again, as an operator would after
// losing the output of the first run.
func TestRotateKeyCommandTwice(t *testing.T) {
	o := newOfflineStore(t)
	newKeyFile := filepath.Join(o.dir, "new.key")
	args := []string{"--path", o.path, "--old-key-file", o.keyFile, "--new-key-file", newKeyFile}
	checkCommandSuccess(t, runRotateKeyArgs(t, args...))

	r := runRotateKeyArgs(t, args...)
	checkCommandSuccess(t, r)
	if !strings.Contains(r.out, "already uses the new master key") {
		t.Errorf("output of the second run %q does not say that the file is rotated", r.out)
	}
	newKey, err := local.ReadKeyFile(newKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	checkStoreValues(t, openOffline(t, o.path, newKey), o.two)
}

func TestRotateKeyCommandConfig(t *testing.T) {
	o := newOfflineStore(t)
	caddyfile := filepath.Join(o.dir, "Caddyfile")
	writeConfigFile(t, caddyfile, fmt.Sprintf(`{
	pii_vault {
		store local {
			path %s
			master_key_file %s
		}
	}
}

:0 {
	respond "ok"
}
`, o.path, o.keyFile))
	newKeyFile := filepath.Join(o.dir, "new.key")

	r := runRotateKeyArgs(t, "--config", caddyfile, "--new-key-file", newKeyFile)
	checkCommandSuccess(t, r)
	if !strings.Contains(r.out, "tenant keys rewrapped: 2\n") {
		t.Errorf("output %q does not count 2 tenant keys", r.out)
	}
	newKey, err := local.ReadKeyFile(newKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	checkOutputHasNoKeys(t, r, o.key, newKey)
	checkStoreValues(t, openOffline(t, o.path, newKey), o.one)
}

// TestRotateKeyCommandConfigEnvKey reads the current key from the master_key placeholder
// of the configuration.
func TestRotateKeyCommandConfigEnvKey(t *testing.T) {
	o := newOfflineStore(t)
	t.Setenv("PIIVAULT_TEST_MASTER_KEY", base64.StdEncoding.EncodeToString(o.key))
	caddyfile := filepath.Join(o.dir, "Caddyfile")
	writeConfigFile(t, caddyfile, fmt.Sprintf(`{
	pii_vault {
		store local {
			path %s
			master_key {env.PIIVAULT_TEST_MASTER_KEY}
		}
	}
}
`, o.path))
	newKeyFile := filepath.Join(o.dir, "new.key")

	r := runRotateKeyArgs(t, "--config", caddyfile, "--new-key-file", newKeyFile)
	checkCommandSuccess(t, r)
	newKey, err := local.ReadKeyFile(newKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	checkOutputHasNoKeys(t, r, o.key, newKey)
	checkStoreValues(t, openOffline(t, o.path, newKey), o.two)
}

func writeConfigFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestRotateKeyCommandErrors(t *testing.T) {
	o := newOfflineStore(t)
	literal := base64.StdEncoding.EncodeToString(o.key)
	otherKeyFile := filepath.Join(o.dir, "other.key")
	otherKey := writeRandomKeyFile(t, otherKeyFile)
	newKeyFile := filepath.Join(o.dir, "new.key")
	workosConfig := filepath.Join(o.dir, "workos.caddyfile")
	writeConfigFile(t, workosConfig, `{
	pii_vault {
		store workos {
			api_key {env.PIIVAULT_TEST_UNSET}
		}
	}
}
`)

	cases := map[string]struct {
		args []string
		want string
	}{
		"literal new key": {
			[]string{"--path", o.path, "--old-key-file", o.keyFile, "--new-key", literal},
			"takes only the form {env.NAME}"},
		"literal old key": {
			[]string{"--path", o.path, "--old-key", literal, "--new-key-file", newKeyFile},
			"takes only the form {env.NAME}"},
		"unset variable": {
			[]string{"--path", o.path, "--old-key-file", o.keyFile,
				"--new-key", "{env.PIIVAULT_TEST_UNSET}"},
			"PIIVAULT_TEST_UNSET is empty or not set"},
		"no new key": {
			[]string{"--path", o.path, "--old-key-file", o.keyFile},
			"the new master key is missing"},
		"no old key": {
			[]string{"--path", o.path, "--new-key-file", newKeyFile},
			"the current master key is missing"},
		"no path": {
			[]string{"--old-key-file", o.keyFile, "--new-key-file", newKeyFile},
			"set --config, or --path"},
		"same key": {
			[]string{"--path", o.path, "--old-key-file", o.keyFile, "--new-key-file", o.keyFile},
			"equals the old one"},
		"wrong old key": {
			[]string{"--path", o.path, "--old-key-file", otherKeyFile,
				"--new-key-file", newKeyFile},
			"needs the master key with ID " + local.KeyID(o.key)},
		"missing file": {
			[]string{"--path", filepath.Join(o.dir, "missing.db"), "--old-key-file", o.keyFile,
				"--new-key-file", newKeyFile},
			"does not exist"},
		"missing old key file": {
			[]string{"--path", o.path, "--old-key-file", filepath.Join(o.dir, "missing.key"),
				"--new-key-file", newKeyFile},
			"missing.key"},
		"config and path": {
			[]string{"--config", workosConfig, "--path", o.path, "--new-key-file", newKeyFile},
			"leave out --path"},
		"workos store": {
			[]string{"--config", workosConfig, "--new-key-file", newKeyFile},
			"rotate-key supports the local store"},
	}
	for name, c := range cases {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			r := runRotateKeyArgs(t, c.args...)
			checkCommandFailure(t, r, c.want)
			checkOutputHasNoKeys(t, r, o.key, otherKey)
		})
	}

	if _, err := os.Stat(filepath.Join(o.dir, "missing.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed rotation created the missing store file: %v", err)
	}
	checkStoreValues(t, openOffline(t, o.path, o.key), o.one)
}

// TestRotateKeyCommandLocked runs the command while the store is open, as it is while
// Caddy runs.
func TestRotateKeyCommandLocked(t *testing.T) {
	o := newOfflineStore(t)
	s := openOffline(t, o.path, o.key)

	r := runRotateKeyArgs(t, "--path", o.path, "--old-key-file", o.keyFile,
		"--new-key-file", filepath.Join(o.dir, "new.key"), "--timeout", "50ms")
	checkCommandFailure(t, r, "locked by another process")
	checkStoreValues(t, s, o.one)
}

func TestEraseCommandTenant(t *testing.T) {
	o := newOfflineStore(t)

	r := runEraseArgs(t, "--path", o.path, "--master-key-file", o.keyFile,
		"--context", "organization_id=org_1")
	checkCommandSuccess(t, r)
	if want := "erased tenant organization_id=org_1: deleted 3 objects"; !strings.Contains(r.out,
		want) {
		t.Errorf("output %q does not contain %q", r.out, want)
	}
	if !strings.Contains(r.out, "compacted "+o.path) {
		t.Errorf("output %q does not report the compaction", r.out)
	}
	checkOutputHasNoKeys(t, r, o.key)

	s := openOffline(t, o.path, o.key)
	for id := range o.one {
		if _, err := s.Read(context.Background(), id); !errors.Is(err, vault.ErrNotFound) {
			t.Errorf("Read of erased object %s: error = %v, want ErrNotFound", id, err)
		}
	}
	checkStoreValues(t, s, o.two)
	stats, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := local.Stats{Objects: 2, Values: 2, Names: 2, IndexEntries: 2, TenantKeys: 1}
	if stats != want {
		t.Errorf("Stats after erasure = %+v, want %+v", stats, want)
	}
	if err := s.CheckIntegrity(context.Background()); err != nil {
		t.Errorf("CheckIntegrity after erasure: %v", err)
	}
}

func TestEraseCommandObject(t *testing.T) {
	o := newOfflineStore(t)
	var id string
	for id = range o.one {
		break
	}

	r := runEraseArgs(t, "--path", o.path, "--master-key-file", o.keyFile, "--id", id)
	checkCommandSuccess(t, r)
	if want := "deleted 1 object: " + id; !strings.Contains(r.out, want) {
		t.Errorf("output %q does not contain %q", r.out, want)
	}

	s := openOffline(t, o.path, o.key)
	if _, err := s.Read(context.Background(), id); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("Read of the erased object: error = %v, want ErrNotFound", err)
	}
	delete(o.one, id)
	checkStoreValues(t, s, o.one)
	checkStoreValues(t, s, o.two)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	r = runEraseArgs(t, "--path", o.path, "--master-key-file", o.keyFile, "--id", id)
	checkCommandFailure(t, r, "object not found")
}

func TestEraseCommandDryRun(t *testing.T) {
	o := newOfflineStore(t)
	before, err := os.ReadFile(o.path)
	if err != nil {
		t.Fatal(err)
	}
	keyringBefore, err := os.ReadFile(local.KeyringPath(o.path))
	if err != nil {
		t.Fatal(err)
	}

	r := runEraseArgs(t, "--path", o.path, "--master-key-file", o.keyFile,
		"--context", "organization_id=org_2", "--dry-run")
	checkCommandSuccess(t, r)
	if want := "would erase tenant organization_id=org_2: 2 objects"; !strings.Contains(r.out,
		want) {
		t.Errorf("output %q does not contain %q", r.out, want)
	}
	var id string
	for id = range o.two {
		break
	}
	r = runEraseArgs(t, "--path", o.path, "--master-key-file", o.keyFile, "--id", id, "--dry-run")
	checkCommandSuccess(t, r)
	if want := "would delete 1 object: " + id; !strings.Contains(r.out, want) {
		t.Errorf("output %q does not contain %q", r.out, want)
	}

	s := openOffline(t, o.path, o.key)
	checkStoreValues(t, s, o.one)
	checkStoreValues(t, s, o.two)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	after, err := os.ReadFile(o.path)
	if err != nil {
		t.Fatal(err)
	}
	// Open writes nothing to a complete store file and keyring, so a dry run leaves both
	if !bytes.Equal(before, after) {
		t.Error("a dry run changed the store file")
	}
	keyringAfter, err := os.ReadFile(local.KeyringPath(o.path))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(keyringBefore, keyringAfter) {
		t.Error("a dry run changed the keyring")
	}
}

// TestEraseCommandStoreCopy copies the store file before erasing a tenant with the
// command, and opens the copy with the keyring as the command left it: the erased
// tenant's objects do not decrypt, and the other tenant's do.
func TestEraseCommandStoreCopy(t *testing.T) {
	o := newOfflineStore(t)
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	copyTestFile(t, o.path, copyPath)

	r := runEraseArgs(t, "--path", o.path, "--master-key-file", o.keyFile,
		"--context", "organization_id=org_1")
	checkCommandSuccess(t, r)
	want := "copies of the keyring " + local.KeyringPath(o.path) + " made before the erasure"
	if !strings.Contains(r.out, want) {
		t.Errorf("output %q does not contain %q", r.out, want)
	}
	copyTestFile(t, local.KeyringPath(o.path), local.KeyringPath(copyPath))

	s := openOffline(t, copyPath, o.key)
	for id := range o.one {
		if _, err := s.Read(context.Background(), id); err == nil {
			t.Errorf("Read of erased object %s from the copy succeeded", id)
		}
	}
	checkStoreValues(t, s, o.two)
}

// copyTestFile copies a closed file with mode 0600.
func copyTestFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestEraseCommandConfig(t *testing.T) {
	o := newOfflineStore(t)
	caddyfile := filepath.Join(o.dir, "Caddyfile")
	writeConfigFile(t, caddyfile, fmt.Sprintf(`{
	pii_vault {
		store local {
			path %s
			master_key_file %s
		}
	}
}
`, o.path, o.keyFile))

	r := runEraseArgs(t, "--config", caddyfile, "--context", "organization_id=org_2")
	checkCommandSuccess(t, r)
	if want := "deleted 2 objects"; !strings.Contains(r.out, want) {
		t.Errorf("output %q does not contain %q", r.out, want)
	}
	checkStoreValues(t, openOffline(t, o.path, o.key), o.one)
}

// TestEraseCommandDefaultStore erases from the store that a configuration without the
// pii_vault option uses: the files under Caddy's data directory.
func TestEraseCommandDefaultStore(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	dataDir := filepath.Join(caddy.AppDataDir(), "pii_vault")
	key, _, err := local.LoadOrCreateKeyFile(filepath.Join(dataDir, "master.key"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := local.Open(filepath.Join(dataDir, "vault.db"), key, local.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := createOfflineObject(t, s, "default/1", tenantOne)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	caddyfile := filepath.Join(t.TempDir(), "Caddyfile")
	writeConfigFile(t, caddyfile, ":0 {\n\trespond \"ok\"\n}\n")

	r := runEraseArgs(t, "--config", caddyfile, "--id", id)
	checkCommandSuccess(t, r)
	if !strings.Contains(r.out, "deleted 1 object") {
		t.Errorf("output %q does not report the deletion", r.out)
	}
}

func TestEraseCommandErrors(t *testing.T) {
	o := newOfflineStore(t)
	otherKeyFile := filepath.Join(o.dir, "other.key")
	otherKey := writeRandomKeyFile(t, otherKeyFile)
	workosConfig := filepath.Join(o.dir, "workos.caddyfile")
	writeConfigFile(t, workosConfig, `{
	pii_vault {
		store workos {
			api_key {env.PIIVAULT_TEST_UNSET}
		}
	}
}
`)
	store := []string{"--path", o.path, "--master-key-file", o.keyFile}
	with := func(args ...string) []string { return append(append([]string{}, store...), args...) }

	cases := map[string]struct {
		args []string
		want string
	}{
		"neither id nor context": {with(), "set exactly one of --id and --context"},
		"id and context": {
			with("--id", "secret_00000000000000000000000000000000", "--context", "a=b"),
			"set exactly one of --id and --context"},
		"invalid id": {with("--id", "../../etc/passwd"), "invalid object ID"},
		"unknown id": {
			with("--id", "secret_00000000000000000000000000000000"), "object not found"},
		"context no =":   {with("--context", "organization_id"), "has no '='"},
		"context no key": {with("--context", "=org_1"), "empty key"},
		"context empty":  {with("--context", "organization_id="), "is empty"},
		"context twice":  {with("--context", "a=1,a=2"), "given twice"},
		"wrong key": {
			[]string{"--path", o.path, "--master-key-file", otherKeyFile, "--context", "a=b"},
			"needs the master key with ID " + local.KeyID(o.key)},
		"literal key": {
			[]string{"--path", o.path, "--master-key", base64.StdEncoding.EncodeToString(o.key),
				"--context", "a=b"},
			"takes only the form {env.NAME}"},
		"missing file": {
			[]string{"--path", filepath.Join(o.dir, "missing.db"), "--master-key-file",
				o.keyFile, "--context", "a=b"},
			"does not exist"},
		"workos store without key": {
			[]string{"--config", workosConfig, "--context", "a=b"},
			"api_key is empty"},
	}
	for name, c := range cases {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			r := runEraseArgs(t, c.args...)
			checkCommandFailure(t, r, c.want)
			checkOutputHasNoKeys(t, r, o.key, otherKey)
			if strings.Contains(r.err.Error(), "etc/passwd") {
				t.Errorf("error %q repeats an invalid ID", r.err)
			}
		})
	}

	if _, err := os.Stat(filepath.Join(o.dir, "missing.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed erasure created the missing store file: %v", err)
	}
	s := openOffline(t, o.path, o.key)
	checkStoreValues(t, s, o.one)
	checkStoreValues(t, s, o.two)
}

func TestEraseCommandLocked(t *testing.T) {
	o := newOfflineStore(t)
	s := openOffline(t, o.path, o.key)

	r := runEraseArgs(t, "--path", o.path, "--master-key-file", o.keyFile,
		"--context", "organization_id=org_1", "--timeout", "50ms")
	checkCommandFailure(t, r, "locked by another process")
	checkStoreValues(t, s, o.one)
}
