// Package resume finishes what the journal holds unfinished: a failed or incomplete request, or
// one left "running" by a process that died. `requests retry` uses it by hand, `serve` on a timer
// with backoff.
package resume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/journal"
	"github.com/figurative/figsupport/internal/payload"
)

// Journal is what resuming needs of the journal.
type Journal interface {
	List(ctx context.Context, statuses []string, limit int) ([]*journal.Run, error)
}

// Processor runs a request through the chain (*chain.Chain).
type Processor interface {
	Process(ctx context.Context, req *payload.Request, ro chain.RunOptions) (*payload.Response, error)
}

// Policy says when an unfinished run is due again.
type Policy struct {
	Base        time.Duration // wait after the first failure; doubled after each further attempt
	Max         time.Duration // cap of that wait
	MaxAttempts int           // past this many attempts a run is left for a person (`requests retry`)
	// StaleRunning is how long a running or queued run may go without progress before it counts
	// as left by a process that died.
	StaleRunning time.Duration
}

// DefaultPolicy retries for about a day: 1 min, 2, 4… capped at an hour, twelve attempts in all.
var DefaultPolicy = Policy{Base: time.Minute, Max: time.Hour, MaxAttempts: 12, StaleRunning: 15 * time.Minute}

// ErrArchived is returned when asked to resume a run a newer one replaced.
var ErrArchived = errors.New("this run was replaced by a newer run of the same key")

// Pending lists the unfinished runs (failed, incomplete, running, queued), newest first.
func Pending(ctx context.Context, j Journal, limit int) ([]*journal.Run, error) {
	runs, err := j.List(ctx, []string{journal.StatusFailed, journal.StatusIncomplete, journal.StatusRunning, journal.StatusQueued}, limit)
	if err != nil {
		return nil, err
	}
	out := runs[:0]
	for _, r := range runs {
		if !r.Archived {
			out = append(out, r)
		}
	}
	return out, nil
}

// Due reports whether run should be retried automatically at now.
func (p Policy) Due(run *journal.Run, now time.Time) bool {
	if run.Archived || run.Status == journal.StatusDone {
		return false
	}
	if p.MaxAttempts > 0 && run.Attempts >= p.MaxAttempts {
		return false
	}
	if InFlight(run) {
		return now.Sub(run.UpdatedAt) >= p.StaleRunning
	}
	wait := p.Base
	for i := 1; i < run.Attempts && wait < p.Max; i++ {
		wait *= 2
	}
	return !now.Before(run.UpdatedAt.Add(min(wait, p.Max)))
}

// InFlight reports a run that some process may be working on (running, or queued for its
// contact's lock): it is only taken over once it has made no progress for StaleRunning.
func InFlight(run *journal.Run) bool {
	return run.Status == journal.StatusRunning || run.Status == journal.StatusQueued
}

// Request decodes the request a run recorded.
func Request(run *journal.Run) (*payload.Request, error) {
	var req payload.Request
	if err := json.Unmarshal(run.Request, &req); err != nil {
		return nil, fmt.Errorf("run %d: stored request: %w", run.ID, err)
	}
	if got := req.Key(); got != run.Key {
		return nil, fmt.Errorf("run %d: stored request has key %s, want %s", run.ID, got, run.Key)
	}
	return &req, nil
}

// Run resumes one run: the chain skips every step it had completed.
func Run(ctx context.Context, p Processor, run *journal.Run) (*payload.Response, error) {
	if run.Archived {
		return nil, fmt.Errorf("run %d (%s): %w; use process --force to run its payload again", run.ID, run.Key, ErrArchived)
	}
	req, err := Request(run)
	if err != nil {
		return nil, err
	}
	return p.Process(ctx, req, chain.RunOptions{})
}

// Outcome is one resumed run's result.
type Outcome struct {
	Run      *journal.Run
	Response *payload.Response
	Err      error
}

// Sweep resumes every due run, one at a time (the contact locks would serialise most of them
// anyway), and reports each outcome. It stops early when ctx ends.
func Sweep(ctx context.Context, j Journal, p Processor, pol Policy, now time.Time, log *slog.Logger) ([]Outcome, error) {
	runs, err := Pending(ctx, j, 1000)
	if err != nil {
		return nil, err
	}
	var out []Outcome
	for _, r := range runs {
		if ctx.Err() != nil {
			break
		}
		if !pol.Due(r, now) {
			continue
		}
		resp, err := Run(ctx, p, r)
		out = append(out, Outcome{Run: r, Response: resp, Err: err})
		switch {
		case err != nil:
			log.Warn("retry failed", "request_id", r.Key, "attempt", r.Attempts+1, "err", err)
			if pol.MaxAttempts > 0 && r.Attempts+1 >= pol.MaxAttempts {
				log.Error("giving up automatic retries: run `figsupport requests retry` once fixed", "request_id", r.Key, "attempts", r.Attempts+1)
			}
		default:
			log.Info("request resumed", "request_id", r.Key, "status", resp.Status)
		}
	}
	return out, nil
}
