package caddymodule

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"strings"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/piivault/piivault/vault"
	"github.com/piivault/piivault/vault/local"
)

// The rotate-key and erase subcommands work on the local store file and its keyring
// offline. bbolt locks the store file, and the lock guards the keyring too, so they fail
// with a clear error while Caddy has the store open.

func rotateKeyCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use: "rotate-key (--config <Caddyfile> | --path <file> (--old-key-file <file> | " +
			"--old-key {env.NAME})) (--new-key-file <file> | --new-key {env.NAME})",
		Short: "Wrap the local store's tenant keys under a new master key",
		Long: `
Wraps every tenant key in the keyring of the local store (the store file's path
followed by .keys) under a new master key, and replaces the keyring's key
check. The new keyring is written to a temporary file and renamed over the old
one, so an interrupted rotation leaves the keyring under the old key or the new
key, never in between. Running the command again completes it. Values are not
encrypted again, and the store file is not changed.

Stop Caddy first: the command needs the store file's lock.

The store file and its current key come from the pii_vault global option of
--config, or from --path with --old-key-file or --old-key. The new key comes
from --new-key-file, which is created with a random key and mode 0600 when
missing, or from --new-key. --old-key and --new-key take only the form
{env.NAME}, the environment variable that holds the base64 key, so that no key
appears on the command line.

After the rotation, point master_key_file (or master_key) at the new key before
starting Caddy. Copies of the keyring made before the rotation still need the
old key. Unless --compact=false, the store file is then rewritten without its
free pages, which may still contain deleted rows.
`,
		Args: cobra.NoArgs,
	}
	addStoreFlags(cmd.Flags(), "old-key")
	cmd.Flags().String("new-key-file", "", "file with the new base64 master key; created "+
		"with a random key and mode 0600 when missing")
	cmd.Flags().String("new-key", "", "new base64 master key, as {env.NAME}")
	cmd.RunE = caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
		return runRotateKey(fl, os.Stdout)
	})
	return cmd
}

func eraseCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use: "erase (--config <Caddyfile> | --path <file> (--master-key-file <file> | " +
			"--master-key {env.NAME})) (--id <object ID> | --context key=value[,key=value])",
		Short: "Delete one object, or every object of a tenant, from the vault store",
		Long: `
Deletes one object of the local store (--id), or every object of one key
context together with its tenant key (--context), and prints how many objects
were deleted. With a --config whose store is workos, it deletes the object, or
every object that piivault created for the key context, from WorkOS Vault.

The tenant key is removed from the keyring (the store file's path followed by
.keys) before the objects are deleted. From then on, the tenant's objects cannot
be decrypted with that keyring, even with the master key: neither from the
store file nor from copies of it made before the erasure. Copies of the keyring
made before the erasure still hold the key. If the command stops between the
two steps, run it again to delete the objects that are left.

Stop Caddy first: the command needs the store file's lock.

The store file and its key come from the pii_vault global option of --config,
or from --path with --master-key-file or --master-key ({env.NAME} only). The
key context is given as key=value pairs separated by commas, such as
organization_id=org_123; values cannot contain commas. --dry-run prints what
would be deleted and changes nothing. Unless --compact=false, the file is then
rewritten without its free pages, which still contain the deleted rows.
`,
		Args: cobra.NoArgs,
	}
	addStoreFlags(cmd.Flags(), "master-key")
	cmd.Flags().String("id", "", "object ID to delete")
	cmd.Flags().String("context", "", "key context of the tenant to erase, as "+
		"key=value[,key=value]")
	cmd.Flags().Bool("dry-run", false, "print what would be deleted, and change nothing")
	cmd.RunE = caddycmd.WrapCommandFuncForCobra(func(fl caddycmd.Flags) (int, error) {
		return runErase(fl, os.Stdout)
	})
	return cmd
}

