package caddymodule

import (
	"strconv"

	"github.com/dustin/go-humanize"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/piivault/piivault/proxy"
	"github.com/piivault/piivault/rules"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("pii_vault", parseHandler)
	// inside encode, so bodies are seen uncompressed; before reverse_proxy, so requests
	// are rewritten before they leave
	httpcaddyfile.RegisterDirectiveOrder("pii_vault", httpcaddyfile.After, "encode")
	httpcaddyfile.RegisterGlobalOption("pii_vault", parseGlobal)
}

func parseHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	m := new(Handler)
	err := m.UnmarshalCaddyfile(h.Dispenser)
	return m, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	pii_vault [<matcher>] {
//		context <key> <value>           # one or more; values take placeholders
//		tokenize <path...>              # request bodies: value -> object ID
//		reveal   <path...>              # response bodies: object ID -> plaintext
//		mask     <path> <format>        # response bodies: email, full or lastN
//		redact   <path...>              # response bodies: value -> null
//		describe <path...>              # response bodies: object ID -> metadata
//		erase    <path...>              # response bodies: delete the objects of these IDs
//		tokenize <path> name <template> # one object per name, updated in place
//		request  { <action> <path...> } # actions on request bodies
//		response { <action> <path...> } # actions on response bodies
//		max_body_size <size>
//		request_encodings <coding...>    # gzip deflate br zstd: decoded, not rejected
//		max_depth     <n>
//		max_values    <n>
//		folded_keys   reject|tokenize
//		on_denied     keep|null
//		cross_field_reveal deny|allow
//	}
//
// Paths are RFC 9535 JSONPath queries; quote a query that contains spaces.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}

	for d.NextBlock(0) {
		switch d.Val() {
		case "context":
			if err := h.parseContext(d); err != nil {
				return err
			}
		case "request", "response":
			if err := h.parsePhaseBlock(d); err != nil {
				return err
			}
		case "max_body_size":
			if err := parseSize(d, &h.MaxBodySize); err != nil {
				return err
			}
		case "request_encodings":
			h.RequestEncodings = d.RemainingArgs()
			if len(h.RequestEncodings) == 0 {
				return d.ArgErr()
			}
		case "max_depth":
			if err := parseInt(d, &h.MaxDepth); err != nil {
				return err
			}
		case "max_values":
			if err := parseInt(d, &h.MaxValues); err != nil {
				return err
			}
		case "folded_keys":
			if err := parseChoice(d, &h.FoldedKeys, "reject", "tokenize"); err != nil {
				return err
			}
		case "cross_field_reveal":
			if err := parseChoice(d, &h.CrossFieldReveal, "deny", "allow"); err != nil {
				return err
			}
		case "on_denied":
			if err := parseChoice(d, &h.OnDenied, "keep", "null"); err != nil {
				return err
			}
		case "tokenize":
			if err := parseAction(d, &h.Request); err != nil {
				return err
			}
		default:
			if err := parseAction(d, &h.Response); err != nil {
				return err
			}
		}
	}
	return nil
}

func (h *Handler) parseContext(d *caddyfile.Dispenser) error {
	var key, value string
	if !d.AllArgs(&key, &value) {
		return d.ArgErr()
	}
	if h.Context == nil {
		h.Context = make(map[string]string)
	}
	if _, dup := h.Context[key]; dup {
		return d.Errf("context %s is set twice", key)
	}
	h.Context[key] = value
	return nil
}

// parsePhaseBlock parses a request or response block of action lines.
func (h *Handler) parsePhaseBlock(d *caddyfile.Dispenser) error {
	phase := &h.Request
	if d.Val() == "response" {
		phase = &h.Response
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := parseAction(d, phase); err != nil {
			return err
		}
	}
	return nil
}

// parseAction parses one action line into phase. Queries are compiled here, so that a
// mistake is reported with its Caddyfile line.
func parseAction(d *caddyfile.Dispenser, phase *proxy.Phase) error {
	action := d.Val()
	args := d.RemainingArgs()
	if len(args) == 0 {
		return d.ArgErr()
	}

	if action == "mask" {
		if len(args) != 2 {
			return d.Errf("mask takes a path and a format, such as: mask $.phone last4")
		}
		if err := checkQuery(d, action, args[0]); err != nil {
			return err
		}
		phase.Mask = append(phase.Mask, proxy.MaskRule{Path: args[0], Format: args[1]})
		return nil
	}

	if action == "tokenize" && len(args) == 3 && args[1] == "name" {
		if err := checkQuery(d, action, args[0]); err != nil {
			return err
		}
		phase.TokenizeNamed = append(phase.TokenizeNamed, proxy.NamedRule{Path: args[0], Name: args[2]})
		return nil
	}

	var list *[]string
	switch action {
	case "tokenize":
		list = &phase.Tokenize
	case "reveal":
		list = &phase.Reveal
	case "redact":
		list = &phase.Redact
	case "describe":
		list = &phase.Describe
	case "erase":
		list = &phase.Erase
	default:
		return d.Errf("unrecognized subdirective: %s", action)
	}
	for _, q := range args {
		if err := checkQuery(d, action, q); err != nil {
			return err
		}
	}
	*list = append(*list, args...)
	return nil
}

