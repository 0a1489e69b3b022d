// Package backoff is the one retry policy of every outside-service client: capped exponential
// delays with full jitter, a server's own hint taking precedence, and sleeps that end with the context.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy bounds retries.
type Policy struct {
	Attempts int           // total tries, the first included; <= 1 means no retry
	Base     time.Duration // delay scale of the first retry
	Max      time.Duration // cap of any single delay, a server's hint included
}

// Default suits interactive commands and the daemon alike: at most ~20 s spent waiting in all.
var Default = Policy{Attempts: 5, Base: 300 * time.Millisecond, Max: 8 * time.Second}

// Delay is how long to wait before retry number n (1 for the first retry). A positive hint (from
// Retry-After, a rate-limit reset header…) is honoured, capped at Max; else the delay is drawn
// uniformly in [0, min(Max, Base·2^(n-1))] so that many clients do not retry in step.
func (p Policy) Delay(n int, hint time.Duration) time.Duration {
	if hint > 0 {
		return min(hint, p.Max)
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
