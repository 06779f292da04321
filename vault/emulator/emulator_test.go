package emulator

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	wvault "github.com/workos/workos-go/v4/pkg/vault"
	"github.com/workos/workos-go/v4/pkg/workos_errors"

	"github.com/piivault/piivault/vault"
	"github.com/piivault/piivault/vault/vaulttest"
)

const testAPIKey = "sk_test_emulator"

// startEmulator serves a new emulator over store on 127.0.0.1.
func startEmulator(t *testing.T, store vault.Store) (*Emulator, *httptest.Server) {
	t.Helper()
	e := New(store, testAPIKey)
	srv := httptest.NewServer(e)
	t.Cleanup(func() {
		e.Close()
		srv.Close()
	})
	return e, srv
}

func newClient(srv *httptest.Server, apiKey string) *wvault.Client {
	return &wvault.Client{APIKey: apiKey, Endpoint: srv.URL}
}

func httpStatus(err error) int {
	var he workos_errors.HTTPError
	if errors.As(err, &he) {
		return he.Code
	}
	return 0
}

func TestWorkOSGoLifecycle(t *testing.T) {
	_, srv := startEmulator(t, vaulttest.NewMemory())
	c := newClient(srv, testAPIKey)
	ctx := context.Background()
	kc := wvault.KeyContext{"organization_id": "org_1"}

	meta, err := c.CreateObject(ctx, wvault.CreateObjectOpts{Name: "piivault/a", Value: "alice@example.com", KeyContext: kc})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if !vault.ValidID(meta.Id) {
		t.Errorf("create returned ID %q, want a valid object ID", meta.Id)
	}
	if meta.Context["organization_id"] != "org_1" {
		t.Errorf("create returned context %v, want organization_id=org_1", meta.Context)
	}
	if meta.VersionId == "" || meta.KeyId == "" || meta.EnvironmentId == "" || meta.UpdatedAt.IsZero() {
		t.Errorf("create returned incomplete metadata %+v", meta)
	}

	obj, err := c.ReadObject(ctx, wvault.ReadObjectOpts{Id: meta.Id})
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if obj.Value != "alice@example.com" || obj.Name != "piivault/a" || obj.Metadata.VersionId != meta.VersionId {
		t.Errorf("read returned %+v", obj)
	}

	desc, err := c.DescribeObject(ctx, wvault.ReadObjectOpts{Id: meta.Id})
	if err != nil {
		t.Fatalf("describe: %v", err)
	}
	if desc.Value != "" {
		t.Errorf("describe returned a value")
	}
	if desc.Name != "piivault/a" || desc.Metadata.Context["organization_id"] != "org_1" {
		t.Errorf("describe returned %+v", desc)
	}

	updated, err := c.UpdateObject(ctx, wvault.UpdateObjectOpts{Id: meta.Id, Value: "bob@example.com", VersionCheck: meta.VersionId})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if updated.Metadata.VersionId == meta.VersionId {
		t.Errorf("update kept version %q", meta.VersionId)
	}
	if updated.Metadata.Context["organization_id"] != "org_1" {
		t.Errorf("update changed the context to %v", updated.Metadata.Context)
	}

	_, err = c.UpdateObject(ctx, wvault.UpdateObjectOpts{Id: meta.Id, Value: "eve@example.com", VersionCheck: meta.VersionId})
	if got := httpStatus(err); got != http.StatusConflict {
		t.Errorf("update with a stale version check: status %d (%v), want 409", got, err)
	}

	obj, err = c.ReadObject(ctx, wvault.ReadObjectOpts{Id: meta.Id})
	if err != nil {
		t.Fatalf("read after update: %v", err)
	}
	if obj.Value != "bob@example.com" {
		t.Errorf("read after update returned %q, want bob@example.com", obj.Value)
	}

	versions, err := c.ListObjectVersions(ctx, wvault.ReadObjectOpts{Id: meta.Id})
	if err != nil {
		t.Fatalf("versions: %v", err)
	}
	if len(versions.Data) != 2 {
		t.Fatalf("versions returned %d versions, want 2", len(versions.Data))
	}
	if !versions.Data[0].CurrentVersion || versions.Data[0].Id != updated.Metadata.VersionId {
		t.Errorf("first version is %+v, want the current one", versions.Data[0])
	}
	if versions.Data[1].CurrentVersion || versions.Data[1].Size != len("alice@example.com") {
		t.Errorf("second version is %+v, want the first, not current", versions.Data[1])
	}

	list, err := c.ListObjects(ctx, wvault.ListObjectsOpts{})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if len(list.Data) != 1 || list.Data[0].Id != meta.Id || list.Data[0].Name != "piivault/a" {
		t.Errorf("list returned %+v", list.Data)
	}

	deleted, err := c.DeleteObject(ctx, wvault.DeleteObjectOpts{Id: meta.Id})
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if !deleted.Success || deleted.Name != "piivault/a" {
		t.Errorf("delete returned %+v", deleted)
	}

	_, err = c.ReadObject(ctx, wvault.ReadObjectOpts{Id: meta.Id})
	if got := httpStatus(err); got != http.StatusNotFound {
		t.Errorf("read after delete: status %d (%v), want 404", got, err)
	}
	_, err = c.DeleteObject(ctx, wvault.DeleteObjectOpts{Id: meta.Id})
	if got := httpStatus(err); got != http.StatusNotFound {
		t.Errorf("second delete: status %d (%v), want 404", got, err)
	}
}

