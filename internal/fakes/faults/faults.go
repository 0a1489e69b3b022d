// Package faults decides, from a seed, which calls to an in-process fake fail and how: an error
// status, a connection reset before anything is done, a slow answer (a timeout for a client whose
// deadline is shorter), or a write carried out whose answer is lost. The fakes consult a Plan for
// every call (hubspotfake, clickupfake, graphfake, llmfake); Wrap puts one in front of any other
// handler (gofakes3).
//
// A call's fate depends only on the seed, the call itself (method, path, body) and how many times
// that same call was seen before — not on the order in which concurrent calls arrive — so a run is
// reproducible as far as its calls are, and a repeated call gets a fresh draw (it can succeed).
package faults

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is a way a call fails.
type Kind string

// The kinds of failure.
const (
	// Status answers an error status (one of Plan.Statuses) without doing anything.
	Status Kind = "status"
	// Reset resets the connection before anything is done: a network error for the client.
	Reset Kind = "reset"
	// Slow waits Plan.Delay before handling the call (unless the client gave up meanwhile): a slow
	// answer, or a timeout when the client's deadline is shorter.
	Slow Kind = "slow"
	// Lost carries the call out, then resets the connection: the write happened, its answer is lost.
	Lost Kind = "lost"
)

// All is every kind, in a fixed order.
var All = []Kind{Status, Reset, Slow, Lost}

// Defaults of a Plan.
var (
	DefaultStatuses = []int{500, 502, 503, 504}
	DefaultDelay    = 2 * time.Second
)

// Plan says which calls fail. The zero value (Rate 0) fails nothing. Set its fields before the
// first call; Decide and the counters are safe for concurrent use.
type Plan struct {
	Seed uint64
	// Rate is the fraction of calls that fail, in [0, 1].
	Rate float64
	// Kinds are drawn from uniformly for a failing call; empty means All.
	Kinds []Kind
	// Statuses are drawn from for a Status failure; empty means DefaultStatuses.
	Statuses []int
	// Delay is how long a Slow call waits; zero means DefaultDelay.
	Delay time.Duration
	// Latency delays every answer after the call was handled, failing or not: work stays in flight
	// long enough for a test to stop the client in the middle of it.
	Latency time.Duration

	mu     sync.Mutex
	seen   map[[32]byte]int
	counts map[Kind]int
	calls  int
}

// Decision is what happens to one call; Kind is "" for a call that succeeds.
type Decision struct {
	Kind   Kind
	Status int           // for Status
	Delay  time.Duration // for Slow
}

// Failed reports a failing call.
func (d Decision) Failed() bool { return d.Kind != "" }

// Decide draws the fate of a call and counts it. A nil plan fails nothing.
func (p *Plan) Decide(method, path string, body []byte) Decision {
	if p == nil {
		return Decision{}
	}
	id := sha256.New()
	for _, part := range [][]byte{[]byte(method), []byte(path), body} {
		_ = binary.Write(id, binary.BigEndian, uint64(len(part)))
		id.Write(part)
	}
	var key [32]byte
	copy(key[:], id.Sum(nil))

	p.mu.Lock()
	defer p.mu.Unlock()
	if p.seen == nil {
		p.seen, p.counts = map[[32]byte]int{}, map[Kind]int{}
	}
	p.seen[key]++
	p.calls++
	var draw [8 + 32 + 8]byte
	binary.BigEndian.PutUint64(draw[:8], p.Seed)
	copy(draw[8:40], key[:])
	binary.BigEndian.PutUint64(draw[40:], uint64(p.seen[key]))
	sum := sha256.Sum256(draw[:])
	u := float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
	if u >= p.Rate {
		return Decision{}
	}
	kinds := p.Kinds
	if len(kinds) == 0 {
		kinds = All
	}
	d := Decision{Kind: kinds[binary.BigEndian.Uint64(sum[8:16])%uint64(len(kinds))]}
	switch d.Kind {
	case Status:
		st := p.Statuses
		if len(st) == 0 {
			st = DefaultStatuses
		}
		d.Status = st[binary.BigEndian.Uint64(sum[16:24])%uint64(len(st))]
	case Slow:
		d.Delay = p.Delay
		if d.Delay <= 0 {
			d.Delay = DefaultDelay
		}
	}
	p.counts[d.Kind]++
	return d
}

