package sqlite

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

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
