package workos

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/piivault/piivault/vault"
	"github.com/piivault/piivault/vault/emulator"
	"github.com/piivault/piivault/vault/local"
	"github.com/piivault/piivault/vault/vaulttest"
)

const testAPIKey = "sk_test_0123456789abcdef"

// testEnv is a workos store that talks to an emulator over HTTP on 127.0.0.1.
type testEnv struct {
	emu     *emulator.Emulator
	backing vault.Store
	url     string
	store   *Store
	logs    *observer.ObservedLogs
}

// newTestEnv starts an emulator over backing and returns a store for it. cfg's APIKey
// and Endpoint are filled in, and its Logger records every entry.
func newTestEnv(t testing.TB, backing vault.Store, cfg Config) *testEnv {
	t.Helper()
	emu := emulator.New(backing, testAPIKey)
	srv := httptest.NewServer(emu)

	t.Cleanup(func() {
		emu.Close() // release hung calls first, so that the server can close
		srv.Close()
	})

	env := &testEnv{emu: emu, backing: backing, url: srv.URL}
	core, logs := observer.New(zapcore.DebugLevel)
	cfg.Logger = zap.New(core)
	env.store, env.logs = env.openStore(t, cfg), logs
	return env
}

// openStore returns another store for the emulator, closed when the test ends.
func (e *testEnv) openStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	cfg.APIKey = testAPIKey
	cfg.Endpoint = e.url
	store, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

func newObjects(prefix string, n int) []vault.NewObject {
	objs := make([]vault.NewObject, n)
	for i := range objs {
		objs[i] = vault.NewObject{
			Name:    fmt.Sprintf("%s/%03d", prefix, i),
			Value:   []byte(fmt.Sprintf(`"value %d of %s"`, i, prefix)),
			Context: vault.KeyContext{"organization_id": "org_" + prefix},
		}
	}
	return objs
}

// objectsNamed returns the objects of the backing store whose names start with prefix.
func (e *testEnv) objectsNamed(t testing.TB, prefix string) []vault.Metadata {
	t.Helper()
	metas, err := e.backing.List(context.Background(), prefix)
	if err != nil {
		t.Fatalf("listing the emulator's store: %v", err)
	}
	return metas
}

func TestConformanceMemory(t *testing.T) {
	vaulttest.Run(t, func(t *testing.T) vault.Store {
		return newTestEnv(t, vaulttest.NewMemory(), Config{}).store
	})
}

func TestConformanceLocal(t *testing.T) {
	vaulttest.Run(t, func(t *testing.T) vault.Store {
		masterKey := make([]byte, 32)
		backing, err := local.Open(filepath.Join(t.TempDir(), "vault.db"), masterKey, local.Options{})
		if err != nil {
			t.Fatalf("local.Open: %v", err)
		}
		t.Cleanup(func() { _ = backing.Close() })
		return newTestEnv(t, backing, Config{}).store
	})
}

func TestNewConfig(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
	}{
		{"no key", Config{}},
		{"http elsewhere", Config{APIKey: testAPIKey, Endpoint: "http://api.workos.com"}},
		{"ftp", Config{APIKey: testAPIKey, Endpoint: "ftp://127.0.0.1"}},
		{"no host", Config{APIKey: testAPIKey, Endpoint: "https://"}},
		{"query", Config{APIKey: testAPIKey, Endpoint: "https://api.workos.com/?x=1"}},
		{"negative rate", Config{APIKey: testAPIKey, Rate: -1}},
	}
	for _, tc := range cases {
		_, err := New(tc.cfg)
		if err == nil {
			t.Errorf("%s: New returned no error", tc.name)
			continue
		}
		if strings.Contains(err.Error(), testAPIKey) {
			t.Errorf("%s: error %q contains the API key", tc.name, err)
		}
	}

	for _, endpoint := range []string{"", "https://api.workos.com/", "http://127.0.0.1:8080", "http://[::1]:1", "http://localhost:2"} {
		if _, err := New(Config{APIKey: testAPIKey, Endpoint: endpoint}); err != nil {
			t.Errorf("endpoint %q: %v", endpoint, err)
		}
	}
}

