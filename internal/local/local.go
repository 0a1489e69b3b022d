// Package local is the embedded CRM and task tracker: the same behaviour as HubSpot and ClickUp,
// kept in the data dir's SQLite file, so a machine with no account runs the whole chain.
//
// The SQL is kept portable where that costs nothing, for the PostgreSQL store to come: one
// placeholder style (?), no SQLite-only function, ids bound as integers, new rows' ids read with
// RETURNING. What is still SQLite's own is in the schema (migrations) alone.
package local

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/health"
	"github.com/figurative/figsupport/internal/postgres"
	"github.com/figurative/figsupport/internal/sqlite"
)

// migrations are append-only: never edit one that has shipped.
var migrations = []string{
	`CREATE TABLE contacts (
		id         INTEGER PRIMARY KEY AUTOINCREMENT,
		email      TEXT NOT NULL UNIQUE,
		firstname  TEXT NOT NULL DEFAULT '',
		lastname   TEXT NOT NULL DEFAULT '',
		created_at INTEGER NOT NULL
	);
	CREATE TABLE tickets (
		id                 INTEGER PRIMARY KEY AUTOINCREMENT,
		contact_id         INTEGER NOT NULL REFERENCES contacts(id),
		subject            TEXT NOT NULL,
		content            TEXT NOT NULL,
		classification     TEXT NOT NULL DEFAULT '',
		pipeline           TEXT NOT NULL,
		stage              TEXT NOT NULL,
		fichiers_urls      TEXT NOT NULL DEFAULT '',
		clickup_subtask_id TEXT NOT NULL DEFAULT '',
		created_at         INTEGER NOT NULL,
		last_activity      INTEGER NOT NULL
	);
	CREATE INDEX tickets_contact ON tickets(contact_id, last_activity);
	CREATE TABLE notes (
		id         INTEGER PRIMARY KEY AUTOINCREMENT,
		ticket_id  INTEGER REFERENCES tickets(id),
		contact_id INTEGER REFERENCES contacts(id),
		title      TEXT NOT NULL,
		body       TEXT NOT NULL,
		files      TEXT NOT NULL DEFAULT '',
		timestamp  INTEGER NOT NULL,
		created_at INTEGER NOT NULL
	);
	CREATE TABLE subtasks (
		id         INTEGER PRIMARY KEY AUTOINCREMENT,
		ref        TEXT NOT NULL DEFAULT '', -- the request it was made for (SubtaskInput.Ref)
		name       TEXT NOT NULL,
		markdown   TEXT NOT NULL,
		created_at INTEGER NOT NULL,
		updated_at INTEGER NOT NULL
	);`,
	// Threading's last activity, as on HubSpot: the customer's last message (written by every
	// follow-up, at the customer's time) and what people did to the ticket (a stage change).
	// last_activity stays the later of the two, kept in the row so that the threading query reads
	// it from the index. Notes no longer move it: a ticket's notes are not all customer messages.
	// Until now last_activity was the customer's last message, so it seeds last_message_at.
	`ALTER TABLE tickets ADD COLUMN last_message_at INTEGER NOT NULL DEFAULT 0;
	ALTER TABLE tickets ADD COLUMN agent_activity_at INTEGER NOT NULL DEFAULT 0;
	UPDATE tickets SET last_message_at = last_activity;
	CREATE INDEX notes_ticket ON notes(ticket_id, timestamp);
	CREATE INDEX notes_contact ON notes(contact_id, timestamp);
	CREATE INDEX subtasks_ref ON subtasks(ref);`,
}

