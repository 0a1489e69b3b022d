package cmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/config"
	"github.com/figurative/figsupport/internal/mailbox"
	"github.com/figurative/figsupport/internal/metrics"
	"github.com/figurative/figsupport/internal/payload"
	"github.com/figurative/figsupport/internal/server"
	"github.com/figurative/figsupport/internal/worker"
)

type serveOptions struct {
	*Globals
	Addr string
	Mode string
}

func newServeCmd(g *Globals, runF func(context.Context, *serveOptions) error) *cobra.Command {
	o := &serveOptions{Globals: g}
	c := &cobra.Command{
		Use:   "serve [--addr HOST:PORT] [--mode sync|async]",
		Short: "Run the webhook daemon: POST /webhook/request and /webhook/email run the chain",
		Long: `Serves POST /webhook/request (JSON, or multipart/form-data with file parts), POST /webhook/email
(a raw e-mail), GET /requests/{id} (a request's state), GET /metrics (Prometheus), and GET /livez,
/readyz and /healthz. Requests are authenticated by a Standard Webhooks signature
(FIGSUPPORT_WEBHOOK_SECRET) or a bearer token (FIGSUPPORT_WEBHOOK_TOKEN); with neither configured
the daemon listens on loopback only.

Every request is recorded in the journal before any 2xx. In sync mode (the default) the answer is
the chain's result, or 202 past FIGSUPPORT_SYNC_TIMEOUT; in async mode, 202 at once. A pool of
FIGSUPPORT_WORKERS processes the journal: new requests, those left by a process that died (at
once), and failures as their retry policy makes them due; past FIGSUPPORT_MAX_BACKLOG new requests
get 503. With FIGSUPPORT_MAIL_POLL_INTERVAL the daemon also reads the support mailbox.

SIGTERM or SIGINT stops it gracefully: new requests get 503 and /readyz 503, runs in flight finish
within FIGSUPPORT_SHUTDOWN_TIMEOUT or are recorded for the next start; exit 0.`,
		Example: `  figsupport serve
  FIGSUPPORT_WEBHOOK_SECRET=whsec_… figsupport serve --addr :5000 --mode async`,
		Args: argNames(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runServe(cmd.Context(), o)
		},
	}
	c.Flags().StringVar(&o.Addr, "addr", "", "listen address (FIGSUPPORT_ADDR; default :5000)")
	c.Flags().StringVar(&o.Mode, "mode", "", "sync or async (FIGSUPPORT_MODE; default sync)")
	return c
}

