// Package journal records every request before any side effect and each step's result as it
// completes, so that a rerun resumes where the last one stopped, a replay answers from what was
// stored, and requests for one contact are serialised across goroutines and processes.
//
// It speaks plain SQL to the data dir's SQLite file; the chain sees it through a small interface so
// that a PostgreSQL journal (row locks, advisory locks per contact) can replace it later.
package journal

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gofrs/flock"

	"github.com/figurative/figsupport/internal/sqlite"
)

// Run statuses.
const (
	StatusQueued     = "queued" // recorded, waiting for its contact's lock
	StatusRunning    = "running"
	StatusDone       = "done"
	StatusIncomplete = "incomplete" // the ticket exists, a later step (subtask, notification) failed
	StatusFailed     = "failed"
)

// ErrConflict is returned by Begin when the key was already used for another payload.
var ErrConflict = errors.New("idempotency key already used for a different payload")

// ErrNotFound is returned when no run has the given key or id.
var ErrNotFound = errors.New("no such request in the journal")

// Run is one request's journal entry.
type Run struct {
	ID        int64                      `json:"id"`
	Key       string                     `json:"key"`
	Hash      string                     `json:"hash"`
	Email     string                     `json:"email"`
	Status    string                     `json:"status"`
	Request   json.RawMessage            `json:"request"`
	Response  json.RawMessage            `json:"response,omitempty"`
	Steps     map[string]json.RawMessage `json:"steps"`
	Attempts  int                        `json:"attempts"`
	LastError string                     `json:"last_error,omitempty"`
	CreatedAt time.Time                  `json:"created_at"`
	UpdatedAt time.Time                  `json:"updated_at"`
	ExpiresAt time.Time                  `json:"expires_at"`
	// Archived: a newer run of the same key replaced this one (expiry, --force).
	Archived bool `json:"archived,omitempty"`
	// Replay is set by Begin when the run had already finished: answer from Response, touch nothing.
	Replay bool `json:"-"`
}

// Step decodes the stored result of step into v; false when the step has not completed.
func (r *Run) Step(step string, v any) (bool, error) {
	raw, ok := r.Steps[step]
	if !ok {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("journal: decode step %s of %s: %w", step, r.Key, err)
	}
	return true, nil
}

// Journal is the SQLite journal.
type Journal struct {
	db       *sql.DB
	lockDir  string
	now      func() time.Time
	mu       sync.Mutex
	inflight map[string]*keyLock
}

type keyLock struct {
	ch   chan struct{}
	refs int
}

var migrations = []string{
	`CREATE TABLE requests (
		id         INTEGER PRIMARY KEY AUTOINCREMENT,
		key        TEXT NOT NULL,
		archived   INTEGER NOT NULL DEFAULT 0, -- 1: replaced by a newer run of the same key (expiry, --force)
		hash       TEXT NOT NULL,
		email      TEXT NOT NULL,
		status     TEXT NOT NULL,
		request    TEXT NOT NULL,
		response   TEXT,
		attempts   INTEGER NOT NULL DEFAULT 1,
		last_error TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL,
		expires_at INTEGER NOT NULL
	);
	CREATE UNIQUE INDEX requests_live_key ON requests(key) WHERE archived = 0;
	CREATE INDEX requests_status ON requests(status, updated_at);
	CREATE TABLE steps (
		run_id INTEGER NOT NULL REFERENCES requests(id) ON DELETE CASCADE,
		name   TEXT NOT NULL,
		result TEXT NOT NULL,
		at     INTEGER NOT NULL,
		PRIMARY KEY (run_id, name)
	);
	CREATE TABLE memo (
		key        TEXT NOT NULL PRIMARY KEY,
		value      TEXT NOT NULL,
		updated_at INTEGER NOT NULL
	);`,
}

// Open opens the journal in db (see package sqlite) and keeps per-contact lock files in lockDir.
func Open(ctx context.Context, db *sql.DB, lockDir string) (*Journal, error) {
	if err := sqlite.Migrate(ctx, db, "journal", migrations); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(lockDir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: create lock dir: %w", err)
	}
	return &Journal{db: db, lockDir: lockDir, now: time.Now, inflight: map[string]*keyLock{}}, nil
}

// SetClock replaces the journal's clock (tests).
func (j *Journal) SetClock(now func() time.Time) { j.now = now }

