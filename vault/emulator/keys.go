package emulator

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/piivault/piivault/vault"
)

// The data key API hands out AES-256 keys for local envelope encryption. The emulator
// wraps each data key with its own key-encryption key (KEK) into this blob, which it
// returns base64-encoded as encrypted_keys:
//
//	uint16 big-endian header length | header JSON {"id", "context"} | 12-byte nonce |
//	AES-256-GCM(KEK, data key, additional data = header)
//
// The header is authenticated, so a blob cannot be moved to another key ID or context.
// WorkOS's own blob format is not documented, and clients treat it as opaque.

type dataKeyHeader struct {
	ID      string           `json:"id"`
	Context vault.KeyContext `json:"context"`
}

type createDataKeyRequest struct {
	Context map[string]string `json:"context"`
}

type decryptDataKeyRequest struct {
	Keys string `json:"keys"`
}

// createDataKey serves POST /vault/v1/keys/data-key.
func (e *Emulator) createDataKey(w http.ResponseWriter, r *http.Request) {
	var req createDataKeyRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if len(req.Context) == 0 {
		writeError(w, http.StatusUnprocessableEntity, "invalid_request", "a non-empty context is required")
		return
	}

	dataKey := make([]byte, 32)
	_, _ = rand.Read(dataKey)
	header := dataKeyHeader{ID: newUUID(), Context: vault.KeyContext(req.Context)}
	blob, err := e.wrapDataKey(header, dataKey)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "server_error", "wrapping the data key failed")
		return
	}

	writeJSON(w, http.StatusCreated, map[string]any{
		"context":        header.Context,
		"id":             header.ID,
		"data_key":       base64.StdEncoding.EncodeToString(dataKey),
		"encrypted_keys": base64.StdEncoding.EncodeToString(blob),
	})
}

// decryptDataKey serves POST /vault/v1/keys/decrypt.
func (e *Emulator) decryptDataKey(w http.ResponseWriter, r *http.Request) {
	var req decryptDataKeyRequest
	if !decodeBody(w, r, &req) {
		return
	}

	blob, err := base64.StdEncoding.DecodeString(req.Keys)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_keys", "keys is not valid base64")
		return
	}
	header, dataKey, ok := e.unwrapDataKey(blob)
	if !ok {
		writeError(w, http.StatusBadRequest, "invalid_keys",
			"keys was not created by this emulator, or was modified")
		return
	}

	writeJSON(w, http.StatusOK, map[string]any{
		"id":       header.ID,
		"data_key": base64.StdEncoding.EncodeToString(dataKey),
	})
}

func (e *Emulator) wrapDataKey(header dataKeyHeader, dataKey []byte) ([]byte, error) {
	headerJSON, err := json.Marshal(header)
	if err != nil {
		return nil, err
	}

	nonce := make([]byte, e.kek.NonceSize())
	_, _ = rand.Read(nonce)

	blob := binary.BigEndian.AppendUint16(nil, uint16(len(headerJSON)))
	blob = append(blob, headerJSON...)
	blob = append(blob, nonce...)
	return e.kek.Seal(blob, nonce, dataKey, headerJSON), nil
}

func (e *Emulator) unwrapDataKey(blob []byte) (dataKeyHeader, []byte, bool) {
	var header dataKeyHeader
	if len(blob) < 2 {
		return header, nil, false
	}
	n := int(binary.BigEndian.Uint16(blob))
	rest := blob[2:]
	if len(rest) < n+e.kek.NonceSize() {
		return header, nil, false
	}
	headerJSON, rest := rest[:n], rest[n:]
	nonce, sealed := rest[:e.kek.NonceSize()], rest[e.kek.NonceSize():]

	dataKey, err := e.kek.Open(nil, nonce, sealed, headerJSON)
	if err != nil {
		return header, nil, false
	}
	if err := json.Unmarshal(headerJSON, &header); err != nil {
		return header, nil, false
	}
	return header, dataKey, true
}

// newUUID returns a random (version 4) UUID, the shape of WorkOS data key IDs.
func newUUID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