// runServe serves until ctx ends (SIGTERM, SIGINT).
func runServe(ctx context.Context, o *serveOptions) error {
	g := o.Globals
	v := g.Values
	addr := o.Addr
	if addr == "" {
		addr = v.String("FIGSUPPORT_ADDR")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return &config.Error{Key: "FIGSUPPORT_ADDR", Msg: fmt.Sprintf("want HOST:PORT, got %q", addr)}
	}
	secret, token := v.String("FIGSUPPORT_WEBHOOK_SECRET"), v.String("FIGSUPPORT_WEBHOOK_TOKEN")
	if secret == "" && token == "" && !isLoopback(host) {
		// Nobody could be told from a stranger: only this machine may call.
		g.Log.Warn("no FIGSUPPORT_WEBHOOK_SECRET or FIGSUPPORT_WEBHOOK_TOKEN: listening on loopback only", "asked", addr)
		host = "127.0.0.1"
	}
	mode := o.Mode
	if mode == "" {
		mode = v.OneOf("FIGSUPPORT_MODE", server.ModeSync, server.ModeAsync)
	} else if mode != server.ModeSync && mode != server.ModeAsync {
		return usagef("--mode must be sync or async, not %q", mode)
	}
	syncTimeout := v.Duration("FIGSUPPORT_SYNC_TIMEOUT")
	perMin, burst := v.Int("FIGSUPPORT_RATE_PER_MINUTE"), v.Int("FIGSUPPORT_RATE_BURST")
	interval, maxAttempts := v.Duration("FIGSUPPORT_RETRY_INTERVAL"), v.Int("FIGSUPPORT_RETRY_MAX_ATTEMPTS")
	backlog, shutdown := v.Int("FIGSUPPORT_MAX_BACKLOG"), v.Duration("FIGSUPPORT_SHUTDOWN_TIMEOUT")
	pollEvery := v.OptionalDuration("FIGSUPPORT_MAIL_POLL_INTERVAL")
	if err := v.Err(); err != nil {
		return err
	}
	if pollEvery > 0 && !v.Set("MAIL_SOURCE") {
		return &config.Error{Key: "FIGSUPPORT_MAIL_POLL_INTERVAL", Msg: "set, but MAIL_SOURCE is not: there is no mailbox to poll"}
	}
	proxies, err := parseProxies(v.List("FIGSUPPORT_TRUSTED_PROXIES"))
	if err != nil {
		return &config.Error{Key: "FIGSUPPORT_TRUSTED_PROXIES", Msg: err.Error()}
	}
	if g.DryRun {
		return printSteps(g, []string{fmt.Sprintf("serve POST /webhook/request and /webhook/email on %s (%s mode)", net.JoinHostPort(host, port), mode)})
	}

	// The metrics come first: the service clients and the chain report to them. Their gauges read
	// the pool and the journal at each scrape, once both exist.
	var (
		a  *app
		pl *worker.Pool
	)
	m := metrics.New(metrics.Gauges{
		Backlog: func() int { return pl.Depth() },
		OldestPending: func(ctx context.Context) (time.Time, error) {
			st, err := a.journal.Stats(ctx)
			return st.OldestPending, err
		},
	})
	a, err = g.OpenApp(ctx, g, appOptions{spool: true, metrics: m})
	if err != nil {
		return err
	}
	defer a.Close()
	// A daemon logs what it does (journald keeps it): JSON lines unless a person watches a
	// terminal; -v adds each step.
	level := slog.LevelInfo
	if g.Verbose {
		level = slog.LevelDebug
	}
	var h slog.Handler = slog.NewJSONHandler(g.ErrOut, &slog.HandlerOptions{Level: level})
	if g.Terminal(g.ErrOut) {
		h = slog.NewTextHandler(g.ErrOut, &slog.HandlerOptions{Level: level})
	}
	log := slog.New(h)
	a.g.Log = log
	c := a.chain()
	pl = worker.New(c, a.journal, worker.Config{
		Workers: a.s.workers, MaxBacklog: backlog,
		// A run whose lease ran out (its process died) is looked for at least twice a lease.
		SweepEvery: min(10*time.Second, a.s.lease/2),
		Policy:     worker.Policy{Base: interval, Max: time.Hour, MaxAttempts: maxAttempts},
		Now:        g.Now, Log: log,
		Done: func(o worker.Outcome) {
			a.cleanSpool(o, log)
			logOutcome(log, o)
			m.Request(o.Response, o.Err)
			if o.Resumed {
				m.Resumed()
			}
		},
	})
	srv, err := server.New(server.Config{
		WebhookSecret: secret, BearerToken: token, Limits: a.s.limits, MaxFileBytes: a.s.maxFileBytes, Mode: mode,
		SyncTimeout: syncTimeout, RatePerIP: float64(perMin) / 60, Burst: burst, SpoolDir: a.spoolDir(), Log: log, Now: g.Now,
		TrustedProxies: proxies, ClientIPHeader: v.String("FIGSUPPORT_CLIENT_IP_HEADER"),
		Ready: a.journal.Writable, Metrics: m,
	}, c, queue{pl}, a.journal)
	var ce *server.ConfigError
	switch {
	case errors.As(err, &ce) && ce.Field == "secret":
		return &config.Error{Key: "FIGSUPPORT_WEBHOOK_SECRET", Msg: ce.Msg}
	case errors.As(err, &ce) && ce.Field == "mode":
		return &config.Error{Key: "FIGSUPPORT_MODE", Msg: ce.Msg}
	case err != nil:
		return &config.Error{Key: "FIGSUPPORT_DATA_DIR", Msg: err.Error()}
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return &config.Error{Key: "FIGSUPPORT_ADDR", Msg: err.Error()}
	}
	hs := server.NewHTTPServer(ln.Addr().String(), srv.Handler(), syncTimeout)
	auth := "none (loopback only)"
	switch {
	case secret != "" && token != "":
		auth = "webhook signature or bearer token"
	case secret != "":
		auth = "webhook signature"
	case token != "":
		auth = "bearer token"
	}
	// What the first request would otherwise check one after another on its way (HubSpot's
	// custom properties, ClickUp's list) is checked now, side by side, in the background.
	warmed := make(chan struct{})
	go func() { a.warm(ctx, log); close(warmed) }()
	// The support mailbox, when configured: each message through the same pool as the webhook.
	polled := make(chan struct{})
	pollCtx, stopPolling := context.WithCancel(ctx)
	defer stopPolling()
	if pollEvery > 0 {
		poller, err := newMailPoller(g, a.dir)
		if err != nil {
			return err
		}
		go func() { pollMailbox(pollCtx, poller, a.mailHandler(pooled(c, pl)), pollEvery, log); close(polled) }()
		log.Info("polling the support mailbox", "source", poller.Kind(), "mailbox", poller.Name(), "every", pollEvery)
	} else {
		close(polled)
	}
	// Unfinished requests in the journal (a process that died left them, or they failed) are
	// resumed at start, then as their retry policy makes them due.
	pl.Start()
	log.Info("serving", "addr", ln.Addr().String(), "mode", mode, "auth", auth, "workers", a.s.workers, "backends", a.backends(), "data_dir", a.dir)

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	var serveErr error
	select {
	case err := <-errc:
		serveErr = fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	// Stop in order: refuse new requests (503, /readyz too), let the HTTP handlers give their
	// answers, let the runs in flight finish or record where they stopped, then close the
	// journal (deferred), which hands what is left to the next process at once.
	log.Info("shutting down: finishing requests in flight", "deadline", shutdown)
	srv.Stop()
	stopPolling()
	<-polled
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdown)
	defer cancel()
	if err := hs.Shutdown(shutCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		log.Warn("http shutdown", "err", err)
	}
	if err := pl.Shutdown(shutCtx); err != nil {
		log.Warn("runs still going at the deadline were stopped; they resume at the next start", "err", err)
	}
	<-warmed // ctx has ended: it returns as soon as its calls do
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return serveErr
	}
	log.Info("stopped")
	return nil
}

