// Package journal records every request before any side effect and each step's result as it
// completes, so that a rerun resumes where the last one stopped, a replay answers from what was
// stored, and requests for one contact are serialised across goroutines and processes.
//
// Runs are held by their owner (one journal, one process) under a lease that the owner renews
// while it lives: a run left by a process that died is known as such and taken over at once (its
// owner file lock is free) or, at the latest, when its lease runs out.
package journal

import (
	"context"
	"crypto/rand"
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

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/postgres"
	"github.com/figurative/figsupport/internal/sqlite"
)

// DefaultLease is how long a run stays held by an owner that stops renewing it. The owner renews
// every third of it.
const DefaultLease = time.Minute

// Journal is the journal on SQLite (one machine) or PostgreSQL (several). It implements
// chain.Journal.
type Journal struct {
	db      store
	lockDir string // SQLite: the owner and per-contact lock files; "" on PostgreSQL
	owner   string
	ownerFL *fileLock // held for the journal's lifetime: others test it to know this owner lives
	// contacts: SQLite's per-contact locks across processes (PostgreSQL: advisory locks).
	contacts *contactLocks
	// lease and clock are set by tests while the renewer runs.
	settings sync.RWMutex
	lease    time.Duration
	clock    func() time.Time

	mu       sync.Mutex
	inflight map[string]*keyLock

	stop chan struct{}
	done chan struct{}
}

var _ chain.Journal = (*Journal)(nil)

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
	// Owners and leases, the run's ticket, the kind of its last failure.
	`ALTER TABLE requests ADD COLUMN owner TEXT NOT NULL DEFAULT '';
	ALTER TABLE requests ADD COLUMN lease_until INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE requests ADD COLUMN ticket_id TEXT NOT NULL DEFAULT '';
	ALTER TABLE requests ADD COLUMN failure TEXT NOT NULL DEFAULT '';
	CREATE INDEX requests_ticket ON requests(ticket_id) WHERE ticket_id <> '';
	CREATE INDEX requests_owner ON requests(owner) WHERE owner <> '';`,
}