// pgMigrations are the same tables on PostgreSQL, for several daemons sharing one database.
var pgMigrations = []string{
	`CREATE TABLE contacts (
		id         BIGSERIAL PRIMARY KEY,
		email      TEXT NOT NULL UNIQUE,
		firstname  TEXT NOT NULL DEFAULT '',
		lastname   TEXT NOT NULL DEFAULT '',
		created_at BIGINT NOT NULL
	);
	CREATE TABLE tickets (
		id                 BIGSERIAL PRIMARY KEY,
		contact_id         BIGINT NOT NULL REFERENCES contacts(id),
		subject            TEXT NOT NULL,
		content            TEXT NOT NULL,
		classification     TEXT NOT NULL DEFAULT '',
		pipeline           TEXT NOT NULL,
		stage              TEXT NOT NULL,
		fichiers_urls      TEXT NOT NULL DEFAULT '',
		clickup_subtask_id TEXT NOT NULL DEFAULT '',
		created_at         BIGINT NOT NULL,
		last_activity      BIGINT NOT NULL,
		last_message_at    BIGINT NOT NULL DEFAULT 0,
		agent_activity_at  BIGINT NOT NULL DEFAULT 0
	);
	CREATE INDEX tickets_contact ON tickets(contact_id, last_activity);
	CREATE TABLE notes (
		id         BIGSERIAL PRIMARY KEY,
		ticket_id  BIGINT REFERENCES tickets(id),
		contact_id BIGINT REFERENCES contacts(id),
		title      TEXT NOT NULL,
		body       TEXT NOT NULL,
		files      TEXT NOT NULL DEFAULT '',
		timestamp  BIGINT NOT NULL,
		created_at BIGINT NOT NULL
	);
	CREATE INDEX notes_ticket ON notes(ticket_id, timestamp);
	CREATE INDEX notes_contact ON notes(contact_id, timestamp);
	CREATE TABLE subtasks (
		id         BIGSERIAL PRIMARY KEY,
		ref        TEXT NOT NULL DEFAULT '',
		name       TEXT NOT NULL,
		markdown   TEXT NOT NULL,
		created_at BIGINT NOT NULL,
		updated_at BIGINT NOT NULL
	);
	CREATE INDEX subtasks_ref ON subtasks(ref);`,
}

// Config is the embedded CRM's pipeline, with the same stage ids as HubSpot's default help desk.
type Config struct {
	Pipeline    string // "0"
	StageNew    string // "1"
	StageClosed string // "4"
	// TicketURLBase prefixes ticket ids in URLs; default "figsupport://tickets/".
	TicketURLBase string
	// TaskURLBase prefixes subtask ids in URLs; default "figsupport://subtasks/".
	TaskURLBase string
}

