package caddymodule

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/piivault/piivault/vault"
	"github.com/piivault/piivault/vault/local"
)

func init() {
	caddy.RegisterModule(LocalStore{})
}

// LocalStore is the embedded store: an encrypted bbolt file and its keyring on this
// machine.
type LocalStore struct {
	// Path is the store file. Its keyring, which contains the tenant keys, is the file
	// of the same path followed by ".keys". Default: pii_vault/vault.db under Caddy's
	// data directory.
	Path string `json:"path,omitempty"`

	// MasterKey is the base64 master key (32 bytes); placeholders such as
	// {env.PII_VAULT_MASTER_KEY} are expanded. It takes precedence over MasterKeyFile.
	MasterKey string `json:"master_key,omitempty"`

	// MasterKeyFile is a file holding the base64 master key, created with a random key
	// and mode 0600 when missing. Default: pii_vault/master.key under Caddy's data
	// directory.
	MasterKeyFile string `json:"master_key_file,omitempty"`

	path  string
	store *local.Store
}

// CaddyModule returns the Caddy module information.
func (LocalStore) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "pii_vault.stores.local",
		New: func() caddy.Module { return new(LocalStore) },
	}
}

// localStores keeps each store file open once per process. A reload provisions the new
// configuration before the old one is cleaned up, and bbolt locks its file, so both
// configurations must share the open store.
var localStores = caddy.NewUsagePool()

type pooledStore struct {
	store *local.Store
	keyID [32]byte // SHA-256 of the master key, to detect a changed key
}

func (p *pooledStore) Destruct() error { return p.store.Close() }

// Provision opens the store file and its keyring, creating them and the master key when
// missing.
func (s *LocalStore) Provision(ctx caddy.Context) error {
	logger := ctx.Logger()
	repl := caddy.NewReplacer()

	path := repl.ReplaceKnown(s.Path, "")
	if path == "" {
		path = filepath.Join(caddy.AppDataDir(), "pii_vault", "vault.db")
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return fmt.Errorf("local store path %s: %w", path, err)
	}
	s.path = abs

	key, err := s.masterKey(repl, logger)
	if err != nil {
		return err
	}
	keyID := sha256.Sum256(key)

	val, _, err := localStores.LoadOrNew(s.path, func() (caddy.Destructor, error) {
		store, err := local.Open(s.path, key, local.Options{Logger: logger})
		if err != nil {
			return nil, err
		}
		return &pooledStore{store: store, keyID: keyID}, nil
	})
	if err != nil {
		return fmt.Errorf("opening local store: %w", err)
	}

	pooled := val.(*pooledStore)
	if subtle.ConstantTimeCompare(pooled.keyID[:], keyID[:]) != 1 {
		_, _ = localStores.Delete(s.path)
		return fmt.Errorf("local store %s is open with another master key: restart Caddy to change the key", s.path)
	}
	s.store = pooled.store
	return nil
}

// masterKey reads the master key from MasterKey or from MasterKeyFile.
func (s *LocalStore) masterKey(repl *caddy.Replacer, logger *zap.Logger) ([]byte, error) {
	if s.MasterKey != "" {
		encoded := repl.ReplaceKnown(s.MasterKey, "")
		if encoded == "" {
			return nil, errors.New("master_key is empty: set the variable it names, or use master_key_file")
		}
		key, err := local.ParseKey(encoded)
		if err != nil {
			return nil, fmt.Errorf("master_key: %w", err)
		}
		return key, nil
	}

	file := repl.ReplaceKnown(s.MasterKeyFile, "")
	if file == "" {
		file = filepath.Join(caddy.AppDataDir(), "pii_vault", "master.key")
	}
	key, created, err := local.LoadOrCreateKeyFile(file)
	if err != nil {
		return nil, fmt.Errorf("master_key_file: %w", err)
	}
	if created {
		logger.Warn("created a new master key: back it up, because the store cannot be read without it",
			zap.String("master_key_file", file))
	}
	return key, nil
}

// Store returns the open store.
func (s *LocalStore) Store() vault.Store { return s.store }

// Cleanup releases this configuration's use of the store file.
func (s *LocalStore) Cleanup() error {
	if s.store == nil {
		return nil
	}
	_, err := localStores.Delete(s.path)
	return err
}

// Interface guards
var (
	_ StoreModule        = (*LocalStore)(nil)
	_ caddy.Provisioner  = (*LocalStore)(nil)
	_ caddy.CleanerUpper = (*LocalStore)(nil)
)
