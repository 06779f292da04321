package local

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/piivault/piivault/vault"
)

var orgC = vault.KeyContext{"organization_id": "org_c"}

// rotationFixture is a closed store with objects of tenants A and B, and a key of tenant C
// whose only object was deleted.
type rotationFixture struct {
	path   string
	oldKey []byte
	newKey []byte
	values map[string]string // object ID -> value
}

func newRotationFixture(t *testing.T) rotationFixture {
	t.Helper()
	f := rotationFixture{
		path:   filepath.Join(t.TempDir(), "vault.db"),
		oldKey: newKey(t),
		newKey: newKey(t),
		values: map[string]string{},
	}
	s := openAt(t, f.path, f.oldKey)
	for i, kc := range []vault.KeyContext{orgA, orgA, orgB} {
		value := fmt.Sprintf(`"value %d"`, i)
		f.values[create(t, s, fmt.Sprintf("obj/%d", i), value, kc).ID] = value
	}
	deleted := create(t, s, "c/deleted", `"deleted"`, orgC)
	if err := s.Delete(context.Background(), deleted.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return f
}

// checkReadable opens the file at path with key and reads every object of values.
func checkReadable(t *testing.T, path string, key []byte, values map[string]string) {
	t.Helper()
	s, err := Open(path, key, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s.Close()
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
	if err := s.CheckIntegrity(context.Background()); err != nil {
		t.Errorf("CheckIntegrity: %v", err)
	}
}

// checkWrongKey checks that Open with key fails and names the key ID that the file needs.
func checkWrongKey(t *testing.T, path string, key, needed []byte) {
	t.Helper()
	s, err := Open(path, key, Options{})
	if err == nil {
		_ = s.Close()
		t.Fatal("Open with the other key succeeded")
	}
	if !errors.Is(err, ErrWrongMasterKey) {
		t.Errorf("Open with the other key: error = %v, want one wrapping ErrWrongMasterKey", err)
	}
	if !strings.Contains(err.Error(), "needs the master key with ID "+KeyID(needed)) {
		t.Errorf("Open with the other key: error %q does not name the needed key ID", err)
	}
}

// rawValues returns a copy of every sealed value of a closed file.
func rawValues(t *testing.T, path string) map[string][]byte {
	t.Helper()
	var values map[string][]byte
	rawUpdate(t, path, func(tx *bolt.Tx) (err error) {
		values, err = allSealed(tx)
		return err
	})
	return values
}

// rawTenantKeys returns every wrapped tenant key in the keyring of a closed store, in the
// order of their tenant IDs.
func rawTenantKeys(t *testing.T, path string) [][]byte {
	t.Helper()
	ring := readRing(t, path)
	var keys [][]byte
	for _, tenant := range slices.SortedFunc(maps.Keys(ring.tenants), func(x, y tenantID) int {
		return bytes.Compare(x[:], y[:])
	}) {
		keys = append(keys, ring.tenants[tenant])
	}
	return keys
}

func TestRotateMasterKey(t *testing.T) {
	f := newRotationFixture(t)
	sealedBefore := rawValues(t, f.path)
	storeBefore, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	keysBefore := rawTenantKeys(t, f.path)

	res, err := RotateMasterKey(context.Background(), f.path, f.oldKey, f.newKey, Options{})
	if err != nil {
		t.Fatalf("RotateMasterKey: %v", err)
	}
	storeAfter, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(storeBefore, storeAfter) {
		t.Error("rotation changed the store file")
	}
	if res.Rewrapped != 2 {
		t.Errorf("Rewrapped = %d, want 2 (tenants A and B)", res.Rewrapped)
	}
	if n := len(readRing(t, f.path).tenants); n != 2 {
		t.Errorf("the keyring has %d tenant keys after rotation, want 2", n)
	}
	if res.Dropped != 1 {
		t.Errorf("Dropped = %d, want 1 (tenant C, without objects)", res.Dropped)
	}
	if res.AlreadyRotated {
		t.Error("AlreadyRotated is set on the first rotation")
	}
	if res.OldKeyID != KeyID(f.oldKey) || res.NewKeyID != KeyID(f.newKey) {
		t.Errorf("key IDs = %s, %s; want %s, %s",
			res.OldKeyID, res.NewKeyID, KeyID(f.oldKey), KeyID(f.newKey))
	}

	// the values were not encrypted again, and the store file was not written at all
	if sealedAfter := rawValues(t, f.path); !mapsEqualBytes(sealedBefore, sealedAfter) {
		t.Error("rotation changed sealed values")
	}
	keyringAfter, err := os.ReadFile(KeyringPath(f.path))
	if err != nil {
		t.Fatal(err)
	}
	for i, wrapped := range keysBefore {
		if bytes.Contains(keyringAfter, []byte(base64.StdEncoding.EncodeToString(wrapped))) {
			t.Errorf("tenant key %d wrapped under the old master key is still in the keyring", i)
		}
	}
	checkReadable(t, f.path, f.newKey, f.values)
	checkWrongKey(t, f.path, f.oldKey, f.newKey)
}

// TestRotateNewTenantKeysAfter checks writes after a rotation: tenant A reuses its
// rewrapped key, and tenant C, whose key was dropped, gets a new one.
func TestRotateNewTenantKeysAfter(t *testing.T) {
	f := newRotationFixture(t)
	if _, err := RotateMasterKey(context.Background(), f.path, f.oldKey, f.newKey,
		Options{}); err != nil {
		t.Fatalf("RotateMasterKey: %v", err)
	}

	s := openAt(t, f.path, f.newKey)
	a := create(t, s, "a/after", `"a after"`, orgA)
	c := create(t, s, "c/after", `"c after"`, orgC)
	s = reopen(t, s, f.newKey)
	if got := readValue(t, s, a.ID); got != `"a after"` {
		t.Errorf("Read of tenant A after rotation = %q", got)
	}
	if got := readValue(t, s, c.ID); got != `"c after"` {
		t.Errorf("Read of tenant C after rotation = %q", got)
	}
}

func mapsEqualBytes(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !bytes.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// countRotateSteps returns the number of hook steps of a rotation of the fixture,
// including the one after the commit, by rotating a copy of it.
func countRotateSteps(t *testing.T, f rotationFixture) int {
	t.Helper()
	probe := filepath.Join(t.TempDir(), "probe.db")
	copyVault(t, f.path, probe)
	steps := 0
	_, err := rotate(context.Background(), probe, f.oldKey, f.newKey, Options{},
		func(step int) error {
			steps = step
			return nil
		})
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	return steps
}

var errInjected = errors.New("injected failure")

// TestRotateInterrupted stops a rotation with an error after each step, and copies the
// store file and keyring at that moment, as a backup running beside the rotation would.
// Every stop before the rename of the new keyring leaves the keyring and the copy under
// the old key. A stop after the rename leaves both under the new key. Either way every
// object is readable, no temporary keyring is left, and a second rotation completes.
func TestRotateInterrupted(t *testing.T) {
	base := newRotationFixture(t)
	total := countRotateSteps(t, base)
	if total != 3+1+1 {
		t.Fatalf("rotation has %d steps, want 5: 3 tenant keys, the temporary keyring, "+
			"the rename", total)
	}

	for stop := 1; stop <= total; stop++ {
		t.Run(fmt.Sprintf("step%d", stop), func(t *testing.T) {
			f := base
			f.path = filepath.Join(t.TempDir(), "vault.db")
			copyVault(t, base.path, f.path)
			snapshot := filepath.Join(t.TempDir(), "snapshot.db")

			_, err := rotate(context.Background(), f.path, f.oldKey, f.newKey, Options{},
				func(step int) error {
					if step != stop {
						return nil
					}
					// the writer holds the lock, but a plain copy can still read the files
					copyVault(t, f.path, snapshot)
					return errInjected
				})
			if !errors.Is(err, errInjected) {
				t.Fatalf("rotate: error = %v, want the injected failure", err)
			}

			committed := stop == total
			current, other := f.oldKey, f.newKey
			if committed {
				current, other = f.newKey, f.oldKey
			}
			checkReadable(t, f.path, current, f.values)
			checkWrongKey(t, f.path, other, current)
			checkReadable(t, snapshot, current, f.values)
			tmp := KeyringPath(f.path) + tempSuffix
			if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("temporary keyring after the stop: %v, want none", err)
			}

			res, err := RotateMasterKey(context.Background(), f.path, f.oldKey, f.newKey,
				Options{})
			if err != nil {
				t.Fatalf("second RotateMasterKey: %v", err)
			}
			if res.AlreadyRotated != committed {
				t.Errorf("second rotation: AlreadyRotated = %t, want %t",
					res.AlreadyRotated, committed)
			}
			checkReadable(t, f.path, f.newKey, f.values)
		})
	}
}

// Environment of the helper process of TestRotateKilled.
const (
	envKillPath   = "PIIVAULT_TEST_ROTATE_PATH"
	envKillOldKey = "PIIVAULT_TEST_ROTATE_OLD_KEY"
	envKillNewKey = "PIIVAULT_TEST_ROTATE_NEW_KEY"
	envKillStep   = "PIIVAULT_TEST_ROTATE_STEP"
)

// TestRotateKilled kills a process with SIGKILL while its rotation is paused at each step,
// so that no deferred call, cleanup or close runs. Every kill before the rename of the new
// keyring leaves the old keyring, a kill after it leaves the new one, and a second
// rotation completes. A kill after the temporary keyring is written leaves that file
// behind, and the next open removes it.
func TestRotateKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process per step")
	}
	base := newRotationFixture(t)
	total := countRotateSteps(t, base)

	for stop := 1; stop <= total; stop++ {
		t.Run(fmt.Sprintf("step%d", stop), func(t *testing.T) {
			f := base
			f.path = filepath.Join(t.TempDir(), "vault.db")
			copyVault(t, base.path, f.path)
			killRotationAt(t, f, stop)

			current, other := f.oldKey, f.newKey
			if stop == total {
				current, other = f.newKey, f.oldKey
			}
			checkReadable(t, f.path, current, f.values)
			checkWrongKey(t, f.path, other, current)

			if _, err := RotateMasterKey(context.Background(), f.path, f.oldKey, f.newKey,
				Options{}); err != nil {
				t.Fatalf("RotateMasterKey after the kill: %v", err)
			}
			checkReadable(t, f.path, f.newKey, f.values)
		})
	}
}