func TestCreateDuplicateName(t *testing.T) {
	_, srv := startEmulator(t, vaulttest.NewMemory())
	c := newClient(srv, testAPIKey)
	ctx := context.Background()
	opts := wvault.CreateObjectOpts{Name: "dup", Value: "v", KeyContext: wvault.KeyContext{"org": "1"}}

	if _, err := c.CreateObject(ctx, opts); err != nil {
		t.Fatalf("first create: %v", err)
	}
	_, err := c.CreateObject(ctx, opts)
	if got := httpStatus(err); got != http.StatusConflict {
		t.Errorf("second create: status %d (%v), want 409", got, err)
	}
}

func TestCreateInvalid(t *testing.T) {
	_, srv := startEmulator(t, vaulttest.NewMemory())
	c := newClient(srv, testAPIKey)
	cases := []wvault.CreateObjectOpts{
		{Value: "v", KeyContext: wvault.KeyContext{"org": "1"}},
		{Name: "n", Value: "v"},
		{Name: "n", Value: "v", KeyContext: wvault.KeyContext{"org": 1}},
	}
	for i, opts := range cases {
		_, err := c.CreateObject(context.Background(), opts)
		if got := httpStatus(err); got != http.StatusUnprocessableEntity {
			t.Errorf("case %d: status %d (%v), want 422", i, got, err)
		}
	}
}

func TestUnauthorized(t *testing.T) {
	_, srv := startEmulator(t, vaulttest.NewMemory())
	for _, key := range []string{"", "sk_test_wrong", testAPIKey + "x"} {
		c := newClient(srv, key)
		_, err := c.ListObjects(context.Background(), wvault.ListObjectsOpts{})
		if got := httpStatus(err); got != http.StatusUnauthorized {
			t.Errorf("key %q: status %d (%v), want 401", key, got, err)
		}
	}
}

func TestInvalidIDNotFound(t *testing.T) {
	_, srv := startEmulator(t, vaulttest.NewMemory())
	c := newClient(srv, testAPIKey)
	for _, id := range []string{"nope", "secret_00", "..%2F..%2Fkeys"} {
		_, err := c.ReadObject(context.Background(), wvault.ReadObjectOpts{Id: id})
		if got := httpStatus(err); got != http.StatusNotFound {
			t.Errorf("id %q: status %d (%v), want 404", id, got, err)
		}
	}
}

func TestErrorShape(t *testing.T) {
	_, srv := startEmulator(t, vaulttest.NewMemory())
	c := newClient(srv, testAPIKey)
	_, err := c.ReadObject(context.Background(), wvault.ReadObjectOpts{Id: "secret_" + strings.Repeat("0", 32)})

	var he workos_errors.HTTPError
	if !errors.As(err, &he) {
		t.Fatalf("read of an unknown object: %v, want an HTTPError", err)
	}
	if he.ErrorCode != "object_not_found" || he.Message == "" {
		t.Errorf("error code %q, message %q", he.ErrorCode, he.Message)
	}
	if !strings.HasPrefix(he.RequestID, "req_") {
		t.Errorf("request ID %q, want one from X-Request-Id", he.RequestID)
	}
}