func checkQuery(d *caddyfile.Dispenser, action, query string) error {
	if _, err := rules.Compile(query); err != nil {
		return d.Errf("%s: %v", action, err)
	}
	return nil
}

func parseChoice(d *caddyfile.Dispenser, dst *string, choices ...string) error {
	name := d.Val()
	if !d.NextArg() {
		return d.ArgErr()
	}
	for _, c := range choices {
		if d.Val() == c {
			*dst = c
			if d.NextArg() {
				return d.ArgErr()
			}
			return nil
		}
	}
	return d.Errf("invalid %s %q: use one of %v", name, d.Val(), choices)
}

// parseGlobal parses the pii_vault global option into the pii_vault app. Syntax:
//
//	pii_vault {
//		store <module> {
//			...
//		}
//	}
func parseGlobal(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("pii_vault global option is set twice")
	}
	app := new(App)

	d.Next() // option name
	for d.NextBlock(0) {
		switch d.Val() {
		case "store":
			if app.StoreRaw != nil {
				return nil, d.Err("store is set twice")
			}
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			name := d.Val()
			mod, err := caddyfile.UnmarshalModule(d, "pii_vault.stores."+name)
			if err != nil {
				return nil, err
			}
			app.StoreRaw = caddyconfig.JSONModuleObject(mod, "module", name, nil)
		default:
			return nil, d.Errf("unrecognized pii_vault option: %s", d.Val())
		}
	}

	return httpcaddyfile.App{Name: "pii_vault", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile sets up the local store from Caddyfile tokens. Syntax:
//
//	store local {
//		path            <file>
//		master_key      <base64>   # such as {env.PII_VAULT_MASTER_KEY}
//		master_key_file <file>
//	}
func (s *LocalStore) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // module name
	for d.NextBlock(0) {
		var dst *string
		switch d.Val() {
		case "path":
			dst = &s.Path
		case "master_key":
			dst = &s.MasterKey
		case "master_key_file":
			dst = &s.MasterKeyFile
		default:
			return d.Errf("unrecognized local store option: %s", d.Val())
		}
		if !d.AllArgs(dst) {
			return d.ArgErr()
		}
	}
	if s.MasterKey != "" && s.MasterKeyFile != "" {
		return d.Err("set master_key or master_key_file, not both")
	}
	return nil
}

// Interface guards
var (
	_ caddyfile.Unmarshaler = (*Handler)(nil)
	_ caddyfile.Unmarshaler = (*LocalStore)(nil)
)

func parseString(d *caddyfile.Dispenser, dst *string) error {
	if !d.AllArgs(dst) {
		return d.ArgErr()
	}
	return nil
}

// parseOne reads the one argument of a subdirective into dst, with parse, which reports
// whether the argument is valid. want describes a valid argument for the error.
func parseOne[T any](d *caddyfile.Dispenser, dst *T, want string, parse func(string) (T, bool)) error {
	name := d.Val()
	if !d.NextArg() {
		return d.ArgErr()
	}
	v, ok := parse(d.Val())
	if !ok {
		return d.Errf("invalid %s %q: use %s", name, d.Val(), want)
	}
	*dst = v
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

func parseSize(d *caddyfile.Dispenser, dst *int64) error {
	return parseOne(d, dst, "a positive size such as 1MiB", func(s string) (int64, bool) {
		size, err := humanize.ParseBytes(s)
		return int64(size), err == nil && size > 0 && size <= 1<<40
	})
}

func parseInt(d *caddyfile.Dispenser, dst *int) error {
	return parseOne(d, dst, "a positive whole number", func(s string) (int, bool) {
		n, err := strconv.Atoi(s)
		return n, err == nil && n > 0
	})
}

func parseDuration(d *caddyfile.Dispenser, dst *caddy.Duration) error {
	return parseOne(d, dst, "a positive duration such as 10s", func(s string) (caddy.Duration, bool) {
		dur, err := caddy.ParseDuration(s)
		return caddy.Duration(dur), err == nil && dur > 0
	})
}

func parseFloat(d *caddyfile.Dispenser, dst *float64) error {
	return parseOne(d, dst, "a positive number", func(s string) (float64, bool) {
		f, err := strconv.ParseFloat(s, 64)
		return f, err == nil && f > 0
	})
}
