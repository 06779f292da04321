package local

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateKey(t *testing.T) {
	a, err := GenerateKey()
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	b, err := GenerateKey()
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	if a == b {
		t.Error("two keys are equal")
	}
	key, err := ParseKey(a)
	if err != nil {
		t.Fatalf("ParseKey of a generated key: %v", err)
	}
	if len(key) != keySize {
		t.Errorf("generated key has %d bytes, want %d", len(key), keySize)
	}
}

func TestParseKey(t *testing.T) {
	// 0xfb 0xff makes '+' and '/' in the standard alphabet, '-' and '_' in the URL one
	key := bytes.Repeat([]byte{0xfb, 0xff}, keySize/2)
	for name, encoded := range map[string]string{
		"std":          base64.StdEncoding.EncodeToString(key),
		"raw std":      base64.RawStdEncoding.EncodeToString(key),
		"url":          base64.URLEncoding.EncodeToString(key),
		"raw url":      base64.RawURLEncoding.EncodeToString(key),
		"with newline": base64.StdEncoding.EncodeToString(key) + "\n",
	} {
		got, err := ParseKey(encoded)
		if err != nil {
			t.Errorf("ParseKey(%s): %v", name, err)
			continue
		}
		if !bytes.Equal(got, key) {
			t.Errorf("ParseKey(%s) returned another key", name)
		}
	}
}

func TestParseKeyErrors(t *testing.T) {
	cases := map[string]string{
		"empty":       "  ",
		"short":       base64.StdEncoding.EncodeToString([]byte("sixteen byte key")),
		"long":        base64.StdEncoding.EncodeToString(make([]byte, 33)),
		"not base64":  "this is my master key, not base64 at all!!",
		"mixed alpha": "ab+_" + base64.RawStdEncoding.EncodeToString(make([]byte, 30)),
	}
	for name, input := range cases {
		_, err := ParseKey(input)
		if err == nil {
			t.Errorf("ParseKey(%s) succeeded", name)
			continue
		}
		if trimmed := strings.TrimSpace(input); trimmed != "" &&
			strings.Contains(err.Error(), trimmed) {
			t.Errorf("ParseKey(%s): error %q repeats the input", name, err)
		}
	}

	_, err := ParseKey(base64.StdEncoding.EncodeToString(make([]byte, 16)))
	if err == nil || !strings.Contains(err.Error(), "got 16") {
		t.Errorf("ParseKey of 16 bytes: error = %v, want one naming the length", err)
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "secrets")
	path := filepath.Join(dir, "master.key")

	key, created, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatalf("LoadOrCreateKeyFile: %v", err)
	}
	if !created {
		t.Error("created = false for a missing file")
	}
	if len(key) != keySize {
		t.Errorf("key has %d bytes, want %d", len(key), keySize)
	}
	checkMode(t, path, 0o600)
	checkMode(t, dir, 0o700)

	again, created, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatalf("LoadOrCreateKeyFile of an existing file: %v", err)
	}
	if created {
		t.Error("created = true for an existing file")
	}
	if !bytes.Equal(again, key) {
		t.Error("the second load returned another key")
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory has %d entries, want only the key file", len(entries))
	}
}

func checkMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != want {
		t.Errorf("%s has mode %04o, want %04o", filepath.Base(path), got, want)
	}
}

func TestKeyFileLoosePermissions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	if _, _, err := LoadOrCreateKeyFile(path); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}

	_, _, err := LoadOrCreateKeyFile(path)
	if err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("LoadOrCreateKeyFile of a 0644 file: error = %v, want one saying chmod 600", err)
	}
}

func TestKeyFileInvalidContent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "master.key")
	const content = "hunter2-is-not-a-key"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}

	_, _, err := LoadOrCreateKeyFile(path)
	if err == nil {
		t.Fatal("LoadOrCreateKeyFile of an invalid key succeeded")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error %q repeats the file content", err)
	}
	if !strings.Contains(err.Error(), path) {
		t.Errorf("error %q does not name the file", err)
	}
}
