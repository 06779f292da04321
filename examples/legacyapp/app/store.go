package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
)

// dataFile is the layout of the data file: the last assigned user number and each
// organization's user records in creation order, as the API returned them.
type dataFile struct {
	NextID        int64                        `json:"next_id"`
	Organizations map[string][]json.RawMessage `json:"organizations"`
}

// tenantUsers is one organization's users.
type tenantUsers struct {
	order []string // IDs in creation order, for listing
	byID  map[string]json.RawMessage
}

// state is the app's whole data set. A write never changes a state in place: it builds
// the next state, persists it, and only then swaps it in, so a failed write changes
// nothing.
type state struct {
	nextID int64
	orgs   map[string]*tenantUsers
}

func newState() *state {
	return &state{orgs: make(map[string]*tenantUsers)}
}

// records returns the organization's records in creation order, or nil if it has none.
func (s *state) records(org string) []json.RawMessage {
	users := s.orgs[org]
	if users == nil {
		return nil
	}

	records := make([]json.RawMessage, 0, len(users.order))
	for _, id := range users.order {
		records = append(records, users.byID[id])
	}
	return records
}

// lookup returns one record of the organization.
func (s *state) lookup(org, id string) (json.RawMessage, bool) {
	users := s.orgs[org]
	if users == nil {
		return nil, false
	}
	record, ok := users.byID[id]
	return record, ok
}

// cloneFor returns a copy of s in which only org's users may be changed. The records
// themselves are shared because they are never modified.
func (s *state) cloneFor(org string) (*state, *tenantUsers) {
	next := &state{nextID: s.nextID, orgs: maps.Clone(s.orgs)}

	users := &tenantUsers{byID: make(map[string]json.RawMessage)}
	if old := s.orgs[org]; old != nil {
		users.order = slices.Clone(old.order)
		users.byID = maps.Clone(old.byID)
	}
	next.orgs[org] = users
	return next, users
}

func (u *tenantUsers) put(id string, record json.RawMessage) {
	if _, exists := u.byID[id]; !exists {
		u.order = append(u.order, id)
	}
	u.byID[id] = record
}

func (u *tenantUsers) remove(id string) {
	delete(u.byID, id)
	u.order = slices.DeleteFunc(u.order, func(other string) bool { return other == id })
}

// marshal encodes the state as an indented data file, so that a person can read it.
func (s *state) marshal() ([]byte, error) {
	file := dataFile{NextID: s.nextID, Organizations: make(map[string][]json.RawMessage)}
	for org := range s.orgs {
		file.Organizations[org] = s.records(org)
	}

	data, err := json.MarshalIndent(file, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding data file: %w", err)
	}
	return append(data, '\n'), nil
}

// loadState reads the data file at path. A missing file is an empty state.
func loadState(path string) (*state, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return newState(), nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading data file: %w", err)
	}

	var file dataFile
	if err := json.Unmarshal(data, &file); err != nil {
		return nil, fmt.Errorf("decoding data file %s (repair or remove it): %w", path, err)
	}

	s := newState()
	s.nextID = file.NextID
	for org, records := range file.Organizations {
		users, err := loadTenant(records)
		if err != nil {
			return nil, fmt.Errorf("decoding data file %s (repair or remove it): organization %q: %w",
				path, org, err)
		}
		s.orgs[org] = users
	}
	return s, nil
}

func loadTenant(records []json.RawMessage) (*tenantUsers, error) {
	users := &tenantUsers{byID: make(map[string]json.RawMessage, len(records))}
	for i, record := range records {
		var head struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(record, &head); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
		if head.ID == "" {
			return nil, fmt.Errorf("record %d: missing \"id\"", i)
		}
		if _, dup := users.byID[head.ID]; dup {
			return nil, fmt.Errorf("record %d: duplicate id %q", i, head.ID)
		}
		users.put(head.ID, record)
	}
	return users, nil
}

// writeFileAtomic replaces path with data so that readers see either the old or the
// new file, never a partial one: it writes a temporary file in the same directory,
// syncs it, and renames it over path. The file mode is 0600.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("creating temporary data file: %w", err)
	}
	tmpPath := tmp.Name()

	// the temporary file is removed on every path that does not rename it
	renamed := false
	defer func() {
		if !renamed {
			_ = tmp.Close()
			_ = os.Remove(tmpPath)
		}
	}()

	if err := tmp.Chmod(0o600); err != nil {
		return fmt.Errorf("setting mode of temporary data file: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		return fmt.Errorf("writing temporary data file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("syncing temporary data file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("closing temporary data file: %w", err)
	}
	if err := os.Rename(tmpPath, path); err != nil {
		return fmt.Errorf("renaming temporary data file to %s: %w", path, err)
	}
	renamed = true

	// sync the directory so that the rename itself survives a crash
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening data directory: %w", err)
	}
	defer d.Close()

	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing data directory: %w", err)
	}
	return nil
}