// addStoreFlags adds the flags that locate the store file and its current master key.
// keyFlag names the key flags: old-key for rotate-key, master-key for erase.
func addStoreFlags(fs *pflag.FlagSet, keyFlag string) {
	fs.String("config", "", "Caddy configuration to read the pii_vault store from")
	fs.String("adapter", "", "name of the adapter of --config; default: by file name")
	fs.String("path", "", "local store file, when --config is not given")
	fs.String(keyFlag+"-file", "", "file with the current base64 master key")
	fs.String(keyFlag, "", "current base64 master key, as {env.NAME}")
	fs.Duration("timeout", local.DefaultTimeout, "how long to wait for the store file's lock")
	fs.Bool("compact", true, "rewrite the store file afterwards, without the free pages "+
		"that still contain deleted rows")
}

// runRotateKey rotates the master key of the local store file and prints the counts.
func runRotateKey(fl caddycmd.Flags, out io.Writer) (int, error) {
	target, err := resolveStore(fl, "old-key", "rotate-key")
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	defer clear(target.key)
	newKey, newKeySource, err := resolveNewKey(fl, out)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	defer clear(newKey)

	ctx := context.Background()
	opts := local.Options{Timeout: fl.Duration("timeout")}
	res, err := local.RotateMasterKey(ctx, target.path, target.key, newKey, opts)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	if res.AlreadyRotated {
		fmt.Fprintf(out, "%s already uses the new master key (ID %s); nothing to rotate\n",
			target.path, res.NewKeyID)
	} else {
		fmt.Fprintf(out, "rotated the master key of %s from key ID %s to key ID %s\n",
			target.path, res.OldKeyID, res.NewKeyID)
		fmt.Fprintf(out, "tenant keys rewrapped: %d\n", res.Rewrapped)
		fmt.Fprintf(out, "unused tenant keys deleted: %d\n", res.Dropped)
	}

	if err := runCompaction(ctx, fl, target.path, out); err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	fmt.Fprintf(out, "before starting Caddy, set master_key_file or master_key to the new "+
		"key (ID %s, %s); copies of the keyring %s made before the rotation still need "+
		"the old key (ID %s)\n", res.NewKeyID, newKeySource, local.KeyringPath(target.path),
		res.OldKeyID)
	return caddy.ExitCodeSuccess, nil
}

// resolveNewKey reads the new master key from --new-key-file, creating the file when
// missing, or from the variable that --new-key names. It also returns where the key is,
// for the output.
func resolveNewKey(fl caddycmd.Flags, out io.Writer) (key []byte, source string, err error) {
	file, ref := fl.String("new-key-file"), fl.String("new-key")
	switch {
	case file != "" && ref != "":
		return nil, "", errors.New("set --new-key-file or --new-key, not both")
	case ref != "":
		key, err = keyFromEnv("--new-key", ref)
		return key, "in " + ref, err
	case file == "":
		return nil, "", errors.New("the new master key is missing: set --new-key-file, " +
			"which is created when missing, or --new-key")
	}

	key, created, err := local.LoadOrCreateKeyFile(file)
	if err != nil {
		return nil, "", fmt.Errorf("--new-key-file: %w", err)
	}
	if created {
		fmt.Fprintf(out, "created the new master key file %s (mode 0600); back it up\n", file)
	}
	return key, "in the file " + file, nil
}

// runErase deletes one object or one tenant of the local store file and prints the
// count.
func runErase(fl caddycmd.Flags, out io.Writer) (int, error) {
	id, contextFlag := fl.String("id"), fl.String("context")
	if (id == "") == (contextFlag == "") {
		return caddy.ExitCodeFailedStartup, errors.New("set exactly one of --id and --context")
	}
	var kc vault.KeyContext
	if contextFlag != "" {
		var err error
		if kc, err = parseKeyContext(contextFlag); err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
	} else if err := vault.CheckID(id); err != nil {
		return caddy.ExitCodeFailedStartup, fmt.Errorf("--id: %w", err)
	}

	if config := fl.String("config"); config != "" {
		ws, err := workosStoreFromConfig(config, fl.String("adapter"))
		if err != nil {
			return caddy.ExitCodeFailedStartup, err
		}
		if ws != nil {
			return runEraseWorkOS(ws, id, kc, fl.Bool("dry-run"), out)
		}
	}

	target, err := resolveStore(fl, "master-key", "erase")
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	defer clear(target.key)
	store, err := local.Open(target.path, target.key,
		local.Options{Timeout: fl.Duration("timeout"), MustExist: true})
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}

	ctx := context.Background()
	dryRun := fl.Bool("dry-run")
	if kc != nil {
		err = eraseTenant(ctx, store, kc, dryRun, out)
	} else {
		err = eraseObject(ctx, store, id, dryRun, out)
	}
	if closeErr := store.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}

	if dryRun {
		return caddy.ExitCodeSuccess, nil
	}
	if err := runCompaction(ctx, fl, target.path, out); err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	return caddy.ExitCodeSuccess, nil
}

