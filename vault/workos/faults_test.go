package workos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/piivault/piivault/vault"
	"github.com/piivault/piivault/vault/emulator"
	"github.com/piivault/piivault/vault/vaulttest"
)

// createInBacking creates an object in the emulator's store directly, so that the
// workos store has nothing of it cached.
func (e *testEnv) createInBacking(t *testing.T, name string) vault.Metadata {
	t.Helper()
	meta, err := e.backing.Create(context.Background(), vault.NewObject{
		Name: name, Value: []byte(`"v1"`), Context: vault.KeyContext{"org": "1"},
	})
	if err != nil {
		t.Fatalf("creating %s in the emulator's store: %v", name, err)
	}
	return meta
}

func unavailable(t *testing.T, err error) *UnavailableError {
	t.Helper()
	var u *UnavailableError
	if !errors.As(err, &u) {
		t.Fatalf("error %v, want one wrapping *UnavailableError", err)
	}
	return u
}

func TestRateLimitRetried(t *testing.T) {
	env := newTestEnv(t, vaulttest.NewMemory(), Config{})
	meta := env.createInBacking(t, "r")
	env.emu.Inject(emulator.Fault{Endpoint: emulator.EndpointDescribe, Count: 2, Status: http.StatusTooManyRequests, RetryAfter: time.Second})

	got, err := env.store.Describe(context.Background(), meta.ID)
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	if got.VersionID != meta.VersionID {
		t.Errorf("VersionID %q, want %q", got.VersionID, meta.VersionID)
	}
	if n := env.emu.CallCount(emulator.EndpointDescribe); n != 3 {
		t.Errorf("describe calls %d, want 3", n)
	}
}

func TestRateLimitPastDeadline(t *testing.T) {
	env := newTestEnv(t, vaulttest.NewMemory(), Config{})
	meta := env.createInBacking(t, "r")
	env.emu.Inject(emulator.Fault{Endpoint: emulator.EndpointRead, Status: http.StatusTooManyRequests, RetryAfter: 30 * time.Second})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := env.store.Read(ctx, meta.ID)
	u := unavailable(t, err)
	if u.StatusCode != http.StatusTooManyRequests {
		t.Errorf("StatusCode %d, want 429", u.StatusCode)
	}
	if u.RetryAfter != 30*time.Second {
		t.Errorf("RetryAfter %s, want 30s", u.RetryAfter)
	}
	if u.RequestID == "" {
		t.Error("RequestID is empty")
	}
	if n := env.emu.CallCount(emulator.EndpointRead); n != 1 {
		t.Errorf("read calls %d, want 1: the wait does not fit the deadline", n)
	}

	// the pause holds every call back, so the next one is not sent at all
	_, err = env.store.Describe(ctx, meta.ID)
	u = unavailable(t, err)
	if u.RetryAfter <= 0 || u.RetryAfter > 30*time.Second {
		t.Errorf("RetryAfter of a paused call %s, want the rest of the 30s", u.RetryAfter)
	}
	if n := env.emu.CallCount(emulator.EndpointDescribe); n != 0 {
		t.Errorf("describe calls during the pause %d, want 0", n)
	}
}

func TestRateLimitOnCreateRetried(t *testing.T) {
	env := newTestEnv(t, vaulttest.NewMemory(), Config{})
	env.emu.Inject(emulator.Fault{Endpoint: emulator.EndpointCreate, Count: 1, Status: http.StatusTooManyRequests, RetryAfter: time.Second})

	if _, err := env.store.CreateBatch(context.Background(), newObjects("rl", 3)); err != nil {
		t.Fatalf("CreateBatch: %v", err)
	}
	if n := env.emu.CallCount(emulator.EndpointCreate); n != 4 {
		t.Errorf("create calls %d, want 4", n)
	}
	if n := env.emu.CallCount(emulator.EndpointReadByName); n != 0 {
		t.Errorf("lookups by name %d, want 0: a 429 is not processed", n)
	}
	if n := len(env.objectsNamed(t, "rl/")); n != 3 {
		t.Errorf("%d objects, want 3", n)
	}
}

func TestServerErrorRetriedForReads(t *testing.T) {
	env := newTestEnv(t, vaulttest.NewMemory(), Config{})
	meta := env.createInBacking(t, "s")
	env.emu.Inject(emulator.Fault{Endpoint: emulator.EndpointRead, Count: 2, Status: http.StatusBadGateway})

	obj, err := env.store.Read(context.Background(), meta.ID)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if string(obj.Value) != `"v1"` {
		t.Errorf("value %q", obj.Value)
	}
	if n := env.emu.CallCount(emulator.EndpointRead); n != 3 {
		t.Errorf("read calls %d, want 3", n)
	}
}

