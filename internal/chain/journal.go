package chain

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Run statuses, as the journal stores them.
const (
	StatusQueued     = "queued"  // recorded, not started (waiting for a worker or its contact's lock)
	StatusRunning    = "running" // an owner is working on it
	StatusDone       = "done"
	StatusIncomplete = "incomplete" // the ticket exists, a later step (subtask, notification) failed
	StatusFailed     = "failed"
	StatusSkipped    = "skipped" // written by a machine (loop protection): recorded, nothing done
)

// Finished reports a status that a replay answers from (nothing left to do).
func Finished(status string) bool { return status == StatusDone || status == StatusSkipped }

// Unfinished reports a status with work left to do.
func Unfinished(status string) bool {
	return status == StatusQueued || status == StatusRunning || status == StatusFailed || status == StatusIncomplete
}

// Errors of the journal that callers act on.
var (
	// ErrConflict is returned when a request reuses an idempotency key with another payload.
	ErrConflict = errors.New("idempotency key already used for a different payload")
	// ErrRunNotFound is returned when no run has the given key or id.
	ErrRunNotFound = errors.New("no such request in the journal")
	// ErrInFlight is returned by Begin when another live process holds the run: it is being
	// processed, and will be finished there.
	ErrInFlight = errors.New("request is being processed by another process")
)

// Run is one request's journal entry.
type Run struct {
	ID        int64                      `json:"id"`
	Key       string                     `json:"key"`
	Hash      string                     `json:"hash"`
	Email     string                     `json:"email"`
	Status    string                     `json:"status"`
	Request   json.RawMessage            `json:"request"`
	Response  json.RawMessage            `json:"response"`
	Steps     map[string]json.RawMessage `json:"steps"`
	Attempts  int                        `json:"attempts"`
	LastError string                     `json:"last_error"`
	// Failure is the kind of the last failure ("" when none): permanent kinds are not retried
	// automatically.
	Failure   Failure   `json:"failure"`
	TicketID  string    `json:"ticket_id"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	ExpiresAt time.Time `json:"expires_at"`
	// Owner is the process that holds the run while LeaseUntil is ahead ("" when none).
	Owner      string    `json:"owner"`
	LeaseUntil time.Time `json:"lease_until"`
	// Archived: a newer run of the same key replaced this one (expiry, --force).
	Archived bool `json:"archived"`
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
		return false, fmt.Errorf("decode step %s of %s: %w", step, r.Key, err)
	}
	return true, nil
}

// NewRun is what recording a request needs.
type NewRun struct {
	Key, Hash, Email string
	Request          json.RawMessage
	TTL              time.Duration // how long a finished run answers replays
}

// Outcome is how a run ended (this attempt).
type Outcome struct {
	Status   string
	Response any    // stored when not nil
	Error    string // the reason, for a failure or an incomplete run
	Failure  Failure
}

// Journal is what the chain needs of the journal: SQLite on one machine, PostgreSQL for several.
type Journal interface {
	// Record writes the request down as queued when its key has no current run, so that it
	// survives a crash from then on; a key that has a run is left as it is (Begin decides).
	// It returns the key's current run.
	Record(ctx context.Context, n NewRun) (*Run, error)
	// Lock serialises work on one contact (its e-mail) across goroutines, processes and, on
	// PostgreSQL, machines. The returned func releases it.
	Lock(ctx context.Context, email string) (unlock func(), err error)
	// Begin claims the key's run for this process: a new run when the key is unknown, expired or
	// force is set; the finished run with Replay set; the unfinished run with its completed steps
	// (ErrInFlight when another live process holds it); ErrConflict for another payload.
	Begin(ctx context.Context, n NewRun, force bool) (*Run, error)
	// SaveStep records step's result for run (and run's in-memory copy).
	SaveStep(ctx context.Context, run *Run, step string, v any) error
	// SetTicket records the ticket the run belongs to, with its step result, in one write.
	SetTicket(ctx context.Context, run *Run, step string, v any, ticketID string) error
	// Finish records the outcome and releases the run.
	Finish(ctx context.Context, run *Run, o Outcome) error
	// TicketRuns lists the current runs that belong to a ticket, oldest first.
	TicketRuns(ctx context.Context, ticketID string) ([]*Run, error)
	// ContactRuns lists the contact's (its e-mail's) unfinished current runs that may still be
	// retried (no permanent failure), oldest first, with their steps.
	ContactRuns(ctx context.Context, email string) ([]*Run, error)
	MemoGet(ctx context.Context, key string) (string, bool, error)
	MemoPut(ctx context.Context, key, value string) error
}