// The statements of the request path, prepared once at Open. Every one reaches its rows through
// the primary key or an index (TestQueryPlans checks); ids are bound as integers, never compared
// as text.
const (
	ticketCols = `id, contact_id, subject, classification, stage, fichiers_urls, clickup_subtask_id, last_activity`

	qContactByEmail = `SELECT id FROM contacts WHERE email = ?`
	qContactInsert  = `INSERT INTO contacts(email, firstname, lastname, created_at) VALUES(?, ?, ?, ?)
		ON CONFLICT(email) DO NOTHING RETURNING id`
	qTicketByID   = `SELECT ` + ticketCols + ` FROM tickets WHERE id = ?`
	qTicketInsert = `INSERT INTO tickets(contact_id, subject, content, classification, pipeline, stage, fichiers_urls, created_at, last_message_at, last_activity)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING ` + ticketCols
	qTicketCreated = `SELECT ` + ticketCols + ` FROM tickets WHERE contact_id = ? AND subject = ? AND content = ? AND created_at >= ?
		ORDER BY id DESC LIMIT 1`
	// A later message moves both times forward, an earlier one (a replayed request) neither.
	qTicketMessage = `UPDATE tickets SET
		last_message_at = CASE WHEN last_message_at < ? THEN ? ELSE last_message_at END,
		last_activity = CASE WHEN last_activity < ? THEN ? ELSE last_activity END
		WHERE id = ?`
	// Read and rewritten in one transaction, which SQLite's BEGIN IMMEDIATE (internal/sqlite)
	// makes a writer's from its start; on PostgreSQL the read locks the row (FOR UPDATE).
	qTicketFiles        = `SELECT fichiers_urls FROM tickets WHERE id = ?`
	qTicketMessageFiles = `UPDATE tickets SET
		last_message_at = CASE WHEN last_message_at < ? THEN ? ELSE last_message_at END,
		last_activity = CASE WHEN last_activity < ? THEN ? ELSE last_activity END,
		fichiers_urls = ?
		WHERE id = ?`
	qTicketSubtask = `UPDATE tickets SET clickup_subtask_id = ? WHERE id = ?`
	qTicketStage   = `UPDATE tickets SET stage = ?,
		agent_activity_at = CASE WHEN agent_activity_at < ? THEN ? ELSE agent_activity_at END,
		last_activity = CASE WHEN last_activity < ? THEN ? ELSE last_activity END
		WHERE id = ?`
	// The insert checks its ticket or contact exists in the same statement. The casts cost SQLite
	// nothing and spare PostgreSQL from typing a SELECT list's parameters as text.
	qNoteOnTicket = `INSERT INTO notes(ticket_id, title, body, files, timestamp, created_at)
		SELECT CAST(? AS BIGINT), ?, ?, ?, CAST(? AS BIGINT), CAST(? AS BIGINT)
		WHERE EXISTS (SELECT 1 FROM tickets WHERE id = ?) RETURNING id`
	qNoteOnContact = `INSERT INTO notes(contact_id, title, body, files, timestamp, created_at)
		SELECT CAST(? AS BIGINT), ?, ?, ?, CAST(? AS BIGINT), CAST(? AS BIGINT)
		WHERE EXISTS (SELECT 1 FROM contacts WHERE id = ?) RETURNING id`
	qNoteFoundOnTicket = `SELECT id FROM notes WHERE ticket_id = ? AND title = ? AND body = ? AND timestamp = ? AND created_at >= ?
		ORDER BY id DESC LIMIT 1`
	qNoteFoundOnContact = `SELECT id FROM notes WHERE contact_id = ? AND ticket_id IS NULL AND title = ? AND body = ? AND timestamp = ? AND created_at >= ?
		ORDER BY id DESC LIMIT 1`
	qSubtaskInsert = `INSERT INTO subtasks(ref, name, markdown, created_at, updated_at) VALUES(?, ?, ?, ?, ?) RETURNING id`
	qSubtaskByRef  = `SELECT id FROM subtasks WHERE ref = ? AND name = ? ORDER BY id DESC LIMIT 1`
	// The block is appended unless its marker is already anywhere in the description: a repeat
	// after a lost answer adds nothing even when other blocks came since. LIKE, not instr():
	// markers hold no wildcard, and LIKE is in every SQL.
	qSubtaskAppend = `UPDATE subtasks SET markdown = CASE WHEN markdown = '' THEN ? ELSE markdown || ? END, updated_at = ?
		WHERE id = ? AND (? = '' OR markdown NOT LIKE ?)`
	qSubtaskExists   = `SELECT 1 FROM subtasks WHERE id = ?`
	qSubtaskMarkdown = `SELECT markdown FROM subtasks WHERE id = ?`
	qSubtaskReplace  = `UPDATE subtasks SET markdown = ?, updated_at = ? WHERE id = ?`
	qNotesOfTicket   = `SELECT id, ticket_id, contact_id, title, body, files, timestamp FROM notes WHERE ticket_id = ? ORDER BY id`
	qNotesOfContact  = `SELECT id, ticket_id, contact_id, title, body, files, timestamp FROM notes WHERE contact_id = ? ORDER BY id`
)

// qOpenTicket is the threading query for n open stages: the index (contact_id, last_activity)
// gives the contact's tickets active since then, most recent first, with no sort.
func qOpenTicket(n int) string {
	return `SELECT ` + ticketCols + ` FROM tickets WHERE contact_id = ? AND last_activity >= ? AND stage IN (?` +
		strings.Repeat(`, ?`, n-1) + `) ORDER BY last_activity DESC, id DESC LIMIT 1`
}

// statements are prepared once (database/sql then keeps one prepared copy per connection) and
// closed with the store.
var statements = []string{
	qContactByEmail, qContactInsert, qTicketByID, qTicketInsert, qTicketCreated, qTicketMessage, qTicketFiles,
	qTicketMessageFiles, qTicketSubtask, qTicketStage, qNoteOnTicket, qNoteOnContact, qNoteFoundOnTicket,
	qNoteFoundOnContact, qSubtaskInsert, qSubtaskByRef, qSubtaskAppend, qSubtaskExists, qSubtaskMarkdown,
	qSubtaskReplace, qNotesOfTicket, qNotesOfContact,
}

