package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/chain/chaintest"
	"github.com/figurative/figsupport/internal/payload"
)

var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

func TestDue(t *testing.T) {
	p := Policy{Base: time.Minute, Max: 10 * time.Minute, MaxAttempts: 5}
	failed := func(attempts int, f chain.Failure) chain.Run {
		return chain.Run{Status: chain.StatusFailed, Attempts: attempts, UpdatedAt: t0, Failure: f}
	}
	tests := []struct {
		name string
		run  chain.Run
		held bool
		now  time.Time
		want bool
	}{
		{"failed once, a minute later", failed(1, chain.FailureUnavailable), false, t0.Add(time.Minute), true},
		{"failed once, too soon", failed(1, chain.FailureUnavailable), false, t0.Add(59 * time.Second), false},
		{"third attempt waits four minutes", chain.Run{Status: chain.StatusIncomplete, Attempts: 3, UpdatedAt: t0}, false, t0.Add(3 * time.Minute), false},
		{"third attempt after four minutes", chain.Run{Status: chain.StatusIncomplete, Attempts: 3, UpdatedAt: t0}, false, t0.Add(4 * time.Minute), true},
		{"wait capped", failed(4, chain.FailureRateLimited), false, t0.Add(8 * time.Minute), true},
		{"attempts exhausted", failed(5, chain.FailureUnavailable), false, t0.Add(time.Hour), false},
		{"a permanent failure waits for a person", failed(1, chain.FailureInput), false, t0.Add(time.Hour), false},
		{"credentials refused wait for a person", failed(1, chain.FailureCredentials), false, t0.Add(time.Hour), false},
		{"running, held by a live process", chain.Run{Status: chain.StatusRunning, Attempts: 1, UpdatedAt: t0}, true, t0.Add(time.Hour), false},
		{"running, left by a dead process: at once", chain.Run{Status: chain.StatusRunning, Attempts: 1, UpdatedAt: t0}, false, t0, true},
		{"queued, not held: at once", chain.Run{Status: chain.StatusQueued, UpdatedAt: t0}, false, t0, true},
		{"done", chain.Run{Status: chain.StatusDone, Attempts: 1, UpdatedAt: t0}, false, t0.Add(time.Hour), false},
		{"skipped", chain.Run{Status: chain.StatusSkipped, Attempts: 1, UpdatedAt: t0}, false, t0.Add(time.Hour), false},
		{"archived", chain.Run{Status: chain.StatusFailed, Attempts: 1, UpdatedAt: t0, Archived: true}, false, t0.Add(time.Hour), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Due(&tt.run, tt.now, tt.held); got != tt.want {
				t.Fatalf("Due = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestWaitFollowsTheBase(t *testing.T) {
	p := Policy{Base: 5 * time.Second, Max: 30 * time.Second}
	for attempts, want := range map[int]time.Duration{1: 5 * time.Second, 2: 10 * time.Second, 3: 20 * time.Second, 4: 30 * time.Second, 9: 30 * time.Second} {
		if got := p.Wait(attempts); got != want {
			t.Errorf("Wait(%d) = %v, want %v", attempts, got, want)
		}
	}
}

// gate is a Processor whose runs wait until released, recording the order they start in.
type gate struct {
	mu      sync.Mutex
	started []string
	release map[string]chan struct{}
	running map[string]bool
	overlap bool // two runs of one contact at once
}

func newGate() *gate { return &gate{release: map[string]chan struct{}{}, running: map[string]bool{}} }

func (g *gate) ch(key string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	c := g.release[key]
	if c == nil {
		c = make(chan struct{})
		g.release[key] = c
	}
	return c
}

func (g *gate) Process(ctx context.Context, req *payload.Request, ro chain.RunOptions) (*payload.Response, error) {
	g.mu.Lock()
	g.started = append(g.started, req.Key())
	if g.running[req.UserEmail] {
		g.overlap = true
	}
	g.running[req.UserEmail] = true
	g.mu.Unlock()
	if !ro.Recorded {
		return nil, errors.New("the pool must say the request is recorded")
	}
	select {
	case <-g.ch(req.Key()):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	g.mu.Lock()
	g.running[req.UserEmail] = false
	g.mu.Unlock()
	return &payload.Response{Status: payload.StatusCreated, RequestID: req.Key()}, nil
}

func (g *gate) order() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.started...)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func req(t *testing.T, email, id string) *payload.Request {
	r := chaintest.Request(t, email, "Bonjour "+id, t0)
	r.RequestID = id
	return r
}

type noJournal struct{}

func (noJournal) Runnable(context.Context, int, int) ([]*chain.Run, error)      { return nil, nil }
func (noJournal) Held(*chain.Run) bool                                          { return false }
func (noJournal) Claim(_ context.Context, r []*chain.Run) ([]*chain.Run, error) { return r, nil }

func start(t *testing.T, p Processor, j Journal, cfg Config) *Pool {
	t.Helper()
	if cfg.SweepEvery == 0 {
		cfg.SweepEvery = -1
	}
	pl := New(p, j, cfg)
	pl.Start()
	t.Cleanup(func() { _ = pl.Shutdown(context.Background()) })
	return pl
}

func TestOneContactAtATimeInArrivalOrder(t *testing.T) {
	g := newGate()
	pl := start(t, g, noJournal{}, Config{Workers: 4})
	a1, _ := pl.Submit(req(t, "a@example.com", "a1"))
	a2, _ := pl.Submit(req(t, "a@example.com", "a2"))
	a3, _ := pl.Submit(req(t, "a@example.com", "a3"))
	b1, _ := pl.Submit(req(t, "b@example.com", "b1"))
	waitFor(t, "a1 and b1 to start", func() bool { return len(g.order()) == 2 })
	if got := fmt.Sprint(g.order()); got != "[a1 b1]" {
		t.Fatalf("started %s, want a1 and b1 (a2 waits for a1)", got)
	}
	close(g.ch("b1"))
	<-b1.Done()
	close(g.ch("a1"))
	<-a1.Done()
	waitFor(t, "a2", func() bool { return len(g.order()) == 3 })
	close(g.ch("a2"))
	close(g.ch("a3"))
	<-a2.Done()
	<-a3.Done()
	if got := fmt.Sprint(g.order()); got != "[a1 b1 a2 a3]" {
		t.Errorf("order %s", got)
	}
	if g.overlap {
		t.Error("two requests of one contact ran at once")
	}
}

func TestDuplicateIsAnsweredFromTheOneRun(t *testing.T) {
	g := newGate()
	pl := start(t, g, noJournal{}, Config{})
	first, _ := pl.Submit(req(t, "a@example.com", "k"))
	dup, err := pl.Submit(req(t, "a@example.com", "k"))
	if err != nil {
		t.Fatal(err)
	}
	close(g.ch("k"))
	<-dup.Done()
	r1, _ := first.Result()
	r2, _ := dup.Result()
	if r1.Replayed || !r2.Replayed || r2.RequestID != "k" || len(g.order()) != 1 {
		t.Fatalf("first %+v, duplicate %+v, runs %v", r1, r2, g.order())
	}
}

func TestBacklogLimit(t *testing.T) {
	g := newGate()
	pl := start(t, g, noJournal{}, Config{Workers: 1, MaxBacklog: 2})
	if _, err := pl.Submit(req(t, "a@example.com", "1")); err != nil {
		t.Fatal(err)
	}
	if _, err := pl.Submit(req(t, "b@example.com", "2")); err != nil {
		t.Fatal(err)
	}
	if !pl.Full() || pl.Depth() != 2 {
		t.Fatalf("Full %v, depth %d", pl.Full(), pl.Depth())
	}
	if _, err := pl.Submit(req(t, "c@example.com", "3")); !errors.Is(err, ErrBacklogFull) {
		t.Fatalf("third: %v, want ErrBacklogFull", err)
	}
	close(g.ch("1"))
	close(g.ch("2"))
	waitFor(t, "the backlog to drain", func() bool { return pl.Depth() == 0 })
	if _, err := pl.Submit(req(t, "c@example.com", "3")); err != nil {
		t.Fatalf("after draining: %v", err)
	}
	close(g.ch("3"))
}

func TestShutdown(t *testing.T) {
	g := newGate()
	pl := New(g, noJournal{}, Config{Workers: 1, SweepEvery: -1})
	pl.Start()
	running, _ := pl.Submit(req(t, "a@example.com", "1"))
	waiting, _ := pl.Submit(req(t, "b@example.com", "2"))
	waitFor(t, "the first to start", func() bool { return len(g.order()) == 1 })
	done := make(chan error, 1)
	go func() { done <- pl.Shutdown(context.Background()) }()
	<-waiting.Done()
	if _, err := waiting.Result(); !errors.Is(err, ErrStopping) {
		t.Fatalf("a waiting job: %v, want ErrStopping (it stays in the journal)", err)
	}
	if _, err := pl.Submit(req(t, "c@example.com", "3")); !errors.Is(err, ErrStopping) {
		t.Fatalf("submit while stopping: %v", err)
	}
	select {
	case <-done:
		t.Fatal("Shutdown returned while a run was going")
	default:
	}
	close(g.ch("1"))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if resp, err := running.Result(); err != nil || resp.Status != payload.StatusCreated {
		t.Fatalf("the running job: %+v, %v; want it finished", resp, err)
	}
}

func TestPanicIsAnError(t *testing.T) {
	p := procFunc(func(context.Context, *payload.Request, chain.RunOptions) (*payload.Response, error) { panic("boom") })
	pl := start(t, p, noJournal{}, Config{})
	jb, _ := pl.Submit(req(t, "a@example.com", "1"))
	<-jb.Done()
	if _, err := jb.Result(); err == nil {
		t.Fatal("no error")
	}
	jb, _ = pl.Submit(req(t, "a@example.com", "2"))
	<-jb.Done() // the worker survived
}

type procFunc func(context.Context, *payload.Request, chain.RunOptions) (*payload.Response, error)

func (f procFunc) Process(ctx context.Context, r *payload.Request, ro chain.RunOptions) (*payload.Response, error) {
	return f(ctx, r, ro)
}

// The sweep takes what the journal holds unfinished: at once what a dead process left, after its
// backoff what failed for a passing reason, never a permanent failure or what a live process holds.
func TestSweep(t *testing.T) {
	ctx := context.Background()
	h := chaintest.New(t, chaintest.Options{})
	// A temporary failure.
	h.Files.Fail = errors.New("r2: 503")
	failed := chaintest.Request(t, "failed@example.com", "Modéliser", t0, "a.glb")
	if _, err := h.Chain.Process(ctx, failed, chain.RunOptions{}); err == nil {
		t.Fatal("want a failure")
	}
	h.Files.Fail = nil
	// A permanent one.
	h.Files.Fail = &chain.StepError{Step: chain.StepUpload, Err: inputErr{}}
	refused := chaintest.Request(t, "refused@example.com", "Modéliser", t0, "b.glb")
	if _, err := h.Chain.Process(ctx, refused, chain.RunOptions{}); err == nil {
		t.Fatal("want a failure")
	}
	h.Files.Fail = nil
	// Accepted, never started: its process died (another journal, closed without finishing).
	other := chaintest.New(t, chaintest.Options{Dir: h.Dir})
	orphan := chaintest.Request(t, "orphan@example.com", "Bonjour", t0)
	if _, err := other.Chain.Accept(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	other.Journal.Close()

	now := time.Now()
	clock := func() time.Time { return now }
	var mu sync.Mutex
	var resumed []string
	pl := start(t, h.Chain, h.Journal, Config{Policy: Policy{Base: time.Minute, Max: time.Hour, MaxAttempts: 5}, Now: clock,
		Done: func(o Outcome) {
			mu.Lock()
			defer mu.Unlock()
			if o.Err != nil || !o.Resumed {
				t.Errorf("%s: %+v", o.Key, o)
			}
			resumed = append(resumed, o.Request.UserEmail)
		}})
	n, _, err := pl.sweep(ctx)
	if err != nil || n != 1 {
		t.Fatalf("first sweep queued %d, %v; want the orphan only", n, err)
	}
	waitFor(t, "the orphan", func() bool { return pl.Depth() == 0 })
	now = now.Add(time.Minute)
	if n, _, err := pl.sweep(ctx); err != nil || n != 1 {
		t.Fatalf("second sweep queued %d, %v; want the temporary failure", n, err)
	}
	waitFor(t, "the failure", func() bool { return pl.Depth() == 0 })
	if n, _, err := pl.sweep(ctx); err != nil || n != 0 {
		t.Fatalf("third sweep queued %d, %v; want nothing (the permanent failure waits for a person)", n, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(resumed) != "[orphan@example.com failed@example.com]" {
		t.Errorf("resumed %v", resumed)
	}
}

type inputErr struct{}

func (inputErr) Error() string    { return "file \"b.glb\": address not allowed" }
func (inputErr) InputError() bool { return true }

// memJournal is a journal of runs in memory, for the pool's sweep.
type memJournal struct {
	mu   sync.Mutex
	runs map[string]*chain.Run
}

func (m *memJournal) Runnable(_ context.Context, limit, maxAttempts int) ([]*chain.Run, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*chain.Run
	for _, k := range slices.Sorted(maps.Keys(m.runs)) {
		r := m.runs[k]
		if r.Failure.Permanent() || maxAttempts > 0 && r.Attempts >= maxAttempts {
			continue
		}
		if chain.Unfinished(r.Status) && len(out) < limit {
			c := *r
			out = append(out, &c)
		}
	}
	return out, nil
}

func (m *memJournal) Held(*chain.Run) bool { return false }

func (m *memJournal) Claim(_ context.Context, runs []*chain.Run) ([]*chain.Run, error) {
	return runs, nil
}

func (m *memJournal) finish(key, status string, attempts int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.runs[key]
	r.Status, r.Attempts, r.UpdatedAt, r.Failure = status, attempts, time.Now(), chain.FailureUnavailable
}

// A retry wait shorter than the sweep's period is honoured: a failed run is taken again once its
// wait has passed, not at the next periodic sweep (an hour here), and again after a longer wait
// when it fails a second time.
func TestRetryFollowsThePolicyNotTheSweepPeriod(t *testing.T) {
	r := req(t, "a@example.com", "k")
	body, _ := json.Marshal(r)
	j := &memJournal{runs: map[string]*chain.Run{"k": {Key: "k", Status: chain.StatusQueued, Request: body}}}
	var mu sync.Mutex
	var calls []time.Time
	p := procFunc(func(_ context.Context, _ *payload.Request, _ chain.RunOptions) (*payload.Response, error) {
		mu.Lock()
		calls = append(calls, time.Now())
		n := len(calls)
		mu.Unlock()
		if n < 3 {
			j.finish("k", chain.StatusFailed, n)
			return nil, errors.New("service unavailable")
		}
		j.finish("k", chain.StatusDone, n)
		return &payload.Response{Status: payload.StatusCreated}, nil
	})
	start(t, p, j, Config{SweepEvery: time.Hour, Policy: Policy{Base: 150 * time.Millisecond, Max: time.Hour, MaxAttempts: 5}})
	waitFor(t, "three attempts", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(calls) == 3
	})
	mu.Lock()
	defer mu.Unlock()
	// The policy's waits (150 ms, then 300 ms) are kept: never sooner.
	for i, want := range []time.Duration{150 * time.Millisecond, 300 * time.Millisecond} {
		if got := calls[i+1].Sub(calls[i]); got < want {
			t.Errorf("attempt %d came %v after the previous, before the policy's %v", i+2, got, want)
		}
	}
}

// Runs left in the journal for lack of room (recorded, not queued) are taken as soon as the
// backlog has room again, not at the next periodic sweep (an hour here).
func TestRefillWhenRoomIsMade(t *testing.T) {
	j := &memJournal{runs: map[string]*chain.Run{}}
	for i := range 7 {
		k := fmt.Sprintf("k%d", i)
		body, _ := json.Marshal(req(t, fmt.Sprintf("%d@example.com", i), k))
		j.runs[k] = &chain.Run{Key: k, Status: chain.StatusQueued, Request: body}
	}
	var mu sync.Mutex
	var ran []string
	p := procFunc(func(_ context.Context, r *payload.Request, _ chain.RunOptions) (*payload.Response, error) {
		time.Sleep(5 * time.Millisecond)
		j.finish(r.Key(), chain.StatusDone, 1)
		mu.Lock()
		ran = append(ran, r.Key())
		mu.Unlock()
		return &payload.Response{Status: payload.StatusCreated}, nil
	})
	start(t, p, j, Config{Workers: 1, MaxBacklog: 2, SweepEvery: time.Hour})
	waitFor(t, "every run", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(ran) == 7
	})
	mu.Lock()
	defer mu.Unlock()
	if got := fmt.Sprint(ran); got != "[k0 k1 k2 k3 k4 k5 k6]" {
		t.Errorf("ran %s, want the journal's order", got)
	}
}

// A request recorded, then refused by a full backlog (the server answered 202: it is in the
// journal) is taken once there is room again.
func TestRecordedButRefusedIsTakenWhenRoomIsMade(t *testing.T) {
	j := &memJournal{runs: map[string]*chain.Run{}}
	g := newGate()
	p := procFunc(func(ctx context.Context, r *payload.Request, ro chain.RunOptions) (*payload.Response, error) {
		resp, err := g.Process(ctx, r, ro)
		j.finish(r.Key(), chain.StatusDone, 1)
		return resp, err
	})
	pl := start(t, p, j, Config{Workers: 1, MaxBacklog: 2, SweepEvery: time.Hour})
	for i := range 3 {
		r := req(t, fmt.Sprintf("%d@example.com", i), fmt.Sprintf("k%d", i))
		body, _ := json.Marshal(r)
		j.mu.Lock()
		j.runs[r.Key()] = &chain.Run{Key: r.Key(), Status: chain.StatusQueued, Request: body}
		j.mu.Unlock()
		_, err := pl.Submit(r)
		if i < 2 && err != nil {
			t.Fatal(err)
		}
		if i == 2 && !errors.Is(err, ErrBacklogFull) {
			t.Fatalf("third submit: %v, want ErrBacklogFull", err)
		}
	}
	close(g.ch("k0"))
	close(g.ch("k1"))
	close(g.ch("k2"))
	waitFor(t, "the refused request to run", func() bool { return len(g.order()) == 3 })
}

// At start, what the journal holds unfinished is queued before Start returns: a new request of the
// same contact, submitted as soon as the daemon listens, runs after the older one, not before.
func TestStartQueuesTheJournalFirst(t *testing.T) {
	old := req(t, "a@example.com", "old")
	body, _ := json.Marshal(old)
	j := &memJournal{runs: map[string]*chain.Run{"old": {Key: "old", Status: chain.StatusRunning, Request: body}}}
	g := newGate()
	pl := start(t, g, j, Config{Workers: 2, SweepEvery: time.Hour})
	if _, err := pl.Submit(req(t, "a@example.com", "new")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a run to start", func() bool { return len(g.order()) == 1 })
	close(g.ch("old"))
	close(g.ch("new"))
	waitFor(t, "both runs", func() bool { return len(g.order()) == 2 })
	if got := fmt.Sprint(g.order()); got != "[old new]" {
		t.Fatalf("ran %s, want the journal's unfinished run first", got)
	}
}

type rateLimitErr struct{}

func (rateLimitErr) Error() string     { return "429 rate limited" }
func (rateLimitErr) RateLimited() bool { return true }

// A job a rate limit stopped goes back to the queue, up to Requeue times, and ends once: its
// waiters and Done see only the last attempt. Other failures end at once.
func TestRequeueRateLimited(t *testing.T) {
	tests := []struct {
		name      string
		requeue   int
		fails     int   // attempts that fail before one succeeds
		err       error // what they fail with
		wantRuns  int
		wantError bool
	}{
		{name: "off", requeue: 0, fails: 1, err: rateLimitErr{}, wantRuns: 1, wantError: true},
		{name: "passes on its second attempt", requeue: 2, fails: 1, err: rateLimitErr{}, wantRuns: 2},
		{name: "passes on its last allowed attempt", requeue: 2, fails: 2, err: rateLimitErr{}, wantRuns: 3},
		{name: "requeues exhausted", requeue: 2, fails: 3, err: rateLimitErr{}, wantRuns: 3, wantError: true},
		{name: "another failure is not requeued", requeue: 2, fails: 1, err: errors.New("503"), wantRuns: 1, wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			runs, dones := 0, 0
			p := procFunc(func(context.Context, *payload.Request, chain.RunOptions) (*payload.Response, error) {
				mu.Lock()
				defer mu.Unlock()
				runs++
				if runs <= tt.fails {
					return nil, tt.err
				}
				return &payload.Response{Status: payload.StatusCreated}, nil
			})
			pl := start(t, p, noJournal{}, Config{Requeue: tt.requeue, Done: func(Outcome) {
				mu.Lock()
				dones++
				mu.Unlock()
			}})
			jb, err := pl.Submit(req(t, "a@example.com", "1"))
			if err != nil {
				t.Fatal(err)
			}
			<-jb.Done()
			_, err = jb.Result()
			mu.Lock()
			defer mu.Unlock()
			if runs != tt.wantRuns || dones != 1 || (err != nil) != tt.wantError {
				t.Errorf("%d runs, %d Done calls, err %v; want %d runs, 1 Done, error %v", runs, dones, err, tt.wantRuns, tt.wantError)
			}
		})
	}
}
