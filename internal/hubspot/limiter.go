package hubspot

import (
	"context"
	"sync"
	"time"
)

// window lets at most n calls go in any rolling window, as HubSpot counts them: it keeps the send
// times of the last n calls, and a call goes once the oldest of them is a window (plus margin)
// old. A token bucket that never exceeds a rolling limit has to refill below it (burst plus
// refill over one window equal n), which left 10 % of the limit unused, 20 % of the search
// limit's (BENCHMARKS.md, section 3); this uses the limit whole.
type window struct {
	mu     sync.Mutex
	n      int
	length time.Duration // the window, plus a margin for the time a call takes to reach HubSpot
	sent   []time.Time   // ring of the last n send times
	next   int           // the oldest
}

// newWindow limits calls to n per w. The margin, a twentieth of w (at least 50 ms), covers calls
// that reach HubSpot sooner than the one a window before them did; a 429 beyond it is retried on
// its own hints.
func newWindow(n int, w time.Duration) *window {
	return &window{n: max(1, n), length: w + max(w/20, 50*time.Millisecond), sent: make([]time.Time, 0, max(1, n))}
}

// take takes a slot for a call at now when one is free, and returns 0; otherwise it returns how
// long until the oldest call leaves the window. A slot is taken only when the call goes, never
// booked ahead: a waiter the scheduler wakes late then counts from when it really went.
func (l *window) take(now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.sent) < l.n {
		l.sent = append(l.sent, now)
		return 0
	}
	if free := l.sent[l.next].Add(l.length); free.After(now) {
		return free.Sub(now)
	}
	l.sent[l.next] = now
	l.next = (l.next + 1) % l.n
	return 0
}

// Wait blocks until the call may go or ctx ends.
func (l *window) Wait(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := l.take(time.Now())
		if d == 0 {
			return nil
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
	}
}
