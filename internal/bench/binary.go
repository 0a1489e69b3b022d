package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Build compiles the figsupport binary of the module around the working directory into dir, as
// a user builds it (no race detector: what is measured is what ships).
func Build(ctx context.Context, dir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(dir, "figsupport")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %w\n%s", err, out)
	}
	return bin, nil
}

// BaseEnv is a clean environment for the binary: no account configured, nothing of the caller's
// except PATH, a HOME of its own and the data dir.
func BaseEnv(home, dataDir string) []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "FIGSUPPORT_DATA_DIR=" + dataDir}
}

// Exit is one run of the binary.
type Exit struct {
	Stdout, Stderr string
	Code           int
	Wall           time.Duration
	MaxRSS         int64 // the process's peak resident memory, bytes (getrusage)
}

// Exec runs the binary to its end.
func Exec(ctx context.Context, bin string, env []string, stdin string, args ...string) (Exit, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	e := Exit{Stdout: out.String(), Stderr: errb.String(), Wall: time.Since(start)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		e.Code = ee.ExitCode()
	case err != nil:
		return e, err
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		e.MaxRSS = ru.Maxrss << 10 // KiB on Linux
	}
	return e, nil
}

// Daemon is a running `figsupport serve`.
type Daemon struct {
	URL  string
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan error
}

var reServing = regexp.MustCompile(`"msg":"serving","addr":"([^"]+)"`)

// StartDaemon starts `figsupport serve` on a loopback port with args added and waits until it
// serves.
func StartDaemon(ctx context.Context, bin string, env []string, args ...string) (*Daemon, error) {
	cmd := exec.Command(bin, append([]string{"serve", "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = env
	pipe, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	d := &Daemon{cmd: cmd, done: make(chan error, 1)}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if m := reServing.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
			// Keep the start and the end: the middle of a long run is one line per request.
			d.mu.Lock()
			if d.log.Len() < 1<<20 {
				d.log.WriteString(line + "\n")
			}
			d.mu.Unlock()
		}
		d.done <- cmd.Wait()
	}()
	select {
	case a := <-addr:
		d.URL = "http://" + a
		return d, nil
	case err := <-d.done:
		return nil, fmt.Errorf("serve exited before serving (%v):\n%s", err, d.Log())
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-d.done
		return nil, ctx.Err()
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-d.done
		return nil, fmt.Errorf("serve did not start in 30 s:\n%s", d.Log())
	}
}

// Pid is the daemon's process id.
func (d *Daemon) Pid() int { return d.cmd.Process.Pid }

// Log is what the daemon wrote on stderr (the first MiB).
func (d *Daemon) Log() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.log.String()
}

// Stop sends SIGTERM and waits for the daemon to exit (killing it after a minute).
func (d *Daemon) Stop() error {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		return err
	case <-time.After(time.Minute):
		_ = d.cmd.Process.Kill()
		return fmt.Errorf("serve did not stop in a minute; killed: %w", <-d.done)
	}
}
