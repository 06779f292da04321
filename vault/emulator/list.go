package emulator

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"

	"github.com/piivault/piivault/vault"
)

// maxCursors bounds the names kept for list cursors. The emulator clears them all when
// the bound is reached.
const maxCursors = 10_000

// listObjects serves GET /vault/v1/kv with limit, order, before and after.
//
// NOTE: WorkOS does not document which field it orders by. The emulator orders by name,
// which is unique, so pages neither overlap nor skip objects while objects are added or
// deleted. The cursors are object IDs, as in WorkOS.
func (e *Emulator) listObjects(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit, ok := parseLimit(q.Get("limit"))
	if !ok {
		writeError(w, http.StatusUnprocessableEntity, "invalid_request",
			"limit must be an integer from 1 to 100")
		return
	}
	order := q.Get("order")
	if order == "" {
		order = "desc"
	}
	if order != "asc" && order != "desc" {
		writeError(w, http.StatusUnprocessableEntity, "invalid_request", `order must be "asc" or "desc"`)
		return
	}
	before, after := q.Get("before"), q.Get("after")
	if before != "" && after != "" {
		writeError(w, http.StatusUnprocessableEntity, "invalid_request",
			"before and after cannot be used together")
		return
	}

	all, err := e.store.List(r.Context(), "")
	if err != nil {
		writeStoreError(w, err)
		return
	}
	if order == "desc" {
		slices.Reverse(all)
	}

	start, end, ok := e.pageBounds(r, all, order, limit, before, after)
	if !ok {
		writeError(w, http.StatusUnprocessableEntity, "invalid_request",
			"unknown cursor: before and after take an object ID from list_metadata")
		return
	}
	writeJSON(w, http.StatusOK, e.listPage(all, start, end))
}

// pageBounds returns the index range of the page in all, which is in the requested order.
func (e *Emulator) pageBounds(r *http.Request, all []vault.Metadata, order string, limit int,
	before, after string,
) (start, end int, ok bool) {
	cursor := after + before
	if cursor == "" {
		return 0, min(limit, len(all)), true
	}

	name, ok := e.cursorName(r, cursor)
	if !ok {
		return 0, 0, false
	}

	// the first index whose name comes after the cursor's name in this order
	pos := slices.IndexFunc(all, func(m vault.Metadata) bool {
		if order == "asc" {
			return m.Name > name
		}
		return m.Name < name
	})
	if pos < 0 {
		pos = len(all)
	}

	if after != "" {
		return pos, min(pos+limit, len(all)), true
	}

	// before: the objects that come before the cursor end where the cursor's name is
	end = pos
	if end > 0 && all[end-1].Name == name {
		end--
	}
	return max(0, end-limit), end, true
}

// cursorName returns the name of the object that a cursor points at: from the store, or
// from the names the emulator kept of objects deleted since.
func (e *Emulator) cursorName(r *http.Request, id string) (string, bool) {
	if !vault.ValidID(id) {
		return "", false
	}

	meta, err := e.store.Describe(r.Context(), id)
	if err == nil {
		return meta.Name, true
	}
	if !errors.Is(err, vault.ErrNotFound) {
		return "", false
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	name, ok := e.cursors[id]
	return name, ok
}

func (e *Emulator) listPage(all []vault.Metadata, start, end int) map[string]any {
	page := all[start:end]
	data := make([]digestJSON, 0, len(page))
	for _, m := range page {
		data = append(data, digestJSON{ID: m.ID, Name: m.Name, UpdatedAt: m.UpdatedAt.UTC()})
	}

	var lm listMetadataJSON
	if len(page) > 0 && start > 0 {
		lm.Before = &page[0].ID
	}
	if len(page) > 0 && end < len(all) {
		lm.After = &page[len(page)-1].ID
	}
	e.rememberCursors(page)

	return map[string]any{"data": data, "list_metadata": lm}
}

// rememberCursors keeps the names of the objects that can become cursors: the first and
// the last of a page.
func (e *Emulator) rememberCursors(page []vault.Metadata) {
	if len(page) == 0 {
		return
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	e.rememberCursorLocked(page[0].ID, page[0].Name)
	e.rememberCursorLocked(page[len(page)-1].ID, page[len(page)-1].Name)
}

func (e *Emulator) rememberCursorLocked(id, name string) {
	if len(e.cursors) >= maxCursors {
		clear(e.cursors)
	}
	e.cursors[id] = name
}

func jsonBytes(v any) ([]byte, error) {
	return json.Marshal(v)
}
