package workos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	wvault "github.com/workos/workos-go/v4/pkg/vault"
	"github.com/workos/workos-go/v4/pkg/workos_errors"

	"github.com/piivault/piivault/vault"
)

// listPageSize is the page size of List, the largest that WorkOS accepts.
const listPageSize = 100

// Read returns an object with its value, and refreshes its cached metadata.
func (s *Store) Read(ctx context.Context, id string) (vault.Object, error) {
	if err := vault.CheckID(id); err != nil {
		return vault.Object{}, fmt.Errorf("workos: read object: %w", err)
	}

	ctx, cancel := s.callContext(ctx, &callInfo{idempotent: true})
	defer cancel()
	obj, err := s.client.ReadObject(ctx, wvault.ReadObjectOpts{Id: id})
	if err != nil {
		return vault.Object{}, callError("read object "+id, err, nil)
	}

	meta, err := fromObject(id, obj)
	if err != nil {
		return vault.Object{}, fmt.Errorf("workos: read object %s: %w", id, err)
	}
	s.cache.put(meta)
	return vault.Object{Metadata: meta, Value: []byte(obj.Value)}, nil
}

// Describe returns an object's metadata, from the cache when it holds the object.
//
// NOTE: a cached version ID and update time are those of the last call through this
// store, so an update by another client is not seen. Update with a version check still
// goes to WorkOS, which rejects a stale one.
func (s *Store) Describe(ctx context.Context, id string) (vault.Metadata, error) {
	if err := vault.CheckID(id); err != nil {
		return vault.Metadata{}, fmt.Errorf("workos: describe object: %w", err)
	}
	if meta, ok := s.cache.get(id); ok {
		return meta, nil
	}
	return s.describe(ctx, id)
}

// describe fetches an object's metadata from WorkOS and caches it.
func (s *Store) describe(ctx context.Context, id string) (vault.Metadata, error) {
	ctx, cancel := s.callContext(ctx, &callInfo{idempotent: true})
	defer cancel()
	obj, err := s.client.DescribeObject(ctx, wvault.ReadObjectOpts{Id: id})
	if err != nil {
		return vault.Metadata{}, callError("describe object "+id, err, nil)
	}

	meta, err := fromObject(id, obj)
	if err != nil {
		return vault.Metadata{}, fmt.Errorf("workos: describe object %s: %w", id, err)
	}
	s.cache.put(meta)
	return meta, nil
}

// Update replaces an object's value. With a versionCheck, a 409 or 412 from WorkOS is
// vault.ErrVersionConflict, and the call is retried after a 5xx. When a retried update
// meets a conflict, an earlier attempt may have written the value: the store reads the
// object and reports success if it holds the value.
func (s *Store) Update(ctx context.Context, id string, value []byte, versionCheck string) (vault.Metadata, error) {
	if err := vault.CheckID(id); err != nil {
		return vault.Metadata{}, fmt.Errorf("workos: update object: %w", err)
	}
	if err := checkValue(value); err != nil {
		return vault.Metadata{}, fmt.Errorf("workos: update object %s: %w", id, err)
	}

	info := &callInfo{idempotent: versionCheck != ""}
	callCtx, cancel := s.callContext(ctx, info)
	defer cancel()
	obj, err := s.client.UpdateObject(callCtx, wvault.UpdateObjectOpts{
		Id:           id,
		Value:        string(value),
		VersionCheck: versionCheck,
	})
	if err != nil {
		s.cache.remove(id) // the cached version may be stale
		if info.uncertain && isStatus(err, http.StatusConflict, http.StatusPreconditionFailed) {
			if cur, readErr := s.Read(ctx, id); readErr == nil && bytes.Equal(cur.Value, value) {
				return cur.Metadata, nil
			}
		}
		return vault.Metadata{}, callError("update object "+id, err, vault.ErrVersionConflict)
	}

	meta, err := fromObject(id, obj)
	if err != nil {
		return vault.Metadata{}, fmt.Errorf("workos: update object %s: %w", id, err)
	}
	return s.completeUpdate(ctx, meta)
}

// completeUpdate fills in what an update response may lack, and caches the result. The
// name and the context never change, so the cached ones are right.
func (s *Store) completeUpdate(ctx context.Context, meta vault.Metadata) (vault.Metadata, error) {
	cached, ok := s.cache.get(meta.ID)
	if ok {
		if meta.Name == "" {
			meta.Name = cached.Name
		}
		if len(meta.Context) == 0 {
			meta.Context = cached.Context
		}
	}
	if meta.Name == "" || len(meta.Context) == 0 || meta.VersionID == "" {
		return s.describe(ctx, meta.ID)
	}

	s.cache.put(meta)
	return meta, nil
}

