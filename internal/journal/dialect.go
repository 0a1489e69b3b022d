package journal

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/binary"
	"sync"
	"time"

	"github.com/figurative/figsupport/internal/postgres"
)

// store runs the journal's SQL, written once with `?` placeholders, on SQLite or PostgreSQL, each
// statement prepared once: parsing them again for every call was a fifth of the chain's CPU on the
// embedded backends (BENCHMARKS.md, section 2).
type store struct {
	*sql.DB
	pg    bool
	stmts *stmtCache
}

func newStore(db *sql.DB, pg bool) store {
	return store{DB: db, pg: pg, stmts: &stmtCache{m: map[string]*sql.Stmt{}}}
}

// stmtCache holds the prepared statements by their SQL. The journal's statements are a fixed set
// (the IN lists vary with a few status filters); past maxStmts, what is new runs unprepared.
type stmtCache struct {
	mu     sync.Mutex
	m      map[string]*sql.Stmt
	closed bool
}

const maxStmts = 256

func (c *stmtCache) get(query string) (*sql.Stmt, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.m[query]
	return st, ok || c.closed || len(c.m) >= maxStmts
}

// put keeps st for query unless another was kept meanwhile or the cache is closed; it returns
// the statement to use.
func (c *stmtCache) put(query string, st *sql.Stmt) *sql.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[query]; ok || c.closed {
		st.Close()
		return old
	}
	c.m[query] = st
	return st
}

// stmt is query's prepared statement, prepared now when it is not yet (on a connection of the
// pool, no lock held); nil when it cannot be, and the call then runs the query itself.
func (s store) stmt(ctx context.Context, query string) *sql.Stmt {
	if s.stmts == nil {
		return nil
	}
	if st, done := s.stmts.get(query); done {
		return st
	}
	st, err := s.DB.PrepareContext(ctx, query)
	if err != nil {
		return nil
	}
	return s.stmts.put(query, st)
}

// close closes the prepared statements.
func (s store) close() {
	if s.stmts == nil {
		return
	}
	s.stmts.mu.Lock()
	defer s.stmts.mu.Unlock()
	s.stmts.closed = true
	for q, st := range s.stmts.m {
		st.Close()
		delete(s.stmts.m, q)
	}
}

func (s store) q(query string) string {
	if s.pg {
		return postgres.Rebind(query)
	}
	return query
}

func (s store) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	query = s.q(query)
	if st := s.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return s.DB.ExecContext(ctx, query, args...)
}

func (s store) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	query = s.q(query)
	if st := s.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return s.DB.QueryContext(ctx, query, args...)
}

func (s store) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	query = s.q(query)
	if st := s.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return s.DB.QueryRowContext(ctx, query, args...)
}

func (s store) BeginTx(ctx context.Context, o *sql.TxOptions) (storeTx, error) {
	tx, err := s.DB.BeginTx(ctx, o)
	return storeTx{Tx: tx, s: s}, err
}

// forUpdate locks the rows a read-then-write transaction reads: PostgreSQL's row lock (SQLite's
// transactions are serialised by BEGIN IMMEDIATE already).
func (s store) forUpdate() string {
	if s.pg {
		return " FOR UPDATE"
	}
	return ""
}

// storeTx runs a transaction's statements unprepared: the few transactions (Begin, a Record that
// finds its key, SetTicket) are not worth a statement copied onto their connection, and preparing
// one on the pool from inside a transaction would wait for a second connection.
type storeTx struct {
	*sql.Tx
	s store
}

func (t storeTx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.Tx.ExecContext(ctx, t.s.q(query), args...)
}

func (t storeTx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.Tx.QueryContext(ctx, t.s.q(query), args...)
}

func (t storeTx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return t.Tx.QueryRowContext(ctx, t.s.q(query), args...)
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