// Store is the embedded CRM and task tracker.
type Store struct {
	db    *sql.DB
	pg    bool // PostgreSQL: placeholders rebound, row locks where read-then-written
	cfg   Config
	now   func() time.Time
	stmts map[string]*sql.Stmt

	mu   sync.Mutex
	open map[int]*sql.Stmt // qOpenTicket by number of stages, prepared on first use
}

var (
	_ chain.CRM   = (*Store)(nil)
	_ chain.Tasks = (*Store)(nil)
)

// Open migrates the embedded tables in db (SQLite) and prepares the store's statements; Close
// releases them (the caller closes db).
func Open(ctx context.Context, db *sql.DB, cfg Config) (*Store, error) {
	if err := sqlite.Migrate(ctx, db, "local", migrations); err != nil {
		return nil, err
	}
	return newStore(ctx, db, false, cfg)
}

// OpenPostgres is Open on a PostgreSQL database shared by several daemons.
func OpenPostgres(ctx context.Context, db *sql.DB, cfg Config) (*Store, error) {
	if err := postgres.Migrate(ctx, db, "local", pgMigrations); err != nil {
		return nil, err
	}
	return newStore(ctx, db, true, cfg)
}

func newStore(ctx context.Context, db *sql.DB, pg bool, cfg Config) (*Store, error) {
	if cfg.Pipeline == "" {
		cfg.Pipeline = "0"
	}
	if cfg.StageNew == "" {
		cfg.StageNew = "1"
	}
	if cfg.StageClosed == "" {
		cfg.StageClosed = "4"
	}
	if cfg.TicketURLBase == "" {
		cfg.TicketURLBase = "figsupport://tickets/"
	}
	if cfg.TaskURLBase == "" {
		cfg.TaskURLBase = "figsupport://subtasks/"
	}
	s := &Store{db: db, pg: pg, cfg: cfg, now: time.Now, stmts: make(map[string]*sql.Stmt, len(statements)), open: map[int]*sql.Stmt{}}
	for _, q := range statements {
		text := q
		if pg && q == qTicketFiles {
			text += " FOR UPDATE"
		}
		st, err := db.PrepareContext(ctx, s.sql(text))
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("local: prepare %q: %w", firstLine(q), err)
		}
		s.stmts[q] = st
	}
	return s, nil
}

// Close releases the prepared statements.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, st := range s.stmts {
		errs = append(errs, st.Close())
	}
	for _, st := range s.open {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

func (s *Store) stmt(q string) *sql.Stmt { return s.stmts[q] }

// sql is q in the database's placeholders.
func (s *Store) sql(q string) string {
	if s.pg {
		return postgres.Rebind(q)
	}
	return q
}

func (s *Store) openStmt(ctx context.Context, n int) (*sql.Stmt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st, ok := s.open[n]; ok {
		return st, nil
	}
	st, err := s.db.PrepareContext(ctx, s.sql(qOpenTicket(n)))
	if err != nil {
		return nil, err
	}
	s.open[n] = st
	return st, nil
}

func firstLine(q string) string {
	q, _, _ = strings.Cut(q, "\n")
	return q
}

// SetClock replaces the store's clock (tests).
func (s *Store) SetClock(now func() time.Time) { s.now = now }

// parseID reads an object id. Ids are the decimal form of the integer key; anything else, "007"
// included, names no object.
func parseID(kind, id string) (int64, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n <= 0 || strconv.FormatInt(n, 10) != id {
		return 0, fmt.Errorf("local: %s %q: %w", kind, id, chain.ErrNotFound)
	}
	return n, nil
}

func notFound(kind string, id int64) error {
	return fmt.Errorf("local: %s %d: %w", kind, id, chain.ErrNotFound)
}

// FindOrCreateContact returns the contact with that e-mail, creating it if needed. A known
// contact costs one read: no write, so no wait for the database's write lock.
func (s *Store) FindOrCreateContact(ctx context.Context, email, name string) (chain.Contact, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	if c, err := s.FindContact(ctx, email); err != nil || c != nil {
		if c == nil {
			return chain.Contact{}, err
		}
		return *c, nil
	}
	first, last := chain.SplitName(name)
	var id int64
	err := s.stmt(qContactInsert).QueryRowContext(ctx, email, first, last, s.now().UnixMilli()).Scan(&id)
	switch {
	case err == nil:
		return chain.Contact{ID: strconv.FormatInt(id, 10), Email: email, Created: true}, nil
	case !errors.Is(err, sql.ErrNoRows):
		return chain.Contact{}, fmt.Errorf("local: create contact: %w", err)
	}
	// Created meanwhile by another process.
	c, err := s.FindContact(ctx, email)
	if err == nil && c == nil {
		err = fmt.Errorf("local: contact %s: %w", email, chain.ErrNotFound)
	}
	if err != nil {
		return chain.Contact{}, err
	}
	return *c, nil
}

// FindContact returns the contact with that e-mail, or nil; it never creates one.
func (s *Store) FindContact(ctx context.Context, email string) (*chain.Contact, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	var id int64
	err := s.stmt(qContactByEmail).QueryRowContext(ctx, email).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("local: find contact: %w", err)
	}
	return &chain.Contact{ID: strconv.FormatInt(id, 10), Email: email}, nil
}