// killRotationAt runs the rotation of f in a helper process, waits until the helper
// reports that it paused at step stop, and kills it.
func killRotationAt(t *testing.T, f rotationFixture, stop int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRotateKillHelper$", "-test.count=1")
	cmd.Env = append(os.Environ(),
		envKillPath+"="+f.path,
		envKillOldKey+"="+hex.EncodeToString(f.oldKey),
		envKillNewKey+"="+hex.EncodeToString(f.newKey),
		envKillStep+"="+strconv.Itoa(stop))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the helper process: %v", err)
	}

	line, err := bufio.NewReader(stdout).ReadString('\n')
	if want := fmt.Sprintf("paused at step %d\n", stop); line != want {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		t.Fatalf("helper process wrote %q (%v), want %q; stderr:\n%s", line, err, want, &stderr)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatalf("killing the helper process: %v", err)
	}
	_ = cmd.Wait()
}

// TestRotateKillHelper is the process that TestRotateKilled kills. It does nothing in a
// normal test run.
func TestRotateKillHelper(t *testing.T) {
	path := os.Getenv(envKillPath)
	if path == "" {
		t.Skip("helper process of TestRotateKilled")
	}
	oldKey, err := hex.DecodeString(os.Getenv(envKillOldKey))
	if err != nil {
		t.Fatal(err)
	}
	newKey, err := hex.DecodeString(os.Getenv(envKillNewKey))
	if err != nil {
		t.Fatal(err)
	}
	stop, err := strconv.Atoi(os.Getenv(envKillStep))
	if err != nil {
		t.Fatal(err)
	}

	_, err = rotate(context.Background(), path, oldKey, newKey, Options{},
		func(step int) error {
			if step == stop {
				fmt.Printf("paused at step %d\n", step)
				// wait for the kill; standard input stays open until the parent closes it
				_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
				os.Exit(3)
			}
			return nil
		})
	t.Fatalf("rotation finished without reaching step %d: %v", stop, err)
}