// Lag is the plan's Latency; zero for a nil plan.
func (p *Plan) Lag() time.Duration {
	if p == nil {
		return 0
	}
	return p.Latency
}

// Counts says how many calls failed in each way so far.
func (p *Plan) Counts() map[Kind]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.counts)
}

// Calls is how many calls the plan decided.
func (p *Plan) Calls() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

// Failed is how many calls failed, in any way.
func (p *Plan) Failed() int {
	n := 0
	for _, c := range p.Counts() {
		n += c
	}
	return n
}

// String sums the plan up for a test log: "412 calls, 137 failed (status 35, reset 33, slow 36, lost 33)".
func (p *Plan) String() string {
	c := p.Counts()
	var b bytes.Buffer
	b.WriteString(strconv.Itoa(p.Calls()) + " calls, " + strconv.Itoa(p.Failed()) + " failed (")
	for i, k := range All {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(string(k) + " " + strconv.Itoa(c[k]))
	}
	b.WriteString(")")
	return b.String()
}

// Wait sleeps d, or until the client gives up (ctx of r); false when it gave up.
func Wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

// Abort resets the client's connection without an answer: the handler's connection is hijacked
// and closed with SO_LINGER 0, so the client reads a reset rather than an orderly end.
func Abort(w http.ResponseWriter) {
	for {
		if hj, ok := w.(http.Hijacker); ok {
			conn, _, err := hj.Hijack()
			if err != nil {
				break
			}
			if tc, ok := conn.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			_ = conn.Close()
			return
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			break
		}
		w = u.Unwrap()
	}
	// The server closes the connection without an answer (HTTP/2: resets the stream).
	panic(http.ErrAbortHandler)
}

// Switch holds a fake's plan, which a test may change while the fake serves. Embedded in a fake, it
// gives the fake its SetFaults; pass its Plan to Wrap.
type Switch struct{ p atomic.Pointer[Plan] }

// SetFaults fails a seeded fraction of the fake's calls in every way (see Plan); nil for none.
func (s *Switch) SetFaults(p *Plan) { s.p.Store(p) }

// Plan is the plan in force (nil: none).
func (s *Switch) Plan() *Plan { return s.p.Load() }

// ErrorBody writes a failing call's answer; nil means Wrap's plain-text default.
type ErrorBody func(w http.ResponseWriter, status int)

// Wrap puts plan in front of next: each call is decided on its method, path and body, then fails
// as decided or is handled by next. plan is read at each call (nil: no failures), so a test can
// switch faults on and off; errBody shapes error answers the way the service would (nil: plain text).
func Wrap(next http.Handler, plan func() *Plan, errBody ErrorBody) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := plan()
		if p == nil {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			Abort(w)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		d := p.Decide(r.Method, r.URL.Path, body)
		switch d.Kind {
		case Status:
			if !Wait(r, p.Latency) {
				return
			}
			if errBody != nil {
				errBody(w, d.Status)
				return
			}
			http.Error(w, "injected failure", d.Status)
			return
		case Reset:
			Abort(w)
			return
		case Slow:
			if !Wait(r, d.Delay) {
				return
			}
		case Lost:
			next.ServeHTTP(&discard{h: http.Header{}}, r)
			Wait(r, p.Latency)
			Abort(w)
			return
		}
		if p.Latency > 0 {
			rec := &buffered{h: http.Header{}}
			next.ServeHTTP(rec, r)
			if !Wait(r, p.Latency) {
				return
			}
			rec.flushTo(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// discard swallows the answer of a call whose answer is to be lost.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

// buffered holds an answer back until the plan's latency has passed.
type buffered struct {
	h      http.Header
	status int
	body   bytes.Buffer
}

func (b *buffered) Header() http.Header { return b.h }
func (b *buffered) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}
func (b *buffered) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *buffered) flushTo(w http.ResponseWriter) {
	for k, v := range b.h {
		w.Header()[k] = slices.Clone(v)
	}
	if b.status == 0 {
		b.status = http.StatusOK
	}
	w.WriteHeader(b.status)
	_, _ = w.Write(b.body.Bytes())
}
