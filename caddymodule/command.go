package caddymodule

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"

	"github.com/piivault/piivault/rules"
	"github.com/piivault/piivault/vault/local"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "pii",
		Usage: "check|keygen|emulator|rotate-key|erase",
		Short: "Tools for piivault rules, keys and the WorkOS Vault emulator",
		Long: `
Tools for piivault:

  caddy pii check --query '<jsonpath>' [--input FILE]
      prints the RFC 9535 normalized paths that a query selects in a JSON
      document (standard input by default), as a JSON array.
  caddy pii keygen
      prints a new base64 master key for the local store.
  caddy pii emulator --listen 127.0.0.1:PORT --api-key KEY
      serves the WorkOS Vault HTTP API from an embedded store, for local
      development and tests of the workos store.
  caddy pii rotate-key --config Caddyfile --new-key-file FILE
      wraps the local store's tenant keys under a new master key, with Caddy
      stopped. The new key file is created when missing.
  caddy pii erase --config Caddyfile (--id ID | --context key=value[,...])
      deletes one object, or every object of a key context with its tenant
      key, from the local store, with Caddy stopped.
`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.AddCommand(checkCommand(), keygenCommand(), emulatorCommand(),
				rotateKeyCommand(), eraseCommand())
		},
	})
}

func checkCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "check --query <jsonpath> [--input <file>]",
		Short: "Print the normalized paths that a JSONPath query selects",
		Args:  cobra.NoArgs,
	}
	cmd.Flags().String("query", "", "RFC 9535 JSONPath query, such as $.users[*].email")
	cmd.Flags().String("input", "-", "JSON document to select in; - reads standard input")
	cmd.RunE = caddycmd.WrapCommandFuncForCobra(runCheck)
	return cmd
}

func runCheck(fl caddycmd.Flags) (int, error) {
	query := fl.String("query")
	if query == "" {
		return caddy.ExitCodeFailedStartup, errors.New("--query is required")
	}

	input, err := readInput(fl.String("input"))
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	out, err := rules.Check(query, input)
	if err != nil {
		return caddy.ExitCodeFailedStartup, err
	}
	fmt.Println(string(out))
	warnFolded(query, input)
	return caddy.ExitCodeSuccess, nil
}

// warnFolded prints a warning to standard error when the document has a member name
// that differs from one of the query's names only by case or folding. The handler
// rejects such a body, unless folded_keys is tokenize, which also selects that member.
func warnFolded(query string, input []byte) {
	q, err := rules.Compile(query)
	if err != nil {
		return
	}
	doc, err := rules.Parse(input, rules.Options{})
	if err != nil {
		return
	}
	if offset, found := doc.FoldedName(q.Names()); found {
		fmt.Fprintf(os.Stderr, "warning: the member name at byte %d differs from a name in the query "+
			"only by case or Unicode folding; pii_vault rejects this body, or selects that member "+
			"too with folded_keys tokenize\n", offset)
	}
}

// maxCheckInput is the largest document that pii check reads: 64 MiB.
const maxCheckInput = 64 << 20

func readInput(name string) ([]byte, error) {
	var r io.Reader = os.Stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, fmt.Errorf("reading input: %w", err)
		}
		defer f.Close()
		r = f
	}

	data, err := io.ReadAll(io.LimitReader(r, maxCheckInput+1))
	if err != nil {
		return nil, fmt.Errorf("reading input: %w", err)
	}
	if len(data) > maxCheckInput {
		return nil, fmt.Errorf("input is larger than %d bytes", maxCheckInput)
	}
	return data, nil
}

func keygenCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "keygen",
		Short: "Print a new base64 master key for the local store",
		Args:  cobra.NoArgs,
		RunE: caddycmd.WrapCommandFuncForCobra(func(caddycmd.Flags) (int, error) {
			key, err := local.GenerateKey()
			if err != nil {
				return caddy.ExitCodeFailedStartup, err
			}
			fmt.Println(key)
			return caddy.ExitCodeSuccess, nil
		}),
	}
}