// objectCount returns "1 object" or "n objects".
func objectCount(n int) string {
	if n == 1 {
		return "1 object"
	}
	return fmt.Sprintf("%d objects", n)
}

// checkSpelling follows the output of an erasure that found nothing, because a misspelled
// key context looks just like an erased tenant.
const checkSpelling = "if you expected some, check the key context's names and values"

// eraseTenant deletes every object of kc and its tenant key, or counts them on a dry run.
func eraseTenant(ctx context.Context, store *local.Store, kc vault.KeyContext, dryRun bool,
	out io.Writer) error {
	if dryRun {
		n, err := store.CountTenant(ctx, kc)
		if err != nil {
			return err
		}
		if n == 0 {
			fmt.Fprintf(out, "tenant %s has no objects in this store: %s\n", kc, checkSpelling)
			return nil
		}
		fmt.Fprintf(out, "would erase tenant %s: %s and its tenant key\n", kc, objectCount(n))
		return nil
	}

	n, err := store.EraseTenant(ctx, kc)
	if err != nil {
		return err
	}
	if n == 0 {
		fmt.Fprintf(out, "tenant %s had no objects in this store, and no tenant key is left: %s\n",
			kc, checkSpelling)
		return nil
	}
	fmt.Fprintf(out, "erased tenant %s: deleted %s and its tenant key\n", kc, objectCount(n))
	fmt.Fprintf(out, "copies of the keyring %s made before the erasure still hold the "+
		"tenant key; delete them or let them expire\n", local.KeyringPath(store.Path()))
	return nil
}

// eraseObject deletes the object id, or describes it on a dry run.
func eraseObject(ctx context.Context, store *local.Store, id string, dryRun bool,
	out io.Writer) error {
	meta, err := store.Describe(ctx, id)
	if err != nil {
		return err
	}
	if dryRun {
		fmt.Fprintf(out, "would delete 1 object: %s of tenant %s\n", id, meta.Context)
		return nil
	}

	if err := store.Delete(ctx, id); err != nil {
		return err
	}
	fmt.Fprintf(out, "deleted 1 object: %s of tenant %s\n", id, meta.Context)
	return nil
}

// runCompaction rewrites the closed store file without its free pages, unless
// --compact=false is set.
func runCompaction(ctx context.Context, fl caddycmd.Flags, path string, out io.Writer) error {
	if !fl.Bool("compact") {
		return nil
	}
	res, err := local.CompactFile(ctx, path, local.Options{Timeout: fl.Duration("timeout")})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "compacted %s from %d to %d bytes\n", path, res.SizeBefore,
		res.SizeAfter)
	return nil
}

// parseKeyContext parses key=value pairs separated by commas.
func parseKeyContext(s string) (vault.KeyContext, error) {
	kc := vault.KeyContext{}
	for pair := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(pair, "=")
		switch {
		case !ok:
			return nil, fmt.Errorf("--context: pair %q has no '='; use key=value[,key=value]", pair)
		case k == "":
			return nil, fmt.Errorf("--context: pair %q has an empty key", pair)
		case v == "":
			return nil, fmt.Errorf("--context: the value of %q is empty", k)
		}
		if _, dup := kc[k]; dup {
			return nil, fmt.Errorf("--context: key %q is given twice", k)
		}
		kc[k] = v
	}
	return kc, nil
}

// storeTarget is the local store file and its current master key.
type storeTarget struct {
	path string
	key  []byte
}

