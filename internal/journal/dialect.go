package journal

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"time"

	"github.com/figurative/figsupport/internal/postgres"
)

// store runs the journal's SQL, written once with `?` placeholders, on SQLite or PostgreSQL.
type store struct {
	*sql.DB
	pg bool
}

func (s store) q(query string) string {
	if s.pg {
		return postgres.Rebind(query)
	}
	return query
}

func (s store) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return s.DB.ExecContext(ctx, s.q(query), args...)
}

func (s store) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return s.DB.QueryContext(ctx, s.q(query), args...)
}

func (s store) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return s.DB.QueryRowContext(ctx, s.q(query), args...)
}

func (s store) BeginTx(ctx context.Context, o *sql.TxOptions) (storeTx, error) {
	tx, err := s.DB.BeginTx(ctx, o)
	return storeTx{tx, s.pg}, err
}

// forUpdate locks the rows a read-then-write transaction reads: PostgreSQL's row lock (SQLite's
// transactions are serialised by BEGIN IMMEDIATE already).
func (s store) forUpdate() string {
	if s.pg {
		return " FOR UPDATE"
	}
	return ""
}

type storeTx struct {
	*sql.Tx
	pg bool
}

func (t storeTx) q(query string) string {
	if t.pg {
		return postgres.Rebind(query)
	}
	return query
}

func (t storeTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.Tx.ExecContext(ctx, t.q(query), args...)
}

func (t storeTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.Tx.QueryContext(ctx, t.q(query), args...)
}

func (t storeTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return t.Tx.QueryRowContext(ctx, t.q(query), args...)
}

// pgMigrations are the journal's tables on PostgreSQL: the SQLite ones in PostgreSQL's types
// (times in Unix milliseconds, as there).
var pgMigrations = []string{
	`CREATE TABLE requests (
		id          BIGSERIAL PRIMARY KEY,
		key         TEXT NOT NULL,
		archived    INTEGER NOT NULL DEFAULT 0,
		hash        TEXT NOT NULL,
		email       TEXT NOT NULL,
		status      TEXT NOT NULL,
		request     TEXT NOT NULL,
		response    TEXT,
		attempts    INTEGER NOT NULL DEFAULT 1,
		last_error  TEXT NOT NULL DEFAULT '',
		created_at  BIGINT NOT NULL,
		updated_at  BIGINT NOT NULL,
		expires_at  BIGINT NOT NULL,
		owner       TEXT NOT NULL DEFAULT '',
		lease_until BIGINT NOT NULL DEFAULT 0,
		ticket_id   TEXT NOT NULL DEFAULT '',
		failure     TEXT NOT NULL DEFAULT ''
	);
	CREATE UNIQUE INDEX requests_live_key ON requests(key) WHERE archived = 0;
	CREATE INDEX requests_status ON requests(status, updated_at);
	CREATE INDEX requests_ticket ON requests(ticket_id) WHERE ticket_id <> '';
	CREATE INDEX requests_owner ON requests(owner) WHERE owner <> '';
	CREATE TABLE steps (
		run_id BIGINT NOT NULL REFERENCES requests(id) ON DELETE CASCADE,
		name   TEXT NOT NULL,
		result TEXT NOT NULL,
		at     BIGINT NOT NULL,
		PRIMARY KEY (run_id, name)
	);
	CREATE TABLE memo (
		key        TEXT NOT NULL PRIMARY KEY,
		value      TEXT NOT NULL,
		updated_at BIGINT NOT NULL
	);`,
}

// advisoryLock takes PostgreSQL's session advisory lock for a contact (the first 8 bytes of the
// e-mail's digest) on a connection of its own, held until the returned func releases it. If the
// instance dies, its connections end and the server releases the lock.
func (j *Journal) advisoryLock(ctx context.Context, sum [32]byte) (func(), error) {
	key := int64(binary.BigEndian.Uint64(sum[:8]))
	conn, err := j.db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, key); err != nil {
		discard(conn)
		return nil, err
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var ok bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_advisory_unlock($1)`, key).Scan(&ok); err != nil || !ok {
			discard(conn) // a connection that may still hold the lock never goes back to the pool
			return
		}
		conn.Close()
	}, nil
}

// discard closes conn for good: ending its session releases whatever it held.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	conn.Close()
}
