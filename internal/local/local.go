// Package local is the embedded CRM and task tracker: the same behaviour as HubSpot and ClickUp,
// kept in the data dir's SQLite file, so a machine with no account runs the whole chain.
package local

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/health"
	"github.com/figurative/figsupport/internal/sqlite"
)

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

// Store is the embedded CRM and task tracker.
type Store struct {
	db  *sql.DB
	cfg Config
	now func() time.Time
}

var (
	_ chain.CRM   = (*Store)(nil)
	_ chain.Tasks = (*Store)(nil)
)

// Open migrates the embedded tables in db.
func Open(ctx context.Context, db *sql.DB, cfg Config) (*Store, error) {
	if err := sqlite.Migrate(ctx, db, "local", migrations); err != nil {
		return nil, err
	}
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
	return &Store{db: db, cfg: cfg, now: time.Now}, nil
}

// SetClock replaces the store's clock (tests).
func (s *Store) SetClock(now func() time.Time) { s.now = now }

// FindOrCreateContact returns the contact with that e-mail, creating it if needed.
func (s *Store) FindOrCreateContact(ctx context.Context, email, name string) (chain.Contact, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	first, last := chain.SplitName(name)
	res, err := s.db.ExecContext(ctx, `INSERT INTO contacts(email, firstname, lastname, created_at) VALUES(?, ?, ?, ?)
		ON CONFLICT(email) DO NOTHING`, email, first, last, s.now().UnixMilli())
	if err != nil {
		return chain.Contact{}, fmt.Errorf("local: create contact: %w", err)
	}
	n, _ := res.RowsAffected()
	var id int64
	if err := s.db.QueryRowContext(ctx, `SELECT id FROM contacts WHERE email = ?`, email).Scan(&id); err != nil {
		return chain.Contact{}, fmt.Errorf("local: find contact: %w", err)
	}
	return chain.Contact{ID: strconv.FormatInt(id, 10), Email: email, Created: n == 1}, nil
}

const selectTicket = `SELECT id, contact_id, subject, classification, stage, fichiers_urls, clickup_subtask_id, last_activity FROM tickets`

func (s *Store) scanTicket(row interface{ Scan(...any) error }) (chain.Ticket, error) {
	var t chain.Ticket
	var id, contact, last int64
	var files string
	if err := row.Scan(&id, &contact, &t.Subject, &t.Classification, &t.Stage, &files, &t.SubtaskID, &last); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return t, chain.ErrNotFound
		}
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
	if len(stages) == 0 {
		return nil, nil
	}
	args := []any{contactID, since.UnixMilli()}
	for _, st := range stages {
		args = append(args, st)
	}
	row := s.db.QueryRowContext(ctx, selectTicket+` WHERE contact_id = ? AND last_activity >= ? AND stage IN (?`+
		strings.Repeat(`, ?`, len(stages)-1)+`) ORDER BY last_activity DESC, id DESC LIMIT 1`, args...)
	t, err := s.scanTicket(row)
	if errors.Is(err, chain.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("local: find open ticket: %w", err)
	}
	return &t, nil
}

// GetTicket reads a ticket by id.
func (s *Store) GetTicket(ctx context.Context, id string) (chain.Ticket, error) {
	t, err := s.scanTicket(s.db.QueryRowContext(ctx, selectTicket+` WHERE CAST(id AS TEXT) = ?`, id))
	if err != nil {
		return t, fmt.Errorf("local: ticket %s: %w", id, err)
	}
	return t, nil
}