// Open opens the journal in db (see package sqlite) and keeps its lock files in lockDir: this
// journal's owner file and the contacts' locks (contactLocks). Close releases them.
func Open(ctx context.Context, db *sql.DB, lockDir string) (*Journal, error) {
	if err := sqlite.Migrate(ctx, db, "journal", migrations); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(lockDir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: create lock dir: %w", err)
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	owner := hex.EncodeToString(b[:])
	fl, err := tryLockFile(filepath.Join(lockDir, ownerFile(owner)))
	if err != nil || fl == nil {
		return nil, fmt.Errorf("journal: take the owner lock: %w", errors.Join(err, errors.New("lock busy")))
	}
	contacts, err := openContactLocks(lockDir)
	if err != nil {
		fl.release()
		return nil, fmt.Errorf("journal: open the contact locks: %w", err)
	}
	j := &Journal{db: newStore(db, false), lockDir: lockDir, owner: owner, ownerFL: fl, contacts: contacts, lease: DefaultLease,
		clock: time.Now, inflight: map[string]*keyLock{}, stop: make(chan struct{}), done: make(chan struct{})}
	go j.renew()
	return j, nil
}

// OpenPostgres opens the journal in a PostgreSQL database shared by several daemons: runs are
// held under a lease only (a dead instance's are taken over when it expires), contacts are locked
// with advisory locks, which the server releases when an instance's connection dies.
func OpenPostgres(ctx context.Context, db *sql.DB) (*Journal, error) {
	if err := postgres.Migrate(ctx, db, "journal", pgMigrations); err != nil {
		return nil, err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	j := &Journal{db: newStore(db, true), owner: hex.EncodeToString(b[:]), lease: DefaultLease, clock: time.Now,
		inflight: map[string]*keyLock{}, stop: make(chan struct{}), done: make(chan struct{})}
	go j.renew()
	return j, nil
}

// OpenReadOnly opens the journal of a database opened read-only (dry runs, `requests list`): no
// migration, no owner lock file, no lease renewal; it can read, and every write fails. The schema
// must be the one this binary writes (a database of an older version is migrated by a run that
// writes first).
func OpenReadOnly(ctx context.Context, db *sql.DB) (*Journal, error) {
	if postgres.IsPostgres(db) {
		v, err := postgres.Version(ctx, db, "journal")
		if err != nil {
			return nil, fmt.Errorf("journal: read the schema version: %w", err)
		}
		if v != len(pgMigrations) {
			return nil, fmt.Errorf("journal: the database's schema is version %d, this binary's %d: run a command that writes first", v, len(pgMigrations))
		}
		return readOnly(newStore(db, true)), nil
	}
	var v int
	err := db.QueryRowContext(ctx, `SELECT version FROM schema_migrations WHERE component = 'journal'`).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		v = 0
	case err != nil:
		return nil, fmt.Errorf("journal: read the schema version: %w", err)
	}
	if v != len(migrations) {
		if v != 0 {
			return nil, fmt.Errorf("journal: the database's schema is version %d, this binary's %d: run a command that writes first", v, len(migrations))
		}
		// An empty database (a dry run's in-memory one): create the tables in it.
		if err := sqlite.Migrate(ctx, db, "journal", migrations); err != nil {
			return nil, err
		}
	}
	return readOnly(newStore(db, false)), nil
}

func readOnly(db store) *Journal {
	done := make(chan struct{})
	close(done)
	return &Journal{db: db, lease: DefaultLease, clock: time.Now, inflight: map[string]*keyLock{}, stop: make(chan struct{}), done: done}
}

func ownerFile(owner string) string { return "owner-" + owner + ".lock" }

// Close stops renewing leases, releases the runs this journal still holds (so that another
// process takes them over at once) and its owner lock. It does not close db.
func (j *Journal) Close() error {
	select {
	case <-j.stop:
		return nil
	default:
	}
	close(j.stop)
	<-j.done
	defer j.db.close()
	if j.owner == "" { // read-only
		return nil
	}
	_, err := j.db.ExecContext(context.Background(), `UPDATE requests SET owner = '', lease_until = 0
		WHERE owner = ? AND status IN (?, ?)`, j.owner, chain.StatusQueued, chain.StatusRunning)
	if j.ownerFL != nil {
		j.ownerFL.release()
	}
	if j.contacts != nil {
		j.contacts.close()
	}
	if err != nil {
		return fmt.Errorf("journal: release runs: %w", err)
	}
	return nil
}

// Owner is this journal's owner id, as runs record it.
func (j *Journal) Owner() string { return j.owner }

// SetClock replaces the journal's clock (tests).
func (j *Journal) SetClock(now func() time.Time) {
	j.settings.Lock()
	defer j.settings.Unlock()
	j.clock = now
}

// SetLease replaces the lease length; the renewer follows from its next tick (a third of the new
// length).
func (j *Journal) SetLease(d time.Duration) {
	j.settings.Lock()
	defer j.settings.Unlock()
	j.lease = d
}

func (j *Journal) now() time.Time {
	j.settings.RLock()
	defer j.settings.RUnlock()
	return j.clock()
}

func (j *Journal) leaseLen() time.Duration {
	j.settings.RLock()
	defer j.settings.RUnlock()
	return j.lease
}

// renew extends the lease of every run this journal holds, every third of the lease, until Close.
func (j *Journal) renew() {
	defer close(j.done)
	t := time.NewTimer(j.leaseLen() / 3)
	defer t.Stop()
	for {
		select {
		case <-j.stop:
			return
		case <-t.C:
		}
		t.Reset(j.leaseLen() / 3)
		_, _ = j.db.ExecContext(context.Background(), `UPDATE requests SET lease_until = ? WHERE owner = ? AND status IN (?, ?)`,
			j.now().Add(j.leaseLen()).UnixMilli(), j.owner, chain.StatusQueued, chain.StatusRunning)
	}
}

// Held reports whether another live owner holds run: its lease runs and its owner's process is
// alive. A run of this journal is not held (by another).
func (j *Journal) Held(run *chain.Run) bool {
	if run.Owner == "" || run.Owner == j.owner || !chain.Unfinished(run.Status) {
		return false
	}
	if !j.now().Before(run.LeaseUntil) {
		return false
	}
	return j.ownerAlive(run.Owner)
}

// ownerAlive tests the owner's lock file: free (or gone) means its process died. On PostgreSQL
// the owners are on other machines: the lease alone says.
func (j *Journal) ownerAlive(owner string) bool {
	if j.db.pg {
		return true
	}
	if strings.ContainsAny(owner, `/\.`) {
		return false
	}
	path := filepath.Join(j.lockDir, ownerFile(owner))
	fl, err := tryLockFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return false
	case err != nil:
		return true // cannot tell: trust the lease
	case fl == nil:
		return true
	}
	fl.release() // removes the dead owner's file
	return false
}