func TestRotateAlreadyRotated(t *testing.T) {
	f := newRotationFixture(t)
	ctx := context.Background()
	if _, err := RotateMasterKey(ctx, f.path, f.oldKey, f.newKey, Options{}); err != nil {
		t.Fatalf("RotateMasterKey: %v", err)
	}
	keysBefore := rawTenantKeys(t, f.path)

	res, err := RotateMasterKey(ctx, f.path, f.oldKey, f.newKey, Options{})
	if err != nil {
		t.Fatalf("second RotateMasterKey: %v", err)
	}
	if !res.AlreadyRotated {
		t.Error("AlreadyRotated is not set")
	}
	if res.Rewrapped != 0 || res.Dropped != 0 {
		t.Errorf("second rotation counts = %d rewrapped, %d dropped; want 0, 0",
			res.Rewrapped, res.Dropped)
	}
	if keysAfter := rawTenantKeys(t, f.path); !slicesEqualBytes(keysBefore, keysAfter) {
		t.Error("second rotation changed the tenant keys")
	}
	checkReadable(t, f.path, f.newKey, f.values)
}

func slicesEqualBytes(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

func TestRotateWrongOldKey(t *testing.T) {
	f := newRotationFixture(t)
	wrong := newKey(t)

	_, err := RotateMasterKey(context.Background(), f.path, wrong, f.newKey, Options{})
	if !errors.Is(err, ErrWrongMasterKey) {
		t.Fatalf("RotateMasterKey with a wrong old key: error = %v, want ErrWrongMasterKey", err)
	}
	if !strings.Contains(err.Error(), KeyID(f.oldKey)) {
		t.Errorf("error %q does not name the key ID that the file needs", err)
	}
	checkReadable(t, f.path, f.oldKey, f.values)
}

func TestRotateKeyErrors(t *testing.T) {
	f := newRotationFixture(t)
	ctx := context.Background()
	cases := map[string]struct {
		old, new []byte
		want     string
	}{
		"same key":  {f.oldKey, f.oldKey, "equals the old one"},
		"short old": {f.oldKey[:16], f.newKey, "must be 32 bytes"},
		"short new": {f.oldKey, f.newKey[:16], "must be 32 bytes"},
	}
	for name, c := range cases {
		_, err := RotateMasterKey(ctx, f.path, c.old, c.new, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error = %v, want one containing %q", name, err, c.want)
		}
	}
	checkReadable(t, f.path, f.oldKey, f.values)
}

func TestRotateMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.db")
	_, err := RotateMasterKey(context.Background(), path, newKey(t), newKey(t), Options{})
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("RotateMasterKey of a missing file: error = %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("RotateMasterKey created the missing file: %v", err)
	}
}

