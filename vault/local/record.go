package local

import (
	"bytes"
	"encoding/binary"
	"errors"
	"time"

	"github.com/piivault/piivault/vault"
)

// The first byte of every metadata record: recordVersion for a record whose sealed value
// is in the values bucket, as format 2 wrote them, and recordWithValue for a record that
// ends in its sealed value. One row per object is one B+tree entry less to write and to
// look up: in BenchmarkCreateBatch10Parallel, 13% more values per second.
const (
	recordVersion   = 1
	recordWithValue = 2
)

// errRecord is returned for a metadata record that does not parse.
var errRecord = errors.New("damaged metadata record")

// record is the metadata of one object as stored in the objects bucket, with its sealed
// value. Records of format 2 keep the value apart, in the values bucket.
//
// NOTE: records are not authenticated. Someone who can write the file can change what
// Describe and List return. Read still fails after a change of the version or context,
// because both are bound to the sealed value, but a changed name or time goes unnoticed.
type record struct {
	name    string
	version string
	updated int64  // Unix time in nanoseconds
	context []byte // canonical encoding, see encodeContext
	sealed  []byte // set by writers only, because decodeRecord leaves it out
}

// encode returns the stored form of r: with its sealed value, unless r has none.
func (r record) encode() []byte {
	b := make([]byte, 0, len(r.name)+len(r.version)+len(r.context)+len(r.sealed)+
		1+4*binary.MaxVarintLen64)
	if r.sealed == nil {
		b = append(b, recordVersion)
	} else {
		b = append(b, recordWithValue)
	}
	b = appendString(b, r.name)
	b = appendString(b, r.version)
	b = binary.AppendVarint(b, r.updated)
	if r.sealed == nil {
		return append(b, r.context...)
	}
	b = binary.AppendUvarint(b, uint64(len(r.context)))
	b = append(b, r.context...)
	return append(b, r.sealed...)
}

// decodeRecord parses a stored record's metadata. The returned record does not alias b,
// which bbolt owns only for the life of the transaction, and leaves out the sealed value,
// which the callers of decodeRecord do not need: parseRecord gives it without a copy.
func decodeRecord(b []byte) (record, error) {
	v, err := parseRecord(b)
	if err != nil {
		return record{}, err
	}
	return v.record(), nil
}

// recordView is a parsed record whose fields alias the stored bytes, so it is valid only
// inside the transaction that read them. Reads parse records into views, because copying
// each field was a third of the allocations of a reveal.
type recordView struct {
	name, version []byte
	updated       int64
	context       []byte
	sealed        []byte // nil for a record whose value is in the values bucket
}

// parseRecord parses a stored record without copying it.
func parseRecord(b []byte) (recordView, error) {
	var v recordView
	if len(b) == 0 || (b[0] != recordVersion && b[0] != recordWithValue) {
		return v, errRecord
	}
	withValue := b[0] == recordWithValue
	b = b[1:]

	var err error
	if v.name, b, err = readBytes(b); err != nil {
		return v, err
	}
	if v.version, b, err = readBytes(b); err != nil {
		return v, err
	}
	n, size := binary.Varint(b)
	if size <= 0 {
		return v, errRecord
	}
	v.updated = n
	if !withValue {
		v.context = b[size:]
		return v, nil
	}
	if v.context, v.sealed, err = readBytes(b[size:]); err != nil {
		return v, err
	}
	return v, nil
}

// record copies v's metadata out of the transaction's memory.
func (v recordView) record() record {
	name, version := v.strings()
	return record{name: name, version: version, updated: v.updated, context: bytes.Clone(v.context)}
}

// strings returns copies of the name and version, which share one allocation.
func (v recordView) strings() (name, version string) {
	s := string(v.name) + string(v.version)
	return s[:len(v.name)], s[len(v.name):]
}

// metadata returns the vault form of v for object id, whose context is kc.
func (v recordView) metadata(id string, kc vault.KeyContext) vault.Metadata {
	name, version := v.strings()
	return vault.Metadata{
		ID:        id,
		Name:      name,
		Context:   kc,
		VersionID: version,
		UpdatedAt: time.Unix(0, v.updated).UTC(),
	}
}

// metadata returns the vault form of r for object id.
func (r record) metadata(id string) (vault.Metadata, error) {
	kc, err := decodeWholeContext(r.context)
	if err != nil {
		return vault.Metadata{}, err
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
	s, rest, err := readBytes(b)
	return string(s), rest, err
}

// readBytes is readString without the copy: the result aliases b.
func readBytes(b []byte) ([]byte, []byte, error) {
	n, b, err := readUvarint(b)
	if err != nil {
		return nil, nil, err
	}
	if n > uint64(len(b)) {
		return nil, nil, errRecord
	}
	return b[:n], b[n:], nil
}

// readUvarint reads an unsigned varint and returns the rest of b.
func readUvarint(b []byte) (uint64, []byte, error) {
	n, size := binary.Uvarint(b)
	if size <= 0 {
		return 0, nil, errRecord
	}
	return n, b[size:], nil
}