// Lock serialises work on name (a contact's e-mail) across goroutines of this process and across
// processes sharing the data dir — or, on PostgreSQL, the database; it waits until ctx ends.
// Goroutines wait on a channel, so no file or connection is held for a waiting request; the
// holder's lock file is removed on release.
func (j *Journal) Lock(ctx context.Context, name string) (func(), error) {
	sum := sha256.Sum256([]byte(strings.ToLower(strings.TrimSpace(name))))
	id := hex.EncodeToString(sum[:12])

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
	var unlock func()
	var err error
	if j.db.pg {
		unlock, err = j.advisoryLock(ctx, sum)
	} else {
		unlock, err = j.contacts.lock(ctx, sum)
	}
	if err != nil {
		<-kl.ch
		release()
		return nil, fmt.Errorf("journal: lock contact: %w", err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			unlock()
			<-kl.ch
			release()
		})
	}, nil
}

// Record writes the request down as queued, held by this journal, when its key has no current run
// (or only a finished one that expired); it returns the key's current run either way.
func (j *Journal) Record(ctx context.Context, n chain.NewRun) (*chain.Run, error) {
	now := j.now()
	run := &chain.Run{Key: n.Key, Hash: n.Hash, Email: n.Email, Status: chain.StatusQueued, Request: n.Request,
		Steps: map[string]json.RawMessage{}, CreatedAt: now.UTC(), UpdatedAt: now.UTC(), ExpiresAt: now.Add(n.TTL).UTC(),
		Owner: j.owner, LeaseUntil: now.Add(j.leaseLen()).UTC()}
	// The common case, a key never seen, is one statement in autocommit (a transaction that reads
	// first cost the intake 2.5× its records per second); a key that has a run goes the long way.
	switch err := j.insertRun(ctx, j.db, n, now, &run.ID); {
	case err == nil:
		return run, nil
	case !errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("journal: record %s: %w", n.Key, err)
	}
	tx, err := j.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("journal: record %s: %w", n.Key, err)
	}
	defer tx.Rollback()
	old, err := scanRun(tx.QueryRowContext(ctx, selectRun+` WHERE key = ? AND archived = 0`+j.db.forUpdate(), n.Key))
	switch {
	case err == nil && !(chain.Finished(old.Status) && !now.Before(old.ExpiresAt)):
		return old, nil
	case err == nil:
		if _, err := tx.ExecContext(ctx, `UPDATE requests SET archived = 1 WHERE id = ?`, old.ID); err != nil {
			return nil, fmt.Errorf("journal: archive %s: %w", n.Key, err)
		}
	case !errors.Is(err, chain.ErrRunNotFound):
		return nil, err
	}
	err = j.insertRun(ctx, tx, n, now, &run.ID)
	if errors.Is(err, sql.ErrNoRows) {
		// Another instance recorded the key between the read and the insert: it is recorded.
		tx.Rollback()
		return scanRun(j.db.QueryRowContext(ctx, selectRun+` WHERE key = ? AND archived = 0`, n.Key))
	}
	if err != nil {
		return nil, fmt.Errorf("journal: record %s: %w", n.Key, err)
	}
	return run, commit(tx, n.Key)
}

// insertRun inserts n's run as queued, held by this journal, unless its key has a current run:
// then it returns sql.ErrNoRows.
func (j *Journal) insertRun(ctx context.Context, q interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}, n chain.NewRun, now time.Time, id *int64) error {
	return q.QueryRowContext(ctx, `INSERT INTO requests(key, hash, email, status, request, attempts, created_at, updated_at, expires_at, owner, lease_until)
		VALUES(?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?) ON CONFLICT(key) WHERE archived = 0 DO NOTHING RETURNING id`,
		n.Key, n.Hash, n.Email, chain.StatusQueued, string(n.Request), now.UnixMilli(), now.UnixMilli(), now.Add(n.TTL).UnixMilli(),
		j.owner, now.Add(j.leaseLen()).UnixMilli()).Scan(id)
}