// warm makes the backends' one-time checks before the first request needs them; a failure is
// only logged: the request that needs the answer asks again.
func (a *app) warm(ctx context.Context, log *slog.Logger) {
	var wg sync.WaitGroup
	if p, ok := a.crm.(interface{ EnsureProperties(context.Context) error }); ok {
		wg.Go(func() {
			if err := p.EnsureProperties(ctx); err != nil {
				log.Warn("warm-up: HubSpot's custom properties", "err", err)
			}
		})
	}
	if l, ok := a.tasks.(interface {
		ListID(context.Context) (string, error)
	}); ok {
		wg.Go(func() {
			if _, err := l.ListID(ctx); err != nil {
				log.Warn("warm-up: ClickUp's list", "err", err)
			}
		})
	}
	wg.Wait()
}

// pooled runs an e-mail's request the way the webhook does: recorded, then processed by the
// pool (one per contact at a time, in arrival order, within the backlog).
func pooled(c *chain.Chain, pl *worker.Pool) emailRun {
	return func(ctx context.Context, req *payload.Request) (*payload.Response, error) {
		run, err := c.Accept(ctx, req)
		if err != nil {
			return nil, err
		}
		if chain.Finished(run.Status) {
			return chain.Replay(run)
		}
		job, err := pl.Submit(req)
		if err != nil {
			return nil, err // recorded: the journal's sweep will finish it; the message stays unread meanwhile
		}
		select {
		case <-job.Done():
			return job.Result()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// pollMailbox runs a pass over the mailbox every interval until ctx ends; a pass's failure is
// logged and the next pass tries again.
func pollMailbox(ctx context.Context, p *mailbox.Poller, h mailbox.Handler, every time.Duration, log *slog.Logger) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sum, err := p.Poll(ctx, h, mailbox.PassOptions{})
		switch {
		case err != nil && ctx.Err() == nil:
			log.Error("mailbox pass", "err", err)
		case sum != nil && len(sum.Messages) > 0:
			log.Info("mailbox pass", "processed", sum.Processed, "skipped", sum.Skipped, "failed", sum.Failed, "rejected", sum.Rejected)
		}
		t.Reset(every)
	}
}

// queue gives the server the pool.
type queue struct{ p *worker.Pool }

func (q queue) Submit(req *payload.Request) (server.Job, error) { return q.p.Submit(req) }
func (q queue) Full() bool                                      { return q.p.Full() }

// logOutcome writes one line per finished run.
func logOutcome(log *slog.Logger, o worker.Outcome) {
	switch {
	case errors.Is(o.Err, chain.ErrInFlight):
	case o.Err != nil:
		log.Warn("run failed", "request_id", o.Key, "failure", chain.Classify(o.Err), "err", o.Err, "duration", o.Duration)
	default:
		log.Info("run finished", "request_id", o.Key, "status", o.Response.Status, "ticket_id", o.Response.TicketID, "duration", o.Duration)
	}
}

// cleanSpool removes the uploaded files of a request once nothing will read them again: done,
// skipped or replayed. A failed or incomplete one keeps them for its next attempt.
func (a *app) cleanSpool(o worker.Outcome, log *slog.Logger) {
	if err := server.CleanSpool(a.spoolDir(), o.Request, o.Response, o.Err); err != nil {
		log.Warn("spool cleanup", "request_id", o.Key, "err", err)
	}
}

// parseProxies reads addresses and CIDRs; an address alone is its own /32 or /128.
func parseProxies(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an IP address nor a CIDR", s)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