// CreateTicket creates a ticket in the new stage; its last activity is when the customer wrote.
func (s *Store) CreateTicket(ctx context.Context, in chain.TicketInput) (chain.Ticket, error) {
	at := in.At
	if at.IsZero() {
		at = s.now()
	}
	if !in.MayExistSince.IsZero() {
		if t, err := s.FindCreatedTicket(ctx, in); err != nil || t != nil {
			if t == nil {
				return chain.Ticket{}, err
			}
			return *t, nil
		}
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO tickets(contact_id, subject, content, classification, pipeline, stage, fichiers_urls, created_at, last_activity)
		VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)`, in.ContactID, in.Subject, in.Content, in.Classification, s.cfg.Pipeline, s.cfg.StageNew,
		joinURLs(in.FileURLs), s.now().UnixMilli(), at.UnixMilli())
	if err != nil {
		return chain.Ticket{}, fmt.Errorf("local: create ticket: %w", err)
	}
	id, _ := res.LastInsertId()
	return s.GetTicket(ctx, strconv.FormatInt(id, 10))
}

// FindCreatedTicket looks for a ticket of the same contact, subject and content created since
// in.MayExistSince: an earlier attempt's.
func (s *Store) FindCreatedTicket(ctx context.Context, in chain.TicketInput) (*chain.Ticket, error) {
	var id int64
	err := s.db.QueryRowContext(ctx, `SELECT id FROM tickets WHERE contact_id = ? AND subject = ? AND content = ? AND created_at >= ?
		ORDER BY id DESC LIMIT 1`, in.ContactID, in.Subject, in.Content, in.MayExistSince.UnixMilli()).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("local: find ticket: %w", err)
	}
	t, err := s.GetTicket(ctx, strconv.FormatInt(id, 10))
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// UpdateTicket records a follow-up: its file URLs appended. (The embedded CRM measures activity
// from its notes' timestamps.)
func (s *Store) UpdateTicket(ctx context.Context, ticketID string, u chain.TicketUpdate) error {
	if len(u.AddFileURLs) == 0 {
		return nil
	}
	return s.AppendFileURLs(ctx, ticketID, u.AddFileURLs)
}

// AppendFileURLs adds urls to fichiers_urls, keeping earlier ones and dropping repeats.
func (s *Store) AppendFileURLs(ctx context.Context, ticketID string, urls []string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("local: append files: %w", err)
	}
	defer tx.Rollback()
	var cur string
	if err := tx.QueryRowContext(ctx, `SELECT fichiers_urls FROM tickets WHERE CAST(id AS TEXT) = ?`, ticketID).Scan(&cur); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("local: ticket %s: %w", ticketID, chain.ErrNotFound)
		}
		return fmt.Errorf("local: append files: %w", err)
	}
	merged := MergeURLs(splitURLs(cur), urls)
	if _, err := tx.ExecContext(ctx, `UPDATE tickets SET fichiers_urls = ? WHERE CAST(id AS TEXT) = ?`, joinURLs(merged), ticketID); err != nil {
		return fmt.Errorf("local: append files: %w", err)
	}
	return tx.Commit()
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

// SetSubtaskID stores the subtask id on the ticket.
func (s *Store) SetSubtaskID(ctx context.Context, ticketID, subtaskID string) error {
	return s.update(ctx, ticketID, `UPDATE tickets SET clickup_subtask_id = ? WHERE CAST(id AS TEXT) = ?`, subtaskID, ticketID)
}

// CloseTicket moves the ticket to the closed stage.
func (s *Store) CloseTicket(ctx context.Context, ticketID string) error {
	return s.update(ctx, ticketID, `UPDATE tickets SET stage = ? WHERE CAST(id AS TEXT) = ?`, s.cfg.StageClosed, ticketID)
}

func (s *Store) update(ctx context.Context, ticketID, q string, args ...any) error {
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("local: update ticket %s: %w", ticketID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("local: ticket %s: %w", ticketID, chain.ErrNotFound)
	}
	return nil
}

// AddNote adds a note to a ticket (which counts as activity on it) or to a contact.
func (s *Store) AddNote(ctx context.Context, n chain.Note) (string, error) {
	at := n.At
	if at.IsZero() {
		at = s.now()
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return "", fmt.Errorf("local: add note: %w", err)
	}
	defer tx.Rollback()
	var ticket, contact any
	switch {
	case n.TicketID != "":
		ticket = n.TicketID
		res, err := tx.ExecContext(ctx, `UPDATE tickets SET last_activity = MAX(last_activity, ?) WHERE CAST(id AS TEXT) = ?`, at.UnixMilli(), n.TicketID)
		if err != nil {
			return "", fmt.Errorf("local: add note: %w", err)
		}
		if k, _ := res.RowsAffected(); k == 0 {
			return "", fmt.Errorf("local: ticket %s: %w", n.TicketID, chain.ErrNotFound)
		}
	case n.ContactID != "":
		contact = n.ContactID
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM contacts WHERE CAST(id AS TEXT) = ?`, n.ContactID).Scan(&one); err != nil {
			return "", fmt.Errorf("local: contact %s: %w", n.ContactID, chain.ErrNotFound)
		}
	default:
		return "", errors.New("local: a note needs a ticket or a contact")
	}
	if !n.MayExistSince.IsZero() {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM notes WHERE (ticket_id IS ? AND contact_id IS ?) AND title = ? AND body = ? AND timestamp = ?
			AND created_at >= ? ORDER BY id DESC LIMIT 1`, ticket, contact, n.Title, n.Body, at.UnixMilli(), n.MayExistSince.UnixMilli()).Scan(&id)
		if err == nil {
			return strconv.FormatInt(id, 10), nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return "", fmt.Errorf("local: find note: %w", err)
		}
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO notes(ticket_id, contact_id, title, body, files, timestamp, created_at) VALUES(?, ?, ?, ?, ?, ?, ?)`,
		ticket, contact, n.Title, n.Body, joinURLs(n.FileURLs), at.UnixMilli(), s.now().UnixMilli())
	if err != nil {
		return "", fmt.Errorf("local: add note: %w", err)
	}
	id, _ := res.LastInsertId()
	return strconv.FormatInt(id, 10), tx.Commit()
}

// TicketURL is where a person can see the ticket.
func (s *Store) TicketURL(ticketID string) string { return s.cfg.TicketURLBase + ticketID }

