// Package sqlite opens the one SQLite file of the data dir (pure Go, no cgo) with the settings every
// user of it needs, and applies each component's schema migrations once.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/figurative/figsupport/internal/migrate"
)

// Open opens (creating if needed) the database at path: WAL so readers never block the writer,
// a busy timeout so concurrent processes wait instead of failing, immediate transactions so two
// writers never deadlock on a read-to-write upgrade.
func Open(path string) (*sql.DB, error) {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Set("_txlock", "immediate")
	// The path is part of a URI: '?' and '#' in a directory name would end it.
	db, err := sql.Open("sqlite", "file:"+uriPath.Replace(path)+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	if err := ping(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
		component TEXT NOT NULL PRIMARY KEY,
		version   INTEGER NOT NULL)`); err != nil {
		db.Close()
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	return db, nil
}

var uriPath = strings.NewReplacer("%", "%25", "?", "%3F", "#", "%23")

// ping makes the first connection. Processes that open a new database together race to switch it
// to WAL, and SQLite answers that switch SQLITE_BUSY at once, without its busy handler: a
// connection that lost is retried, for as long as the busy timeout would have waited.
func ping(db *sql.DB) error {
	deadline := time.Now().Add(busyTimeout)
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		err := db.Ping()
		var se interface{ Code() int }
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != sqliteBusy || time.Now().After(deadline) {
			return err
		}
		time.Sleep(wait)
	}
}

const (
	busyTimeout = 15 * time.Second // as the busy_timeout pragma
	sqliteBusy  = 5                // SQLITE_BUSY, the primary code of its extended ones
)

// Migrate applies the steps of component that are not applied yet, in one transaction (see
// migrate.Apply).
func Migrate(ctx context.Context, db *sql.DB, component string, steps []string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", component, err)
	}
	defer tx.Rollback()
	if wrote, err := migrate.Apply(ctx, tx, component, steps, nil); err != nil || !wrote {
		return err
	}
	return tx.Commit()
}

// OpenReadOnly opens the database at path for reading only, and writes nothing beside it: when
// its -wal file exists (another process has it open, or did not close it) it is read through the
// WAL like any reader; otherwise every commit is in the main file and it is opened immutable, so
// that SQLite creates no -wal or -shm file. Dry runs use it: they plan from the journal without
// touching the data dir. A missing file is an error wrapping fs.ErrNotExist.
func OpenReadOnly(path string) (*sql.DB, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	q := url.Values{}
	q.Set("mode", "ro")
	if _, err := os.Stat(path + "-wal"); errors.Is(err, fs.ErrNotExist) {
		q.Set("immutable", "1")
	}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	db, err := sql.Open("sqlite", "file:"+uriPath.Replace(path)+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return db, nil
}

// OpenMemory opens an empty database that lives in memory only, for a dry run on a data dir that
// has no database yet. One connection, so every query sees the same database.
func OpenMemory() (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file::memory:?_pragma=foreign_keys(1)")
	if err != nil {
		return nil, fmt.Errorf("open in-memory database: %w", err)
	}
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
		component TEXT NOT NULL PRIMARY KEY,
		version   INTEGER NOT NULL)`); err != nil {
		db.Close()
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	return db, nil
}
