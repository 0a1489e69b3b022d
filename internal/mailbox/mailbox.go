// Package mailbox reads the support mailbox: each unread message, oldest first, is streamed to a
// handler (the chain, through payload.ParseEmail), then marked read or moved once the handler is
// done with it. Two sources: IMAP (go-imap v2; implicit TLS or STARTTLS; LOGIN or XOAUTH2) and
// Microsoft Graph (/users/{mailbox}/mailFolders/{folder}/messages, the raw message from /$value).
//
// The guarantees, whichever source:
//   - a message is marked (\Seen, or moved to the processed folder) only after the handler returned
//     success; after a failure it is left unread and handed over again on the next pass;
//   - nothing here prevents a message from being handed over twice (a crash, or a lost connection,
//     between the handler's success and the mark): the handler must be idempotent — the chain's
//     journal keys an e-mail by its Message-ID and answers a repeat with "replayed": true, which is
//     a success like any other, so the message is then marked;
//   - a message the handler rejects (Reject: unreadable, too large, a Message-ID reused for another
//     message) is never retried: it is moved to the rejected folder when one is configured, else
//     marked read and flagged for a person to look at;
//   - a pass looks at a bounded number of messages; messages that failed before go after the new
//     ones, so a few failing messages cannot hold the queue (see State).
package mailbox

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/figurative/figsupport/internal/backoff"
	"github.com/figurative/figsupport/internal/health"
	"github.com/figurative/figsupport/internal/oauth"
)

// Sources (MAIL_SOURCE).
const (
	SourceIMAP  = "imap"
	SourceGraph = "graph"
)

// DefaultMaxPerPass bounds a pass when Config.MaxPerPass is zero (the package used alone).
const DefaultMaxPerPass = 50

// Status of one message after a pass.
const (
	StatusProcessed = "processed" // the handler succeeded (a replay included); the message was marked
	StatusSkipped   = "skipped"   // the handler chose to do nothing (an automatic message); marked like a processed one
	StatusRejected  = "rejected"  // never processable: moved to the rejected folder, or marked read and flagged
	StatusFailed    = "failed"    // left unread: the next pass hands it over again
	StatusPending   = "pending"   // dry run: would be handed over
	StatusGone      = "gone"      // no longer in the folder when its turn came (moved or deleted meanwhile)
)

// Handler runs one raw RFC 5322 message. It returns the outcome of a message it is done with (its
// error nil), an error wrapped by Reject for a message that can never be processed, or any other
// error for a failure worth retrying. It must be idempotent: the same message may come again.
type Handler func(ctx context.Context, raw io.Reader) (Outcome, error)

// Outcome is what the handler did with a message.
type Outcome struct {
	// Status is StatusProcessed (the default when empty) or StatusSkipped.
	Status    string
	RequestID string
	TicketID  string
	Replayed  bool // an earlier pass (or another entry point) had processed it already
}

// ErrRejected marks the errors of messages that can never be processed.
var ErrRejected = errors.New("message rejected")

type rejected struct{ err error }

func (r rejected) Error() string   { return r.err.Error() }
func (r rejected) Unwrap() []error { return []error{r.err, ErrRejected} }

// Reject wraps err to say the message can never be processed: the poller moves it aside instead
// of retrying it.
func Reject(err error) error {
	if err == nil {
		err = errors.New("rejected")
	}
	return rejected{err}
}

// ErrFolder is returned (wrapped) when a configured folder does not exist: configuration to fix.
var ErrFolder = errors.New("no such folder")

// ConfigError names the configuration key at fault; New returns it.
type ConfigError struct {
	Key string
	Msg string
}

func (e *ConfigError) Error() string { return e.Key + ": " + e.Msg }

func configErr(key, format string, a ...any) error {
	return &ConfigError{Key: key, Msg: fmt.Sprintf(format, a...)}
}

// FolderError is a configured folder the mailbox does not have (errors.Is(err, ErrFolder)).
type FolderError struct {
	Key    string // MAIL_FOLDER, MAIL_PROCESSED_FOLDER or MAIL_REJECTED_FOLDER
	Folder string
	Err    error // the server's answer
}

func (e *FolderError) Error() string {
	return fmt.Sprintf("%s %q: no such folder in the mailbox (%v)", e.Key, e.Folder, e.Err)
}

func (e *FolderError) Unwrap() []error { return []error{e.Err, ErrFolder} }

// AuthError is the server refusing our login (IMAP LOGIN or AUTHENTICATE); the CLI exits 4 on it.
type AuthError struct {
	Server string
	User   string
	Mech   string
	Err    error
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("%s refused %s for %s: %v%s", e.Server, e.Mech, e.User, e.Err, authHint(e.Mech))
}

