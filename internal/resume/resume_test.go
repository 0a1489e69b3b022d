package resume

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/chain/chaintest"
	"github.com/figurative/figsupport/internal/journal"
	"github.com/figurative/figsupport/internal/payload"
)

var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

func TestDue(t *testing.T) {
	p := Policy{Base: time.Minute, Max: 10 * time.Minute, MaxAttempts: 5, StaleRunning: 15 * time.Minute}
	tests := []struct {
		name string
		run  journal.Run
		now  time.Time
		want bool
	}{
		{"failed once, a minute later", journal.Run{Status: journal.StatusFailed, Attempts: 1, UpdatedAt: t0}, t0.Add(time.Minute), true},
		{"failed once, too soon", journal.Run{Status: journal.StatusFailed, Attempts: 1, UpdatedAt: t0}, t0.Add(59 * time.Second), false},
		{"third attempt waits four minutes", journal.Run{Status: journal.StatusIncomplete, Attempts: 3, UpdatedAt: t0}, t0.Add(3 * time.Minute), false},
		{"third attempt after four minutes", journal.Run{Status: journal.StatusIncomplete, Attempts: 3, UpdatedAt: t0}, t0.Add(4 * time.Minute), true},
		{"wait capped", journal.Run{Status: journal.StatusFailed, Attempts: 4, UpdatedAt: t0}, t0.Add(8 * time.Minute), true},
		{"attempts exhausted", journal.Run{Status: journal.StatusFailed, Attempts: 5, UpdatedAt: t0}, t0.Add(time.Hour), false},
		{"running, still fresh", journal.Run{Status: journal.StatusRunning, Attempts: 1, UpdatedAt: t0}, t0.Add(time.Minute), false},
		{"running, left by a dead process", journal.Run{Status: journal.StatusRunning, Attempts: 1, UpdatedAt: t0}, t0.Add(15 * time.Minute), true},
		{"queued, waiting for a live process", journal.Run{Status: journal.StatusQueued, UpdatedAt: t0}, t0.Add(time.Minute), false},
		{"queued by a process that died", journal.Run{Status: journal.StatusQueued, UpdatedAt: t0}, t0.Add(20 * time.Minute), true},
		{"done", journal.Run{Status: journal.StatusDone, Attempts: 1, UpdatedAt: t0}, t0.Add(time.Hour), false},
		{"archived", journal.Run{Status: journal.StatusFailed, Attempts: 1, UpdatedAt: t0, Archived: true}, t0.Add(time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Due(&tt.run, tt.now); got != tt.want {
				t.Fatalf("Due = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestSweepFinishesIncompleteAndFailedRuns(t *testing.T) {
	ctx := context.Background()
	h := chaintest.New(t, chaintest.Options{})
	h.Notifier.Fail = errors.New("smtp: 451 try later")
	incomplete, err := h.Chain.Process(ctx, chaintest.Request(t, "a@example.com", "Bonjour", t0), chain.RunOptions{})
	if err != nil || incomplete.Status != payload.StatusIncomplete {
		t.Fatalf("first = %+v, %v", incomplete, err)
	}
	h.Files.Fail = errors.New("fetch: 503")
	if _, err := h.Chain.Process(ctx, chaintest.Request(t, "b@example.com", "Modélisation", t0, "a.glb"), chain.RunOptions{}); err == nil {
		t.Fatal("want the upload to fail")
	}
	h.Notifier.Fail, h.Files.Fail = nil, nil

	pending, err := Pending(ctx, h.Journal, 10)
	if err != nil || len(pending) != 2 {
		t.Fatalf("pending = %d, %v; want 2", len(pending), err)
	}
	pol := Policy{Base: time.Minute, Max: time.Hour, MaxAttempts: 5, StaleRunning: time.Hour}
	// Too soon: nothing is retried.
	outs, err := Sweep(ctx, h.Journal, h.Chain, pol, time.Now(), slog.New(slog.DiscardHandler))
	if err != nil || len(outs) != 0 {
		t.Fatalf("early sweep retried %d runs, %v", len(outs), err)
	}
	outs, err = Sweep(ctx, h.Journal, h.Chain, pol, time.Now().Add(2*time.Minute), slog.New(slog.DiscardHandler))
	if err != nil || len(outs) != 2 {
		t.Fatalf("sweep = %d outcomes, %v; want 2", len(outs), err)
	}
	for _, o := range outs {
		if o.Err != nil || o.Response.Status != payload.StatusCreated {
			t.Fatalf("outcome %s: %+v %v", o.Run.Key, o.Response, o.Err)
		}
	}
	if pending, _ := Pending(ctx, h.Journal, 10); len(pending) != 0 {
		t.Fatalf("%d still pending", len(pending))
	}
	if n := h.Notifier.Count(); n != 2 {
		t.Fatalf("notifications = %d, want 2 (one per request, none twice)", n)
	}
}

func TestRunRefusesArchived(t *testing.T) {
	ctx := context.Background()
	h := chaintest.New(t, chaintest.Options{})
	req := chaintest.Request(t, "a@example.com", "Bonjour", t0)
	if _, err := h.Chain.Process(ctx, req, chain.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Chain.Process(ctx, chaintest.Request(t, "a@example.com", "Bonjour", t0), chain.RunOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	runs, _ := h.Journal.List(ctx, nil, 10)
	var old *journal.Run
	for _, r := range runs {
		if r.Archived {
			old = r
		}
	}
	if old == nil {
		t.Fatal("no archived run")
	}
	if _, err := Run(ctx, h.Chain, old); !errors.Is(err, ErrArchived) {
		t.Fatalf("err = %v, want ErrArchived", err)
	}
}
