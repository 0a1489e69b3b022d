package chain

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/figurative/figsupport/internal/payload"
)

// Deps are the backends; cmd/ picks them.
type Deps struct {
	CRM        CRM
	Tasks      Tasks
	Files      Files
	Notifier   Notifier
	Classifier Classifier
	Journal    Journal
	// Ack, when set, acknowledges new tickets to the customer (off by default).
	Ack Acknowledger
	// Observer, when set, is told of every step the chain runs (metrics).
	Observer Observer
	Log      *slog.Logger
}

// Observer is told how long each step took and how it ended.
type Observer interface {
	StepDone(step string, d time.Duration, err error)
}

// Options are the chain's policy. cmd/ fills them from the configuration keys, whose table holds
// the defaults; zero values here take the same defaults, for the chain used on its own (tests).
type Options struct {
	OpenStages []string      // stages of an open ticket; default 1,2
	Window     time.Duration // a follow-up joins a ticket active this recently; default 14 days
	KeyTTL     time.Duration // how long an explicit request_id is remembered; default 7 days
	HashTTL    time.Duration // how long a payload hash is remembered; default 24 hours
	// MessageIDDomain is the domain of the Message-IDs figsupport writes; a message whose own
	// Message-ID is at this domain is one of ours. Default "figsupport.invalid".
	MessageIDDomain string
	// OwnAddresses are the addresses figsupport sends from: a message from one of them is ours.
	OwnAddresses []string
	// AckPerAddress acknowledgements at most go to one address within AckWindow; default 3 in 10 min.
	AckPerAddress int
	AckWindow     time.Duration
}

// DefaultOptions are the seed's rules.
var DefaultOptions = Options{
	OpenStages:      []string{"1", "2"},
	Window:          14 * 24 * time.Hour,
	KeyTTL:          7 * 24 * time.Hour,
	HashTTL:         24 * time.Hour,
	MessageIDDomain: "figsupport.invalid",
	AckPerAddress:   3,
	AckWindow:       10 * time.Minute,
}

// RunOptions change one run.
type RunOptions struct {
	Force bool // start a new run even if the key was seen
	// Recorded says the caller recorded the request already (Accept): Process does not again.
	Recorded bool
}

// StepError says which step of the chain failed; the request stays in the journal to be retried.
type StepError struct {
	Step string
	Err  error
}

func (e *StepError) Error() string { return e.Step + ": " + e.Err.Error() }
func (e *StepError) Unwrap() error { return e.Err }

// Chain runs requests.
type Chain struct {
	d Deps
	o Options
}

// New returns a chain; zero options take their defaults.
func New(d Deps, o Options) *Chain {
	if len(o.OpenStages) == 0 {
		o.OpenStages = DefaultOptions.OpenStages
	}
	if o.Window <= 0 {
		o.Window = DefaultOptions.Window
	}
	if o.KeyTTL <= 0 {
		o.KeyTTL = DefaultOptions.KeyTTL
	}
	if o.HashTTL <= 0 {
		o.HashTTL = DefaultOptions.HashTTL
	}
	if o.MessageIDDomain == "" {
		o.MessageIDDomain = DefaultOptions.MessageIDDomain
	}
	if o.AckPerAddress <= 0 {
		o.AckPerAddress = DefaultOptions.AckPerAddress
	}
	if o.AckWindow <= 0 {
		o.AckWindow = DefaultOptions.AckWindow
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	return &Chain{d: d, o: o}
}

// Step names in the journal.
const (
	StepClassify    = "classify"
	StepUpload      = "upload"
	StepContact     = "contact"
	StepThread      = "thread"
	StepTicket      = "ticket"
	StepNote        = "note"
	StepUpdate      = "ticket_update"
	StepSubtask     = "subtask"
	StepSubtaskLink = "subtask_link"
	StepFollowUps   = "subtask_followups"
	StepLinkNote    = "link_note"
	StepNotify      = "notify"
	StepAck         = "ack"
	StepBounce      = "bounce_note"
)

// Steps is every step in the order a run takes them, for display.
var Steps = []string{StepClassify, StepUpload, StepContact, StepThread, StepTicket, StepNote, StepUpdate,
	StepSubtask, StepSubtaskLink, StepFollowUps, StepLinkNote, StepNotify, StepAck, StepBounce}

// threadStep is the threading decision and, once known, the ticket.
type threadStep struct {
	ID        string `json:"id"`
	URL       string `json:"url"`
	New       bool   `json:"new"`
	SubtaskID string `json:"subtask_id,omitempty"` // the existing subtask of a found ticket
	ContactID string `json:"contact_id,omitempty"` // the found ticket's contact
	// By says which rule found the ticket: "headers", "subject" or "recent".
	By string `json:"by,omitempty"`
	// Follows is the closed ticket a new one continues (a reply to a closed conversation).
	Follows string `json:"follows,omitempty"`
	// Refused: the last attempt's create was refused (a 429, a 4xx), so it made no ticket and the
	// next attempt need not look for one. Cleared before any create is sent again.
	Refused bool `json:"refused,omitempty"`
}

func memoTicketKey(contactID string) string  { return "chain:contact-ticket:" + contactID }
func memoMessageKey(messageID string) string { return "chain:message-ticket:" + messageID }
func memoAckKey(email string) string         { return "chain:acks:" + email }

// newRun is what the journal records of req.
func (c *Chain) newRun(req *payload.Request) (NewRun, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return NewRun{}, fmt.Errorf("encode request: %w", err)
	}
	ttl := c.o.HashTTL
	if req.RequestID != "" {
		ttl = c.o.KeyTTL
	}
	return NewRun{Key: req.Key(), Hash: req.Hash(), Email: req.UserEmail, Request: body, TTL: ttl}, nil
}

