// Package latency adds a service's round trip to an in-process fake: every request waits a fixed
// delay before the wrapped handler sees it. Benchmarks put it around fakes that have no latency of
// their own (gofakes3 for S3/R2), so that a run on loopback pays what it would pay over a network.
package latency

import (
	"net/http"
	"sync/atomic"
	"time"
)

// Handler delays every request to h by d, then serves it. A client that gives up meanwhile gets
// nothing, as from a slow server.
type Handler struct {
	h     http.Handler
	d     time.Duration
	calls atomic.Int64
}

// Wrap returns h behind a delay of d per request.
func Wrap(h http.Handler, d time.Duration) *Handler { return &Handler{h: h, d: d} }

// ServeHTTP waits, then serves.
func (l *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.calls.Add(1)
	if l.d > 0 {
		t := time.NewTimer(l.d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return
		}
	}
	l.h.ServeHTTP(w, r)
}

// Calls is how many requests reached the handler so far.
func (l *Handler) Calls() int64 { return l.calls.Load() }
