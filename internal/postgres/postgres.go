// Package postgres opens a PostgreSQL database (FIGSUPPORT_DATABASE_URL) through pgx's
// database/sql driver and applies each component's schema migrations, once, even when several
// instances start together. It is the PostgreSQL twin of package sqlite; the SQL of the packages
// that use either is written with `?` placeholders, rebound here.
package postgres

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	neturl "net/url"
	"strconv"
	"strings"
	"time"

	// pgx is the maintained PostgreSQL driver for Go; its stdlib package plugs it into
	// database/sql, so the journal's SQL is shared with SQLite's.
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/figurative/figsupport/internal/migrate"
)

// IsURL reports whether a FIGSUPPORT_DATABASE_URL value names PostgreSQL.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Open connects to url and checks the connection.
func Open(ctx context.Context, url string) (*sql.DB, error) {
	return open(ctx, url)
}

// OpenReadOnly connects to url in read-only transactions only: a dry run that reads the journal
// cannot write to it.
func OpenReadOnly(ctx context.Context, url string) (*sql.DB, error) {
	sep := "?"
	if strings.Contains(url, "?") {
		sep = "&"
	}
	return open(ctx, url+sep+"default_transaction_read_only=on")
}

// IsPostgres reports whether db is a PostgreSQL database opened here.
func IsPostgres(db *sql.DB) bool {
	_, ok := db.Driver().(*stdlib.Driver)
	return ok
}

func open(ctx context.Context, url string) (*sql.DB, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	db.SetMaxOpenConns(20)
	db.SetMaxIdleConns(10)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	return db, nil
}

// Describe is url without its password, for logs, plans and doctor: "postgres://user@host/db".
func Describe(url string) string {
	u, err := neturl.Parse(url)
	if err != nil {
		return "postgres://…"
	}
	u.User = neturl.User(u.User.Username())
	if u.User.Username() == "" {
		u.User = nil
	}
	u.RawQuery = ""
	return u.String()
}

// Rebind turns `?` placeholders into PostgreSQL's `$1`, `$2`… (the SQL here has no `?` in
// literals).
func Rebind(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// migrationLock is the advisory lock key held while migrations run ("figsuppo" in ASCII).
const migrationLock = 0x666967737570706f

// Migrate applies the steps of component that are not applied yet, in one transaction under an
// advisory lock, so that instances starting together apply them once. Steps are append-only.
func Migrate(ctx context.Context, db *sql.DB, component string, steps []string) error {
	// Up to date: nothing is written (a read-only connection, for dry runs, opens too).
	if v, err := Version(ctx, db, component); err == nil && v == len(steps) {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", component, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
		return fmt.Errorf("migrate %s: lock: %w", component, err)
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		component TEXT NOT NULL PRIMARY KEY,
		version   INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("migrate %s: %w", component, err)
	}
	if wrote, err := migrate.Apply(ctx, tx, component, steps, Rebind); err != nil || !wrote {
		return err
	}
	return tx.Commit()
}

// Version is the schema version of component (0 when none).
func Version(ctx context.Context, db *sql.DB, component string) (int, error) {
	var exists bool
	if err := db.QueryRowContext(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil {
		return 0, fmt.Errorf("postgres: schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var v int
	err := db.QueryRowContext(ctx, `SELECT version FROM schema_migrations WHERE component = $1`, component).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return v, err
}