func (s *Store) scanTicket(row interface{ Scan(...any) error }) (chain.Ticket, error) {
	var t chain.Ticket
	var id, contact, last int64
	var files string
	if err := row.Scan(&id, &contact, &t.Subject, &t.Classification, &t.Stage, &files, &t.SubtaskID, &last); err != nil {
		return t, err
	}
	t.ID = strconv.FormatInt(id, 10)
	t.ContactID = strconv.FormatInt(contact, 10)
	t.FileURLs = splitURLs(files)
	t.LastActivity = time.UnixMilli(last).UTC()
	t.URL = s.TicketURL(t.ID)
	return t, nil
}

// FindOpenTicket returns the contact's most recently active ticket in stages active since since.
func (s *Store) FindOpenTicket(ctx context.Context, contactID string, stages []string, since time.Time) (*chain.Ticket, error) {
	cid, err := parseID("contact", contactID)
	if len(stages) == 0 || err != nil {
		return nil, nil // no such contact: no ticket
	}
	st, err := s.openStmt(ctx, len(stages))
	if err != nil {
		return nil, fmt.Errorf("local: find open ticket: %w", err)
	}
	args := make([]any, 0, 2+len(stages))
	args = append(args, cid, since.UnixMilli())
	for _, stage := range stages {
		args = append(args, stage)
	}
	t, err := s.scanTicket(st.QueryRowContext(ctx, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("local: find open ticket: %w", err)
	}
	return &t, nil
}

// GetTicket reads a ticket by id.
func (s *Store) GetTicket(ctx context.Context, id string) (chain.Ticket, error) {
	n, err := parseID("ticket", id)
	if err != nil {
		return chain.Ticket{}, err
	}
	t, err := s.scanTicket(s.stmt(qTicketByID).QueryRowContext(ctx, n))
	if errors.Is(err, sql.ErrNoRows) {
		return chain.Ticket{}, notFound("ticket", n)
	}
	if err != nil {
		return chain.Ticket{}, fmt.Errorf("local: ticket %d: %w", n, err)
	}
	return t, nil
}

// CreateTicket creates a ticket in the new stage; its last activity is when the customer wrote.
// For a resumed run (in.MayExistSince) the ticket an earlier attempt made is returned instead.
func (s *Store) CreateTicket(ctx context.Context, in chain.TicketInput) (chain.Ticket, error) {
	cid, err := parseID("contact", in.ContactID)
	if err != nil {
		return chain.Ticket{}, err
	}
	if !in.MayExistSince.IsZero() {
		if t, err := s.FindCreatedTicket(ctx, in); err != nil || t != nil {
			if t == nil {
				return chain.Ticket{}, err
			}
			return *t, nil
		}
	}
	at := in.At
	if at.IsZero() {
		at = s.now()
	}
	t, err := s.scanTicket(s.stmt(qTicketInsert).QueryRowContext(ctx, cid, in.Subject, in.Content, in.Classification,
		s.cfg.Pipeline, s.cfg.StageNew, joinURLs(in.FileURLs), s.now().UnixMilli(), at.UnixMilli(), at.UnixMilli()))
	if err != nil {
		return chain.Ticket{}, fmt.Errorf("local: create ticket: %w", err)
	}
	return t, nil
}

// FindCreatedTicket looks for a ticket of the same contact, subject and content created since
// in.MayExistSince: an earlier attempt's. nil when there is none.
func (s *Store) FindCreatedTicket(ctx context.Context, in chain.TicketInput) (*chain.Ticket, error) {
	cid, err := parseID("contact", in.ContactID)
	if err != nil {
		return nil, nil
	}
	t, err := s.scanTicket(s.stmt(qTicketCreated).QueryRowContext(ctx, cid, in.Subject, in.Content, in.MayExistSince.UnixMilli()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("local: find ticket: %w", err)
	}
	return &t, nil
}

// UpdateTicket records a follow-up in one write: the time of the customer's message (never moved
// backwards, so replaying an old request changes nothing) and its file URLs appended, earlier ones
// kept and repeats dropped. A zero MessageAt leaves the times alone.
func (s *Store) UpdateTicket(ctx context.Context, ticketID string, u chain.TicketUpdate) error {
	id, err := parseID("ticket", ticketID)
	if err != nil {
		return err
	}
	at := u.MessageAt.UnixMilli()
	if u.MessageAt.IsZero() {
		at = 0 // never later than a stored time
	}
	if len(u.AddFileURLs) == 0 {
		res, err := s.stmt(qTicketMessage).ExecContext(ctx, at, at, at, at, id)
		return s.updated("ticket", id, res, err)
	}
	// The URLs are merged in Go (order kept, repeats dropped): read and write in one transaction,
	// which holds the write lock from its start.
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("local: update ticket %d: %w", id, err)
	}
	defer tx.Rollback()
	var cur string
	if err := tx.StmtContext(ctx, s.stmt(qTicketFiles)).QueryRowContext(ctx, id).Scan(&cur); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return notFound("ticket", id)
		}
		return fmt.Errorf("local: update ticket %d: %w", id, err)
	}
	merged := joinURLs(MergeURLs(splitURLs(cur), u.AddFileURLs))
	if _, err := tx.StmtContext(ctx, s.stmt(qTicketMessageFiles)).ExecContext(ctx, at, at, at, at, merged, id); err != nil {
		return fmt.Errorf("local: update ticket %d: %w", id, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("local: update ticket %d: %w", id, err)
	}
	return nil
}