// Lock serialises work on name (a contact's e-mail) across goroutines of this process and across
// processes sharing the data dir; it waits until ctx ends. The returned func releases it.
func (j *Journal) Lock(ctx context.Context, name string) (func(), error) {
	sum := sha256.Sum256([]byte(strings.ToLower(name)))
	id := hex.EncodeToString(sum[:12])

	// In-process first, so goroutines wait on a channel instead of polling the file lock.
	j.mu.Lock()
	kl := j.inflight[id]
	if kl == nil {
		kl = &keyLock{ch: make(chan struct{}, 1)}
		j.inflight[id] = kl
	}
	kl.refs++
	j.mu.Unlock()
	release := func() {
		j.mu.Lock()
		kl.refs--
		if kl.refs == 0 {
			delete(j.inflight, id)
		}
		j.mu.Unlock()
	}
	select {
	case kl.ch <- struct{}{}:
	case <-ctx.Done():
		release()
		return nil, fmt.Errorf("journal: wait for lock: %w", ctx.Err())
	}

	fl := flock.New(filepath.Join(j.lockDir, id+".lock"))
	ok, err := fl.TryLockContext(ctx, 10*time.Millisecond)
	if err != nil || !ok {
		<-kl.ch
		release()
		if err == nil {
			err = ctx.Err()
		}
		return nil, fmt.Errorf("journal: lock contact: %w", err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			_ = fl.Unlock()
			<-kl.ch
			release()
		})
	}, nil
}

// Record writes the request down as queued when its key has no current run, so that it is kept
// even if the process dies while waiting for its contact's lock; Begin then starts it. A key that
// has a run already is left to Begin (replay, resume, conflict, expiry).
func (j *Journal) Record(ctx context.Context, key, hash, email string, request any, ttl time.Duration) error {
	body, err := json.Marshal(request)
	if err != nil {
		return fmt.Errorf("journal: encode request: %w", err)
	}
	now := j.now()
	_, err = j.db.ExecContext(ctx, `INSERT INTO requests(key, hash, email, status, request, attempts, created_at, updated_at, expires_at)
		SELECT ?, ?, ?, ?, ?, 0, ?, ?, ?
		WHERE NOT EXISTS (SELECT 1 FROM requests WHERE key = ? AND archived = 0)`,
		key, hash, email, StatusQueued, string(body), now.UnixMilli(), now.UnixMilli(), now.Add(ttl).UnixMilli(), key)
	if err != nil && !strings.Contains(err.Error(), "UNIQUE") {
		return fmt.Errorf("journal: record %s: %w", key, err)
	}
	return nil
}

// Begin records a request before anything else happens. It returns:
//   - a new run when the key is unknown, expired, or force is set (the old run is kept, detached);
//   - the finished run with Replay set when the key was processed already;
//   - the unfinished run (its completed steps loaded) to resume;
//   - ErrConflict when the key is known with another payload hash.
func (j *Journal) Begin(ctx context.Context, key, hash, email string, request any, ttl time.Duration, force bool) (*Run, error) {
	body, err := json.Marshal(request)
	if err != nil {
		return nil, fmt.Errorf("journal: encode request: %w", err)
	}
	now := j.now()
	tx, err := j.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("journal: begin: %w", err)
	}
	defer tx.Rollback()

	run, err := scanRun(tx.QueryRowContext(ctx, selectRun+` WHERE key = ? AND archived = 0`, key))
	switch {
	case errors.Is(err, ErrNotFound):
		run = nil
	case err != nil:
		return nil, err
	}
	// Only a finished run expires: an unfinished one is resumed however old, so that no step it
	// completed is ever repeated.
	if run != nil && (force || (run.Status == StatusDone && !now.Before(run.ExpiresAt))) {
		// Archive the old run; its history stays readable by id.
		if _, err := tx.ExecContext(ctx, `UPDATE requests SET archived = 1 WHERE id = ?`, run.ID); err != nil {
			return nil, fmt.Errorf("journal: archive %s: %w", key, err)
		}
		run = nil
	}
	if run != nil {
		if run.Hash != hash {
			return nil, fmt.Errorf("%w: %s", ErrConflict, key)
		}
		if run.Status == StatusDone {
			run.Replay = true
			return run, nil
		}
		// A queued run (Record) starts now: its first attempt, not a resume.
		if _, err := tx.ExecContext(ctx, `UPDATE requests SET status = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?`,
			StatusRunning, now.UnixMilli(), run.ID); err != nil {
			return nil, fmt.Errorf("journal: resume %s: %w", key, err)
		}
		run.Status = StatusRunning
		run.Attempts++
		if run.Steps, err = loadSteps(ctx, tx, run.ID); err != nil {
			return nil, err
		}
		return run, tx.Commit()
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO requests(key, hash, email, status, request, created_at, updated_at, expires_at)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?)`, key, hash, email, StatusRunning, string(body), now.UnixMilli(), now.UnixMilli(), now.Add(ttl).UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("journal: record %s: %w", key, err)
	}
	id, _ := res.LastInsertId()
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("journal: record %s: %w", key, err)
	}
	return &Run{ID: id, Key: key, Hash: hash, Email: email, Status: StatusRunning, Request: body,
		Steps: map[string]json.RawMessage{}, Attempts: 1, CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(ttl)}, nil
}

// SaveStep records step's result for run; the run's in-memory copy is updated too.
func (j *Journal) SaveStep(ctx context.Context, run *Run, step string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("journal: encode step %s: %w", step, err)
	}
	now := j.now().UnixMilli()
	tx, err := j.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("journal: save step %s: %w", step, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `INSERT INTO steps(run_id, name, result, at) VALUES(?, ?, ?, ?)
		ON CONFLICT(run_id, name) DO UPDATE SET result = excluded.result, at = excluded.at`, run.ID, step, string(b), now); err != nil {
		return fmt.Errorf("journal: save step %s: %w", step, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE requests SET updated_at = ? WHERE id = ?`, now, run.ID); err != nil {
		return fmt.Errorf("journal: save step %s: %w", step, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("journal: save step %s: %w", step, err)
	}
	run.Steps[step] = b
	return nil
}

