// Package backoff is the one retry policy of every outside-service client: capped exponential
// delays with full jitter, a server's own hint taking precedence, and sleeps that end with the context.
package backoff

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// DefaultMaxHint bounds the wait a server may ask for when a Policy does not say. A ClickUp
// window resets within a minute and HubSpot's rolling windows within seconds; a longer wait is a
// daily limit or an outage, better reported than slept through.
const DefaultMaxHint = 5 * time.Minute

// ErrWaitTooLong is returned (wrapped, with the failure that asked for the wait) when the next wait
// does not fit: the server's hint is beyond MaxHint, or the wait would end after the context's
// deadline. Failing at once beats sleeping into the deadline and failing anyway.
var ErrWaitTooLong = errors.New("wait does not fit")

// Policy bounds retries.
type Policy struct {
	Attempts int           // total tries, the first included; <= 1 means no retry
	Base     time.Duration // delay scale of the first retry
	Max      time.Duration // cap of a computed delay
	// MaxHint caps a server's own hint (Retry-After, a rate-limit reset): hints up to it are
	// honoured whole, longer ones fail at once (ErrWaitTooLong). Zero means DefaultMaxHint.
	MaxHint time.Duration
}

// Default suits interactive commands and the daemon alike: at most ~20 s of computed waits in
// all, and a server's hint honoured up to DefaultMaxHint (the context's deadline still rules).
var Default = Policy{Attempts: 5, Base: 300 * time.Millisecond, Max: 8 * time.Second, MaxHint: DefaultMaxHint}

func (p Policy) maxHint() time.Duration {
	if p.MaxHint > 0 {
		return p.MaxHint
	}
	return DefaultMaxHint
}

// Delay is how long to wait before retry number n (1 for the first retry). A positive hint (from
// Retry-After, a rate-limit reset header…) is honoured up to MaxHint; else the delay is drawn
// uniformly in [0, min(Max, Base·2^(n-1))] so that many clients do not retry in step.
func (p Policy) Delay(n int, hint time.Duration) time.Duration {
	if hint > 0 {
		return min(hint, p.maxHint())
	}
	d := p.Base
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	if d <= 0 {
		return 0
	}
	return time.Duration(rand.Int64N(int64(d) + 1))
}

// Next is Delay checked against what can be honoured: it fails with ErrWaitTooLong when the hint
// exceeds MaxHint or the wait would end after ctx's deadline.
func (p Policy) Next(ctx context.Context, n int, hint time.Duration) (time.Duration, error) {
	if hint > p.maxHint() {
		return 0, fmt.Errorf("%w: the server asks to wait %v, more than the %v allowed", ErrWaitTooLong, hint.Round(time.Second), p.maxHint())
	}
	d := p.Delay(n, hint)
	return d, Fits(ctx, d)
}

// Fits reports, as an ErrWaitTooLong error, a wait of d that would end after ctx's deadline.
func Fits(ctx context.Context, d time.Duration) error {
	if dl, ok := ctx.Deadline(); ok && d > 0 {
		if left := time.Until(dl); d >= left {
			return fmt.Errorf("%w: waiting %v would pass the deadline, %v away", ErrWaitTooLong, d.Round(time.Millisecond), max(left, 0).Round(time.Millisecond))
		}
	}
	return nil
}

// Sleep waits d or until ctx ends, whichever comes first, and returns ctx's error in the latter case.
func Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
