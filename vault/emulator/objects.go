package emulator

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/piivault/piivault/vault"
)

// Values that WorkOS fills from the account and that the emulator fixes.
const (
	environmentID = "environment_emulator"
	actorID       = "key_emulator"
	actorName     = "piivault emulator"
)

// maxIdempotencyKeys bounds the stored Idempotency-Key values. The emulator clears them
// all when the bound is reached.
const maxIdempotencyKeys = 10_000

type actorJSON struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type metadataJSON struct {
	ID            string           `json:"id"`
	EnvironmentID string           `json:"environment_id"`
	KeyID         string           `json:"key_id"`
	VersionID     string           `json:"version_id"`
	Context       vault.KeyContext `json:"context"`
	UpdatedAt     time.Time        `json:"updated_at"`
	UpdatedBy     actorJSON        `json:"updated_by"`
}

type objectJSON struct {
	ID       string       `json:"id"`
	Name     string       `json:"name"`
	Value    *string      `json:"value,omitempty"`
	Metadata metadataJSON `json:"metadata"`
}

type digestJSON struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	UpdatedAt time.Time `json:"updated_at"`
}

type listMetadataJSON struct {
	Before *string `json:"before"`
	After  *string `json:"after"`
}

type versionJSON struct {
	ID             string    `json:"id"`
	CreatedAt      time.Time `json:"created_at"`
	CurrentVersion bool      `json:"current_version"`
	Etag           string    `json:"etag"`
	Size           int       `json:"size"`
}

// objectVersion is one version that the emulator saw written.
type objectVersion struct {
	id        string
	createdAt time.Time
	etag      string
	size      int
}

func toMetadataJSON(m vault.Metadata) metadataJSON {
	kc := m.Context
	if kc == nil {
		kc = vault.KeyContext{}
	}
	return metadataJSON{
		ID:            m.ID,
		EnvironmentID: environmentID,
		KeyID:         keyID(kc),
		VersionID:     m.VersionID,
		Context:       kc,
		UpdatedAt:     m.UpdatedAt.UTC(),
		UpdatedBy:     actorJSON{ID: actorID, Name: actorName},
	}
}

// keyID names the key of a key context. WorkOS derives one key per context, so equal
// contexts get equal key IDs.
func keyID(kc vault.KeyContext) string {
	sum := sha256.Sum256([]byte(kc.String()))
	return "key_" + strings.ToUpper(hex.EncodeToString(sum[:13]))
}

// objectID returns the {id} path value, or writes a 404 when it is not a valid object ID.
func objectID(w http.ResponseWriter, r *http.Request) (string, bool) {
	id := r.PathValue("id")
	if !vault.ValidID(id) {
		writeError(w, http.StatusNotFound, "object_not_found", "object not found")
		return "", false
	}
	return id, true
}

type createRequest struct {
	Name       string            `json:"name"`
	Value      *string           `json:"value"`
	KeyContext map[string]string `json:"key_context"`
}

// createObject serves POST /vault/v1/kv. A repeated Idempotency-Key (the Node SDK sends
// one with every POST) returns the response of the first create instead of creating again.
//
// NOTE: WorkOS's handling of Idempotency-Key on this endpoint is not documented. The
// emulator replays by key alone, without comparing request bodies.
func (e *Emulator) createObject(w http.ResponseWriter, r *http.Request) {
	idemKey := r.Header.Get("Idempotency-Key")
	if body, ok := e.idempotentResponse(idemKey); ok {
		writeRawJSON(w, http.StatusCreated, body)
		return
	}

	var req createRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Name == "" || req.Value == nil || len(req.KeyContext) == 0 {
		writeError(w, http.StatusUnprocessableEntity, "invalid_request",
			"name, value and a non-empty key_context are required")
		return
	}

	meta, err := e.store.Create(r.Context(), vault.NewObject{
		Name:    req.Name,
		Value:   []byte(*req.Value),
		Context: vault.KeyContext(req.KeyContext),
	})
	if err != nil {
		writeStoreError(w, err)
		return
	}
	e.recordVersion(meta, []byte(*req.Value))

	body, err := jsonBytes(toMetadataJSON(meta))
	if err != nil {
		writeError(w, http.StatusInternalServerError, "server_error", "encoding the response failed")
		return
	}
	e.rememberIdempotent(idemKey, body)
	writeRawJSON(w, http.StatusCreated, body)
}

func (e *Emulator) readObject(w http.ResponseWriter, r *http.Request) {
	id, ok := objectID(w, r)
	if !ok {
		return
	}

	obj, err := e.store.Read(r.Context(), id)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	writeObject(w, obj.Metadata, obj.Value)
}

// readObjectByName serves GET /vault/v1/kv/name/{name}.
func (e *Emulator) readObjectByName(w http.ResponseWriter, r *http.Request) {
	meta, err := vault.DescribeByName(r.Context(), e.store, r.PathValue("sub"))
	if err != nil {
		writeStoreError(w, err)
		return
	}

	obj, err := e.store.Read(r.Context(), meta.ID)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	writeObject(w, obj.Metadata, obj.Value)
}

