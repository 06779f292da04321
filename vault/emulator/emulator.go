// Package emulator serves the WorkOS Vault HTTP API from a vault.Store, so that the workos
// store and the official WorkOS SDKs can be tested without an account or a network.
//
// The emulator serves the object API: create, read by ID and by name, describe, update
// with a version check, versions, list and delete. It also serves the data key API
// (create and decrypt). Paths, JSON shapes and statuses follow what workos-go v4.46.1 and
// @workos-inc/node 12.x send and expect. Tests can inject latency, 429s, 5xx responses
// and hung calls, and count the calls of each endpoint.
package emulator

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"

	"github.com/piivault/piivault/vault"
)

// Endpoint names one call of the WorkOS Vault API, for counters and faults.
type Endpoint string

// The endpoints the emulator serves.
const (
	EndpointCreate         Endpoint = "create"           // POST /vault/v1/kv
	EndpointRead           Endpoint = "read"             // GET /vault/v1/kv/{id}
	EndpointReadByName     Endpoint = "read_by_name"     // GET /vault/v1/kv/name/{name}
	EndpointDescribe       Endpoint = "describe"         // GET /vault/v1/kv/{id}/metadata
	EndpointVersions       Endpoint = "versions"         // GET /vault/v1/kv/{id}/versions
	EndpointUpdate         Endpoint = "update"           // PUT /vault/v1/kv/{id}
	EndpointList           Endpoint = "list"             // GET /vault/v1/kv
	EndpointDelete         Endpoint = "delete"           // DELETE /vault/v1/kv/{id}
	EndpointCreateDataKey  Endpoint = "create_data_key"  // POST /vault/v1/keys/data-key
	EndpointDecryptDataKey Endpoint = "decrypt_data_key" // POST /vault/v1/keys/decrypt
)

// maxBodyBytes bounds request bodies. WorkOS does not document its limit.
const maxBodyBytes = 4 << 20

// Emulator is an http.Handler that serves the WorkOS Vault HTTP API from a vault.Store.
// It is safe for concurrent use, and its fault and counter methods may be called while
// it serves.
type Emulator struct {
	store      vault.Store
	apiKeyHash [32]byte
	kek        cipher.AEAD // wraps the data keys of the data key API
	etagKey    []byte      // keys the HMAC that version etags are made of
	mux        *http.ServeMux

	closeOnce sync.Once
	closed    chan struct{} // closed by Close, releases hung calls

	mu         sync.Mutex
	calls      callState                  // counters, call log, latency and faults
	versions   map[string][]objectVersion // object ID -> versions written through the emulator
	cursors    map[string]string          // object ID -> name, for list cursors of deleted objects
	idempotent map[string][]byte          // Idempotency-Key -> response body of a create
}

// New returns an emulator that keeps objects in store and accepts requests that carry
// "Authorization: Bearer <apiKey>". It generates its own key-encryption key for the data
// key API, so data keys do not survive a restart of the emulator.
func New(store vault.Store, apiKey string) *Emulator {
	kek := make([]byte, 32)
	_, _ = rand.Read(kek) // crypto/rand.Read never returns an error since Go 1.24
	block, err := aes.NewCipher(kek)
	if err != nil {
		panic("emulator: creating AES cipher: " + err.Error()) // 32-byte keys are valid
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		panic("emulator: creating GCM: " + err.Error())
	}
	etagKey := make([]byte, 32)
	_, _ = rand.Read(etagKey)

	e := &Emulator{
		store:      store,
		apiKeyHash: sha256.Sum256([]byte(apiKey)),
		kek:        aead,
		etagKey:    etagKey,
		mux:        http.NewServeMux(),
		closed:     make(chan struct{}),
		calls:      newCallState(),
		versions:   make(map[string][]objectVersion),
		cursors:    make(map[string]string),
		idempotent: make(map[string][]byte),
	}
	e.routes()
	return e
}

// Close releases calls that hang because of an injected fault. The emulator keeps serving.
func (e *Emulator) Close() {
	e.closeOnce.Do(func() { close(e.closed) })
}

// ServeHTTP authenticates the request and serves it.
func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Request-Id", newRequestID())

	if !e.authorized(r) {
		writeError(w, http.StatusUnauthorized, "unauthorized",
			"missing or invalid API key in the Authorization header")
		return
	}

	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	e.mux.ServeHTTP(w, r)
}

// authorized reports whether r carries the emulator's API key as a bearer token. It
// compares digests in constant time, so that neither the key nor its length leaks
// through timing.
func (e *Emulator) authorized(r *http.Request) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || token == "" {
		return false
	}
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], e.apiKeyHash[:]) == 1
}

