package sqlite

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"testing"
)

// childDB, set in a child process's environment, makes TestMain open that database and exit.
const childDB = "FIGSUPPORT_SQLITE_TEST_CHILD_DB"

func TestMain(m *testing.M) {
	if path := os.Getenv(childDB); path != "" {
		os.Exit(child(path))
	}
	os.Exit(m.Run())
}

func child(path string) int {
	db, err := Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer db.Close()
	if err := Migrate(context.Background(), db, "test", []string{"CREATE TABLE a(x)", "CREATE TABLE b(y)"}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// Processes that open a new database at the same moment all succeed: the loser of the race to
// switch it to WAL waits instead of failing with SQLITE_BUSY (seen as "database is locked" in
// e2e's ten concurrent `process` runs).
func TestOpenConcurrentProcesses(t *testing.T) {
	for round := range 3 {
		path := filepath.Join(t.TempDir(), "figsupport.db")
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				cmd := exec.Command(os.Args[0], "-test.run=^$")
				cmd.Env = append(os.Environ(), childDB+"="+path)
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("round %d: %v: %s", round, err, out)
				}
			})
		}
		wg.Wait()
	}
}

func TestMigrate(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "figsupport.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	steps := []string{"CREATE TABLE a(x)", "CREATE TABLE b(y)"}
	tests := []struct {
		name    string
		steps   []string
		wantErr bool
		tables  int
	}{
		{"first step", steps[:1], false, 1},
		{"the next one only", steps, false, 2},
		{"nothing new", steps, false, 2},
		{"a binary older than the database", steps[:1], true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Migrate(ctx, db, "test", tt.steps)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			var n int
			if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name IN ('a', 'b')`).Scan(&n); err != nil || n != tt.tables {
				t.Fatalf("tables = %d, %v; want %d", n, err, tt.tables)
			}
		})
	}
}

var steps = []string{`CREATE TABLE t (v TEXT NOT NULL)`}

func names(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// A read-only open of a closed database reads it, migrates nothing, writes nothing: no -wal or
// -shm file appears and a write is refused.
func TestOpenReadOnlyWritesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "x.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, db, "t", steps); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO t(v) VALUES('a')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	before := names(t, dir)

	ro, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := Migrate(ctx, ro, "t", steps); err != nil {
		t.Fatalf("migrating an up-to-date database read-only: %v", err)
	}
	var v string
	if err := ro.QueryRow(`SELECT v FROM t`).Scan(&v); err != nil || v != "a" {
		t.Fatalf("read %q, %v", v, err)
	}
	if _, err := ro.Exec(`INSERT INTO t(v) VALUES('b')`); err == nil {
		t.Fatal("a write through the read-only handle succeeded")
	}
	ro.Close()
	if after := names(t, dir); !slices.Equal(before, after) {
		t.Fatalf("files %v became %v", before, after)
	}
}

// While another connection has the database open (its -wal exists), the reader sees its commits.
func TestOpenReadOnlySeesTheWAL(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := Migrate(ctx, db, "t", steps); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO t(v) VALUES('in the wal')`); err != nil {
		t.Fatal(err)
	}
	ro, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	var v string
	if err := ro.QueryRow(`SELECT v FROM t`).Scan(&v); err != nil || v != "in the wal" {
		t.Fatalf("read %q, %v", v, err)
	}
}

func TestOpenReadOnlyMissing(t *testing.T) {
	dir := t.TempDir()
	_, err := OpenReadOnly(filepath.Join(dir, "none.db"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want fs.ErrNotExist", err)
	}
	if n := names(t, dir); len(n) != 0 {
		t.Fatalf("created %v", n)
	}
}

func TestOpenMemory(t *testing.T) {
	db, err := OpenMemory()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := Migrate(context.Background(), db, "t", steps); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM t`).Scan(&n); err != nil || n != 0 {
		t.Fatalf("count %d, %v", n, err)
	}
}
