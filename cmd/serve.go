package cmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/figurative/figsupport/internal/config"
	"github.com/figurative/figsupport/internal/payload"
	"github.com/figurative/figsupport/internal/resume"
	"github.com/figurative/figsupport/internal/server"
)

type serveOptions struct {
	g    *Globals
	addr string
}

func newServeCmd(g *Globals) *cobra.Command {
	o := &serveOptions{g: g}
	c := &cobra.Command{
		Use:   "serve [--addr HOST:PORT]",
		Short: "Run the webhook daemon: POST /webhook/request runs the chain",
		Long: `Serves POST /webhook/request (JSON, or multipart/form-data with file parts) and GET /healthz.
Requests are authenticated by a Standard Webhooks signature (FIGSUPPORT_WEBHOOK_SECRET) or a bearer
token (FIGSUPPORT_WEBHOOK_TOKEN); with neither configured the daemon listens on loopback only.
Unfinished requests in the journal are resumed at start and retried with backoff. SIGTERM or SIGINT
stops it gracefully: no new request is taken, the ones in flight finish.`,
		Example: `  figsupport serve
  FIGSUPPORT_WEBHOOK_SECRET=whsec_… figsupport serve --addr :5000`,
		Args: argNames(),
		RunE: func(cmd *cobra.Command, _ []string) error { return runServe(cmd.Context(), o, nil) },
	}
	c.Flags().StringVar(&o.addr, "addr", "", "listen address (FIGSUPPORT_ADDR; default :5000)")
	return c
}

// runServe serves until ctx ends. ready, when set, receives the bound address (tests).
func runServe(ctx context.Context, o *serveOptions, ready chan<- string) error {
	g := o.g
	v := g.Values
	addr := o.addr
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
	syncTimeout := v.Duration("FIGSUPPORT_SYNC_TIMEOUT")
	perMin, burst := v.Int("FIGSUPPORT_RATE_PER_MINUTE"), v.Int("FIGSUPPORT_RATE_BURST")
	interval, maxAttempts := v.Duration("FIGSUPPORT_RETRY_INTERVAL"), v.Int("FIGSUPPORT_RETRY_MAX_ATTEMPTS")
	if err := v.Err(); err != nil {
		return err
	}
	if g.DryRun {
		return printSteps(g, []string{fmt.Sprintf("serve POST /webhook/request on %s", net.JoinHostPort(host, port))})
	}

	a, err := g.OpenApp(ctx, g, appOptions{spool: true})
	if err != nil {
		return err
	}
	defer a.Close()
	// A daemon logs what it does (journald keeps it); -v adds each step.
	log := g.Log
	if !g.Verbose {
		log = slog.New(slog.NewTextHandler(g.ErrOut, &slog.HandlerOptions{Level: slog.LevelInfo}))
		a.g.Log = log
	}
	c := a.chain()
	srv, err := server.New(server.Config{
		WebhookSecret: secret, BearerToken: token, Limits: a.s.limits, MaxFileBytes: a.s.maxFileBytes,
		SyncTimeout: syncTimeout, RatePerIP: float64(perMin) / 60, Burst: burst, SpoolDir: a.spoolDir(), Log: log, Now: g.Now,
	}, c)
	if err != nil {
		key := "FIGSUPPORT_DATA_DIR"
		if strings.Contains(err.Error(), "secret") {
			key = "FIGSUPPORT_WEBHOOK_SECRET"
		}
		return &config.Error{Key: key, Msg: err.Error()}
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
	log.Info("serving", "addr", ln.Addr().String(), "auth", auth, "backends", a.backends(), "data_dir", a.dir)
	if ready != nil {
		ready <- ln.Addr().String()
	}

	// The retry loop: unfinished requests are resumed at start, then looked at every interval.
	var wg sync.WaitGroup
	loopCtx, stopLoop := context.WithCancel(ctx)
	defer stopLoop()
	pol := resume.DefaultPolicy
	pol.MaxAttempts = maxAttempts
	wg.Go(func() { retryLoop(loopCtx, a, c, pol, interval, log) })

	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		stopLoop()
		wg.Wait()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing requests in flight")
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), syncTimeout+30*time.Second)
	defer cancel()
	stopLoop()
	err = hs.Shutdown(shutCtx)
	if werr := srv.Wait(shutCtx); err == nil {
		err = werr
	}
	wg.Wait()
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}

func retryLoop(ctx context.Context, a *app, p resume.Processor, pol resume.Policy, every time.Duration, log *slog.Logger) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		outs, err := resume.Sweep(ctx, a.journal, p, pol, a.g.Now(), log)
		if err != nil && ctx.Err() == nil {
			log.Error("retry sweep", "err", err)
		}
		for _, o := range outs {
			a.cleanSpool(o, log)
		}
		t.Reset(every)
	}
}

// cleanSpool removes the uploaded files of a request once it is done; a failed or incomplete one
// keeps them for its next attempt.
func (a *app) cleanSpool(o resume.Outcome, log *slog.Logger) {
	if o.Err != nil || o.Response == nil || o.Response.Status == payload.StatusIncomplete {
		return
	}
	req, err := resume.Request(o.Run)
	if err != nil {
		return
	}
	if err := server.RemoveSpool(a.spoolDir(), req); err != nil {
		log.Warn("spool cleanup", "request_id", o.Run.Key, "err", err)
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