// Begin claims the key's run (see chain.Journal).
func (j *Journal) Begin(ctx context.Context, n chain.NewRun, force bool) (*chain.Run, error) {
	now := j.now()
	tx, err := j.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("journal: begin: %w", err)
	}
	defer tx.Rollback()

	run, err := scanRun(tx.QueryRowContext(ctx, selectRun+` WHERE key = ? AND archived = 0`+j.db.forUpdate(), n.Key))
	switch {
	case errors.Is(err, chain.ErrRunNotFound):
		run = nil
	case err != nil:
		return nil, err
	}
	// Only a finished run expires: an unfinished one is resumed however old, so that no step it
	// completed is ever repeated.
	if run != nil && (force || (chain.Finished(run.Status) && !now.Before(run.ExpiresAt))) {
		if _, err := tx.ExecContext(ctx, `UPDATE requests SET archived = 1 WHERE id = ?`, run.ID); err != nil {
			return nil, fmt.Errorf("journal: archive %s: %w", n.Key, err)
		}
		run = nil
	}
	if run != nil {
		if run.Hash != n.Hash {
			return nil, fmt.Errorf("%w: %s", chain.ErrConflict, n.Key)
		}
		if chain.Finished(run.Status) {
			run.Replay = true
			return run, nil
		}
		if j.Held(run) {
			return nil, fmt.Errorf("%w: %s", chain.ErrInFlight, n.Key)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE requests SET status = ?, attempts = attempts + 1, updated_at = ?, owner = ?, lease_until = ? WHERE id = ?`,
			chain.StatusRunning, now.UnixMilli(), j.owner, now.Add(j.leaseLen()).UnixMilli(), run.ID); err != nil {
			return nil, fmt.Errorf("journal: resume %s: %w", n.Key, err)
		}
		run.Status, run.Owner, run.LeaseUntil = chain.StatusRunning, j.owner, now.Add(j.leaseLen()).UTC()
		run.Attempts++
		if run.Steps, err = loadSteps(ctx, tx, run.ID); err != nil {
			return nil, err
		}
		return run, commit(tx, n.Key)
	}
	var id int64
	err = tx.QueryRowContext(ctx, `INSERT INTO requests(key, hash, email, status, request, created_at, updated_at, expires_at, owner, lease_until)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) WHERE archived = 0 DO NOTHING RETURNING id`, n.Key, n.Hash, n.Email, chain.StatusRunning, string(n.Request),
		now.UnixMilli(), now.UnixMilli(), now.Add(n.TTL).UnixMilli(), j.owner, now.Add(j.leaseLen()).UnixMilli()).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		// Another instance recorded the key between the read and the insert: begin on its run.
		tx.Rollback()
		return j.Begin(ctx, n, false)
	}
	if err != nil {
		return nil, fmt.Errorf("journal: record %s: %w", n.Key, err)
	}
	if err := commit(tx, n.Key); err != nil {
		return nil, err
	}
	return &chain.Run{ID: id, Key: n.Key, Hash: n.Hash, Email: n.Email, Status: chain.StatusRunning, Request: n.Request,
		Steps: map[string]json.RawMessage{}, Attempts: 1, CreatedAt: now.UTC(), UpdatedAt: now.UTC(), ExpiresAt: now.Add(n.TTL).UTC(),
		Owner: j.owner, LeaseUntil: now.Add(j.leaseLen()).UTC()}, nil
}

func commit(tx storeTx, key string) error {
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("journal: record %s: %w", key, err)
	}
	return nil
}

// SaveStep records step's result for run; the run's in-memory copy is updated too.
func (j *Journal) SaveStep(ctx context.Context, run *chain.Run, step string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("journal: encode step %s: %w", step, err)
	}
	if _, err := j.db.ExecContext(ctx, upsertStep, run.ID, step, string(b), j.now().UnixMilli()); err != nil {
		return fmt.Errorf("journal: save step %s: %w", step, err)
	}
	run.Steps[step] = b
	return nil
}

const upsertStep = `INSERT INTO steps(run_id, name, result, at) VALUES(?, ?, ?, ?)
	ON CONFLICT(run_id, name) DO UPDATE SET result = excluded.result, at = excluded.at`

// SetTicket records step's result and the run's ticket in one transaction.
func (j *Journal) SetTicket(ctx context.Context, run *chain.Run, step string, v any, ticketID string) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("journal: encode step %s: %w", step, err)
	}
	tx, err := j.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("journal: save step %s: %w", step, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, upsertStep, run.ID, step, string(b), j.now().UnixMilli()); err != nil {
		return fmt.Errorf("journal: save step %s: %w", step, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE requests SET ticket_id = ? WHERE id = ?`, ticketID, run.ID); err != nil {
		return fmt.Errorf("journal: save step %s: %w", step, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("journal: save step %s: %w", step, err)
	}
	run.Steps[step], run.TicketID = b, ticketID
	return nil
}