func TestServerErrorRetriesEnd(t *testing.T) {
	env := newTestEnv(t, vaulttest.NewMemory(), Config{})
	meta := env.createInBacking(t, "s")
	env.emu.Inject(emulator.Fault{Endpoint: emulator.EndpointRead, Status: http.StatusServiceUnavailable, RetryAfter: time.Second})

	_, err := env.store.Read(context.Background(), meta.ID)
	u := unavailable(t, err)
	if u.StatusCode != http.StatusServiceUnavailable || u.RetryAfter != time.Second {
		t.Errorf("StatusCode %d, RetryAfter %s, want 503 and 1s", u.StatusCode, u.RetryAfter)
	}
	if n := env.emu.CallCount(emulator.EndpointRead); n != 1+maxServerErrorRetries {
		t.Errorf("read calls %d, want %d", n, 1+maxServerErrorRetries)
	}
}

func TestUpdateWithoutCheckNotRetried(t *testing.T) {
	env := newTestEnv(t, vaulttest.NewMemory(), Config{})
	meta := env.createInBacking(t, "u")
	env.emu.Inject(emulator.Fault{Endpoint: emulator.EndpointUpdate, Count: 1, Status: http.StatusInternalServerError})

	_, err := env.store.Update(context.Background(), meta.ID, []byte(`"v2"`), "")
	unavailable(t, err)
	if n := env.emu.CallCount(emulator.EndpointUpdate); n != 1 {
		t.Errorf("update calls %d, want 1", n)
	}
}

func TestUpdateLostResponse(t *testing.T) {
	env := newTestEnv(t, vaulttest.NewMemory(), Config{})
	meta := env.createInBacking(t, "u")
	env.emu.Inject(emulator.Fault{Endpoint: emulator.EndpointUpdate, Count: 1, Status: http.StatusInternalServerError, AfterStore: true})

	updated, err := env.store.Update(context.Background(), meta.ID, []byte(`"v2"`), meta.VersionID)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if updated.VersionID == meta.VersionID {
		t.Error("Update returned the old version")
	}
	obj, err := env.backing.Read(context.Background(), meta.ID)
	if err != nil || string(obj.Value) != `"v2"` {
		t.Errorf("stored value %q, %v, want \"v2\"", obj.Value, err)
	}
	if n := env.emu.CallCount(emulator.EndpointUpdate); n != 2 {
		t.Errorf("update calls %d, want 2", n)
	}
}