// Accept records req in the journal, durably, and returns its run: from then on it survives a
// crash and will be processed (Process with Recorded, or the retry loop). A finished run answers
// replays from its stored response.
func (c *Chain) Accept(ctx context.Context, req *payload.Request) (*Run, error) {
	n, err := c.newRun(req)
	if err != nil {
		return nil, err
	}
	run, err := c.d.Journal.Record(ctx, n)
	if err != nil {
		return nil, err
	}
	if run.Hash != n.Hash {
		return nil, fmt.Errorf("%w: %s", ErrConflict, n.Key)
	}
	return run, nil
}

// Replay is the stored answer of a finished run.
func Replay(run *Run) (*payload.Response, error) {
	var resp payload.Response
	if err := json.Unmarshal(run.Response, &resp); err != nil {
		return nil, fmt.Errorf("stored response of %s: %w", run.Key, err)
	}
	resp.Replayed = true
	if resp.TicketID != "" {
		// Not the first run's "Nouveau ticket créé": nothing was created this time.
		resp.Message = "Demande déjà traitée: ticket #" + resp.TicketID
	}
	return &resp, nil
}

// DecodeRequest is the request a run recorded; it fails when the stored request does not give the
// run's key back (a journal written by another version, or damaged).
func DecodeRequest(run *Run) (*payload.Request, error) {
	var req payload.Request
	if err := json.Unmarshal(run.Request, &req); err != nil {
		return nil, fmt.Errorf("run %d: stored request: %w", run.ID, err)
	}
	if got := req.Key(); got != run.Key {
		return nil, fmt.Errorf("run %d: stored request has key %s, want %s", run.ID, got, run.Key)
	}
	return &req, nil
}

// Process runs req through the chain. A request whose key was processed already answers from the
// journal with Replayed set; an unfinished one resumes after its last completed step.
func (c *Chain) Process(ctx context.Context, req *payload.Request, ro RunOptions) (*payload.Response, error) {
	n, err := c.newRun(req)
	if err != nil {
		return nil, err
	}
	// Written down before waiting for the contact's lock: once this returned, the request
	// survives a crash (the retry loop finds it queued).
	if !ro.Force && !ro.Recorded {
		if _, err := c.d.Journal.Record(ctx, n); err != nil {
			return nil, err
		}
	}
	unlock, err := c.d.Journal.Lock(ctx, req.UserEmail)
	if err != nil {
		return nil, err
	}
	defer unlock()

	run, err := c.d.Journal.Begin(ctx, n, ro.Force)
	if err != nil {
		return nil, err
	}
	if run.Replay {
		return Replay(run)
	}
	if run.Attempts > 1 {
		// Resume with the request as first recorded: its received_at is the customer's, not now.
		stored, err := DecodeRequest(run)
		if err != nil {
			// A damaged journal entry: a person must look; retrying cannot mend it.
			o := Outcome{Status: StatusFailed, Error: err.Error(), Failure: FailureInput}
			if ferr := c.d.Journal.Finish(context.WithoutCancel(ctx), run, o); ferr != nil {
				c.d.Log.Error("journal: record the failure", "request_id", run.Key, "err", ferr)
			}
			return nil, err
		}
		req = stored
		c.d.Log.Info("resuming request", "request_id", run.Key, "attempt", run.Attempts, "done_steps", len(run.Steps))
	}

	r := &runner{c: c, run: run, req: req, log: c.d.Log.With("request_id", run.Key),
		resp: &payload.Response{RequestID: run.Key, Files: []payload.StoredFile{}, Warnings: []string{}}}
	runErr := r.execute(ctx)
	// Record the outcome even when ctx was cancelled: the next run must know where this one stopped.
	fctx := context.WithoutCancel(ctx)
	if runErr != nil {
		o := Outcome{Status: StatusFailed, Error: runErr.Error(), Failure: Classify(runErr)}
		if err := c.d.Journal.Finish(fctx, run, o); err != nil {
			r.logger().Error("journal: record the failure", "err", err)
		}
		return nil, runErr
	}
	o := Outcome{Status: StatusDone, Response: r.resp}
	switch r.resp.Status {
	case payload.StatusIncomplete:
		o.Status, o.Error, o.Failure = StatusIncomplete, firstOr(r.resp.Warnings), r.failure
	case payload.StatusSkipped:
		o.Status, o.Error = StatusSkipped, r.resp.Reason
	}
	if err := c.d.Journal.Finish(fctx, run, o); err != nil {
		return nil, err
	}
	return r.resp, nil
}