// Finish records the outcome: status, the response (when there is one), the error and its kind;
// the run is released.
func (j *Journal) Finish(ctx context.Context, run *chain.Run, o chain.Outcome) error {
	var resp sql.NullString
	if o.Response != nil {
		b, err := json.Marshal(o.Response)
		if err != nil {
			return fmt.Errorf("journal: encode response: %w", err)
		}
		resp = sql.NullString{String: string(b), Valid: true}
		run.Response = b
	}
	now := j.now()
	_, err := j.db.ExecContext(ctx, `UPDATE requests SET status = ?, response = COALESCE(?, response), last_error = ?, failure = ?,
		updated_at = ?, owner = '', lease_until = 0 WHERE id = ?`,
		o.Status, resp, o.Error, string(o.Failure), now.UnixMilli(), run.ID)
	if err != nil {
		return fmt.Errorf("journal: finish %s: %w", run.Key, err)
	}
	run.Status, run.LastError, run.Failure, run.UpdatedAt, run.Owner, run.LeaseUntil = o.Status, o.Error, o.Failure, now.UTC(), "", time.Time{}
	return nil
}

// Get reads the current run of a key or, when no key matches, the run with that numeric id
// (archived runs included), with its steps.
func (j *Journal) Get(ctx context.Context, key string) (*chain.Run, error) {
	run, err := scanRun(j.db.QueryRowContext(ctx, selectRun+` WHERE key = ? AND archived = 0`, key))
	if errors.Is(err, chain.ErrRunNotFound) {
		if id, perr := parseID(key); perr == nil {
			run, err = scanRun(j.db.QueryRowContext(ctx, selectRun+` WHERE id = ?`, id))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s", err, key)
	}
	if run.Steps, err = loadSteps(ctx, j.db, run.ID); err != nil {
		return nil, err
	}
	return run, nil
}

func parseID(s string) (int64, error) {
	var id int64
	_, err := fmt.Sscanf(s, "%d", &id)
	if err != nil || fmt.Sprint(id) != s {
		return 0, errors.New("not an id")
	}
	return id, nil
}

// Runnable returns what Pending does less the runs that no retry policy takes by itself: those
// failed for good (a permanent failure) and, with maxAttempts > 0, those that have used their
// attempts. A sweep that asks for a page of Pending could otherwise see only such runs, as many as
// the page is long, and never reach a retryable one behind them.
func (j *Journal) Runnable(ctx context.Context, limit, maxAttempts int) ([]*chain.Run, error) {
	cond, args := notPermanent()
	q := selectRun + ` WHERE archived = 0 AND (status IN (?, ?) OR status IN (?, ?) AND ` + cond
	args = append([]any{chain.StatusQueued, chain.StatusRunning, chain.StatusFailed, chain.StatusIncomplete}, args...)
	if maxAttempts > 0 {
		q += ` AND attempts < ?`
		args = append(args, maxAttempts)
	}
	q += `) ORDER BY id LIMIT ?`
	return j.queryWithSteps(ctx, q, append(args, limit)...)
}

// List returns runs, newest first; statuses filters when not empty. Steps are not loaded.
func (j *Journal) List(ctx context.Context, statuses []string, limit int) ([]*chain.Run, error) {
	q := selectRun
	var args []any
	if len(statuses) > 0 {
		q += ` WHERE status IN (` + marks(len(statuses)) + `)`
		for _, s := range statuses {
			args = append(args, s)
		}
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit)
	return j.query(ctx, q, args...)
}

// Pending returns the unfinished current runs, oldest first, with their steps: what a worker may
// take, once Held and the retry policy allow.
func (j *Journal) Pending(ctx context.Context, limit int) ([]*chain.Run, error) {
	return j.queryWithSteps(ctx, selectRun+` WHERE status IN (?, ?, ?, ?) AND archived = 0 ORDER BY id LIMIT ?`,
		chain.StatusQueued, chain.StatusRunning, chain.StatusFailed, chain.StatusIncomplete, limit)
}

// Claim takes the runs for this journal's process, each only if no live process holds it and
// nobody claimed it since it was read (the owner and lease read with it unchanged); it returns
// those claimed. Two daemons sweeping
// one database never queue the same run; on PostgreSQL a row another instance is locking is
// skipped rather than waited for (FOR UPDATE SKIP LOCKED).
func (j *Journal) Claim(ctx context.Context, runs []*chain.Run) ([]*chain.Run, error) {
	q := `UPDATE requests SET owner = ?, lease_until = ? WHERE id = ? AND owner = ? AND lease_until = ? AND archived = 0`
	if j.db.pg {
		q = `UPDATE requests SET owner = ?, lease_until = ? WHERE id = (SELECT id FROM requests
			WHERE id = ? AND owner = ? AND lease_until = ? AND archived = 0 FOR UPDATE SKIP LOCKED)`
	}
	until := j.now().Add(j.leaseLen())
	var out []*chain.Run
	for _, r := range runs {
		if j.Held(r) {
			continue // another live process's
		}
		res, err := j.db.ExecContext(ctx, q, j.owner, until.UnixMilli(), r.ID, r.Owner, ms(r.LeaseUntil))
		if err != nil {
			return out, fmt.Errorf("journal: claim %s: %w", r.Key, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			r.Owner, r.LeaseUntil = j.owner, until.UTC()
			out = append(out, r)
		}
	}
	return out, nil
}

// ms is t in Unix milliseconds, 0 for the zero time (no lease).
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// TicketRuns lists the current runs that belong to a ticket, oldest first, with their steps.
func (j *Journal) TicketRuns(ctx context.Context, ticketID string) ([]*chain.Run, error) {
	return j.queryWithSteps(ctx, selectRun+` WHERE ticket_id = ? AND archived = 0 ORDER BY id`, ticketID)
}

// ContactRuns lists the contact's unfinished current runs that may still be retried, oldest
// first, with their steps. It reads through the status index: unfinished runs are few.
func (j *Journal) ContactRuns(ctx context.Context, email string) ([]*chain.Run, error) {
	cond, args := notPermanent()
	args = append([]any{chain.StatusQueued, chain.StatusRunning, chain.StatusFailed, chain.StatusIncomplete, email}, args...)
	return j.queryWithSteps(ctx, selectRun+` WHERE status IN (?, ?, ?, ?) AND email = ? AND archived = 0 AND `+cond+` ORDER BY id`, args...)
}

// notPermanent is the condition that leaves out the runs failed for good (chain.PermanentFailures),
// with its arguments.
func notPermanent() (string, []any) {
	args := make([]any, len(chain.PermanentFailures))
	for i, f := range chain.PermanentFailures {
		args[i] = string(f)
	}
	return `failure NOT IN (` + marks(len(args)) + `)`, args
}

// marks is n placeholders, comma-separated.
func marks(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

func (j *Journal) queryWithSteps(ctx context.Context, q string, args ...any) ([]*chain.Run, error) {
	runs, err := j.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		if r.Steps, err = loadSteps(ctx, j.db, r.ID); err != nil {
			return nil, err
		}
	}
	return runs, nil
}

func (j *Journal) query(ctx context.Context, q string, args ...any) ([]*chain.Run, error) {
	rows, err := j.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("journal: list: %w", err)
	}
	defer rows.Close()
	var out []*chain.Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("journal: list: %w", err)
	}
	return out, nil
}

