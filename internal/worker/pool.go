package worker

import (
	"context"
	"errors"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/payload"
)

// Processor runs a request through the chain (*chain.Chain).
type Processor interface {
	Process(ctx context.Context, req *payload.Request, ro chain.RunOptions) (*payload.Response, error)
}

// Journal is what the pool needs of the journal.
type Journal interface {
	// Runnable lists the unfinished current runs that a retry policy may take, oldest first: none
	// failed for good, none that has had maxAttempts (when > 0).
	Runnable(ctx context.Context, limit, maxAttempts int) ([]*chain.Run, error)
	// Held reports a run that another live process holds.
	Held(run *chain.Run) bool
	// Claim takes runs for this process, each unless another claimed it since it was read.
	Claim(ctx context.Context, runs []*chain.Run) ([]*chain.Run, error)
}

// Config sizes a pool. Zero values take the defaults.
type Config struct {
	Workers    int           // requests processed at once; default 4
	MaxBacklog int           // requests waiting or running; past it Submit refuses; default 1000
	Policy     Policy        // when an unfinished run is due; zero: DefaultPolicy
	SweepEvery time.Duration // how often the journal is looked at for due runs; default 10 s; <0: never
	Now        func() time.Time
	Log        *slog.Logger
	// Done, when set, is called after each job (spool cleanup, metrics), before its waiters wake.
	Done func(Outcome)
	// Requeue is how many times a job that a service's rate limit stopped (chain.FailureRateLimited:
	// its client gave up waiting) goes to the back of the queue instead of ending: for a person
	// clearing a backlog (`requests retry`), whose processes share a service's limit and each
	// draw 429s. 0, the daemon's: its retry policy takes the run later.
	Requeue int
}

// Outcome is one job's result.
type Outcome struct {
	Key      string
	Request  *payload.Request
	Response *payload.Response
	Err      error
	Resumed  bool // taken from the journal by the sweep, not submitted
	Duration time.Duration
}

// Errors of Submit.
var (
	ErrBacklogFull = errors.New("backlog full")
	ErrStopping    = errors.New("shutting down")
)

// Job is a request in the pool.
type Job struct {
	key, email string
	req        *payload.Request
	resumed    bool
	done       chan struct{}
	resp       *payload.Response
	err        error
	// of is the job this one duplicates (the same key submitted while it was in the pool).
	of *Job
	// requeued counts the times it went back to the queue (Config.Requeue).
	requeued int
}

// Done is closed when the job finished.
func (j *Job) Done() <-chan struct{} { return j.done }

// Result is the job's answer, once Done is closed. A duplicate's answer is the original's,
// marked replayed: nothing was done for it.
func (j *Job) Result() (*payload.Response, error) {
	if j.of == nil {
		return j.resp, j.err
	}
	resp, err := j.of.Result()
	if resp != nil {
		r := *resp
		r.Replayed = true
		resp = &r
	}
	return resp, err
}

// Pool runs jobs on a fixed number of workers.
type Pool struct {
	p   Processor
	j   Journal
	cfg Config

	mu       sync.Mutex
	cond     *sync.Cond
	queue    []*Job          // waiting, in arrival order
	byKey    map[string]*Job // waiting or running
	busy     map[string]bool // contacts with a job running
	running  int
	stopping bool

	// sweepFull: due runs were left in the journal for lack of room (by a sweep, or a Submit
	// refused after its request was recorded); once half the backlog is free the sweep refills it.
	sweepFull bool

	workCtx    context.Context // cancelled when the shutdown deadline passes
	cancelWork context.CancelFunc
	stopSweep  chan struct{}
	// kick asks the sweep to come sooner: a run failed (it is due after the policy's first wait).
	// refill asks for a sweep now: there is room for runs left in the journal.
	kick, refill chan struct{}
	wg           sync.WaitGroup
}

// New returns a pool; Start starts it.
func New(p Processor, j Journal, cfg Config) *Pool {
	if cfg.Workers <= 0 {
		cfg.Workers = 4
	}
	if cfg.MaxBacklog <= 0 {
		cfg.MaxBacklog = 1000
	}
	if cfg.Policy == (Policy{}) {
		cfg.Policy = DefaultPolicy
	}
	if cfg.SweepEvery == 0 {
		cfg.SweepEvery = 10 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	pl := &Pool{p: p, j: j, cfg: cfg, byKey: map[string]*Job{}, busy: map[string]bool{}, stopSweep: make(chan struct{}),
		kick: make(chan struct{}, 1), refill: make(chan struct{}, 1)}
	pl.cond = sync.NewCond(&pl.mu)
	pl.workCtx, pl.cancelWork = context.WithCancel(context.Background())
	return pl
}

// Start launches the workers and, unless SweepEvery < 0, the sweep. Its first sweep is done before
// Start returns: what a process that died left unfinished is queued, in the journal's order, before
// a new request of the same contact can be submitted and overtake it (its threading would not see
// the ticket an unrecorded create of the older run may have made). Shutdown stops them.
func (pl *Pool) Start() {
	for range pl.cfg.Workers {
		pl.wg.Go(pl.work)
	}
	if pl.cfg.SweepEvery > 0 {
		wait := pl.sweepOnce()
		pl.wg.Go(func() { pl.sweepLoop(wait) })
	}
}

// Shutdown stops taking jobs and waits for the running ones until ctx ends; then it cancels them
// and waits until they have recorded where they stopped. Waiting jobs stay in the journal for the
// next process.
func (pl *Pool) Shutdown(ctx context.Context) error {
	pl.mu.Lock()
	already := pl.stopping
	pl.stopping = true
	for _, jb := range pl.queue {
		jb.err = ErrStopping
		close(jb.done)
		delete(pl.byKey, jb.key)
	}
	pl.queue = nil
	pl.cond.Broadcast()
	pl.mu.Unlock()
	if !already {
		close(pl.stopSweep)
	}
	finished := make(chan struct{})
	go func() { pl.wg.Wait(); close(finished) }()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
	}
	pl.cancelWork()
	<-finished
	return ctx.Err()
}