func (e *AuthError) Unwrap() error { return e.Err }

// Credentials is true: the server refused our credentials.
func (e *AuthError) Credentials() bool { return true }

func authHint(mech string) string {
	if mech == "XOAUTH2" {
		return " — the app needs the IMAP.AccessAsApp permission (admin consent), a service principal in Exchange (New-ServicePrincipal) and FullAccess on the mailbox (Add-MailboxPermission)"
	}
	return ""
}

// Config is a mailbox reader's set-up as plain values.
type Config struct {
	Source string // SourceIMAP or SourceGraph (MAIL_SOURCE)
	IMAP   IMAPConfig
	Graph  GraphConfig
	OAuth  oauth.Config // IMAP XOAUTH2 and Graph
	// Folder is read (MAIL_FOLDER); default INBOX. Graph takes well-known names (inbox) and paths
	// of display names separated by "/" (Inbox/Support).
	Folder string
	// ProcessedFolder receives handled messages (MAIL_PROCESSED_FOLDER); empty: they are marked
	// read and stay where they are.
	ProcessedFolder string
	// RejectedFolder receives rejected messages (MAIL_REJECTED_FOLDER); empty: they are marked read
	// and flagged.
	RejectedFolder string
	MaxPerPass     int // MAIL_MAX_PER_PASS; default DefaultMaxPerPass
	// State remembers failed messages between passes; nil: in memory only (one process's passes).
	State State
	Retry *backoff.Policy // Graph throttling; default backoff.Default
	// Sleep waits between Graph attempts (backoff.Sleep when nil); tests record the waits instead.
	Sleep func(ctx context.Context, d time.Duration) error
	Log   *slog.Logger
	Now   func() time.Time
}

// Summary is the outcome of one pass: the `mail poll -o json` contract.
type Summary struct {
	Source  string `json:"source"`  // imap or graph
	Mailbox string `json:"mailbox"` // user@host/folder (IMAP), user/folder (Graph)
	DryRun  bool   `json:"dry_run"`
	// Generation is the folder's UIDVALIDITY (IMAP) or id (Graph) the message ids belong to.
	Generation string `json:"generation"`
	// GenerationChanged: the folder's ids were renumbered since the last pass (UIDVALIDITY changed,
	// or the folder was recreated): what was remembered about failed messages was dropped.
	GenerationChanged bool `json:"generation_changed"`
	Processed         int  `json:"processed"`
	Skipped           int  `json:"skipped"`
	Rejected          int  `json:"rejected"`
	Failed            int  `json:"failed"`
	Pending           int  `json:"pending"`
	// More: unread messages are left for the next pass (MaxPerPass reached).
	More     bool      `json:"more"`
	Messages []Message `json:"messages"`
}

// Message is one message of a pass.
type Message struct {
	ID        string    `json:"id"` // IMAP UID or Graph message id, within Generation
	MessageID string    `json:"message_id,omitempty"`
	From      string    `json:"from,omitempty"`
	Subject   string    `json:"subject,omitempty"`
	Date      time.Time `json:"date,omitzero"`
	Size      int64     `json:"size,omitempty"` // bytes; 0 when the source does not say (Graph)
	Status    string    `json:"status"`
	// Action is what was done to the message in the mailbox: "seen", "moved to F", "flagged", or
	// "" (left unread).
	Action    string `json:"action,omitempty"`
	RequestID string `json:"request_id,omitempty"`
	TicketID  string `json:"ticket_id,omitempty"`
	Replayed  bool   `json:"replayed"`
	// Attempts counts the passes that handed this message over, this one included.
	Attempts int    `json:"attempts"`
	Error    string `json:"error,omitempty"`
}

// PassOptions vary one pass.
type PassOptions struct {
	Limit  int  // messages looked at; 0: Config.MaxPerPass
	DryRun bool // list what would be handed over; open the folder read-only, call nothing, mark nothing
}

// source is IMAP or Graph.
type source interface {
	kind() string
	name() string
	// open connects and opens the folder (read-only: nothing may be changed through the session).
	open(ctx context.Context, readOnly bool) (session, error)
	// check verifies access without changing anything.
	check(ctx context.Context) []health.Check
}

// session is one pass's connection to the folder.
type session interface {
	// generation identifies the numbering of the folder's message ids (IMAP UIDVALIDITY).
	generation() string
	// list returns up to limit unread messages, oldest first, those for which retry is false
	// before the others; more says unread messages were left out.
	list(ctx context.Context, limit int, retry func(id string) bool) (msgs []Message, more bool, err error)
	// fetch streams the raw message to fn; errGone when it is no longer there.
	fetch(ctx context.Context, id string, fn func(io.Reader) error) error
	// done marks a handled message (read, or moved to the processed folder); the action taken.
	done(ctx context.Context, id string) (string, error)
	// reject sets a rejected message aside (the rejected folder, or read and flagged).
	reject(ctx context.Context, id string) (string, error)
	close() error
}