func TestConfigStringRedactsKey(t *testing.T) {
	cfg := Config{APIKey: testAPIKey, Endpoint: "http://127.0.0.1:1"}
	store, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fmt.Sprint(cfg), fmt.Sprintf("%+v", cfg), fmt.Sprintf("%#v", cfg), fmt.Sprint(store), fmt.Sprintf("%+v", store), fmt.Sprintf("%#v", store)} {
		if strings.Contains(s, testAPIKey) {
			t.Errorf("%q contains the API key", s)
		}
	}
}

func TestWrongAPIKey(t *testing.T) {
	env := newTestEnv(t, vaulttest.NewMemory(), Config{})
	env.store.client.APIKey = "sk_test_wrong_key"

	_, err := env.store.Describe(context.Background(), "secret_0123456789ABCDEF0123456789ABCDEF")
	if err == nil || !strings.Contains(err.Error(), "check api_key") {
		t.Errorf("error %v, want one that names api_key", err)
	}
	if err != nil && strings.Contains(err.Error(), "sk_test_wrong_key") {
		t.Errorf("error %q contains the API key", err)
	}
}

func TestInvalidValueNoCall(t *testing.T) {
	env := newTestEnv(t, vaulttest.NewMemory(), Config{})
	obj := vault.NewObject{Name: "bad", Value: []byte{0xff, 0xfe}, Context: vault.KeyContext{"org": "1"}}

	if _, err := env.store.Create(context.Background(), obj); err == nil {
		t.Error("Create of a value that is not UTF-8 returned no error")
	}
	if _, err := env.store.CreateBatch(context.Background(), []vault.NewObject{obj}); err == nil {
		t.Error("CreateBatch of a value that is not UTF-8 returned no error")
	}
	if got := env.emu.TotalCalls(); got != 0 {
		t.Errorf("%d calls reached the emulator, want 0", got)
	}
}

func TestReadByName(t *testing.T) {
	env := newTestEnv(t, vaulttest.NewMemory(), Config{})
	ctx := context.Background()
	for _, name := range []string{"piivault/org=1/email", "with space", "a%2Fb", "..x", "ü?#&", "name/.."} {
		meta, err := env.store.Create(ctx, vault.NewObject{Name: name, Value: []byte(`"v"`), Context: vault.KeyContext{"org": "1"}})
		if err != nil {
			t.Fatalf("Create(%q): %v", name, err)
		}
		obj, err := env.store.ReadByName(ctx, name)
		if err != nil {
			t.Errorf("ReadByName(%q): %v", name, err)
			continue
		}
		if obj.ID != meta.ID || obj.Name != name {
			t.Errorf("ReadByName(%q) returned %q named %q, want %q", name, obj.ID, obj.Name, meta.ID)
		}
	}

	_, err := env.store.ReadByName(ctx, "missing")
	if !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("ReadByName of a missing name: %v, want ErrNotFound", err)
	}
}

func TestListPages(t *testing.T) {
	env := newTestEnv(t, vaulttest.NewMemory(), Config{Rate: 1000, Burst: 100})
	ctx := context.Background()
	if _, err := env.store.CreateBatch(ctx, newObjects("p", 230)); err != nil {
		t.Fatalf("CreateBatch: %v", err)
	}
	if _, err := env.store.CreateBatch(ctx, newObjects("q", 5)); err != nil {
		t.Fatalf("CreateBatch: %v", err)
	}
	env.emu.ResetCalls()

	metas, err := env.store.List(ctx, "p/")
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(metas) != 230 {
		t.Errorf("List returned %d objects, want 230", len(metas))
	}
	if got := env.emu.CallCount(emulator.EndpointList); got != 3 {
		t.Errorf("List made %d list calls, want 3 pages of 100", got)
	}
	if got := env.emu.CallCount(emulator.EndpointDescribe); got != 0 {
		t.Errorf("List made %d describe calls, want 0 with the metadata cached", got)
	}
}