func firstOr(w []string) string {
	if len(w) == 0 {
		return ""
	}
	return w[0]
}

type runner struct {
	c    *Chain
	run  *Run
	req  *payload.Request
	resp *payload.Response
	mu   sync.Mutex // guards resp.Warnings, failure, log and journal saves from concurrent steps
	// log carries the request's id, then its contact's and ticket's once known: every line of a
	// run says which request, contact and ticket it is about.
	log *slog.Logger
	// failure is the worst kind among the warnings (an incomplete run's).
	failure Failure
	// fresh: this attempt created the contact, so the CRM holds no ticket of it to search for.
	fresh bool
}

// step runs fn unless step already completed in an earlier run; its result is recorded in the
// journal as soon as it is known, before anything depends on it.
func step[T any](ctx context.Context, r *runner, name string, fn func(context.Context) (T, error)) (T, error) {
	return ticketStep(ctx, r, name, fn, nil)
}

// ticketStep is step whose result may name the run's ticket (ticketOf), recorded in the same write.
func ticketStep[T any](ctx context.Context, r *runner, name string, fn func(context.Context) (T, error), ticketOf func(T) string) (T, error) {
	var v T
	r.mu.Lock()
	done, err := r.run.Step(name, &v)
	r.mu.Unlock()
	if err != nil || done {
		if done {
			r.logger().Debug("step already done", "step", name)
		}
		return v, err
	}
	start := time.Now()
	v, err = fn(ctx)
	d := time.Since(start)
	if o := r.c.d.Observer; o != nil {
		o.StepDone(name, d, err)
	}
	if err != nil {
		r.logger().Debug("step failed", "step", name, "duration", d, "err", err)
		return v, &StepError{Step: name, Err: err}
	}
	r.logger().Debug("step done", "step", name, "duration", d)
	id := ""
	if ticketOf != nil {
		id = ticketOf(v)
	}
	return v, r.record(ctx, name, v, id)
}

// record saves a step's result, with the run's ticket when ticketID is set.
func (r *runner) record(ctx context.Context, name string, v any, ticketID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx = context.WithoutCancel(ctx)
	var err error
	if ticketID != "" {
		err = r.c.d.Journal.SetTicket(ctx, r.run, name, v, ticketID)
	} else {
		err = r.c.d.Journal.SaveStep(ctx, r.run, name, v)
	}
	if err != nil {
		return &StepError{Step: name, Err: err}
	}
	return nil
}

// mayExistSince is when this request's first run began, for a resumed run: a create step it did
// not record may still have happened, and the backend looks for it before creating again.
func (r *runner) mayExistSince() time.Time {
	if r.run.Attempts > 1 {
		return r.run.CreatedAt
	}
	return time.Time{}
}

func (r *runner) logger() *slog.Logger {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log
}

// with adds attributes to every later line of the run.
func (r *runner) with(args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log = r.log.With(args...)
}

// warn notes a late step's failure: the run ends incomplete and is resumed later.
func (r *runner) warn(step string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if se, ok := errors.AsType[*StepError](err); ok && se.Step == step {
		err = se.Err // the warning names the step once
	}
	r.log.Warn("step failed", "step", step, "err", err)
	r.resp.Warnings = append(r.resp.Warnings, step+": "+err.Error())
	if f := Classify(err); r.failure == "" || f.Permanent() {
		r.failure = f
	}
}

// messageID is the Message-ID of what figsupport sends about this request (kind: notify, ack),
// derived from the request's key so that a repeat carries the same one.
func (r *runner) messageID(kind string) string {
	sum := sha256.Sum256([]byte(r.run.Key))
	return "figsupport." + kind + "." + hex.EncodeToString(sum[:12]) + "@" + r.c.o.MessageIDDomain
}
