package app

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// errNotFound is returned by writes to a user that the organization does not have.
var errNotFound = errors.New("user not found")

// tenantHandler is a handler that runs for one organization.
type tenantHandler func(w http.ResponseWriter, r *http.Request, org string)

// withTenant rejects requests without an organization, so that no handler can mix
// organizations.
func (a *App) withTenant(next tenantHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		org := strings.TrimSpace(r.Header.Get(OrganizationHeader))
		if org == "" {
			writeProblem(w, http.StatusBadRequest, "missing "+OrganizationHeader+" header")
			return
		}
		next(w, r, org)
	}
}

func handleHealth(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, _ = io.WriteString(w, "ok")
}

func (a *App) handleCreate(w http.ResponseWriter, r *http.Request, org string) {
	fields, ok := readObject(w, r)
	if !ok {
		return
	}

	record, err := a.create(org, fields)
	if err != nil {
		a.writeStorageError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, record)
}

func (a *App) handleList(w http.ResponseWriter, _ *http.Request, org string) {
	list := struct {
		Users []json.RawMessage `json:"users"`
	}{Users: a.snapshot().records(org)}

	if list.Users == nil {
		list.Users = []json.RawMessage{}
	}
	writeJSON(w, http.StatusOK, list)
}

func (a *App) handleGet(w http.ResponseWriter, r *http.Request, org string) {
	record, ok := a.snapshot().lookup(org, r.PathValue("id"))
	if !ok {
		writeProblem(w, http.StatusNotFound, "user not found")
		return
	}
	writeJSON(w, http.StatusOK, record)
}

func (a *App) handleReplace(w http.ResponseWriter, r *http.Request, org string) {
	fields, ok := readObject(w, r)
	if !ok {
		return
	}

	record, err := a.replace(org, r.PathValue("id"), fields)
	if err != nil {
		a.writeStorageError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, record)
}

func (a *App) handleDelete(w http.ResponseWriter, r *http.Request, org string) {
	if err := a.delete(org, r.PathValue("id")); err != nil {
		a.writeStorageError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (a *App) handleExport(w http.ResponseWriter, _ *http.Request, org string) {
	records := a.snapshot().records(org)
	if records == nil {
		records = []json.RawMessage{}
	}
	writeJSON(w, http.StatusOK, records)
}

// snapshot returns the current state for reading. States are never modified after
// they are swapped in, so readers need the lock only to load the pointer.
func (a *App) snapshot() *state {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state
}

// create stores a new user with the next id ("u_1", "u_2", ...). IDs are unique across
// organizations, so one organization can never address another's user by id.
func (a *App) create(org string, fields map[string]json.RawMessage) (json.RawMessage, error) {
	a.mu.Lock()
	defer a.mu.Unlock()

	next, users := a.state.cloneFor(org)
	next.nextID++
	id := "u_" + strconv.FormatInt(next.nextID, 10)

	record, err := encodeRecord(id, fields)
	if err != nil {
		return nil, err
	}
	users.put(id, record)
	if err := a.commit(next); err != nil {
		return nil, err
	}
	return record, nil
}

// replace stores fields as the new record of an existing user, keeping its id.
func (a *App) replace(org, id string, fields map[string]json.RawMessage) (json.RawMessage, error) {
	a.mu.Lock()
	defer a.mu.Unlock()

	if _, ok := a.state.lookup(org, id); !ok {
		return nil, errNotFound
	}

	next, users := a.state.cloneFor(org)
	record, err := encodeRecord(id, fields)
	if err != nil {
		return nil, err
	}
	users.put(id, record)
	if err := a.commit(next); err != nil {
		return nil, err
	}
	return record, nil
}

func (a *App) delete(org, id string) error {
	a.mu.Lock()
	defer a.mu.Unlock()

	if _, ok := a.state.lookup(org, id); !ok {
		return errNotFound
	}

	next, users := a.state.cloneFor(org)
	users.remove(id)
	return a.commit(next)
}

// commit writes next to the data file and makes it the current state. On error the
// current state stays as it was, so memory and file agree. The caller holds a.mu.
func (a *App) commit(next *state) error {
	data, err := next.marshal()
	if err != nil {
		return err
	}
	if err := writeFileAtomic(a.path, data); err != nil {
		return err
	}
	a.state = next
	return nil
}

// encodeRecord sets "id" in fields, replacing any id the client sent, and encodes the
// record. Field values are kept byte for byte, and only the top-level key order changes.
func encodeRecord(id string, fields map[string]json.RawMessage) (json.RawMessage, error) {
	idJSON, err := json.Marshal(id)
	if err != nil {
		return nil, fmt.Errorf("encoding id: %w", err)
	}
	fields["id"] = idJSON

	record, err := json.Marshal(fields)
	if err != nil {
		return nil, fmt.Errorf("encoding record %s: %w", id, err)
	}
	return record, nil
}

// readObject reads the request body as one JSON object. It writes a problem response
// and returns false if the body is too large, not JSON, or not an object.
func readObject(w http.ResponseWriter, r *http.Request) (map[string]json.RawMessage, bool) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBodyBytes))

	var fields map[string]json.RawMessage
	err := dec.Decode(&fields)
	if err == nil && fields == nil {
		err = errors.New("null")
	}
	if err == nil {
		// a second value, or anything but white space, after the object
		_, err = dec.Token()
		switch {
		case err == io.EOF:
			err = nil
		case err == nil:
			err = errors.New("trailing data")
		}
	}
	if err == nil {
		return fields, true
	}

	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		detail := fmt.Sprintf("request body is larger than %d bytes", MaxBodyBytes)
		writeProblem(w, http.StatusRequestEntityTooLarge, detail)
		return nil, false
	}

	// the decoder's message may quote body bytes, so the response names only the offset
	writeProblem(w, http.StatusBadRequest, fmt.Sprintf(
		"request body must be one JSON object (invalid input before byte offset %d)",
		dec.InputOffset()))
	return nil, false
}

// writeStorageError writes the response to a failed write: 404 for an unknown user,
// 500 with a log line otherwise.
func (a *App) writeStorageError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errNotFound) {
		writeProblem(w, http.StatusNotFound, "user not found")
		return
	}

	a.logger.Error("storing users failed",
		"method", r.Method,
		"path", r.URL.Path,
		"data_file", a.path,
		"error", err,
	)
	writeProblem(w, http.StatusInternalServerError, "storing users failed; see the server log")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		writeProblem(w, http.StatusInternalServerError, "encoding response failed")
		return
	}

	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}

// problem is an RFC 9457 problem details object.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	data, _ := json.Marshal(problem{
		Type:   "about:blank",
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
	})

	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}
