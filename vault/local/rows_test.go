package local

import (
	"bytes"

	bolt "go.etcd.io/bbolt"
)

// sealedOf returns a copy of the sealed value of object id in tx: the one in its record,
// or for a record of format 2, the one in the values bucket.
func sealedOf(tx *bolt.Tx, id string) ([]byte, error) {
	v, err := parseRecord(tx.Bucket(bucketObjects).Get([]byte(id)))
	if err != nil {
		return nil, err
	}
	if v.sealed != nil {
		return bytes.Clone(v.sealed), nil
	}
	return bytes.Clone(tx.Bucket(bucketValues).Get([]byte(id))), nil
}

// setSealed replaces the sealed value of object id in tx where the object keeps it, and
// with sealed nil, turns the record into one of format 2 whose value is missing.
func setSealed(tx *bolt.Tx, id string, sealed []byte) error {
	v, err := parseRecord(tx.Bucket(bucketObjects).Get([]byte(id)))
	if err != nil {
		return err
	}
	if v.sealed == nil && sealed != nil {
		return tx.Bucket(bucketValues).Put([]byte(id), sealed)
	}
	r := v.record()
	r.sealed = sealed
	return tx.Bucket(bucketObjects).Put([]byte(id), r.encode())
}

// allSealed returns a copy of every sealed value in tx, by object ID.
func allSealed(tx *bolt.Tx) (map[string][]byte, error) {
	values := map[string][]byte{}
	err := tx.Bucket(bucketObjects).ForEach(func(k, _ []byte) error {
		sealed, err := sealedOf(tx, string(k))
		values[string(k)] = sealed
		return err
	})
	return values, err
}

// putRows writes rows copied out of another file: each record, and the value of a record
// of format 2.
func putRows(tx *bolt.Tx, rows []rawRows) error {
	for _, row := range rows {
		if err := tx.Bucket(bucketObjects).Put(row.id, row.record); err != nil {
			return err
		}
		if row.sealed == nil {
			continue
		}
		if err := tx.Bucket(bucketValues).Put(row.id, row.sealed); err != nil {
			return err
		}
	}
	return nil
}
