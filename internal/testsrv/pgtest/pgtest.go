// Package pgtest starts a throwaway PostgreSQL cluster for tests: Debian's server binaries
// (initdb, pg_ctl) on a temporary directory, listening on a Unix socket in it only, fsync off. One
// cluster per test process, a fresh database per test. As root the cluster runs as the
// unprivileged user the postgresql package creates (postgres): the server refuses to run as root.
// Without the binaries the tests skip, saying so — unless FIGSUPPORT_REQUIRE_POSTGRES is set (CI),
// where a missing server fails them.
package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// RequireEnv, set to anything, makes a missing PostgreSQL a failure rather than a skip.
const RequireEnv = "FIGSUPPORT_REQUIRE_POSTGRES"

type cluster struct {
	dir   string // data dir, also the socket dir
	pgctl string
	runAs []string // "runuser -u postgres --" as root
	user  string
	err   error
	dbs   atomic.Int64
}

var (
	once sync.Once
	c    *cluster
)

// binDir finds the newest Debian server binaries, or those on PATH.
func binDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi > vj
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", fmt.Errorf("no PostgreSQL server binaries (initdb, pg_ctl): install Debian's postgresql package")
}

func start() *cluster {
	cl := &cluster{}
	bin, err := binDir()
	if err != nil {
		cl.err = err
		return cl
	}
	cl.pgctl = filepath.Join(bin, "pg_ctl")
	dir, err := os.MkdirTemp("", "figsupport-pg-")
	if err != nil {
		cl.err = err
		return cl
	}
	cl.dir = dir
	cl.user = "figsupport"
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			cl.err = fmt.Errorf("running as root, and no unprivileged postgres user to run the server as: %w", err)
			return cl
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			cl.err = err
			return cl
		}
		cl.runAs = []string{"runuser", "-u", "postgres", "--"}
	}
	if out, err := cl.run(filepath.Join(bin, "initdb"), "-D", dir, "-U", cl.user, "-A", "trust", "-E", "UTF8", "--no-sync"); err != nil {
		cl.err = fmt.Errorf("initdb: %v\n%s", err, out)
		return cl
	}
	opts := fmt.Sprintf("-c listen_addresses='' -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", dir)
	if out, err := cl.run(cl.pgctl, "-D", dir, "-o", opts, "-l", filepath.Join(dir, "server.log"), "-w", "-t", "60", "start"); err != nil {
		log, _ := os.ReadFile(filepath.Join(dir, "server.log"))
		cl.err = fmt.Errorf("pg_ctl start: %v\n%s\n%s", err, out, log)
		return cl
	}
	return cl
}

func (cl *cluster) run(name string, args ...string) ([]byte, error) {
	argv := append(append(append([]string{}, cl.runAs...), name), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = os.TempDir()
	return cmd.CombinedOutput()
}

func (cl *cluster) dsn(db string) string {
	return "postgres:///" + db + "?host=" + cl.dir + "&user=" + cl.user + "&sslmode=disable"
}

// Available reports whether a cluster can run here, and why not.
func Available() error {
	once.Do(func() { c = start() })
	return c.err
}

// New returns the connection string of a fresh, empty database of the test process's cluster,
// starting the cluster on first use. It skips the test when PostgreSQL cannot run here (fails it
// when RequireEnv is set).
func New(t testing.TB) string {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv(RequireEnv) != "" {
			t.Fatalf("PostgreSQL is required here (%s): %v", RequireEnv, err)
		}
		t.Skipf("PostgreSQL tests skipped: %v", err)
	}
	name := fmt.Sprintf("t%d_%d", os.Getpid(), c.dbs.Add(1))
	admin, err := sql.Open("pgx", c.dsn("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := admin.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return c.dsn(name)
}

// Run runs the package's tests (testing.M) and stops the cluster if one was started: call it
// from TestMain.
func Run(m *testing.M) int {
	code := m.Run()
	if c != nil && c.err == nil {
		if out, err := c.run(c.pgctl, "-D", c.dir, "-m", "immediate", "stop"); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: stop: %v\n%s", err, out)
		}
		os.RemoveAll(c.dir)
	}
	return code
}

// Dir is the cluster's directory (its socket is there), for tests that start processes.
func Dir() string {
	if c == nil {
		return ""
	}
	return strings.TrimSpace(c.dir)
}