// Finish records the outcome: status, the response (when there is one) and the error text.
func (j *Journal) Finish(ctx context.Context, run *Run, status string, response any, errText string) error {
	var resp sql.NullString
	if response != nil {
		b, err := json.Marshal(response)
		if err != nil {
			return fmt.Errorf("journal: encode response: %w", err)
		}
		resp = sql.NullString{String: string(b), Valid: true}
		run.Response = b
	}
	_, err := j.db.ExecContext(ctx, `UPDATE requests SET status = ?, response = COALESCE(?, response), last_error = ?, updated_at = ? WHERE id = ?`,
		status, resp, errText, j.now().UnixMilli(), run.ID)
	if err != nil {
		return fmt.Errorf("journal: finish %s: %w", run.Key, err)
	}
	run.Status, run.LastError = status, errText
	return nil
}

// Get reads the current run of a key or, when no key matches, the run with that numeric id
// (archived runs included).
func (j *Journal) Get(ctx context.Context, key string) (*Run, error) {
	run, err := scanRun(j.db.QueryRowContext(ctx, selectRun+` WHERE (key = ? AND archived = 0) OR CAST(id AS TEXT) = ?
		ORDER BY (key = ? AND archived = 0) DESC LIMIT 1`, key, key, key))
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, key)
	}
	if run.Steps, err = loadSteps(ctx, j.db, run.ID); err != nil {
		return nil, err
	}
	return run, nil
}

// List returns runs, newest first; statuses filters when not empty.
func (j *Journal) List(ctx context.Context, statuses []string, limit int) ([]*Run, error) {
	q := selectRun
	var args []any
	if len(statuses) > 0 {
		q += ` WHERE status IN (?` + strings.Repeat(`, ?`, len(statuses)-1) + `)`
		for _, s := range statuses {
			args = append(args, s)
		}
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	rows, err := j.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("journal: list: %w", err)
	}
	defer rows.Close()
	var out []*Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// MemoGet reads a remembered value (contact → ticket, created properties, list ids…).
func (j *Journal) MemoGet(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := j.db.QueryRowContext(ctx, `SELECT value FROM memo WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("journal: memo %s: %w", key, err)
	}
	return v, true, nil
}

// MemoPut remembers a value.
func (j *Journal) MemoPut(ctx context.Context, key, value string) error {
	_, err := j.db.ExecContext(ctx, `INSERT INTO memo(key, value, updated_at) VALUES(?, ?, ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, key, value, j.now().UnixMilli())
	if err != nil {
		return fmt.Errorf("journal: memo %s: %w", key, err)
	}
	return nil
}

// Memo adapts the journal to the Get/Put memo interfaces the service backends declare.
type Memo struct{ J *Journal }

// Get reads a remembered value.
func (m Memo) Get(ctx context.Context, key string) (string, bool, error) {
	return m.J.MemoGet(ctx, key)
}

// Put remembers a value.
func (m Memo) Put(ctx context.Context, key, value string) error { return m.J.MemoPut(ctx, key, value) }

const selectRun = `SELECT id, key, hash, email, status, request, response, attempts, last_error, created_at, updated_at, expires_at, archived FROM requests`

type scanner interface{ Scan(...any) error }

func scanRun(s scanner) (*Run, error) {
	var r Run
	var req string
	var resp sql.NullString
	var c, u, e int64
	err := s.Scan(&r.ID, &r.Key, &r.Hash, &r.Email, &r.Status, &req, &resp, &r.Attempts, &r.LastError, &c, &u, &e, &r.Archived)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("journal: read run: %w", err)
	}
	r.Request = json.RawMessage(req)
	if resp.Valid {
		r.Response = json.RawMessage(resp.String)
	}
	r.CreatedAt, r.UpdatedAt, r.ExpiresAt = time.UnixMilli(c).UTC(), time.UnixMilli(u).UTC(), time.UnixMilli(e).UTC()
	r.Steps = map[string]json.RawMessage{}
	return &r, nil
}

type querier interface {
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func loadSteps(ctx context.Context, q querier, runID int64) (map[string]json.RawMessage, error) {
	rows, err := q.QueryContext(ctx, `SELECT name, result FROM steps WHERE run_id = ?`, runID)
	if err != nil {
		return nil, fmt.Errorf("journal: load steps: %w", err)
	}
	defer rows.Close()
	steps := map[string]json.RawMessage{}
	for rows.Next() {
		var name, res string
		if err := rows.Scan(&name, &res); err != nil {
			return nil, fmt.Errorf("journal: load steps: %w", err)
		}
		steps[name] = json.RawMessage(res)
	}
	return steps, rows.Err()
}