// routes registers the API. GET /vault/v1/kv/name/{name} and GET /vault/v1/kv/{id}/metadata
// overlap as ServeMux patterns, so one pattern takes both two-segment GETs and
// routeObjectSubresource dispatches them.
func (e *Emulator) routes() {
	e.handle("POST /vault/v1/kv", EndpointCreate, e.createObject)
	e.handle("GET /vault/v1/kv", EndpointList, e.listObjects)
	e.handle("GET /vault/v1/kv/{id}", EndpointRead, e.readObject)
	e.handle("PUT /vault/v1/kv/{id}", EndpointUpdate, e.updateObject)
	e.handle("DELETE /vault/v1/kv/{id}", EndpointDelete, e.deleteObject)
	e.mux.HandleFunc("GET /vault/v1/kv/{id}/{sub}", e.routeObjectSubresource)
	e.handle("POST /vault/v1/keys/data-key", EndpointCreateDataKey, e.createDataKey)
	e.handle("POST /vault/v1/keys/decrypt", EndpointDecryptDataKey, e.decryptDataKey)
	// TODO: POST /vault/v1/keys/rekey (createRekey in the Node SDK 12.x) is not served.
	e.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
}

func (e *Emulator) handle(pattern string, ep Endpoint, h http.HandlerFunc) {
	e.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		e.serveEndpoint(w, r, ep, h)
	})
}

func (e *Emulator) routeObjectSubresource(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.PathValue("id") == "name":
		e.serveEndpoint(w, r, EndpointReadByName, e.readObjectByName)
	case r.PathValue("sub") == "metadata":
		e.serveEndpoint(w, r, EndpointDescribe, e.describeObject)
	case r.PathValue("sub") == "versions":
		e.serveEndpoint(w, r, EndpointVersions, e.listVersions)
	default:
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint: GET "+r.URL.Path)
	}
}

// serveEndpoint counts the call, applies the injected latency and faults, and runs h.
func (e *Emulator) serveEndpoint(w http.ResponseWriter, r *http.Request, ep Endpoint, h http.HandlerFunc) {
	latency, f := e.beginCall(ep)

	if !e.sleep(r, latency) {
		return // the client gave up
	}
	if f == nil {
		h(w, r)
		return
	}

	// a fault after the store call models a response lost on the way back
	if f.AfterStore {
		h(discardWriter{header: make(http.Header)}, r)
	}
	e.writeFault(w, r, f)
}

// errorBody is the JSON shape of WorkOS error responses.
type errorBody struct {
	Message string `json:"message"`
	Code    string `json:"code"`
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, errorBody{Message: message, Code: code})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		body = []byte(`{"message":"encoding the response failed","code":"server_error"}`)
	}
	writeRawJSON(w, status, body)
}

func writeRawJSON(w http.ResponseWriter, status int, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeStoreError writes the WorkOS status and error body for a store error. Other errors become a
// 500 without the store's message, which is not meant for API clients.
func writeStoreError(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, vault.ErrNotFound), errors.Is(err, vault.ErrInvalidID):
		writeError(w, http.StatusNotFound, "object_not_found", "object not found")
	case errors.Is(err, vault.ErrVersionConflict):
		writeError(w, http.StatusConflict, "version_check_failed",
			"version_check does not match the current version of the object")
	case errors.Is(err, vault.ErrNameConflict):
		writeError(w, http.StatusConflict, "object_name_conflict",
			"an object with this name already exists")
	default:
		writeError(w, http.StatusInternalServerError, "server_error", "the emulator's store failed")
	}
}

// decodeBody decodes a JSON request body into v, or writes a 413 or 422 when it cannot.
func decodeBody(w http.ResponseWriter, r *http.Request, v any) bool {
	err := json.NewDecoder(r.Body).Decode(v)
	if err == nil {
		return true
	}

	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		writeError(w, http.StatusRequestEntityTooLarge, "request_too_large",
			"request body is larger than 4 MiB")
		return false
	}
	writeError(w, http.StatusUnprocessableEntity, "invalid_request", "invalid JSON body: "+err.Error())
	return false
}

func newRequestID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return "req_emulator_" + hex.EncodeToString(b)
}

// etag returns a keyed digest of value. With a plain hash, a reader of the etag could
// test guesses of a low-entropy value such as a phone number.
func (e *Emulator) etag(value []byte) string {
	mac := hmac.New(sha256.New, e.etagKey)
	mac.Write(value)
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

// discardWriter drops the response of a call whose response an injected fault replaces.
type discardWriter struct{ header http.Header }

func (d discardWriter) Header() http.Header         { return d.header }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}