func TestDeleteLostResponse(t *testing.T) {
	env := newTestEnv(t, vaulttest.NewMemory(), Config{})
	meta := env.createInBacking(t, "d")
	env.emu.Inject(emulator.Fault{Endpoint: emulator.EndpointDelete, Count: 1, Status: http.StatusInternalServerError, AfterStore: true})

	if err := env.store.Delete(context.Background(), meta.ID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if n := env.emu.CallCount(emulator.EndpointDelete); n != 2 {
		t.Errorf("delete calls %d, want 2", n)
	}
	if _, err := env.backing.Describe(context.Background(), meta.ID); !errors.Is(err, vault.ErrNotFound) {
		t.Errorf("object still there: %v", err)
	}
}

func TestCreateLostResponseRecovered(t *testing.T) {
	env := newTestEnv(t, vaulttest.NewMemory(), Config{})
	env.emu.Inject(emulator.Fault{Endpoint: emulator.EndpointCreate, Count: 1, Status: http.StatusInternalServerError, AfterStore: true})
	objs := newObjects("lost", 5)

	metas, err := env.store.CreateBatch(context.Background(), objs)
	if err != nil {
		t.Fatalf("CreateBatch: %v", err)
	}
	if n := env.emu.CallCount(emulator.EndpointCreate); n != 5 {
		t.Errorf("create calls %d, want 5: the lost create is found by name, not sent again", n)
	}
	if n := env.emu.CallCount(emulator.EndpointReadByName); n != 1 {
		t.Errorf("lookups by name %d, want 1", n)
	}
	checkStored(t, env, objs, metas)
}

func TestCreateServerErrorRetriedAfterLookup(t *testing.T) {
	env := newTestEnv(t, vaulttest.NewMemory(), Config{})
	env.emu.Inject(emulator.Fault{Endpoint: emulator.EndpointCreate, Count: 1, Status: http.StatusInternalServerError})
	objs := newObjects("again", 5)

	metas, err := env.store.CreateBatch(context.Background(), objs)
	if err != nil {
		t.Fatalf("CreateBatch: %v", err)
	}
	if n := env.emu.CallCount(emulator.EndpointCreate); n != 6 {
		t.Errorf("create calls %d, want 6", n)
	}
	if n := env.emu.CallCount(emulator.EndpointReadByName); n != 1 {
		t.Errorf("lookups by name %d, want 1", n)
	}
	checkStored(t, env, objs, metas)
}

func TestCreateServerErrorNotRetriedBlindly(t *testing.T) {
	env := newTestEnv(t, vaulttest.NewMemory(), Config{})
	env.emu.Inject(emulator.Fault{Endpoint: emulator.EndpointCreate, Status: http.StatusInternalServerError})

	_, err := env.store.CreateBatch(context.Background(), newObjects("fail", 3))
	if u := unavailable(t, err); u.StatusCode != http.StatusInternalServerError {
		t.Errorf("StatusCode %d, want 500", u.StatusCode)
	}
	_ = env.store.Close()

	creates := env.emu.CallCount(emulator.EndpointCreate)
	if creates > 3*maxCreateAttempts {
		t.Errorf("create calls %d, want at most %d", creates, 3*maxCreateAttempts)
	}
	if lookups := env.emu.CallCount(emulator.EndpointReadByName); lookups < creates {
		t.Errorf("lookups by name %d, create calls %d: every failed create must be looked up", lookups, creates)
	}
	if n := len(env.objectsNamed(t, "fail/")); n != 0 {
		t.Errorf("%d objects of the failed batch remain", n)
	}
}

func TestCreateTimeoutRecovered(t *testing.T) {
	for _, afterStore := range []bool{false, true} {
		t.Run(fmt.Sprintf("afterStore=%v", afterStore), func(t *testing.T) {
			env := newTestEnv(t, vaulttest.NewMemory(), Config{Timeout: 300 * time.Millisecond})
			env.emu.Inject(emulator.Fault{Endpoint: emulator.EndpointCreate, Count: 1, Hang: true, AfterStore: afterStore})
			objs := newObjects("slow", 5)

			metas, err := env.store.CreateBatch(context.Background(), objs)
			if err != nil {
				t.Fatalf("CreateBatch: %v", err)
			}
			if n := env.emu.CallCount(emulator.EndpointReadByName); n != 1 {
				t.Errorf("lookups by name %d, want 1", n)
			}
			checkStored(t, env, objs, metas)
		})
	}
}

func TestCreateBatchTimeout(t *testing.T) {
	for _, afterStore := range []bool{false, true} {
		t.Run(fmt.Sprintf("afterStore=%v", afterStore), func(t *testing.T) {
			env := newTestEnv(t, vaulttest.NewMemory(), Config{Timeout: 300 * time.Millisecond})
			// every first create and every lookup during the batch hangs, and the lookups
			// of the cleanup afterwards get responses
			env.emu.Inject(emulator.Fault{Endpoint: emulator.EndpointCreate, Count: 5, Hang: true, AfterStore: afterStore})
			env.emu.Inject(emulator.Fault{Endpoint: emulator.EndpointReadByName, Count: 5, Hang: true})

			_, err := env.store.CreateBatch(context.Background(), newObjects("hang", 5))
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("CreateBatch: %v, want a deadline error", err)
			}
			unavailable(t, err)
			_ = env.store.Close()

			if n := len(env.objectsNamed(t, "hang/")); n != 0 {
				t.Errorf("%d objects of the failed batch remain", n)
			}
		})
	}
}

func TestCreateBatchCallerDeadline(t *testing.T) {
	env := newTestEnv(t, vaulttest.NewMemory(), Config{})
	env.emu.Inject(emulator.Fault{Endpoint: emulator.EndpointCreate, Count: 1, Hang: true, AfterStore: true})

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err := env.store.CreateBatch(ctx, newObjects("caller", 5))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("CreateBatch: %v, want a deadline error", err)
	}
	_ = env.store.Close()

	if n := len(env.objectsNamed(t, "caller/")); n != 0 {
		t.Errorf("%d objects of the failed batch remain", n)
	}
}

