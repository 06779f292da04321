package local

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/piivault/piivault/vault"
)

// keySize is the size of the master key and of every tenant key: AES-256.
const keySize = 32

// HKDF info strings of the subkeys derived from the master key. Each use has its own key,
// so the key check reveals nothing about the wrapping key.
const (
	infoWrap  = "piivault/local v1 tenant key wrapping"
	infoCheck = "piivault/local v1 master key check"
	infoKeyID = "piivault/local v1 master key id"
)

// Prefixes of the additional data, so that a wrapped key can never pass as a value and the
// other way round.
const (
	aadWrap  = "piivault/local v1 tenant key"
	aadValue = "piivault/local v1 value"
)

var sha256New = sha256.New

// deriveKey derives a 256-bit subkey of the master key for one purpose.
func deriveKey(master []byte, info string) ([]byte, error) {
	key, err := hkdf.Key(sha256New, master, nil, info, keySize)
	if err != nil {
		return nil, fmt.Errorf("deriving subkey: %w", err)
	}
	return key, nil
}

// KeyID returns the ID of a master key: 16 hex digits derived from it with HKDF-SHA256.
// The ID names a key in messages and logs, so that an operator can tell which key a file
// needs. It allows the same offline guessing as the key check that the file already
// stores, and nothing more. KeyID returns "" for a key that HKDF rejects, which in Go 1.26
// happens only in FIPS 140-only mode for keys shorter than 14 bytes.
func KeyID(masterKey []byte) string {
	id, err := hkdf.Key(sha256New, masterKey, nil, infoKeyID, 8)
	if err != nil {
		return ""
	}
	return hex.EncodeToString(id)
}

// newAEAD returns AES-256-GCM under key.
func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("creating cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("creating cipher: %w", err)
	}
	return aead, nil
}

// sealOverhead is the number of bytes that seal adds to a plaintext: AES-GCM's 12-byte
// nonce and 16-byte tag.
const sealOverhead = 12 + 16

// seal encrypts plaintext with a random nonce and returns the nonce followed by the
// ciphertext and tag.
//
// NOTE: random 96-bit nonces keep the collision risk negligible only up to about 2^32
// seals under one key. A tenant key seals one value per create or update, so a tenant that
// exceeds that many writes should be given a new key.
func seal(aead cipher.AEAD, plaintext, aad []byte) []byte {
	out := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	rand.Read(out)
	return aead.Seal(out, out, plaintext, aad)
}

// errDecrypt is returned when a ciphertext fails authentication: wrong key, altered bytes,
// or a row moved to another object, version or context.
var errDecrypt = errors.New("decryption failed: the row was altered or moved")

// unseal reverses seal.
func unseal(aead cipher.AEAD, sealed, aad []byte) ([]byte, error) {
	n := aead.NonceSize()
	if len(sealed) < n+aead.Overhead() {
		return nil, errDecrypt
	}
	plaintext, err := aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, errDecrypt
	}
	return plaintext, nil
}

// tenantID is the SHA-256 of a context's canonical encoding. It keys the tenant's wrapped
// key and its object index.
type tenantID [sha256.Size]byte

// encodeContext returns the canonical encoding of kc: its pairs sorted by key, each string
// preceded by its length. Unlike JSON, the encoding keeps every byte, so two contexts that
// differ only in invalid UTF-8 never share a tenant key.
func encodeContext(kc vault.KeyContext) []byte {
	var b []byte
	b = binary.AppendUvarint(b, uint64(len(kc)))
	for _, k := range slices.Sorted(maps.Keys(kc)) {
		b = appendString(b, k)
		b = appendString(b, kc[k])
	}
	return b
}

// decodeContext reverses encodeContext and returns the rest of b.
func decodeContext(b []byte) (vault.KeyContext, []byte, error) {
	n, b, err := readUvarint(b)
	if err != nil {
		return nil, nil, err
	}
	if n > uint64(len(b)) {
		return nil, nil, errRecord
	}
	kc := make(vault.KeyContext, n)
	for range n {
		var k, v string
		if k, b, err = readString(b); err != nil {
			return nil, nil, err
		}
		if v, b, err = readString(b); err != nil {
			return nil, nil, err
		}
		kc[k] = v
	}
	return kc, b, nil
}

// tenantOf returns the tenant ID of an encoded context.
func tenantOf(encodedContext []byte) tenantID {
	return sha256.Sum256(encodedContext)
}

// wrapAAD binds a wrapped tenant key to its context.
func wrapAAD(encodedContext []byte) []byte {
	b := appendString(nil, aadWrap)
	return append(b, encodedContext...)
}

// valueAAD binds a sealed value to its object ID, version ID and context.
func valueAAD(id, version string, encodedContext []byte) []byte {
	return appendValueAAD(nil, id, []byte(version), encodedContext)
}

// appendValueAAD appends the additional data of valueAAD to b, so that a batch of reads
// can build each one in the same buffer.
func appendValueAAD(b []byte, id string, version, encodedContext []byte) []byte {
	b = slices.Grow(b, len(aadValue)+len(id)+len(version)+len(encodedContext)+
		3*binary.MaxVarintLen64)
	b = appendString(b, aadValue)
	b = appendString(b, id)
	b = binary.AppendUvarint(b, uint64(len(version)))
	b = append(b, version...)
	return append(b, encodedContext...)
}

// newObjectID returns "secret_" followed by 32 upper-case hex digits: 48 bits of the
// time in milliseconds, then 80 random bits. IDs made later sort later, so the objects
// of a batch land at the end of the store's B+trees and a commit writes few pages.
func newObjectID() string {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(time.Now().UnixMilli())<<16)
	rand.Read(b[6:])

	const digits = "0123456789ABCDEF"
	var id [len("secret_") + 2*len(b)]byte
	n := copy(id[:], "secret_")
	for _, c := range b {
		id[n], id[n+1] = digits[c>>4], digits[c&0xf]
		n += 2
	}
	return string(id[:])
}

// newVersionID returns 128 random bits in hex, unique per write.
func newVersionID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