func TestListPagination(t *testing.T) {
	_, srv := startEmulator(t, vaulttest.NewMemory())
	c := newClient(srv, testAPIKey)
	ctx := context.Background()
	const n = 25
	for i := range n {
		opts := wvault.CreateObjectOpts{Name: fmt.Sprintf("obj-%02d", i), Value: "v", KeyContext: wvault.KeyContext{"org": "1"}}
		if _, err := c.CreateObject(ctx, opts); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}

	for _, order := range []wvault.Order{wvault.Asc, wvault.Desc} {
		var names []string
		after := ""
		for pages := 0; ; pages++ {
			if pages > n {
				t.Fatalf("order %s: pagination does not end", order)
			}
			page, err := c.ListObjects(ctx, wvault.ListObjectsOpts{Limit: 10, Order: order, After: after})
			if err != nil {
				t.Fatalf("order %s: list: %v", order, err)
			}
			for _, d := range page.Data {
				names = append(names, d.Name)
			}
			if page.ListMetadata.After == "" {
				break
			}
			after = page.ListMetadata.After
		}

		if len(names) != n {
			t.Fatalf("order %s: listed %d objects, want %d", order, len(names), n)
		}
		for i, name := range names {
			want := fmt.Sprintf("obj-%02d", i)
			if order == wvault.Desc {
				want = fmt.Sprintf("obj-%02d", n-1-i)
			}
			if name != want {
				t.Errorf("order %s: item %d is %q, want %q", order, i, name, want)
			}
		}
	}
}

func TestListBeforeCursor(t *testing.T) {
	_, srv := startEmulator(t, vaulttest.NewMemory())
	c := newClient(srv, testAPIKey)
	ctx := context.Background()
	for i := range 5 {
		opts := wvault.CreateObjectOpts{Name: fmt.Sprintf("obj-%d", i), Value: "v", KeyContext: wvault.KeyContext{"org": "1"}}
		if _, err := c.CreateObject(ctx, opts); err != nil {
			t.Fatalf("create %d: %v", i, err)
		}
	}

	first, err := c.ListObjects(ctx, wvault.ListObjectsOpts{Limit: 2, Order: wvault.Asc})
	if err != nil {
		t.Fatalf("list: %v", err)
	}
	if first.ListMetadata.Before != "" {
		t.Errorf("first page has before cursor %q", first.ListMetadata.Before)
	}
	second, err := c.ListObjects(ctx, wvault.ListObjectsOpts{Limit: 2, Order: wvault.Asc, After: first.ListMetadata.After})
	if err != nil {
		t.Fatalf("list after: %v", err)
	}
	if len(second.Data) != 2 || second.Data[0].Name != "obj-2" {
		t.Fatalf("second page is %+v, want obj-2 and obj-3", second.Data)
	}

	// delete the cursor object: its position must survive
	if _, err := c.DeleteObject(ctx, wvault.DeleteObjectOpts{Id: second.Data[0].Id}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	back, err := c.ListObjects(ctx, wvault.ListObjectsOpts{Limit: 10, Order: wvault.Asc, Before: second.ListMetadata.Before})
	if err != nil {
		t.Fatalf("list before: %v", err)
	}
	if len(back.Data) != 2 || back.Data[0].Name != "obj-0" || back.Data[1].Name != "obj-1" {
		t.Errorf("page before is %+v, want obj-0 and obj-1", back.Data)
	}
}

func TestListInvalidParams(t *testing.T) {
	_, srv := startEmulator(t, vaulttest.NewMemory())
	for _, q := range []string{"limit=0", "limit=101", "limit=x", "order=up", "before=a&after=b", "after=secret_" + strings.Repeat("1", 32)} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/vault/v1/kv?"+q, nil)
		req.Header.Set("Authorization", "Bearer "+testAPIKey)
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatalf("query %q: %v", q, err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("query %q: status %d, want 422", q, res.StatusCode)
		}
	}
}

func TestDataKeyRoundTrip(t *testing.T) {
	_, srv := startEmulator(t, vaulttest.NewMemory())
	c := newClient(srv, testAPIKey)
	ctx := context.Background()

	pair, err := c.CreateDataKey(ctx, wvault.CreateDataKeyOpts{KeyContext: wvault.KeyContext{"org": "1"}})
	if err != nil {
		t.Fatalf("create data key: %v", err)
	}
	ciphertext, err := wvault.LocalEncrypt("hello", pair, "aad")
	if err != nil {
		t.Fatalf("local encrypt: %v", err)
	}
	decoded, err := wvault.Decode(ciphertext, 12)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	key, err := c.DecryptDataKey(ctx, wvault.DecryptDataKeyOpts{Keys: decoded.Keys})
	if err != nil {
		t.Fatalf("decrypt data key: %v", err)
	}
	if key.Id != pair.Id || key.Key != pair.DataKey {
		t.Errorf("decrypt returned key %q, want %q", key.Id, pair.Id)
	}
	plaintext, err := wvault.LocalDecrypt(decoded, key, "aad")
	if err != nil || plaintext != "hello" {
		t.Errorf("local decrypt: %q, %v", plaintext, err)
	}

	tampered := []byte(pair.EncryptedKeys)
	tampered[len(tampered)-3] ^= 1
	_, err = c.DecryptDataKey(ctx, wvault.DecryptDataKeyOpts{Keys: string(tampered)})
	if got := httpStatus(err); got != http.StatusBadRequest {
		t.Errorf("decrypt of modified keys: status %d (%v), want 400", got, err)
	}
}