// resolveStore finds the store file and its current master key, from --config or from
// --path with the key flags named by keyFlag. command names the subcommand in errors.
func resolveStore(fl caddycmd.Flags, keyFlag, command string) (storeTarget, error) {
	config := fl.String("config")
	path, keyFile, keyRef := fl.String("path"), fl.String(keyFlag+"-file"), fl.String(keyFlag)
	if config != "" {
		if path != "" || keyFile != "" || keyRef != "" {
			return storeTarget{}, fmt.Errorf("--config sets the store file and its key: "+
				"leave out --path, --%s-file and --%s", keyFlag, keyFlag)
		}
		return storeFromConfig(config, fl.String("adapter"), command)
	}

	if path == "" {
		return storeTarget{}, errors.New("set --config, or --path with the store file")
	}
	var key []byte
	var err error
	switch {
	case keyFile != "" && keyRef != "":
		return storeTarget{}, fmt.Errorf("set --%s-file or --%s, not both", keyFlag, keyFlag)
	case keyFile != "":
		key, err = local.ReadKeyFile(keyFile)
	case keyRef != "":
		key, err = keyFromEnv("--"+keyFlag, keyRef)
	default:
		return storeTarget{}, fmt.Errorf("the current master key is missing: set --%s-file "+
			"or --%s", keyFlag, keyFlag)
	}
	if err != nil {
		return storeTarget{}, err
	}
	return storeTarget{path: path, key: key}, nil
}

// envRef matches a placeholder that names an environment variable.
var envRef = regexp.MustCompile(`^\{env\.([A-Za-z_][A-Za-z0-9_]*)\}$`)

// keyFromEnv reads the base64 master key from the environment variable that ref names,
// as {env.NAME}. A key written on the command line would be visible to other users in
// the process list, so any other form is rejected. Errors never contain ref, which may
// be a key.
func keyFromEnv(flag, ref string) ([]byte, error) {
	m := envRef.FindStringSubmatch(ref)
	if m == nil {
		return nil, fmt.Errorf("%s takes only the form {env.NAME}, naming the environment "+
			"variable that holds the base64 key, so that no key is on the command line", flag)
	}
	encoded := os.Getenv(m[1])
	if encoded == "" {
		return nil, fmt.Errorf("%s: environment variable %s is empty or not set", flag, m[1])
	}
	key, err := local.ParseKey(encoded)
	if err != nil {
		return nil, fmt.Errorf("%s: environment variable %s: %w", flag, m[1], err)
	}
	return key, nil
}

// storeFromConfig loads a Caddy configuration and resolves its pii_vault store the way
// LocalStore.Provision does, except that a missing master key file is an error here:
// an existing store needs its existing key.
func storeFromConfig(config, adapter, command string) (storeTarget, error) {
	raw, _, _, err := caddycmd.LoadConfig(config, adapter)
	if err != nil {
		return storeTarget{}, err
	}
	var cfg struct {
		Apps struct {
			PIIVault *App `json:"pii_vault"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return storeTarget{}, fmt.Errorf("reading %s: %w", config, err)
	}

	var ls LocalStore
	if app := cfg.Apps.PIIVault; app != nil && app.StoreRaw != nil {
		var mod struct {
			Module string `json:"module"`
		}
		if err := json.Unmarshal(app.StoreRaw, &mod); err != nil {
			return storeTarget{}, fmt.Errorf("reading the pii_vault store of %s: %w", config, err)
		}
		if mod.Module != "local" {
			return storeTarget{}, fmt.Errorf("%s supports the local store; %s configures the "+
				"%q store", command, config, mod.Module)
		}
		if err := json.Unmarshal(app.StoreRaw, &ls); err != nil {
			return storeTarget{}, fmt.Errorf("reading the pii_vault store of %s: %w", config, err)
		}
	}
	return resolveLocalStore(ls)
}

// resolveLocalStore expands the placeholders of a local store's settings and applies the
// defaults of LocalStore.
func resolveLocalStore(ls LocalStore) (storeTarget, error) {
	if err := ls.resolve(); err != nil {
		return storeTarget{}, fmt.Errorf("the configuration's %w", err)
	}
	if ls.key == nil {
		// an existing store needs its existing key, so a missing file is not created
		return storeTarget{}, fmt.Errorf("master_key_file of the configuration: %s: %w",
			ls.keyFile, fs.ErrNotExist)
	}
	return storeTarget{path: ls.path, key: ls.key}, nil
}