// Depth is the number of jobs waiting or running.
func (pl *Pool) Depth() int {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return len(pl.queue) + pl.running
}

// Full reports whether Submit would refuse for the backlog.
func (pl *Pool) Full() bool { return pl.Depth() >= pl.cfg.MaxBacklog }

// Submit queues a recorded request (chain.Accept) and returns its job; a request of the same key
// already in the pool gets a duplicate of that job.
func (pl *Pool) Submit(req *payload.Request) (*Job, error) {
	return pl.add(&Job{key: req.Key(), email: req.UserEmail, req: req, done: make(chan struct{})}, false)
}

// Resume queues an unfinished run of the journal, whatever its policy says (a person asked).
func (pl *Pool) Resume(run *chain.Run) (*Job, error) {
	req, err := chain.DecodeRequest(run)
	if err != nil {
		return nil, err
	}
	return pl.add(&Job{key: run.Key, email: req.UserEmail, req: req, resumed: true, done: make(chan struct{})}, true)
}

func (pl *Pool) add(jb *Job, force bool) (*Job, error) {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.stopping {
		return nil, ErrStopping
	}
	if cur := pl.byKey[jb.key]; cur != nil {
		return &Job{key: cur.key, done: cur.done, of: cur}, nil
	}
	if !force && len(pl.queue)+pl.running >= pl.cfg.MaxBacklog {
		// A submitted request is recorded already: the sweep takes it once there is room.
		pl.sweepFull = true
		return nil, ErrBacklogFull
	}
	pl.queue = append(pl.queue, jb)
	pl.byKey[jb.key] = jb
	pl.cond.Signal()
	return jb, nil
}

// next takes the oldest waiting job whose contact has nothing running; nil when stopping.
func (pl *Pool) next() *Job {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	for {
		if pl.stopping {
			return nil
		}
		for i, jb := range pl.queue {
			if pl.busy[jb.email] {
				continue
			}
			pl.queue = append(pl.queue[:i], pl.queue[i+1:]...)
			pl.busy[jb.email] = true
			pl.running++
			return jb
		}
		pl.cond.Wait()
	}
}

func (pl *Pool) work() {
	for {
		jb := pl.next()
		if jb == nil {
			return
		}
		start := time.Now()
		jb.resp, jb.err = pl.process(jb)
		if errors.Is(jb.err, chain.ErrInFlight) {
			pl.cfg.Log.Debug("request held by another process", "request_id", jb.key)
		}
		if pl.requeue(jb) {
			continue
		}
		if pl.cfg.Done != nil {
			pl.cfg.Done(Outcome{Key: jb.key, Request: jb.req, Response: jb.resp, Err: jb.err, Resumed: jb.resumed, Duration: time.Since(start)})
		}
		pl.mu.Lock()
		delete(pl.byKey, jb.key)
		delete(pl.busy, jb.email)
		pl.running--
		pl.cond.Broadcast()
		// Refilling when half the backlog is free, not at every run's end, bounds the sweeps
		// (each reads the journal) to about two per backlog's worth of runs.
		refill := pl.sweepFull && 2*(len(pl.queue)+pl.running) <= pl.cfg.MaxBacklog
		if refill {
			pl.sweepFull = false
		}
		pl.mu.Unlock()
		if refill {
			signal(pl.refill)
		}
		if unfinished(jb.resp, jb.err) {
			signal(pl.kick)
		}
		close(jb.done)
	}
}