// MergeURLs appends the new URLs not already present, keeping order.
func MergeURLs(cur, add []string) []string {
	out := slices.Clone(cur)
	for _, u := range add {
		if u != "" && !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out
}

// SetSubtaskID stores the subtask id on the ticket. figsupport's own bookkeeping: not activity.
func (s *Store) SetSubtaskID(ctx context.Context, ticketID, subtaskID string) error {
	id, err := parseID("ticket", ticketID)
	if err != nil {
		return err
	}
	res, err := s.stmt(qTicketSubtask).ExecContext(ctx, subtaskID, id)
	return s.updated("ticket", id, res, err)
}

// CloseTicket moves the ticket to the closed stage. A person's action, so it counts as the
// ticket's activity (at the store's clock), as an agent's stage change does on HubSpot.
func (s *Store) CloseTicket(ctx context.Context, ticketID string) error {
	id, err := parseID("ticket", ticketID)
	if err != nil {
		return err
	}
	now := s.now().UnixMilli()
	res, err := s.stmt(qTicketStage).ExecContext(ctx, s.cfg.StageClosed, now, now, now, now, id)
	return s.updated("ticket", id, res, err)
}

func (s *Store) updated(kind string, id int64, res sql.Result, err error) error {
	if err != nil {
		return fmt.Errorf("local: update %s %d: %w", kind, id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return notFound(kind, id)
	}
	return nil
}

// AddNote adds a note to a ticket or, when TicketID is empty, to a contact: one statement that
// also checks the ticket or contact exists. A note is not activity: UpdateTicket records the
// customer's message.
func (s *Store) AddNote(ctx context.Context, n chain.Note) (string, error) {
	at := n.At
	if at.IsZero() {
		at = s.now()
	}
	kind, insert, found, owner := "ticket", qNoteOnTicket, qNoteFoundOnTicket, n.TicketID
	if n.TicketID == "" {
		kind, insert, found, owner = "contact", qNoteOnContact, qNoteFoundOnContact, n.ContactID
	}
	if owner == "" {
		return "", errors.New("local: a note needs a ticket or a contact")
	}
	oid, err := parseID(kind, owner)
	if err != nil {
		return "", err
	}
	var id int64
	if !n.MayExistSince.IsZero() {
		err := s.stmt(found).QueryRowContext(ctx, oid, n.Title, n.Body, at.UnixMilli(), n.MayExistSince.UnixMilli()).Scan(&id)
		if err == nil {
			return strconv.FormatInt(id, 10), nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return "", fmt.Errorf("local: find note: %w", err)
		}
	}
	err = s.stmt(insert).QueryRowContext(ctx, oid, n.Title, n.Body, joinURLs(n.FileURLs), at.UnixMilli(), s.now().UnixMilli(), oid).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", notFound(kind, oid)
	}
	if err != nil {
		return "", fmt.Errorf("local: add note: %w", err)
	}
	return strconv.FormatInt(id, 10), nil
}

// TicketURL is where a person can see the ticket.
func (s *Store) TicketURL(ticketID string) string { return s.cfg.TicketURLBase + ticketID }

// CreateSubtask records a subtask; for a resumed run, the one an earlier run made for the same
// request is returned instead.
func (s *Store) CreateSubtask(ctx context.Context, in chain.SubtaskInput) (chain.Subtask, error) {
	var id int64
	if !in.MayExistSince.IsZero() && in.Ref != "" {
		err := s.stmt(qSubtaskByRef).QueryRowContext(ctx, in.Ref, in.Name).Scan(&id)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return chain.Subtask{}, fmt.Errorf("local: find subtask: %w", err)
		}
	}
	if id == 0 {
		now := s.now().UnixMilli()
		if err := s.stmt(qSubtaskInsert).QueryRowContext(ctx, in.Ref, in.Name, in.Markdown, now, now).Scan(&id); err != nil {
			return chain.Subtask{}, fmt.Errorf("local: create subtask: %w", err)
		}
	}
	return s.subtask(id), nil
}

