package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"
)

// process is a child process of the run.
type process struct {
	name string
	cmd  *exec.Cmd
}

// stop interrupts the process, and kills it when it has not exited within 5 seconds.
func (p *process) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() {
		_ = p.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// cpuTime returns the CPU time that the process has used, user and system, from
// /proc/PID/stat. Its resolution is the kernel's clock tick, 10 ms on most Linux systems.
func (p *process) cpuTime() (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	// the command name in parentheses may contain spaces, so count fields after it
	fields := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("%s: unexpected /proc stat format", p.name)
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("%s: parsing /proc stat: %w", p.name, err)
	}
	const ticksPerSecond = 100 // USER_HZ, which Linux fixes at 100 for user space
	return time.Duration(utime+stime) * time.Second / ticksPerSecond, nil
}

// syscalls returns how many read and write system calls the process has made, from
// /proc/PID/io.
func (p *process) syscalls() (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	var total int64
	for line := range strings.Lines(string(data)) {
		name, value, _ := strings.Cut(strings.TrimSpace(line), ": ")
		if name == "syscr" || name == "syscw" {
			n, err := strconv.ParseInt(value, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: parsing /proc io: %w", p.name, err)
			}
			total += n
		}
	}
	return total, nil
}

// memory returns a field of /proc/PID/status in bytes, such as "VmRSS" (the resident
// set now) or "VmHWM" (its peak since the process started).
func (p *process) memory(field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()

	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != field {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: parsing %s: %w", p.name, field, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("%s: /proc status has no %s", p.name, field)
}

// caddyConfig fills the Caddyfile templates.
type caddyConfig struct {
	Port     int
	Upstream string
	Dir      string
	Admin    string // the admin endpoint's address, or "off"
}

// caddyfileA is the baseline: the same routes as caddyfileB without pii_vault. The
// large routes buffer both bodies in Caddy itself, which is what pii_vault's large
// routes are compared with.
const caddyfileA = `{
	admin {{.Admin}}
	persist_config off
}

http://127.0.0.1:{{.Port}} {
	handle /large-* {
		reverse_proxy {{.Upstream}} {
			request_buffers 2MiB
			response_buffers 2MiB
		}
	}
	handle {
		reverse_proxy {{.Upstream}}
	}
}
`

// caddyfileB has one route per scenario, each with its pii_vault rules, and the local
// store in the run's temporary directory.
const caddyfileB = `{
	admin {{.Admin}}
	persist_config off
	pii_vault {
		store local {
			path {{.Dir}}/vault.db
			master_key_file {{.Dir}}/master.key
		}
	}
}

http://127.0.0.1:{{.Port}} {
	# rules that select nothing in the bodies of the run
	@nomatch path /nomatch /big
	handle @nomatch {
		pii_vault {
			context organization_id {http.request.header.X-Organization-Id}
			tokenize $.email $.phone $.ssn $.addresses[*].line1
			reveal $.email $.phone $.addresses[*].line1
		}
		reverse_proxy {{.Upstream}}
	}
	handle /tokenize {
		pii_vault {
			context organization_id {http.request.header.X-Organization-Id}
			tokenize $.f0 $.f1 $.f2 $.f3 $.f4 $.f5 $.f6 $.f7 $.f8 $.f9
		}
		reverse_proxy {{.Upstream}}
	}
	handle /reveal {
		pii_vault {
			context organization_id {http.request.header.X-Organization-Id}
			reveal $.f0 $.f1 $.f2 $.f3 $.f4 $.f5 $.f6 $.f7 $.f8 $.f9
		}
		reverse_proxy {{.Upstream}}
	}
	handle /large-tokenize {
		pii_vault {
			context organization_id {http.request.header.X-Organization-Id}
			tokenize $.items[*].email
		}
		reverse_proxy {{.Upstream}}
	}
	handle /large-reveal {
		pii_vault {
			context organization_id {http.request.header.X-Organization-Id}
			reveal $.items[*].email
		}
		reverse_proxy {{.Upstream}}
	}
	handle /large-redact {
		pii_vault {
			redact $.items[*].email
		}
		reverse_proxy {{.Upstream}}
	}
	handle {
		reverse_proxy {{.Upstream}}
	}
}
`

// startCaddy writes the Caddyfile text for cfg into dir and runs bin with it. Caddy's
// logs, the audit log included, go to a file in dir.
func startCaddy(bin, name, text string, cfg caddyConfig, dir string) (*process, string, error) {
	tmpl := template.Must(template.New(name).Parse(text))
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, cfg); err != nil {
		return nil, "", err
	}
	file := filepath.Join(dir, name+".Caddyfile")
	if err := os.WriteFile(file, buf.Bytes(), 0o600); err != nil {
		return nil, "", err
	}
	logFile, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, "", err
	}
	defer logFile.Close()

	cmd := exec.Command(bin, "run", "--config", file, "--adapter", "caddyfile")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Caddy's data and config directories go into dir too, to leave no trace
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+dir+"/data", "XDG_CONFIG_HOME="+dir+"/config")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, "", fmt.Errorf("starting caddy %s: %w", name, err)
	}
	p := &process{name: "caddy " + name, cmd: cmd}

	url := fmt.Sprintf("http://127.0.0.1:%d", cfg.Port)
	if err := waitReady(url); err != nil {
		p.stop()
		return nil, "", fmt.Errorf("caddy %s did not start, see %s: %w", name, logFile.Name(), err)
	}
	return p, url, nil
}

// waitReady polls url until it responds, for at most 20 seconds.
func waitReady(url string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		res, err := http.Get(url + "/ready")
		if err == nil {
			res.Body.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