func TestFaultCountAndCounters(t *testing.T) {
	e, srv := startEmulator(t, vaulttest.NewMemory())
	c := newClient(srv, testAPIKey)
	ctx := context.Background()
	e.Inject(Fault{Endpoint: EndpointList, Count: 2, Status: http.StatusTooManyRequests, RetryAfter: 1500 * time.Millisecond})

	for i := range 3 {
		_, err := c.ListObjects(ctx, wvault.ListObjectsOpts{})
		want := http.StatusTooManyRequests
		if i == 2 {
			want = 0
		}
		if got := httpStatus(err); got != want {
			t.Errorf("call %d: status %d (%v), want %d", i, got, err, want)
		}
	}
	if got := e.CallCount(EndpointList); got != 3 {
		t.Errorf("list calls %d, want 3", got)
	}
	if got := e.TotalCalls(); got != 3 {
		t.Errorf("total calls %d, want 3", got)
	}
	if got := len(e.Calls()); got != 3 {
		t.Errorf("call log has %d calls, want 3", got)
	}
	e.ResetCalls()
	if got := e.TotalCalls(); got != 0 {
		t.Errorf("total calls after reset %d, want 0", got)
	}
}

func TestFaultRetryAfterHeader(t *testing.T) {
	e, srv := startEmulator(t, vaulttest.NewMemory())
	e.Inject(Fault{Count: 1, Status: http.StatusTooManyRequests, RetryAfter: 1500 * time.Millisecond})

	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/vault/v1/kv", nil)
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("status %d, want 429", res.StatusCode)
	}
	if got := res.Header.Get("Retry-After"); got != "2" {
		t.Errorf("Retry-After %q, want 2 (seconds, rounded up)", got)
	}
}

func TestFaultAfterStore(t *testing.T) {
	store := vaulttest.NewMemory()
	e, srv := startEmulator(t, store)
	c := newClient(srv, testAPIKey)
	// the client is workos-go's, which retries 5xx on POST: stop it at one attempt by
	// failing the create with 400 after the store call
	e.Inject(Fault{Endpoint: EndpointCreate, Count: 1, Status: http.StatusBadRequest, AfterStore: true})

	_, err := c.CreateObject(context.Background(), wvault.CreateObjectOpts{Name: "lost", Value: "v", KeyContext: wvault.KeyContext{"org": "1"}})
	if got := httpStatus(err); got != http.StatusBadRequest {
		t.Fatalf("create: status %d (%v), want 400", got, err)
	}
	metas, _ := store.List(context.Background(), "lost")
	if len(metas) != 1 {
		t.Errorf("store has %d objects named lost, want 1", len(metas))
	}
}

func TestFaultHang(t *testing.T) {
	e, srv := startEmulator(t, vaulttest.NewMemory())
	c := newClient(srv, testAPIKey)
	e.Inject(Fault{Endpoint: EndpointList, Count: 1, Hang: true})

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := c.ListObjects(ctx, wvault.ListObjectsOpts{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("list: %v, want a deadline error", err)
	}
}

func TestFaultFraction(t *testing.T) {
	e, srv := startEmulator(t, vaulttest.NewMemory())
	c := newClient(srv, testAPIKey)
	e.Inject(Fault{Endpoint: EndpointList, Fraction: 1, Status: http.StatusTooManyRequests})
	_, err := c.ListObjects(context.Background(), wvault.ListObjectsOpts{})
	if got := httpStatus(err); got != http.StatusTooManyRequests {
		t.Errorf("with fraction 1: status %d, want 429", got)
	}

	e.ClearFaults()
	if _, err := c.ListObjects(context.Background(), wvault.ListObjectsOpts{}); err != nil {
		t.Errorf("after ClearFaults: %v", err)
	}
}

func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := New(vaulttest.NewMemory(), testAPIKey)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, e) }()

	c := &wvault.Client{APIKey: testAPIKey, Endpoint: "http://" + ln.Addr().String()}
	if _, err := c.ListObjects(context.Background(), wvault.ListObjectsOpts{}); err != nil {
		t.Errorf("list: %v", err)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve returned %v after cancel, want nil", err)
	}
}
