package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/payload"
	"github.com/figurative/figsupport/internal/text"
	"github.com/figurative/figsupport/internal/worker"
)

func newRequestsCmd(g *Globals) *cobra.Command {
	c := &cobra.Command{Use: "requests", Short: "The journal: what was received, how far each request got, resume what failed"}
	c.AddCommand(newRequestsListCmd(g), newRequestsShowCmd(g), newRequestsRetryCmd(g))
	return c
}

type requestsListOptions struct {
	g        *Globals
	statuses []string
	limit    int
}

func newRequestsListCmd(g *Globals) *cobra.Command {
	o := &requestsListOptions{g: g}
	c := &cobra.Command{
		Use:   "list [--status S…] [--limit N]",
		Short: "List requests, newest first",
		Example: `  figsupport requests list
  figsupport requests list --status failed --status incomplete -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runRequestsList(cmd.Context(), o) },
	}
	c.Flags().StringSliceVar(&o.statuses, "status", nil, "only these statuses: queued, running, done, incomplete, failed, skipped")
	c.Flags().IntVar(&o.limit, "limit", 50, "at most this many")
	_ = c.RegisterFlagCompletionFunc("status", cobra.FixedCompletions([]string{chain.StatusQueued, chain.StatusRunning, chain.StatusDone, chain.StatusIncomplete, chain.StatusFailed, chain.StatusSkipped}, cobra.ShellCompDirectiveNoFileComp))
	return c
}

// runSummary is one line of `requests list -o json`.
type runSummary struct {
	ID        int64     `json:"id"`
	RequestID string    `json:"request_id"`
	Status    string    `json:"status"`
	Email     string    `json:"user_email"`
	Attempts  int       `json:"attempts"`
	TicketID  string    `json:"ticket_id,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	Archived  bool      `json:"archived,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func summarize(r *chain.Run) runSummary {
	return runSummary{ID: r.ID, RequestID: r.Key, Status: r.Status, Email: r.Email, Attempts: r.Attempts, TicketID: r.TicketID,
		LastError: r.LastError, Archived: r.Archived, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

func runRequestsList(ctx context.Context, o *requestsListOptions) error {
	g := o.g
	for _, s := range o.statuses {
		switch s {
		case chain.StatusQueued, chain.StatusRunning, chain.StatusDone, chain.StatusIncomplete, chain.StatusFailed, chain.StatusSkipped:
		default:
			return usagef("--status %q: want queued, running, done, incomplete, failed or skipped", s)
		}
	}
	if o.limit <= 0 {
		return usagef("--limit must be positive")
	}
	a, err := openApp(ctx, g, true)
	if err != nil {
		return err
	}
	defer a.Close()
	runs, err := a.journal.List(ctx, o.statuses, o.limit)
	if err != nil {
		return err
	}
	out := make([]runSummary, 0, len(runs))
	for _, r := range runs {
		out = append(out, summarize(r))
	}
	if g.JSON() {
		return writeJSON(g.Out, struct {
			Requests []runSummary `json:"requests"`
		}{out})
	}
	if len(out) == 0 {
		g.status("no requests")
		return nil
	}
	tw := tabwriter.NewWriter(g.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tREQUEST ID\tSTATUS\tTRIES\tTICKET\tE-MAIL\tUPDATED\tLAST ERROR")
	for _, s := range out {
		st := s.Status
		if s.Archived {
			st += " (replaced)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%s\t%s\n", s.ID, s.RequestID, st, s.Attempts, s.TicketID, s.Email,
			s.UpdatedAt.Format("2006-01-02 15:04"), text.Truncate(text.OneLine(s.LastError), 60))
	}
	return tw.Flush()
}

func decodeResponse(r *chain.Run) (*payload.Response, error) {
	var resp payload.Response
	if err := json.Unmarshal(r.Response, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

type requestsShowOptions struct{ g *Globals }

func newRequestsShowCmd(g *Globals) *cobra.Command {
	o := &requestsShowOptions{g: g}
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show one request: the payload, each completed step's result, the response",
		Example: `  figsupport requests show demo-modelisation-1
  figsupport requests show 12 -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runRequestsShow(cmd.Context(), o, args[0]) },
	}
}

func getRun(ctx context.Context, a *app, id string) (*chain.Run, error) {
	run, err := a.journal.Get(ctx, id)
	if errors.Is(err, chain.ErrRunNotFound) {
		return nil, usageErr(err)
	}
	return run, err
}

func runRequestsShow(ctx context.Context, o *requestsShowOptions, id string) error {
	g := o.g
	a, err := openApp(ctx, g, true)
	if err != nil {
		return err
	}
	defer a.Close()
	run, err := getRun(ctx, a, id)
	if err != nil {
		return err
	}
	if g.JSON() {
		return writeJSON(g.Out, run)
	}
	s := summarize(run)
	fmt.Fprintf(g.Out, "request %s (run %d): %s after %d attempt(s)\n", run.Key, run.ID, run.Status, run.Attempts)
	if run.Archived {
		fmt.Fprintln(g.Out, "  replaced by a newer run of the same key")
	}
	fmt.Fprintf(g.Out, "  from:     %s\n  received: %s\n  updated:  %s\n", run.Email, run.CreatedAt.Format(time.RFC3339), run.UpdatedAt.Format(time.RFC3339))
	if s.LastError != "" {
		fmt.Fprintf(g.Out, "  error:    %s\n", s.LastError)
	}
	for _, name := range chain.Steps {
		if raw, ok := run.Steps[name]; ok {
			fmt.Fprintf(g.Out, "  step %-13s %s\n", name+":", text.Truncate(text.OneLine(string(raw)), 100))
		}
	}
	if resp, err := decodeResponse(run); err == nil && len(run.Response) > 0 {
		fmt.Fprintf(g.Out, "  answer:   %s\n", resp.Message)
	}
	return nil
}

type requestsRetryOptions struct {
	g      *Globals
	failed bool
}

func newRequestsRetryCmd(g *Globals) *cobra.Command {
	o := &requestsRetryOptions{g: g}
	c := &cobra.Command{
		Use:   "retry [ID | --failed]",
		Short: "Resume a request that failed or is incomplete, or all of them",
		Long: `Resumes requests from the journal: each skips the steps it had completed. With --failed, every
failed, incomplete or abandoned (queued or running, left by a process that died) request is resumed, whatever its
number of attempts. A request already done is answered from the journal and nothing is done again.
Requests run several at a time (FIGSUPPORT_WORKERS), one per contact at a time, in arrival order.
Exit 1 when a request still fails.`,
		Example: `  figsupport requests retry demo-modelisation-1
  figsupport requests retry --failed -o json`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 1) == o.failed {
				return usagef("give a request ID or --failed")
			}
			id := ""
			if len(args) == 1 {
				id = args[0]
			}
			return runRequestsRetry(cmd.Context(), o, id)
		},
	}
	c.Flags().BoolVar(&o.failed, "failed", false, "resume every unfinished request")
	return c
}

type retryResult struct {
	ID       int64             `json:"id"`
	Request  string            `json:"request_id"`
	Response *payload.Response `json:"response,omitempty"`
	Error    string            `json:"error,omitempty"`
}

func runRequestsRetry(ctx context.Context, o *requestsRetryOptions, id string) error {
	g := o.g
	a, err := openApp(ctx, g, false)
	if err != nil {
		return err
	}
	defer a.Close()
	var runs []*chain.Run
	if id != "" {
		run, err := getRun(ctx, a, id)
		if err != nil {
			return err
		}
		if run.Archived {
			return usagef("run %d (%s) was replaced by a newer run of the same key; use process --force to run its payload again", run.ID, run.Key)
		}
		runs = []*chain.Run{run}
	} else {
		// Every unfinished request, permanent failures included (a person asked), except those
		// another live process is working on.
		all, err := a.journal.Pending(ctx, 10000)
		if err != nil {
			return err
		}
		for _, r := range all {
			if !a.journal.Held(r) {
				runs = append(runs, r)
			}
		}
	}
	if g.DryRun {
		var keys []string
		for _, r := range runs {
			keys = append(keys, r.Key)
		}
		return dryRun(g, fmt.Sprintf("resume %d request(s): %s", len(runs), strings.Join(keys, ", ")))
	}
	// Runs go through a pool: several at once (one per contact at a time, in arrival order), all
	// sharing this process's client-side rate limiters.
	pl := worker.New(a.chain(), a.journal, worker.Config{Workers: a.s.workers, MaxBacklog: len(runs) + 1, SweepEvery: -1,
		Log: g.Log, Done: func(o worker.Outcome) { a.cleanSpool(o, g.Log) }})
	pl.Start()
	type pending struct {
		run *chain.Run
		job *worker.Job
		err error
	}
	jobs := make([]pending, len(runs))
	for i, r := range runs {
		jobs[i].run = r
		jobs[i].job, jobs[i].err = pl.Resume(r)
	}
	results := make([]retryResult, 0, len(runs))
	failed := 0
	for _, p := range jobs {
		res := retryResult{ID: p.run.ID, Request: p.run.Key}
		var resp *payload.Response
		err := p.err
		if err == nil {
			select {
			case <-p.job.Done():
				resp, err = p.job.Result()
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		switch {
		case err != nil:
			res.Error = g.Values.Redact(err.Error())
			failed++
		default:
			res.Response = resp
			if resp.Status == payload.StatusIncomplete {
				failed++
			}
		}
		results = append(results, res)
	}
	if err := pl.Shutdown(ctx); err != nil {
		return err
	}
	if g.JSON() {
		if err := writeJSON(g.Out, struct {
			Retried []retryResult `json:"retried"`
			Failed  int           `json:"failed"`
		}{results, failed}); err != nil {
			return err
		}
	} else {
		if len(results) == 0 {
			g.status("nothing to retry")
		}
		for _, r := range results {
			switch {
			case r.Error != "":
				fmt.Fprintf(g.Out, "%s: still failing: %s\n", r.Request, r.Error)
			default:
				fmt.Fprintf(g.Out, "%s: %s\n", r.Request, r.Response.Message)
			}
		}
	}
	if failed > 0 {
		return silentError{ExitFailed}
	}
	return nil
}