var errGone = errors.New("no longer in the folder")

// Poller reads one mailbox. Its passes run one at a time.
type Poller struct {
	src   source
	cfg   Config
	state State
	mu    sync.Mutex
}

// New checks cfg and returns the poller. It does no I/O.
func New(cfg Config) (*Poller, error) {
	if cfg.Folder = strings.TrimSpace(cfg.Folder); cfg.Folder == "" {
		cfg.Folder = "INBOX"
	}
	cfg.ProcessedFolder = strings.TrimSpace(cfg.ProcessedFolder)
	cfg.RejectedFolder = strings.TrimSpace(cfg.RejectedFolder)
	if cfg.ProcessedFolder != "" && strings.EqualFold(cfg.ProcessedFolder, cfg.Folder) {
		return nil, configErr("MAIL_PROCESSED_FOLDER", "is the folder being read (MAIL_FOLDER)")
	}
	if cfg.RejectedFolder != "" && strings.EqualFold(cfg.RejectedFolder, cfg.Folder) {
		return nil, configErr("MAIL_REJECTED_FOLDER", "is the folder being read (MAIL_FOLDER)")
	}
	if cfg.MaxPerPass <= 0 {
		cfg.MaxPerPass = DefaultMaxPerPass
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p := &Poller{cfg: cfg, state: cfg.State}
	if p.state == nil {
		p.state = NewMemoryState()
	}
	var err error
	switch strings.ToLower(strings.TrimSpace(cfg.Source)) {
	case SourceIMAP:
		p.src, err = newIMAP(cfg)
	case SourceGraph:
		p.src, err = newGraph(cfg)
	case "":
		return nil, configErr("MAIL_SOURCE", "not set: want imap or graph")
	default:
		return nil, configErr("MAIL_SOURCE", "want imap or graph, got %q", cfg.Source)
	}
	if err != nil {
		return nil, err
	}
	return p, nil
}

// Kind is the source: imap or graph.
func (p *Poller) Kind() string { return p.src.kind() }

// Name is the mailbox and folder read, for logs.
func (p *Poller) Name() string { return p.src.name() }

// Check verifies the login, the folder and the move targets without changing anything (the folder
// is opened read-only), for doctor.
func (p *Poller) Check(ctx context.Context) []health.Check { return p.src.check(ctx) }

// Poll runs one pass: up to the limit, each unread message (new ones first, oldest first) is
// streamed to h, then marked after success, set aside after a rejection, left unread after a
// failure. The returned error is the pass's own (connecting, logging in, listing, or a connection
// lost midway: the messages not reached wait for the next pass); a message's failure is in the
// Summary, never in the error. The Summary is returned even with an error.
func (p *Poller) Poll(ctx context.Context, h Handler, o PassOptions) (*Summary, error) {
	if h == nil && !o.DryRun {
		return nil, errors.New("mailbox: Poll needs a handler")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	sum := &Summary{Source: p.src.kind(), Mailbox: p.src.name(), DryRun: o.DryRun, Messages: []Message{}}
	limit := o.Limit
	if limit <= 0 {
		limit = p.cfg.MaxPerPass
	}
	s, err := p.src.open(ctx, o.DryRun)
	if err != nil {
		return sum, err
	}
	defer s.close()

	key := p.src.kind() + ":" + p.src.name()
	st, err := p.state.Load(key)
	if err != nil {
		// Losing the order of retries is no reason to stop reading mail.
		p.cfg.Log.Warn("mailbox state unreadable: starting afresh", "err", err)
		st = Folder{}
	}
	sum.Generation = s.generation()
	if st.Generation != sum.Generation {
		// The ids remembered belong to another numbering of the folder: they mean nothing now. Every
		// unread message is new again; the ones processed before are replayed by the handler.
		sum.GenerationChanged = st.Generation != ""
		if sum.GenerationChanged {
			p.cfg.Log.Warn("mailbox folder renumbered: forgetting failed messages", "mailbox", sum.Mailbox, "was", st.Generation, "now", sum.Generation)
		}
		st = Folder{Generation: sum.Generation}
	}
	if st.Failed == nil {
		st.Failed = map[string]Failure{}
	}
	msgs, more, err := s.list(ctx, limit, func(id string) bool { return st.Failed[id].Attempts > 0 })
	if err != nil {
		return sum, err
	}
	sum.More = more
	var passErr error
	for _, m := range msgs {
		m.Attempts = st.Failed[m.ID].Attempts + 1
		if o.DryRun {
			m.Status = StatusPending
			m.Attempts--
			sum.add(m)
			continue
		}
		if passErr != nil || ctx.Err() != nil {
			break // not reached: the next pass
		}
		m, passErr = p.one(ctx, s, h, m)
		switch m.Status {
		case StatusFailed:
			st.Failed[m.ID] = Failure{Attempts: m.Attempts, Last: p.cfg.Now().UTC(), Error: m.Error}
		default:
			delete(st.Failed, m.ID)
		}
		sum.add(m)
	}
	if !o.DryRun {
		st.prune(p.cfg.Now())
		if err := p.state.Save(key, st); err != nil {
			p.cfg.Log.Warn("mailbox state not saved", "err", err)
		}
	}
	if passErr == nil && ctx.Err() != nil && !o.DryRun && len(sum.Messages) < len(msgs) {
		passErr = fmt.Errorf("mailbox: pass stopped: %w", ctx.Err())
	}
	return sum, passErr
}

func (s *Summary) add(m Message) {
	switch m.Status {
	case StatusProcessed:
		s.Processed++
	case StatusSkipped:
		s.Skipped++
	case StatusRejected:
		s.Rejected++
	case StatusFailed:
		s.Failed++
	case StatusPending:
		s.Pending++
	}
	s.Messages = append(s.Messages, m)
}

// one hands one message over and marks it. The error is returned only when the session is unusable
// (the pass stops there).
func (p *Poller) one(ctx context.Context, s session, h Handler, m Message) (Message, error) {
	log := p.cfg.Log.With("mailbox", p.src.name(), "id", m.ID, "message_id", m.MessageID)
	var out Outcome
	var herr error
	called := false
	err := s.fetch(ctx, m.ID, func(r io.Reader) error {
		called = true
		out, herr = h(ctx, r)
		return herr
	})
	switch {
	case errors.Is(err, errGone):
		m.Status = StatusGone
		m.Attempts--
		return m, nil
	case !called && err != nil:
		// The message could not be read: the connection is gone, or the server refused.
		m.Status, m.Error = StatusFailed, err.Error()
		return m, err
	case herr != nil && errors.Is(herr, ErrRejected):
		m.Status, m.Error = StatusRejected, herr.Error()
		log.Warn("message rejected", "err", herr)
		action, rerr := s.reject(ctx, m.ID)
		if rerr != nil {
			// Not set aside: it comes again, and is rejected again.
			m.Error += "; setting it aside failed: " + rerr.Error()
			return m, rerr
		}
		m.Action = action
		return m, nil
	case herr != nil:
		m.Status, m.Error = StatusFailed, herr.Error()
		log.Warn("message failed: left unread for the next pass", "err", herr, "attempt", m.Attempts)
		return m, ifBroken(ctx, err, herr)
	case err != nil:
		// The handler succeeded but the end of the response was lost: the mark below decides.
		log.Debug("fetch ended with an error after the handler", "err", err)
	}
	m.Status = StatusProcessed
	if out.Status == StatusSkipped {
		m.Status = StatusSkipped
	}
	m.RequestID, m.TicketID, m.Replayed = out.RequestID, out.TicketID, out.Replayed
	var action string
	derr := ctx.Err() // stopping: the connection is closing; the next pass replays and marks it
	if derr == nil {
		action, derr = s.done(ctx, m.ID)
	}
	if derr != nil {
		// Processed but not marked: it comes again on the next pass, and the handler replays it.
		m.Status = StatusFailed
		m.Error = "handled, but marking it failed (the next pass replays it and marks it): " + derr.Error()
		log.Warn("message handled but not marked", "err", derr)
		return m, derr
	}
	m.Action = action
	log.Info("message handled", "status", m.Status, "request_id", m.RequestID, "replayed", m.Replayed, "action", action)
	return m, nil
}

// ifBroken returns the fetch's error when the session cannot go on after a handler's failure (the
// context ended, or the stream broke); nil when the next message can be read.
func ifBroken(ctx context.Context, fetchErr, handlerErr error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if fetchErr != nil && !errors.Is(fetchErr, handlerErr) {
		return fetchErr
	}
	return nil
}

// pick orders ids for a pass: those not retried first, then the retried ones, each group in the
// given (arrival) order, limit in all; more reports ids left out.
func pick(ids []string, limit int, retry func(string) bool) (out []string, more bool) {
	var again []string
	for _, id := range ids {
		if retry != nil && retry(id) {
			again = append(again, id)
		} else if len(out) < limit {
			out = append(out, id)
		}
	}
	for _, id := range again {
		if len(out) < limit {
			out = append(out, id)
		}
	}
	return out, len(ids) > len(out)
}
