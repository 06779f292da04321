package caddymodule

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sync/atomic"

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

	path    string
	key     []byte
	keyFile string
	logger  *zap.Logger
	opened  *atomic.Pointer[local.Store] // set by Start, or by Provision on a reload
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

// Provision checks the settings and reads the master key, if it exists already. It
// opens the store only when this process has it open already, as on a config reload.
// Otherwise Start opens it, so that `caddy validate` neither waits for the lock of a
// running Caddy nor creates files.
func (s *LocalStore) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	s.opened = new(atomic.Pointer[local.Store])
	if err := s.resolve(); err != nil {
		return err
	}
	if refs, _ := localStores.References(s.path); refs > 0 && s.key != nil {
		return s.open()
	}
	return nil
}

// Start opens the store file and its keyring, creating them and the master key file
// when missing. A wrong master key fails here, before Caddy serves a request.
func (s *LocalStore) Start() error {
	if s.opened.Load() != nil {
		return nil
	}
	if s.key == nil {
		key, created, err := local.LoadOrCreateKeyFile(s.keyFile)
		if err != nil {
			return fmt.Errorf("master_key_file: %w", err)
		}
		if created {
			s.logger.Warn("created a new master key: back it up, because the store cannot be read without it",
				zap.String("master_key_file", s.keyFile))
		}
		s.key = key
	}
	return s.open()
}

// open takes a reference to the store file in localStores, opening it if no
// configuration has it open yet.
func (s *LocalStore) open() error {
	keyID := sha256.Sum256(s.key)
	val, _, err := localStores.LoadOrNew(s.path, func() (caddy.Destructor, error) {
		store, err := local.Open(s.path, s.key, local.Options{Logger: s.logger})
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
	s.opened.Store(pooled.store)
	return nil
}

// resolve expands the placeholders of the settings, applies their defaults and reads
// the master key, if it exists already. It creates no file.
func (s *LocalStore) resolve() error {
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
	return s.resolveMasterKey(repl)
}

// resolveMasterKey reads the master key from MasterKey, or from MasterKeyFile when that
// file exists. A missing key file is created by Start.
func (s *LocalStore) resolveMasterKey(repl *caddy.Replacer) error {
	if s.MasterKey != "" {
		encoded := repl.ReplaceKnown(s.MasterKey, "")
		if encoded == "" {
			return errors.New("master_key is empty: set the variable it names, or use master_key_file")
		}
		key, err := local.ParseKey(encoded)
		if err != nil {
			return fmt.Errorf("master_key: %w", err)
		}
		s.key = key
		return nil
	}

	s.keyFile = repl.ReplaceKnown(s.MasterKeyFile, "")
	if s.keyFile == "" {
		s.keyFile = filepath.Join(caddy.AppDataDir(), "pii_vault", "master.key")
	}
	key, err := local.ReadKeyFile(s.keyFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return fmt.Errorf("master_key_file: %w", err)
	}
	s.key = key
	return nil
}

// Store returns the store. Until Start has opened it, its calls fail as an unavailable
// store does.
func (s *LocalStore) Store() vault.Store { return (*startedStore)(s.opened) }

// Cleanup releases this configuration's use of the store file.
func (s *LocalStore) Cleanup() error {
	if s.opened == nil || s.opened.Load() == nil {
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
	_ starter            = (*LocalStore)(nil)
)