// TestMixedFaultsNoLostObjects runs batches under random 5xx, lost responses, hung calls
// and a 429, and checks that each batch either stored all its objects or none.
func TestMixedFaultsNoLostObjects(t *testing.T) {
	env := newTestEnv(t, vaulttest.NewMemory(), Config{Timeout: 2 * time.Second})
	// two hung lookups leave two creates with unknown outcomes, which fail their batches
	env.emu.Inject(emulator.Fault{Endpoint: emulator.EndpointReadByName, Count: 2, Hang: true})
	env.emu.Inject(emulator.Fault{Endpoint: emulator.EndpointReadByName, Fraction: 0.1, Status: http.StatusBadGateway})
	env.emu.Inject(emulator.Fault{Endpoint: emulator.EndpointCreate, Fraction: 0.15, Status: http.StatusInternalServerError, AfterStore: true})
	env.emu.Inject(emulator.Fault{Endpoint: emulator.EndpointCreate, Fraction: 0.1, Status: http.StatusServiceUnavailable})
	env.emu.Inject(emulator.Fault{Endpoint: emulator.EndpointCreate, Fraction: 0.04, Hang: true, AfterStore: true})
	env.emu.Inject(emulator.Fault{Count: 1, Status: http.StatusTooManyRequests, RetryAfter: time.Second})

	const batches = 12
	type result struct {
		objs  []vault.NewObject
		metas []vault.Metadata
		err   error
	}
	results := make([]result, batches)
	var wg sync.WaitGroup
	for b := range batches {
		wg.Go(func() {
			objs := newObjects(fmt.Sprintf("mix%02d", b), 4)
			metas, err := env.store.CreateBatch(context.Background(), objs)
			results[b] = result{objs, metas, err}
		})
	}
	wg.Wait()
	_ = env.store.Close()

	accepted := 0
	for b, r := range results {
		prefix := fmt.Sprintf("mix%02d/", b)
		stored := env.objectsNamed(t, prefix)
		if r.err != nil {
			if len(stored) != 0 {
				t.Errorf("batch %d failed (%v) and left %d objects", b, r.err, len(stored))
			}
			continue
		}
		accepted++
		checkStored(t, env, r.objs, r.metas)
	}
	t.Logf("%d of %d batches accepted", accepted, batches)
	if accepted == 0 || accepted == batches {
		t.Errorf("%d of %d batches accepted, want some accepted and some failed", accepted, batches)
	}
}

// checkStored checks that the emulator's store holds exactly objs, with the IDs of metas.
func checkStored(t *testing.T, env *testEnv, objs []vault.NewObject, metas []vault.Metadata) {
	t.Helper()
	if len(metas) != len(objs) {
		t.Fatalf("%d metadata for %d objects", len(metas), len(objs))
	}
	for i, obj := range objs {
		stored, err := env.backing.Read(context.Background(), metas[i].ID)
		if err != nil {
			t.Errorf("object %d (%s) of an accepted batch: %v", i, metas[i].ID, err)
			continue
		}
		if stored.Name != obj.Name || !bytes.Equal(stored.Value, obj.Value) || !stored.Context.Equal(obj.Context) {
			t.Errorf("object %d holds %q named %q, want %q named %q", i, stored.Value, stored.Name, obj.Value, obj.Name)
		}
	}
	prefix := objs[0].Name[:len(objs[0].Name)-3]
	if n := len(env.objectsNamed(t, prefix)); n != len(objs) {
		t.Errorf("%d objects under %q, want %d", n, prefix, len(objs))
	}
}

// TestBurstRate sends 200 batch calls at once and checks, from the arrival times at the
// emulator, that no window of one second holds more calls than the rate limit allows.
func TestBurstRate(t *testing.T) {
	const (
		calls = 200
		rps   = 40
		burst = 4
		// a stall of the test process makes the calls whose turn came during the stall
		// arrive together; the check allows one second of them. Sending 200 calls with
		// no limit puts far more than burst + 2*rps into one second.
		slack = rps
	)
	env := newTestEnv(t, vaulttest.NewMemory(), Config{Rate: rps, Burst: burst, Timeout: time.Minute})

	var wg sync.WaitGroup
	errs := make(chan error, calls)
	for i := range calls {
		wg.Go(func() {
			_, err := env.store.CreateBatch(context.Background(), newObjects(fmt.Sprintf("burst%03d", i), 1))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("CreateBatch: %v", err)
		}
	}

	arrivals := env.emu.Calls()
	if len(arrivals) != calls {
		t.Fatalf("%d calls reached the emulator, want %d", len(arrivals), calls)
	}
	maxInWindow := 0
	for i, c := range arrivals {
		n := 0
		for _, d := range arrivals[i:] {
			if d.At.Sub(c.At) >= time.Second {
				break
			}
			n++
		}
		maxInWindow = max(maxInWindow, n)
	}
	if limit := burst + rps + slack; maxInWindow > limit {
		t.Errorf("%d calls within one second, want at most %d (burst %d + rate %d + slack %d)",
			maxInWindow, limit, burst, rps, slack)
	}
	t.Logf("at most %d calls within one second", maxInWindow)
}
