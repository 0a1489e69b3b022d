package sqlite

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