// Writable checks that the journal can take a write now (the daemon's readiness): it opens a
// write transaction and rolls it back, writing nothing; PostgreSQL must not be a read-only replica.
func (j *Journal) Writable(ctx context.Context) error {
	if j.db.pg {
		var ro bool
		if err := j.db.QueryRowContext(ctx, `SELECT pg_is_in_recovery()`).Scan(&ro); err != nil {
			return fmt.Errorf("journal: not writable: %w", err)
		}
		if ro {
			return errors.New("journal: not writable: the database is a read-only replica")
		}
	}
	tx, err := j.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("journal: not writable: %w", err)
	}
	return tx.Rollback()
}

// CheckDatabase is doctor's look at the database under the journal: on PostgreSQL, that the
// journal's migrations are applied and the advisory lock functions answer (taken and released at
// once, on a key no contact uses); on SQLite, that a write transaction opens (unless readOnly).
func (j *Journal) CheckDatabase(ctx context.Context, readOnly bool) error {
	if !j.db.pg {
		if readOnly {
			return nil
		}
		return j.Writable(ctx)
	}
	v, err := postgres.Version(ctx, j.db.DB, "journal")
	if err != nil {
		return err
	}
	if v != len(pgMigrations) {
		return fmt.Errorf("journal: schema version %d, this binary's %d: start a command that writes (figsupport serve) to migrate it", v, len(pgMigrations))
	}
	var got, released bool
	if err := j.db.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(?), pg_advisory_unlock(?)`, int64(doctorLock), int64(doctorLock)).Scan(&got, &released); err != nil {
		return fmt.Errorf("journal: advisory locks: %w", err)
	}
	if !got || !released {
		return errors.New("journal: advisory locks: the test lock could not be taken and released")
	}
	if readOnly {
		return nil
	}
	return j.Writable(ctx)
}

// doctorLock is an advisory lock key no contact's digest gives in practice ("figdoctr").
const doctorLock = 0x666967646f637472

// Stats are counts of what the journal holds, for metrics and readiness.
type Stats struct {
	Pending       int       // queued, running, failed or incomplete
	OldestPending time.Time // zero when none
}

// Stats counts the pending runs and finds the oldest.
func (j *Journal) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	var oldest sql.NullInt64
	err := j.db.QueryRowContext(ctx, `SELECT COUNT(*), MIN(created_at) FROM requests WHERE status IN (?, ?, ?, ?) AND archived = 0`,
		chain.StatusQueued, chain.StatusRunning, chain.StatusFailed, chain.StatusIncomplete).Scan(&s.Pending, &oldest)
	if err != nil {
		return s, fmt.Errorf("journal: stats: %w", err)
	}
	if oldest.Valid {
		s.OldestPending = time.UnixMilli(oldest.Int64).UTC()
	}
	return s, nil
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

const selectRun = `SELECT id, key, hash, email, status, request, response, attempts, last_error, failure, ticket_id,
	created_at, updated_at, expires_at, owner, lease_until, archived FROM requests`

type scanner interface{ Scan(...any) error }

func scanRun(s scanner) (*chain.Run, error) {
	var r chain.Run
	var req, failure string
	var resp sql.NullString
	var c, u, e, l int64
	err := s.Scan(&r.ID, &r.Key, &r.Hash, &r.Email, &r.Status, &req, &resp, &r.Attempts, &r.LastError, &failure, &r.TicketID,
		&c, &u, &e, &r.Owner, &l, &r.Archived)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, chain.ErrRunNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("journal: read run: %w", err)
	}
	r.Request = json.RawMessage(req)
	if resp.Valid {
		r.Response = json.RawMessage(resp.String)
	}
	r.Failure = chain.Failure(failure)
	r.CreatedAt, r.UpdatedAt, r.ExpiresAt = time.UnixMilli(c).UTC(), time.UnixMilli(u).UTC(), time.UnixMilli(e).UTC()
	if l > 0 {
		r.LeaseUntil = time.UnixMilli(l).UTC()
	}
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
