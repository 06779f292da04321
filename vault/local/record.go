package local

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/piivault/piivault/vault"
)

// recordVersion is the first byte of every metadata record.
const recordVersion = 1

// errRecord is returned for a metadata record that does not parse.
var errRecord = errors.New("damaged metadata record")

// record is the metadata of one object as stored in the objects bucket. The value is kept
// apart in the values bucket, so describing an object never loads its ciphertext.
//
// NOTE: records are not authenticated. Someone who can write the file can change what
// Describe and List return. Read still fails after a change of the version or context,
// because both are bound to the sealed value, but a changed name or time goes unnoticed.
type record struct {
	name    string
	version string
	updated int64  // Unix time in nanoseconds
	context []byte // canonical encoding, see encodeContext
}

// encode returns the stored form of r.
func (r record) encode() []byte {
	b := make([]byte, 0, 1+len(r.name)+len(r.version)+len(r.context)+16)
	b = append(b, recordVersion)
	b = appendString(b, r.name)
	b = appendString(b, r.version)
	b = binary.AppendVarint(b, r.updated)
	return append(b, r.context...)
}

// decodeRecord parses a stored record. The returned record does not alias b, which bbolt
// owns only for the life of the transaction.
func decodeRecord(b []byte) (record, error) {
	var r record
	if len(b) == 0 || b[0] != recordVersion {
		return r, errRecord
	}
	b = b[1:]

	var err error
	if r.name, b, err = readString(b); err != nil {
		return r, err
	}
	if r.version, b, err = readString(b); err != nil {
		return r, err
	}
	n, size := binary.Varint(b)
	if size <= 0 {
		return r, errRecord
	}
	r.updated = n
	r.context = append([]byte(nil), b[size:]...)
	return r, nil
}

// metadata returns the vault form of r for object id.
func (r record) metadata(id string) (vault.Metadata, error) {
	kc, rest, err := decodeContext(r.context)
	if err != nil {
		return vault.Metadata{}, err
	}
	if len(rest) != 0 {
		return vault.Metadata{}, errRecord
	}
	return vault.Metadata{
		ID:        id,
		Name:      r.name,
		Context:   kc,
		VersionID: r.version,
		UpdatedAt: time.Unix(0, r.updated).UTC(),
	}, nil
}

// appendString appends s preceded by its length.
func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// readString reads a string written by appendString and returns the rest of b.
func readString(b []byte) (string, []byte, error) {
	n, b, err := readUvarint(b)
	if err != nil {
		return "", nil, err
	}
	if n > uint64(len(b)) {
		return "", nil, errRecord
	}
	return string(b[:n]), b[n:], nil
}

// readUvarint reads an unsigned varint and returns the rest of b.
func readUvarint(b []byte) (uint64, []byte, error) {
	n, size := binary.Uvarint(b)
	if size <= 0 {
		return 0, nil, errRecord
	}
	return n, b[size:], nil
}