// Delete removes an object. After a retried delete, a 404 means that an earlier attempt
// deleted it, and Delete returns nil.
func (s *Store) Delete(ctx context.Context, id string) error {
	if err := vault.CheckID(id); err != nil {
		return fmt.Errorf("workos: delete object: %w", err)
	}

	info := &callInfo{idempotent: true}
	ctx, cancel := s.callContext(ctx, info)
	defer cancel()
	_, err := s.client.DeleteObject(ctx, wvault.DeleteObjectOpts{Id: id})
	s.cache.remove(id)
	if err != nil && !(info.uncertain && isStatus(err, http.StatusNotFound)) {
		return callError("delete object "+id, err, nil)
	}
	return nil
}

// List returns the metadata of every object whose name starts with prefix, ordered by
// name. WorkOS lists names without contexts, so List describes each match, from the cache
// where it can. An object deleted in the meantime is left out.
//
// TODO: WorkOS cannot filter the list by name in v4's API, so List pages through every
// object of the environment. Use a server-side filter when one is documented.
func (s *Store) List(ctx context.Context, prefix string) ([]vault.Metadata, error) {
	var ids []string
	after := ""
	seen := make(map[string]bool)
	for {
		page, err := s.listPage(ctx, after)
		if err != nil {
			return nil, err
		}
		for _, d := range page.Data {
			if strings.HasPrefix(d.Name, prefix) && vault.ValidID(d.Id) {
				ids = append(ids, d.Id)
			}
		}

		after = page.ListMetadata.After
		if after == "" {
			break
		}
		if seen[after] {
			return nil, errors.New("workos: list objects: the list cursor repeats, so the list does not end")
		}
		seen[after] = true
	}

	metas, errs := s.DescribeBatch(ctx, ids)
	out := make([]vault.Metadata, 0, len(metas))
	for i, err := range errs {
		switch {
		case err == nil:
			out = append(out, metas[i])
		case !errors.Is(err, vault.ErrNotFound):
			return nil, err
		}
	}
	slices.SortFunc(out, func(a, b vault.Metadata) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (s *Store) listPage(ctx context.Context, after string) (wvault.ListObjectsResponse, error) {
	ctx, cancel := s.callContext(ctx, &callInfo{idempotent: true})
	defer cancel()
	page, err := s.client.ListObjects(ctx, wvault.ListObjectsOpts{
		Limit: listPageSize,
		Order: wvault.Asc,
		After: after,
	})
	if err != nil {
		return page, callError("list objects", err, nil)
	}
	return page, nil
}

// ReadByName returns the object with the given name. workos-go v4 lacks this call, so
// the store sends it through the same HTTP client, under the same rate limit and retries.
func (s *Store) ReadByName(ctx context.Context, name string) (vault.Object, error) {
	if name == "" || name == "." || name == ".." {
		return vault.Object{}, fmt.Errorf("workos: read object by name: %w", vault.ErrNotFound)
	}

	ctx, cancel := s.callContext(ctx, &callInfo{idempotent: true})
	defer cancel()
	var obj wvault.Object
	if err := s.get(ctx, "/vault/v1/kv/name/"+escapeSegment(name), &obj); err != nil {
		return vault.Object{}, callError("read object by name", err, nil)
	}
	if err := vault.CheckID(obj.Id); err != nil {
		return vault.Object{}, fmt.Errorf("workos: read object by name: invalid response: %w", err)
	}

	meta, err := fromObject(obj.Id, obj)
	if err != nil {
		return vault.Object{}, fmt.Errorf("workos: read object by name: %w", err)
	}
	s.cache.put(meta)
	return vault.Object{Metadata: meta, Value: []byte(obj.Value)}, nil
}

// escapeSegment escapes a name into one path segment. It also escapes dots, so that a
// server that cleans paths cannot read a name of dots as "." or "..".
func escapeSegment(name string) string {
	return strings.ReplaceAll(url.PathEscape(name), ".", "%2E")
}

// get sends an authenticated GET with the headers that workos-go sends, and decodes the
// JSON response into out.
func (s *Store) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.endpoint+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.client.APIKey)
	req.Header.Set("User-Agent", userAgent)

	res, err := s.httpClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()

	if err := workos_errors.TryGetHTTPError(res); err != nil {
		return err
	}
	return json.NewDecoder(res.Body).Decode(out)
}