// CreateSubtask records a subtask; for a resumed run, the one an earlier run made for the same
// request is returned instead.
func (s *Store) CreateSubtask(ctx context.Context, in chain.SubtaskInput) (chain.Subtask, error) {
	var id int64
	if !in.MayExistSince.IsZero() && in.Ref != "" {
		err := s.db.QueryRowContext(ctx, `SELECT id FROM subtasks WHERE ref = ? AND name = ? ORDER BY id DESC LIMIT 1`, in.Ref, in.Name).Scan(&id)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return chain.Subtask{}, fmt.Errorf("local: find subtask: %w", err)
		}
	}
	if id == 0 {
		now := s.now().UnixMilli()
		res, err := s.db.ExecContext(ctx, `INSERT INTO subtasks(ref, name, markdown, created_at, updated_at) VALUES(?, ?, ?, ?, ?)`,
			in.Ref, in.Name, in.Markdown, now, now)
		if err != nil {
			return chain.Subtask{}, fmt.Errorf("local: create subtask: %w", err)
		}
		id, _ = res.LastInsertId()
	}
	sid := strconv.FormatInt(id, 10)
	return chain.Subtask{ID: sid, URL: s.cfg.TaskURLBase + sid}, nil
}

// AppendSubtask appends markdown to the subtask's description.
func (s *Store) AppendSubtask(ctx context.Context, id, markdown, ref string) (chain.Subtask, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE subtasks SET markdown = markdown || ? || ?, updated_at = ? WHERE CAST(id AS TEXT) = ?`,
		"\n\n---\n\n", markdown, s.now().UnixMilli(), id)
	if err != nil {
		return chain.Subtask{}, fmt.Errorf("local: update subtask: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return chain.Subtask{}, fmt.Errorf("local: subtask %s: %w", id, chain.ErrNotFound)
	}
	return chain.Subtask{ID: id, URL: s.cfg.TaskURLBase + id}, nil
}

// SubtaskURL is the subtask's figsupport:// link.
func (s *Store) SubtaskURL(id string) string { return s.cfg.TaskURLBase + id }

// SubtaskMarkdown reads a subtask's description (tests and the CLI).
func (s *Store) SubtaskMarkdown(ctx context.Context, id string) (string, error) {
	var md string
	err := s.db.QueryRowContext(ctx, `SELECT markdown FROM subtasks WHERE CAST(id AS TEXT) = ?`, id).Scan(&md)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("local: subtask %s: %w", id, chain.ErrNotFound)
	}
	return md, err
}

// NoteRecord is a stored note (tests and the CLI).
type NoteRecord struct {
	ID, TicketID, ContactID, Title, Body string
	Files                                []string
	Timestamp                            time.Time
}

// Notes lists the notes on a ticket or, when ticketID is empty, on a contact, oldest first.
func (s *Store) Notes(ctx context.Context, ticketID, contactID string) ([]NoteRecord, error) {
	col, id := "ticket_id", ticketID
	if ticketID == "" {
		col, id = "contact_id", contactID
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, COALESCE(ticket_id, ''), COALESCE(contact_id, ''), title, body, files, timestamp FROM notes
		WHERE CAST(`+col+` AS TEXT) = ? ORDER BY id`, id)
	if err != nil {
		return nil, fmt.Errorf("local: notes: %w", err)
	}
	defer rows.Close()
	var out []NoteRecord
	for rows.Next() {
		var n NoteRecord
		var files string
		var ts int64
		if err := rows.Scan(&n.ID, &n.TicketID, &n.ContactID, &n.Title, &n.Body, &files, &ts); err != nil {
			return nil, err
		}
		n.Files, n.Timestamp = splitURLs(files), time.UnixMilli(ts).UTC()
		out = append(out, n)
	}
	return out, rows.Err()
}

// Counts reports how many contacts, tickets, notes and subtasks exist (tests and doctor).
func (s *Store) Counts(ctx context.Context) (contacts, tickets, notes, subtasks int, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM contacts), (SELECT COUNT(*) FROM tickets),
		(SELECT COUNT(*) FROM notes), (SELECT COUNT(*) FROM subtasks)`).Scan(&contacts, &tickets, &notes, &subtasks)
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

// FindContact returns the contact with that e-mail, or nil; it never creates one.
func (s *Store) FindContact(ctx context.Context, email string) (*chain.Contact, error) {
	email = strings.ToLower(strings.TrimSpace(email))
	var id int64
	err := s.db.QueryRowContext(ctx, `SELECT id FROM contacts WHERE email = ?`, email).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("local: find contact: %w", err)
	}
	return &chain.Contact{ID: strconv.FormatInt(id, 10), Email: email}, nil
}

// UpdateDescription replaces the subtask's description (`subtask update --replace`).
func (s *Store) UpdateDescription(ctx context.Context, id, markdown string) (chain.Subtask, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE subtasks SET markdown = ?, updated_at = ? WHERE CAST(id AS TEXT) = ?`,
		markdown, s.now().UnixMilli(), id)
	if err != nil {
		return chain.Subtask{}, fmt.Errorf("local: update subtask: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return chain.Subtask{}, fmt.Errorf("local: subtask %s: %w", id, chain.ErrNotFound)
	}
	return chain.Subtask{ID: id, URL: s.cfg.TaskURLBase + id}, nil
}