func (s *Store) subtask(id int64) chain.Subtask {
	sid := strconv.FormatInt(id, 10)
	return chain.Subtask{ID: sid, URL: s.cfg.TaskURLBase + sid}
}

// AppendSubtask appends markdown to the subtask's description after a rule, marked with ref; a
// block whose ref is already anywhere in the description is not appended again. One statement.
func (s *Store) AppendSubtask(ctx context.Context, id, markdown, ref string) (chain.Subtask, error) {
	n, err := parseID("subtask", id)
	if err != nil {
		return chain.Subtask{}, err
	}
	block := strings.TrimSpace(markdown)
	if block == "" {
		if err := s.subtaskExists(ctx, n); err != nil {
			return chain.Subtask{}, err
		}
		return s.subtask(n), nil
	}
	marker := ""
	if ref != "" {
		marker = chain.BlockMarker(ref)
		block += "\n\n" + marker
	}
	res, err := s.stmt(qSubtaskAppend).ExecContext(ctx, block, "\n\n---\n\n"+block, s.now().UnixMilli(), n, marker, "%"+marker+"%")
	if err != nil {
		return chain.Subtask{}, fmt.Errorf("local: update subtask %d: %w", n, err)
	}
	if k, _ := res.RowsAffected(); k == 0 {
		// Either no such subtask, or the block is there already.
		if err := s.subtaskExists(ctx, n); err != nil {
			return chain.Subtask{}, err
		}
	}
	return s.subtask(n), nil
}

func (s *Store) subtaskExists(ctx context.Context, id int64) error {
	var one int
	err := s.stmt(qSubtaskExists).QueryRowContext(ctx, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return notFound("subtask", id)
	}
	if err != nil {
		return fmt.Errorf("local: subtask %d: %w", id, err)
	}
	return nil
}

