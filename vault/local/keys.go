package local

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// GenerateKey returns a new random master key in standard base64 with padding.
func GenerateKey() (string, error) {
	key := make([]byte, keySize)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("generating master key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(key), nil
}

// ParseKey decodes a base64 master key, in the standard or URL alphabet, with or without
// padding, and surrounding whitespace ignored. The key must decode to 32 bytes. Errors
// never contain the input.
func ParseKey(b64 string) ([]byte, error) {
	b64 = strings.TrimSpace(b64)
	if b64 == "" {
		return nil, errors.New("master key is empty; generate one with 'caddy pii keygen'")
	}

	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding,
		base64.URLEncoding, base64.RawURLEncoding} {
		key, err := enc.DecodeString(b64)
		if err != nil {
			continue
		}
		if len(key) != keySize {
			clear(key)
			return nil, fmt.Errorf("master key must decode to %d bytes, got %d; "+
				"generate one with 'caddy pii keygen'", keySize, len(key))
		}
		return key, nil
	}
	return nil, errors.New("master key is not valid base64")
}

// LoadOrCreateKeyFile reads the base64 master key in the file at path. When the file is
// missing, it creates it with mode 0600 and a random key, and reports created. A file that
// group or others can access is rejected, because the key decrypts the whole vault.
func LoadOrCreateKeyFile(path string) (key []byte, created bool, err error) {
	key, err = readKeyFile(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return key, false, err
	}

	created, err = createKeyFile(path)
	if err != nil {
		return nil, false, err
	}
	key, err = readKeyFile(path)
	return key, created, err
}

// ReadKeyFile reads the base64 master key in the file at path. Unlike LoadOrCreateKeyFile,
// it never creates the file: tools that open an existing vault need its existing key. A
// file that group or others can access is rejected.
func ReadKeyFile(path string) ([]byte, error) {
	return readKeyFile(path)
}

// readKeyFile reads and parses a key file after checking its permissions.
func readKeyFile(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("reading master key file %s: %w", path, err)
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("master key file %s has mode %04o and is accessible by group "+
			"or others; run chmod 600 %s", path, perm, path)
	}

	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading master key file %s: %w", path, err)
	}
	defer clear(data)
	key, err := ParseKey(string(data))
	if err != nil {
		return nil, fmt.Errorf("reading master key file %s: %w", path, err)
	}
	return key, nil
}

// createKeyFile writes a new key to a temporary file and links it to path, so that a
// process that reads path never reads a partly written key. When another process creates
// path first, createKeyFile keeps that key and returns false.
func createKeyFile(path string) (bool, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return false, fmt.Errorf("creating master key file %s: %w", path, err)
	}
	encoded, err := GenerateKey()
	if err != nil {
		return false, fmt.Errorf("creating master key file %s: %w", path, err)
	}

	tmp, err := os.CreateTemp(dir, ".master-key-*")
	if err != nil {
		return false, fmt.Errorf("creating master key file %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())

	// CreateTemp uses mode 0600, which the key file keeps
	_, err = tmp.WriteString(encoded + "\n")
	if err == nil {
		err = tmp.Sync()
	}
	if closeErr := tmp.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return false, fmt.Errorf("creating master key file %s: %w", path, err)
	}

	err = os.Link(tmp.Name(), path)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("creating master key file %s: %w", path, err)
	}
	return true, nil
}
