// Package worker processes the journal's requests with a bounded pool: new ones as they are
// accepted, unfinished ones (failed, incomplete, or left by a process that died) as their retry
// policy makes them due. Requests of one contact run one at a time, in the order they arrived,
// without holding a goroutine or a file while they wait.
package worker

import (
	"time"

	"github.com/figurative/figsupport/internal/chain"
)

// Policy says when an unfinished run is taken again automatically.
type Policy struct {
	Base        time.Duration // wait after the first failure; doubled after each further attempt
	Max         time.Duration // cap of that wait
	MaxAttempts int           // past this many attempts a run is left for a person (`requests retry`)
}

// DefaultPolicy retries for about a day: 1 min, 2, 4… capped at an hour, twelve attempts in all.
// The daemon takes Base from FIGSUPPORT_RETRY_INTERVAL and MaxAttempts from
// FIGSUPPORT_RETRY_MAX_ATTEMPTS, whose defaults are these.
var DefaultPolicy = Policy{Base: time.Minute, Max: time.Hour, MaxAttempts: 12}

// Due reports whether run should be taken at now. held says another live process holds it (see
// journal.Held): its owner finishes it. A queued or running run that nobody live holds was left
// by a process that died, or accepted and not yet started: it is due at once. A failure is due
// after its backoff, unless it is permanent (the request or the configuration must change first).
func (p Policy) Due(run *chain.Run, now time.Time, held bool) bool {
	at, ok := p.DueAt(run, held)
	return ok && !now.Before(at)
}

// DueAt is when run becomes due (see Due); false when it never does by itself. A run due at
// once has the zero time.
func (p Policy) DueAt(run *chain.Run, held bool) (time.Time, bool) {
	switch {
	case run.Archived, !chain.Unfinished(run.Status), held:
		return time.Time{}, false
	case run.Status == chain.StatusQueued || run.Status == chain.StatusRunning:
		return time.Time{}, true
	case run.Failure.Permanent():
		return time.Time{}, false
	case p.MaxAttempts > 0 && run.Attempts >= p.MaxAttempts:
		return time.Time{}, false
	}
	return run.UpdatedAt.Add(p.Wait(run.Attempts)), true
}

// Wait is the backoff after attempts attempts.
func (p Policy) Wait(attempts int) time.Duration {
	base, top := p.Base, p.Max
	if base <= 0 {
		base = DefaultPolicy.Base
	}
	if top < base {
		top = base
	}
	wait := base
	for i := 1; i < attempts && wait < top; i++ {
		wait *= 2
	}
	return min(wait, top)
}