func TestRotateLocked(t *testing.T) {
	f := newRotationFixture(t)
	openAt(t, f.path, f.oldKey)

	_, err := RotateMasterKey(context.Background(), f.path, f.oldKey, f.newKey,
		Options{Timeout: 50 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Errorf("RotateMasterKey of an open file: error = %v, want one saying it is locked", err)
	}
}

func TestRotateCanceled(t *testing.T) {
	f := newRotationFixture(t)
	ctx, cancel := context.WithCancel(context.Background())

	_, err := rotate(ctx, f.path, f.oldKey, f.newKey, Options{}, func(step int) error {
		cancel() // after the first tenant key
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("rotate: error = %v, want context.Canceled", err)
	}
	checkReadable(t, f.path, f.oldKey, f.values)
}

// TestRotateDamagedTenantKey checks that a tenant key that does not unwrap stops the
// rotation before anything changes.
func TestRotateDamagedTenantKey(t *testing.T) {
	f := newRotationFixture(t)
	ring := readRing(t, f.path)
	tenant := tenantIDOf(orgB)
	wrapped := bytes.Clone(ring.tenants[tenant])
	wrapped[len(wrapped)-1] ^= 1
	ring.tenants[tenant] = wrapped
	writeRing(t, f.path, ring)
	keysBefore := rawTenantKeys(t, f.path)

	_, err := RotateMasterKey(context.Background(), f.path, f.oldKey, f.newKey, Options{})
	if err == nil || !strings.Contains(err.Error(), "unwrapping tenant key") {
		t.Fatalf("RotateMasterKey with a damaged tenant key: error = %v", err)
	}
	if keysAfter := rawTenantKeys(t, f.path); !slicesEqualBytes(keysBefore, keysAfter) {
		t.Error("a failed rotation changed the tenant keys")
	}
}

// TestRotateObjectWithoutIndexEntry checks that a tenant whose objects lost their index
// entries keeps its key: rotation finds the context in the object records.
func TestRotateObjectWithoutIndexEntry(t *testing.T) {
	f := newRotationFixture(t)
	tenant := tenantOf(encodeContext(orgB))
	rawUpdate(t, f.path, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTenObjs)
		var keys [][]byte
		c := b.Cursor()
		for k, _ := c.Seek(tenant[:]); hasPrefixKey(k, tenant[:]); k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})

	res, err := RotateMasterKey(context.Background(), f.path, f.oldKey, f.newKey, Options{})
	if err != nil {
		t.Fatalf("RotateMasterKey: %v", err)
	}
	if res.Rewrapped != 2 {
		t.Errorf("Rewrapped = %d, want 2", res.Rewrapped)
	}
	s := openAt(t, f.path, f.newKey)
	for id, want := range f.values {
		if got := readValue(t, s, id); got != want {
			t.Errorf("Read(%s) = %q, want %q", id, got, want)
		}
	}
}

