package workos

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	wvault "github.com/workos/workos-go/v4/pkg/vault"
	"go.uber.org/zap"

	"github.com/piivault/piivault/vault"
)

// maxCreateAttempts bounds the attempts of one create. A create is sent again only after
// a lookup by name shows that the previous attempt did not take effect.
const maxCreateAttempts = 3

// Create stores a new object. A create is never repeated blindly. After a 5xx or a lost
// response, the store looks the object up by name and takes it as created when it has
// the same value and context. It sends the create again only when no such object exists.
// If the outcome stays unknown, a background cleanup deletes the object by name if it
// appears within a minute, and Close waits for that cleanup.
func (s *Store) Create(ctx context.Context, obj vault.NewObject) (vault.Metadata, error) {
	if err := checkNewObject(obj); err != nil {
		return vault.Metadata{}, fmt.Errorf("workos: create object: %w", err)
	}

	meta, unknown, err := s.create(ctx, obj, "create object")
	if unknown {
		s.cleanup(ctx, nil, []vault.NewObject{obj})
	}
	return meta, err
}

// create runs the attempts of one create. unknown reports a failed create that may have
// taken effect at WorkOS.
func (s *Store) create(ctx context.Context, obj vault.NewObject, op string) (meta vault.Metadata, unknown bool, err error) {
	// the Node SDK (12.x) sends an Idempotency-Key with every POST. The store does too,
	// but does not rely on WorkOS honoring it.
	key := "piivault-" + rand.Text()

	for attempt := 1; ; attempt++ {
		info := &callInfo{idempotencyKey: key}
		meta, err = s.createOnce(ctx, obj, info, op)
		if err == nil {
			return meta, false, nil
		}
		// a conflict after an uncertain attempt may be that attempt's own object
		ownConflict := attempt > 1 && errors.Is(err, vault.ErrNameConflict)
		if !info.uncertain && !ownConflict {
			return vault.Metadata{}, false, err
		}

		// the attempt may have taken effect: look before sending it again
		found, lookupErr := s.findCreated(ctx, obj)
		switch {
		case lookupErr == nil:
			s.log.Info("workos vault create recovered by name after an uncertain response",
				zap.String("object_id", found.ID), zap.Int("attempt", attempt))
			return found, false, nil
		case errors.Is(lookupErr, vault.ErrNameConflict):
			return vault.Metadata{}, false, fmt.Errorf("workos: %s: %w", op, vault.ErrNameConflict)
		case !errors.Is(lookupErr, vault.ErrNotFound) || attempt == maxCreateAttempts:
			return vault.Metadata{}, true, err
		}

		// the object was absent at the lookup, but a request still in flight could yet
		// create it, so a create that is not sent again stays unknown
		if waitErr := sleepWithin(ctx, backoffBase<<(attempt-1)); waitErr != nil {
			return vault.Metadata{}, true, err
		}
	}
}

func (s *Store) createOnce(ctx context.Context, obj vault.NewObject, info *callInfo, op string) (vault.Metadata, error) {
	callCtx, cancel := s.callContext(ctx, info)
	defer cancel()
	m, err := s.client.CreateObject(callCtx, wvault.CreateObjectOpts{
		Name:       obj.Name,
		Value:      string(obj.Value),
		KeyContext: toKeyContext(obj.Context),
	})
	if err != nil {
		return vault.Metadata{}, callError(op, err, vault.ErrNameConflict)
	}

	// an ID that fails the check could not be read or deleted later, so the object is
	// left for the cleanup by name
	if err := vault.CheckID(m.Id); err != nil {
		info.uncertain = true
		return vault.Metadata{}, fmt.Errorf("workos: %s: invalid response: %w", op, err)
	}

	meta := fromMetadata(m, obj.Name)
	if len(meta.Context) == 0 {
		// WorkOS returns the context as given, so fill in a response that lacks it
		meta.Context = maps.Clone(obj.Context)
	}
	s.cache.put(meta)
	return meta, nil
}