func (e *Emulator) describeObject(w http.ResponseWriter, r *http.Request) {
	id, ok := objectID(w, r)
	if !ok {
		return
	}

	meta, err := e.store.Describe(r.Context(), id)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	writeObject(w, meta, nil)
}

type updateRequest struct {
	Value        *string `json:"value"`
	VersionCheck *string `json:"version_check"` // the Node SDK sends null when absent
}

// updateObject serves PUT /vault/v1/kv/{id}. A stale version_check gets 409 with code
// version_check_failed.
//
// NOTE: WorkOS does not document the status of a stale version_check. 409 is the choice
// of this emulator, and the workos store also accepts 412.
func (e *Emulator) updateObject(w http.ResponseWriter, r *http.Request) {
	id, ok := objectID(w, r)
	if !ok {
		return
	}

	var req updateRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if req.Value == nil {
		writeError(w, http.StatusUnprocessableEntity, "invalid_request", "value is required")
		return
	}
	versionCheck := ""
	if req.VersionCheck != nil {
		versionCheck = *req.VersionCheck
	}

	meta, err := e.store.Update(r.Context(), id, []byte(*req.Value), versionCheck)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	e.recordVersion(meta, []byte(*req.Value))
	writeObject(w, meta, nil)
}

// deleteObject serves DELETE /vault/v1/kv/{id}, with an optional version_check query
// parameter as the Node SDK sends it.
//
// NOTE: the version check and the delete are two store calls, so an update between them
// is not detected.
func (e *Emulator) deleteObject(w http.ResponseWriter, r *http.Request) {
	id, ok := objectID(w, r)
	if !ok {
		return
	}

	meta, err := e.store.Describe(r.Context(), id)
	if err != nil {
		writeStoreError(w, err)
		return
	}
	if vc := r.URL.Query().Get("version_check"); vc != "" && vc != meta.VersionID {
		writeStoreError(w, vault.ErrVersionConflict)
		return
	}

	if err := e.store.Delete(r.Context(), id); err != nil {
		writeStoreError(w, err)
		return
	}
	e.forgetVersions(id, meta.Name)
	writeJSON(w, http.StatusOK, map[string]any{"success": true, "name": meta.Name})
}

// listVersions serves GET /vault/v1/kv/{id}/versions, newest first. It lists the
// versions written through this emulator. Of an object written by other means, it lists
// the current version only.
func (e *Emulator) listVersions(w http.ResponseWriter, r *http.Request) {
	id, ok := objectID(w, r)
	if !ok {
		return
	}

	obj, err := e.store.Read(r.Context(), id)
	if err != nil {
		writeStoreError(w, err)
		return
	}

	e.mu.Lock()
	history := slices.Clone(e.versions[id])
	e.mu.Unlock()
	if len(history) == 0 || history[len(history)-1].id != obj.VersionID {
		history = append(history, e.newVersion(obj.Metadata, obj.Value))
	}

	data := make([]versionJSON, 0, len(history))
	for _, v := range slices.Backward(history) {
		data = append(data, versionJSON{
			ID:             v.id,
			CreatedAt:      v.createdAt.UTC(),
			CurrentVersion: v.id == obj.VersionID,
			Etag:           v.etag,
			Size:           v.size,
		})
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "list_metadata": listMetadataJSON{}})
}

func writeObject(w http.ResponseWriter, meta vault.Metadata, value []byte) {
	obj := objectJSON{ID: meta.ID, Name: meta.Name, Metadata: toMetadataJSON(meta)}
	if value != nil {
		v := string(value)
		obj.Value = &v
	}
	writeJSON(w, http.StatusOK, obj)
}

func (e *Emulator) newVersion(meta vault.Metadata, value []byte) objectVersion {
	return objectVersion{id: meta.VersionID, createdAt: meta.UpdatedAt, etag: e.etag(value), size: len(value)}
}

func (e *Emulator) recordVersion(meta vault.Metadata, value []byte) {
	v := e.newVersion(meta, value)

	e.mu.Lock()
	defer e.mu.Unlock()
	e.versions[meta.ID] = append(e.versions[meta.ID], v)
}

// forgetVersions drops the history of a deleted object, and keeps its name so that a
// list cursor that points at it still has a position.
func (e *Emulator) forgetVersions(id, name string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.versions, id)
	e.rememberCursorLocked(id, name)
}

func (e *Emulator) idempotentResponse(key string) ([]byte, bool) {
	if key == "" {
		return nil, false
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	body, ok := e.idempotent[key]
	return body, ok
}

func (e *Emulator) rememberIdempotent(key string, body []byte) {
	if key == "" {
		return
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.idempotent) >= maxIdempotencyKeys {
		clear(e.idempotent)
	}
	e.idempotent[key] = body
}

// parseLimit reads the limit query parameter: default 10, at most 100.
func parseLimit(q string) (int, bool) {
	if q == "" {
		return 10, true
	}
	n, err := strconv.Atoi(q)
	if err != nil || n < 1 || n > 100 {
		return 0, false
	}
	return n, true
}