func TestRotateLogsWithoutKeys(t *testing.T) {
	f := newRotationFixture(t)
	core, logs := observer.New(zap.DebugLevel)

	if _, err := RotateMasterKey(context.Background(), f.path, f.oldKey, f.newKey,
		Options{Logger: zap.New(core)}); err != nil {
		t.Fatalf("RotateMasterKey: %v", err)
	}
	if logs.Len() == 0 {
		t.Fatal("no log entries")
	}
	for _, entry := range logs.All() {
		line := fmt.Sprint(entry.Message, entry.ContextMap())
		for _, key := range [][]byte{f.oldKey, f.newKey} {
			if strings.Contains(line, base64.StdEncoding.EncodeToString(key)) ||
				strings.Contains(line, hex.EncodeToString(key)) {
				t.Errorf("log entry %q contains a master key", line)
			}
		}
	}
}

// TestRotateCopyOfKeyring checks what a copy of the keyring taken before a rotation opens
// with: the old master key, and not the new one.
func TestRotateCopyOfKeyring(t *testing.T) {
	f := newRotationFixture(t)
	backup := filepath.Join(t.TempDir(), "backup.db")
	copyVault(t, f.path, backup)
	if _, err := RotateMasterKey(context.Background(), f.path, f.oldKey, f.newKey,
		Options{}); err != nil {
		t.Fatalf("RotateMasterKey: %v", err)
	}

	checkReadable(t, backup, f.oldKey, f.values)
	checkWrongKey(t, backup, f.newKey, f.oldKey)
}

func TestRotateKeyID(t *testing.T) {
	key := newKey(t)
	if KeyID(key) != KeyID(bytes.Clone(key)) {
		t.Error("KeyID differs for equal keys")
	}
	if KeyID(key) == KeyID(newKey(t)) {
		t.Error("KeyID is equal for two random keys")
	}
	if len(KeyID(key)) != 16 {
		t.Errorf("KeyID has %d characters, want 16", len(KeyID(key)))
	}
}

// BenchmarkRotateMasterKey1000Tenants rotates a file of 1,000 tenants with one object
// each, back and forth between two keys. Each iteration opens, rewraps, commits with an
// fsync, and closes.
func BenchmarkRotateMasterKey1000Tenants(b *testing.B) {
	keys := [2][]byte{newKey(b), newKey(b)}
	path := filepath.Join(b.TempDir(), "vault.db")
	s, err := Open(path, keys[0], Options{})
	if err != nil {
		b.Fatal(err)
	}
	objs := make([]vault.NewObject, 1000)
	for i := range objs {
		objs[i] = vault.NewObject{
			Name:    fmt.Sprintf("obj/%d", i),
			Value:   []byte(`"value"`),
			Context: vault.KeyContext{"organization_id": fmt.Sprintf("org_%d", i)},
		}
	}
	if _, err := s.CreateBatch(context.Background(), objs); err != nil {
		b.Fatal(err)
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}

	for i := 0; b.Loop(); i++ {
		res, err := RotateMasterKey(context.Background(), path, keys[i%2], keys[(i+1)%2],
			Options{})
		if err != nil {
			b.Fatal(err)
		}
		if res.Rewrapped != len(objs) {
			b.Fatalf("Rewrapped = %d, want %d", res.Rewrapped, len(objs))
		}
	}
}
