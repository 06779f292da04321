package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// upstream is the application behind Caddy in the load runs. POST echoes the request
// body as JSON, PUT stores the body as the fixture of its path, and GET serves the
// fixture of its path. It does as little as it can, so that the runs measure Caddy.
type upstream struct {
	mu       sync.RWMutex
	fixtures map[string][]byte
}

var bufferPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
		buf := bufferPool.Get().(*bytes.Buffer)
		defer func() {
			buf.Reset()
			bufferPool.Put(buf)
		}()
		if _, err := buf.ReadFrom(r.Body); err != nil {
			http.Error(w, "reading the body failed", http.StatusBadRequest)
			return
		}
		writeJSON(w, buf.Bytes())

	case http.MethodPut:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, "reading the body failed", http.StatusBadRequest)
			return
		}
		u.mu.Lock()
		u.fixtures[r.URL.Path] = body
		u.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)

	case http.MethodGet:
		u.mu.RLock()
		body, ok := u.fixtures[r.URL.Path]
		u.mu.RUnlock()
		if !ok {
			http.Error(w, "no fixture for this path", http.StatusNotFound)
			return
		}
		writeJSON(w, body)

	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func writeJSON(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	_, _ = w.Write(body)
}

// serveUpstream runs the upstream on a free loopback port and prints its address as
// the first line of standard output. It is the "upstream" subcommand.
func serveUpstream() error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	fmt.Println(ln.Addr().String())
	return http.Serve(ln, &upstream{fixtures: make(map[string][]byte)})
}

// startUpstream starts this program's upstream subcommand as a child process and
// returns the process with its address.
func startUpstream() (*process, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", fmt.Errorf("starting upstream: %w", err)
	}
	cmd := exec.Command(self, "upstream")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", fmt.Errorf("starting upstream: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("starting upstream: %w", err)
	}
	p := &process{name: "upstream", cmd: cmd}

	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		p.stop()
		return nil, "", fmt.Errorf("starting upstream: reading its address: %w", err)
	}
	return p, strings.TrimSpace(line), nil
}