// findCreated looks up obj by name. It returns vault.ErrNameConflict when an object of
// that name holds another value or context, because then the object is not obj.
func (s *Store) findCreated(ctx context.Context, obj vault.NewObject) (vault.Metadata, error) {
	found, err := s.ReadByName(ctx, obj.Name)
	if err != nil {
		return vault.Metadata{}, err
	}
	if !found.Context.Equal(obj.Context) || !bytes.Equal(found.Value, obj.Value) {
		return vault.Metadata{}, vault.ErrNameConflict
	}
	return found.Metadata, nil
}

// cleanup deletes the objects of a failed create: created by ID, and unknown by name
// where an object of that name holds the same value and context. It returns when the
// deletes are done or ctx ends, whichever is first, so that it never holds a caller past
// its deadline. The deletes go on for up to a minute, and Close waits for them.
func (s *Store) cleanup(ctx context.Context, created []vault.Metadata, unknown []vault.NewObject) {
	if len(created) == 0 && len(unknown) == 0 {
		return
	}

	done := make(chan struct{})
	s.cleanups.Add(1)
	go func() {
		defer s.cleanups.Done()
		defer close(done)
		cleanupCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		s.deleteAll(cleanupCtx, created, unknown)
	}()

	select {
	case <-done:
	case <-ctx.Done():
	}
}

func (s *Store) deleteAll(ctx context.Context, created []vault.Metadata, unknown []vault.NewObject) {
	var mu sync.Mutex
	var failed []string
	fail := func(what string, err error) {
		mu.Lock()
		defer mu.Unlock()
		failed = append(failed, what)
		s.log.Debug("workos vault cleanup delete failed", zap.String("object", what), zap.Error(err))
	}

	s.forEach(len(created)+len(unknown), func(i int) {
		if i < len(created) {
			if err := s.retryUnavailable(ctx, func() error { return s.deleteCreated(ctx, created[i].ID) }); err != nil {
				fail(created[i].ID, err)
			}
			return
		}

		obj := unknown[i-len(created)]
		if err := s.retryUnavailable(ctx, func() error { return s.deleteByName(ctx, obj) }); err != nil {
			fail("name "+obj.Name, err)
		}
	})

	if len(failed) > 0 {
		s.log.Warn("workos vault cleanup left objects of a failed create",
			zap.Int("count", len(failed)), zap.Strings("objects", failed))
	}
}

// deleteCreated deletes an object that a failed batch created. An object that is gone
// already is no failure.
func (s *Store) deleteCreated(ctx context.Context, id string) error {
	if err := s.Delete(ctx, id); err != nil && !errors.Is(err, vault.ErrNotFound) {
		return err
	}
	return nil
}

// deleteByName deletes obj if a create whose outcome is unknown made it. An object of
// that name with another value or context is not obj, and stays.
func (s *Store) deleteByName(ctx context.Context, obj vault.NewObject) error {
	found, err := s.findCreated(ctx, obj)
	switch {
	case errors.Is(err, vault.ErrNotFound), errors.Is(err, vault.ErrNameConflict):
		return nil
	case err != nil:
		return err
	}
	return s.deleteCreated(ctx, found.ID)
}

// retryUnavailable calls fn until it succeeds, fails for a reason other than
// *UnavailableError, or ctx ends. Cleanups use it, because their calls are bounded by
// the store's timeout while a 429 pause can be longer.
func (s *Store) retryUnavailable(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		var unavailable *UnavailableError
		if err == nil || !errors.As(err, &unavailable) {
			return err
		}

		wait := max(unavailable.RetryAfter, min(backoffBase<<min(attempt, 5), backoffMax))
		if sleepWithin(ctx, wait) != nil {
			return err
		}
	}
}

// sleepWithin waits d unless that passes ctx's deadline.
func sleepWithin(ctx context.Context, d time.Duration) error {
	if !fits(ctx, d) {
		return context.DeadlineExceeded
	}
	return sleep(ctx, d)
}