func TestMetadataCache(t *testing.T) {
	env := newTestEnv(t, vaulttest.NewMemory(), Config{})
	ctx := context.Background()
	metas, err := env.store.CreateBatch(ctx, newObjects("c", 3))
	if err != nil {
		t.Fatalf("CreateBatch: %v", err)
	}

	ids := []string{metas[0].ID, metas[1].ID, metas[0].ID, metas[2].ID}
	got, errs := env.store.DescribeBatch(ctx, ids)
	for i := range ids {
		if errs[i] != nil || got[i].ID != ids[i] {
			t.Errorf("DescribeBatch[%d] = %q, %v", i, got[i].ID, errs[i])
		}
	}
	if n := env.emu.CallCount(emulator.EndpointDescribe); n != 0 {
		t.Errorf("describe calls after create %d, want 0", n)
	}

	if err := env.store.Delete(ctx, metas[0].ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := env.store.Describe(ctx, metas[0].ID); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("Describe after Delete: %v, want ErrNotFound", err)
	}
	if n := env.emu.CallCount(emulator.EndpointDescribe); n != 1 {
		t.Errorf("describe calls after delete %d, want 1", n)
	}
}

func TestMetadataCacheDisabled(t *testing.T) {
	env := newTestEnv(t, vaulttest.NewMemory(), Config{MetadataCacheSize: -1})
	ctx := context.Background()
	metas, err := env.store.CreateBatch(ctx, newObjects("d", 2))
	if err != nil {
		t.Fatalf("CreateBatch: %v", err)
	}

	ids := []string{metas[0].ID, metas[1].ID, metas[0].ID}
	if _, errs := env.store.DescribeBatch(ctx, ids); errs[0] != nil || errs[1] != nil || errs[2] != nil {
		t.Fatalf("DescribeBatch: %v", errs)
	}
	if n := env.emu.CallCount(emulator.EndpointDescribe); n != 2 {
		t.Errorf("describe calls %d, want 2 (one per distinct ID)", n)
	}
}

func TestMetadataCacheBound(t *testing.T) {
	c := newMetadataCache(2)
	for _, id := range []string{"a", "b", "a", "c"} {
		c.put(vault.Metadata{ID: id, Context: vault.KeyContext{"k": id}})
	}
	if _, ok := c.get("b"); ok {
		t.Error("least recently used entry b is still cached")
	}
	if m, ok := c.get("a"); !ok || m.Context["k"] != "a" {
		t.Errorf("entry a = %v, %v", m, ok)
	}
	if c.len() != 2 {
		t.Errorf("cache holds %d entries, want 2", c.len())
	}

	m, _ := c.get("a")
	m.Context["k"] = "changed"
	if again, _ := c.get("a"); again.Context["k"] != "a" {
		t.Error("changing a returned context changed the cache")
	}
}

func TestRetryAfterParsing(t *testing.T) {
	cases := []struct {
		header string
		want   time.Duration
	}{
		{"", 7 * time.Second},
		{"3", 3 * time.Second},
		{"0", 0},
		{"-1", 7 * time.Second},
		{"soon", 7 * time.Second},
		{time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat), 0},
	}
	for _, tc := range cases {
		h := http.Header{}
		if tc.header != "" {
			h.Set("Retry-After", tc.header)
		}
		if got := retryAfter(h, 7*time.Second); got != tc.want {
			t.Errorf("Retry-After %q: %s, want %s", tc.header, got, tc.want)
		}
	}
}

func TestNoSecretsInLogs(t *testing.T) {
	env := newTestEnv(t, vaulttest.NewMemory(), Config{Timeout: 2 * time.Second})
	ctx := context.Background()
	env.emu.Inject(emulator.Fault{Endpoint: emulator.EndpointCreate, Count: 2, Status: http.StatusInternalServerError, AfterStore: true})
	env.emu.Inject(emulator.Fault{Endpoint: emulator.EndpointRead, Count: 2, Status: http.StatusBadGateway})

	objs := newObjects("logs", 4)
	metas, err := env.store.CreateBatch(ctx, objs)
	if err != nil {
		t.Fatalf("CreateBatch: %v", err)
	}
	if _, errs := env.store.ReadBatch(ctx, []string{metas[0].ID, metas[1].ID}); errs[0] != nil || errs[1] != nil {
		t.Fatalf("ReadBatch: %v", errs)
	}

	if env.logs.Len() == 0 {
		t.Fatal("no log entries, want retries and recoveries logged")
	}
	for _, entry := range env.logs.All() {
		line := entry.Message + fmt.Sprint(entry.ContextMap())
		if strings.Contains(line, testAPIKey) {
			t.Errorf("log entry %q contains the API key", line)
		}
		for _, obj := range objs {
			if strings.Contains(line, string(obj.Value)) {
				t.Errorf("log entry %q contains a value", line)
			}
		}
	}
}