// SubtaskURL is the subtask's figsupport:// link.
func (s *Store) SubtaskURL(id string) string { return s.cfg.TaskURLBase + id }

// SubtaskMarkdown reads a subtask's description (tests and the CLI).
func (s *Store) SubtaskMarkdown(ctx context.Context, id string) (string, error) {
	n, err := parseID("subtask", id)
	if err != nil {
		return "", err
	}
	var md string
	err = s.stmt(qSubtaskMarkdown).QueryRowContext(ctx, n).Scan(&md)
	if errors.Is(err, sql.ErrNoRows) {
		return "", notFound("subtask", n)
	}
	if err != nil {
		return "", fmt.Errorf("local: subtask %d: %w", n, err)
	}
	return md, nil
}

// UpdateDescription replaces the subtask's description (`subtask update --replace`).
func (s *Store) UpdateDescription(ctx context.Context, id, markdown string) (chain.Subtask, error) {
	n, err := parseID("subtask", id)
	if err != nil {
		return chain.Subtask{}, err
	}
	res, err := s.stmt(qSubtaskReplace).ExecContext(ctx, markdown, s.now().UnixMilli(), n)
	if err := s.updated("subtask", n, res, err); err != nil {
		return chain.Subtask{}, err
	}
	return s.subtask(n), nil
}

// NoteRecord is a stored note (tests and the CLI).
type NoteRecord struct {
	ID, TicketID, ContactID, Title, Body string
	Files                                []string
	Timestamp                            time.Time
}

// Notes lists the notes on a ticket or, when ticketID is empty, on a contact, oldest first.
func (s *Store) Notes(ctx context.Context, ticketID, contactID string) ([]NoteRecord, error) {
	kind, q, owner := "ticket", qNotesOfTicket, ticketID
	if ticketID == "" {
		kind, q, owner = "contact", qNotesOfContact, contactID
	}
	oid, err := parseID(kind, owner)
	if err != nil {
		return nil, nil // no such owner: no notes
	}
	rows, err := s.stmt(q).QueryContext(ctx, oid)
	if err != nil {
		return nil, fmt.Errorf("local: notes: %w", err)
	}
	defer rows.Close()
	var out []NoteRecord
	for rows.Next() {
		var n NoteRecord
		var id, ts int64
		var ticket, contact sql.NullInt64
		var files string
		if err := rows.Scan(&id, &ticket, &contact, &n.Title, &n.Body, &files, &ts); err != nil {
			return nil, fmt.Errorf("local: notes: %w", err)
		}
		n.ID, n.TicketID, n.ContactID = strconv.FormatInt(id, 10), nullID(ticket), nullID(contact)
		n.Files, n.Timestamp = splitURLs(files), time.UnixMilli(ts).UTC()
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("local: notes: %w", err)
	}
	return out, nil
}

func nullID(v sql.NullInt64) string {
	if !v.Valid {
		return ""
	}
	return strconv.FormatInt(v.Int64, 10)
}

// Counts reports how many contacts, tickets, notes and subtasks exist (tests and doctor).
func (s *Store) Counts(ctx context.Context) (contacts, tickets, notes, subtasks int, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM contacts), (SELECT COUNT(*) FROM tickets),
		(SELECT COUNT(*) FROM notes), (SELECT COUNT(*) FROM subtasks)`).Scan(&contacts, &tickets, &notes, &subtasks)
	if err != nil {
		err = fmt.Errorf("local: count: %w", err)
	}
	return
}

// Check reports the embedded store for doctor.
func (s *Store) Check(ctx context.Context) []health.Check {
	c, t, n, st, err := s.Counts(ctx)
	if err != nil {
		return []health.Check{{Service: "embedded", Name: "database", Status: health.Fail, Detail: err.Error()}}
	}
	return []health.Check{{Service: "embedded", Name: "crm and tasks", Status: health.OK,
		Detail: fmt.Sprintf("%d contacts, %d tickets, %d notes, %d subtasks", c, t, n, st)}}
}

func splitURLs(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func joinURLs(u []string) string { return strings.Join(u, "\n") }