// requeue puts a job a rate limit stopped back at the end of the queue, while it has requeues
// left and the pool is not stopping; it reports whether it did. The journal holds the run as
// failed meanwhile, and its next attempt resumes after the steps it completed.
func (pl *Pool) requeue(jb *Job) bool {
	if jb.requeued >= pl.cfg.Requeue || chain.Classify(jb.err) != chain.FailureRateLimited {
		return false
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.stopping {
		return false
	}
	jb.requeued++
	pl.cfg.Log.Info("rate limited: queued again", "request_id", jb.key, "times", jb.requeued)
	delete(pl.busy, jb.email)
	pl.running--
	jb.resp, jb.err = nil, nil
	pl.queue = append(pl.queue, jb)
	pl.cond.Broadcast()
	return true
}

// process runs the chain; a panic in it becomes an error (with the stack in the log) instead of
// taking the daemon down. The journal then shows the run unfinished, and a sweep resumes it.
func (pl *Pool) process(jb *Job) (resp *payload.Response, err error) {
	defer func() {
		if v := recover(); v != nil {
			pl.cfg.Log.Error("chain panicked", "request_id", jb.key, "panic", v, "stack", string(debug.Stack()))
			resp, err = nil, errors.New("worker: chain panicked")
		}
	}()
	return pl.p.Process(pl.workCtx, jb.req, chain.RunOptions{Recorded: true})
}

// signal sends on a channel of one without waiting: a signal already pending says the same.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// unfinished reports a run that ended with work left, which the sweep takes again once due.
func unfinished(resp *payload.Response, err error) bool {
	switch {
	case errors.Is(err, chain.ErrInFlight), errors.Is(err, ErrStopping):
		return false
	case err != nil:
		return true
	}
	return resp != nil && resp.Status == payload.StatusIncomplete
}

// sweepLoop sweeps after wait, then as runs become due: every SweepEvery at the latest, sooner when
// the journal holds a run due before then, soon after a run failed — but never more often than
// the policy's first wait (at least 100 ms) for those, so that a short FIGSUPPORT_RETRY_INTERVAL
// is honoured without sweeping in a loop — and at once when room was made for runs left waiting.
func (pl *Pool) sweepLoop(wait time.Duration) {
	soonest := pl.soonest()
	t := time.NewTimer(wait)
	defer t.Stop()
	at := time.Now().Add(wait) // when t fires
	for {
		select {
		case <-pl.stopSweep:
			return
		case <-pl.kick:
			if soon := time.Now().Add(soonest); soon.Before(at) {
				t.Reset(soonest)
				at = soon
			}
			continue
		case <-pl.refill:
		case <-t.C:
		}
		wait := pl.sweepOnce()
		t.Reset(wait)
		at = time.Now().Add(wait)
	}
}

// soonest is how often, at most, failures bring the sweep forward.
func (pl *Pool) soonest() time.Duration {
	return min(max(pl.cfg.Policy.Base, 100*time.Millisecond), pl.cfg.SweepEvery)
}

// sweepOnce sweeps and says how long until the next sweep: SweepEvery, or until the soonest run
// not yet due becomes due (never less than soonest).
func (pl *Pool) sweepOnce() time.Duration {
	n, next, err := pl.sweep(pl.workCtx)
	if err != nil && pl.workCtx.Err() == nil {
		pl.cfg.Log.Error("sweep the journal", "err", err)
	} else if n > 0 {
		pl.cfg.Log.Info("resuming unfinished requests", "count", n)
	}
	wait := pl.cfg.SweepEvery
	if !next.IsZero() {
		wait = min(wait, max(next.Sub(pl.cfg.Now()), pl.soonest()))
	}
	return wait
}

// sweep claims the journal's due runs that the pool does not hold yet, while the backlog has room,
// and queues them; it says how many, and when the soonest run that is not due yet becomes due
// (zero: none). A contact whose earliest unfinished run another process holds is left to that
// process, so that a contact's requests keep their order across processes.
func (pl *Pool) sweep(ctx context.Context) (n int, next time.Time, err error) {
	runs, err := pl.j.Runnable(ctx, pl.cfg.MaxBacklog, pl.cfg.Policy.MaxAttempts)
	if err != nil {
		return 0, time.Time{}, err
	}
	now := pl.cfg.Now()
	elsewhere := map[string]bool{} // contacts another process is working on
	var due []*chain.Run
	for _, run := range runs {
		pl.mu.Lock()
		_, have := pl.byKey[run.Key]
		room := len(pl.queue)+pl.running+len(due) < pl.cfg.MaxBacklog
		if !room {
			pl.sweepFull = true
		}
		pl.mu.Unlock()
		if !room {
			break
		}
		if pl.j.Held(run) {
			elsewhere[run.Email] = true
			continue
		}
		if have || elsewhere[run.Email] {
			continue
		}
		at, ok := pl.cfg.Policy.DueAt(run, false)
		if !ok {
			continue
		}
		if now.Before(at) {
			if next.IsZero() || at.Before(next) {
				next = at
			}
			continue
		}
		due = append(due, run)
	}
	claimed, err := pl.j.Claim(ctx, due)
	for _, run := range claimed {
		req, derr := chain.DecodeRequest(run)
		if derr != nil {
			pl.cfg.Log.Error("cannot resume: the stored request is unreadable", "request_id", run.Key, "err", derr)
			continue
		}
		if _, aerr := pl.add(&Job{key: run.Key, email: req.UserEmail, req: req, resumed: true, done: make(chan struct{})}, false); aerr == nil {
			n++
		}
	}
	if len(runs) >= pl.cfg.MaxBacklog {
		// A full page: the journal may hold more than the pool could take.
		pl.mu.Lock()
		pl.sweepFull = true
		pl.mu.Unlock()
	}
	return n, next, err
}
