package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"testing"
	"time"
)

// yardstickEnv, set, makes the test binary the yardstick's own process (TestMain): a server in a
// process of its own, as the daemon is, so that neither shares a scheduler or a GC with the load.
const yardstickEnv = "FIGSUPPORT_BENCH_YARDSTICK_DB"

func serveYardstick(path string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	y, err := OpenYardstick(ctx, path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer y.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv := &http.Server{Handler: y, ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); srv.Close() }()
	fmt.Printf("yardstick http://%s\n", ln.Addr())
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// yardstickProc is the yardstick running in its own process.
type yardstickProc struct {
	URL string
	cmd *exec.Cmd
}

func startYardstick(tb testing.TB, path string) *yardstickProc {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), yardstickEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		tb.Fatalf("yardstick did not start: %v", err)
	}
	y := &yardstickProc{URL: strings.TrimSpace(strings.TrimPrefix(line, "yardstick ")), cmd: cmd}
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	return y
}

func (y *yardstickProc) Pid() int { return y.cmd.Process.Pid }
