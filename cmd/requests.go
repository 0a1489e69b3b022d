package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
	return newGroupCmd("requests", "The journal: what was received, how far each request got, resume what failed",
		newRequestsListCmd(g, nil), newRequestsShowCmd(g, nil), newRequestsRetryCmd(g, nil))
}

var runStatuses = []string{chain.StatusQueued, chain.StatusRunning, chain.StatusDone, chain.StatusIncomplete, chain.StatusFailed, chain.StatusSkipped}

type requestsListOptions struct {
	*Globals
	Statuses []string
	Limit    int
}

func newRequestsListCmd(g *Globals, runF func(context.Context, *requestsListOptions) error) *cobra.Command {
	o := &requestsListOptions{Globals: g}
	c := &cobra.Command{
		Use:   "list [--status S…] [--limit N]",
		Short: "List requests, newest first",
		Example: `  figsupport requests list
  figsupport requests list --status failed --status incomplete -o json`,
		Args: argNames(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runRequestsList(cmd.Context(), o)
		},
	}
	c.Flags().StringSliceVar(&o.Statuses, "status", nil, "only these statuses: queued, running, done, incomplete, failed, skipped")
	c.Flags().IntVar(&o.Limit, "limit", 50, "at most this many")
	_ = c.RegisterFlagCompletionFunc("status", cobra.FixedCompletions(runStatuses, cobra.ShellCompDirectiveNoFileComp))
	return c
}

// runSummary is one line of `requests list -o json`; every key is always present.
type runSummary struct {
	ID        int64  `json:"id"`
	RequestID string `json:"request_id"`
	Status    string `json:"status"`
	Email     string `json:"user_email"`
	Attempts  int    `json:"attempts"`
	TicketID  string `json:"ticket_id"`
	LastError string `json:"last_error"`
	// Failure is the kind of the last failure: input, credentials, rejected (permanent: not
	// retried automatically), rate_limited, unavailable, or "".
	Failure   string    `json:"failure"`
	Archived  bool      `json:"archived"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

func summarize(r *chain.Run) runSummary {
	return runSummary{ID: r.ID, RequestID: r.Key, Status: r.Status, Email: r.Email, Attempts: r.Attempts, TicketID: r.TicketID,
		LastError: r.LastError, Failure: string(r.Failure), Archived: r.Archived, CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt}
}

func runRequestsList(ctx context.Context, o *requestsListOptions) error {
	for _, s := range o.Statuses {
		if !slices.Contains(runStatuses, s) {
			return fieldErr("--status", "want queued, running, done, incomplete, failed or skipped, not %q", s)
		}
	}
	if o.Limit <= 0 {
		return fieldErr("--limit", "must be positive")
	}
	a, err := o.OpenApp(ctx, o.Globals, appOptions{noLLM: true, readOnly: true})
	if err != nil {
		return err
	}
	defer a.Close()
	var j journalReader = a.journal
	runs, err := j.List(ctx, o.Statuses, o.Limit)
	if err != nil {
		return err
	}
	out := make([]runSummary, 0, len(runs))
	for _, r := range runs {
		out = append(out, summarize(r))
	}
	if o.JSON() {
		return writeJSON(o.Out, struct {
			Requests []runSummary `json:"requests"`
		}{out})
	}
	if len(out) == 0 {
		o.status("no requests")
		return nil
	}
	tw := tabwriter.NewWriter(o.Out, 0, 4, 2, ' ', 0)
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
		return nil, fmt.Errorf("stored response of %s: %w", r.Key, err)
	}
	return &resp, nil
}

type requestsShowOptions struct {
	*Globals
	ID string
}

func newRequestsShowCmd(g *Globals, runF func(context.Context, *requestsShowOptions) error) *cobra.Command {
	o := &requestsShowOptions{Globals: g}
	return &cobra.Command{
		Use:   "show ID",
		Short: "Show one request: the payload, each completed step's result, the response",
		Long: `Shows one request of the journal, by its request id (request_id, or the payload's hash) or by
its run number (the ID column of requests list).`,
		Example: `  figsupport requests show demo-modelisation-1
  figsupport requests show 1 -o json`,
		Args: argNames("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.ID = args[0]
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runRequestsShow(cmd.Context(), o)
		},
	}
}

// runJSON is `requests show -o json`: the journal entry, every key always present (response
// null until the request has an answer).
type runJSON struct {
	runSummary
	ExpiresAt time.Time                  `json:"expires_at"`
	Request   json.RawMessage            `json:"request"`
	Response  json.RawMessage            `json:"response"`
	Steps     map[string]json.RawMessage `json:"steps"`
}

func getRun(ctx context.Context, j journalReader, id string) (*chain.Run, error) {
	run, err := j.Get(ctx, id)
	if errors.Is(err, chain.ErrRunNotFound) {
		return nil, &usageError{field: "ID", err: fmt.Errorf("request %s: %w", id, chain.ErrRunNotFound)}
	}
	return run, err
}

func runRequestsShow(ctx context.Context, o *requestsShowOptions) error {
	a, err := o.OpenApp(ctx, o.Globals, appOptions{noLLM: true, readOnly: true})
	if err != nil {
		return err
	}
	defer a.Close()
	run, err := getRun(ctx, a.journal, o.ID)
	if err != nil {
		return err
	}
	s := summarize(run)
	if o.JSON() {
		out := runJSON{runSummary: s, ExpiresAt: run.ExpiresAt, Request: run.Request, Response: run.Response, Steps: run.Steps}
		if len(out.Response) == 0 {
			out.Response = json.RawMessage("null")
		}
		if out.Steps == nil {
			out.Steps = map[string]json.RawMessage{}
		}
		return writeJSON(o.Out, out)
	}
	fmt.Fprintf(o.Out, "request %s (run %d): %s after %d attempt(s)\n", run.Key, run.ID, run.Status, run.Attempts)
	if run.Archived {
		fmt.Fprintln(o.Out, "  replaced by a newer run of the same key")
	}
	fmt.Fprintf(o.Out, "  from:     %s\n  received: %s\n  updated:  %s\n", run.Email, run.CreatedAt.Format(time.RFC3339), run.UpdatedAt.Format(time.RFC3339))
	if s.LastError != "" {
		fmt.Fprintf(o.Out, "  error:    %s\n", s.LastError)
	}
	for _, name := range chain.Steps {
		if raw, ok := run.Steps[name]; ok {
			fmt.Fprintf(o.Out, "  step %-13s %s\n", name+":", text.Truncate(text.OneLine(string(raw)), 100))
		}
	}
	if len(run.Response) > 0 {
		if resp, err := decodeResponse(run); err == nil {
			fmt.Fprintf(o.Out, "  answer:   %s\n", headline(resp))
		}
	}
	return nil
}

type requestsRetryOptions struct {
	*Globals
	ID     string
	Failed bool
}

func newRequestsRetryCmd(g *Globals, runF func(context.Context, *requestsRetryOptions) error) *cobra.Command {
	o := &requestsRetryOptions{Globals: g}
	c := &cobra.Command{
		Use:   "retry [ID | --failed]",
		Short: "Resume a request that failed or is incomplete, or all of them",
		Long: `Resumes requests from the journal: each skips the steps it had completed. With --failed, every
failed, incomplete or abandoned (queued or running, left by a process that died) request is resumed,
whatever its number of attempts or its kind of failure, except those another live process is working on.
Requests run several at a time (FIGSUPPORT_WORKERS), one per contact at a time, in arrival order; one
that a service's rate limit stopped (another process drawing on the same limit) is tried again, up
to 3 more times. A request already done is answered from the journal and nothing is done again.
Exit 1 when a request still fails. On a terminal, a progress bar counts the requests.`,
		Example: `  figsupport requests retry demo-modelisation-1
  figsupport requests retry --failed -o json`,
		Args: argNames("ID?"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.ID = args[0]
			}
			if (o.ID != "") == o.Failed {
				return usagef("give a request ID or --failed, not both")
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runRequestsRetry(cmd.Context(), o)
		},
	}
	c.Flags().BoolVar(&o.Failed, "failed", false, "resume every unfinished request")
	return c
}

// retryRequeues is how many more times `requests retry` resumes a request that a rate limit
// stopped, after its own client's retries (BENCHMARKS.md, backlog: two processes clearing one
// backlog lost 3 requests of 60 to 429s without it).
const retryRequeues = 3

// retryResult is one request of `requests retry -o json`: response null when it failed, error ""
// when it did not.
type retryResult struct {
	ID       int64             `json:"id"`
	Request  string            `json:"request_id"`
	Response *payload.Response `json:"response"`
	Error    string            `json:"error"`
}

func runRequestsRetry(ctx context.Context, o *requestsRetryOptions) error {
	a, err := o.OpenApp(ctx, o.Globals, appOptions{readOnly: o.DryRun})
	if err != nil {
		return err
	}
	defer a.Close()
	var runs []*chain.Run
	if o.ID != "" {
		run, err := getRun(ctx, a.journal, o.ID)
		if err != nil {
			return err
		}
		runs = []*chain.Run{run}
	} else {
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
	if o.DryRun {
		return planRetry(ctx, o, a.journal, runs)
	}
	for _, r := range runs {
		if r.Archived {
			return usagef("run %d (%s) was replaced by a newer run of the same key; use process --force to run its payload again", r.ID, r.Key)
		}
	}
	var bar interface{ Add(int) error }
	if len(runs) > 1 && o.progressOn() {
		b := newBar(o.ErrOut, int64(len(runs)), "retrying", false)
		defer func() { _ = b.Finish() }()
		bar = b
	}
	// The runs go through a pool: several at once (one per contact at a time, in arrival order),
	// all sharing this process's client-side rate limiters. Another process drawing on the same
	// limit (a second retry, the daemon) makes some of them give up on 429s: those go round again.
	pl := worker.New(a.chain(), a.journal, worker.Config{Workers: a.s.workers, MaxBacklog: len(runs) + 1, SweepEvery: -1,
		Requeue: retryRequeues, Log: o.Log, Done: func(out worker.Outcome) {
			a.cleanSpool(out, o.Log)
			if bar != nil {
				_ = bar.Add(1)
			}
		}})
	pl.Start()
	jobs := make([]*worker.Job, len(runs))
	errs := make([]error, len(runs))
	for i, r := range runs {
		jobs[i], errs[i] = pl.Resume(r)
	}
	results := make([]retryResult, 0, len(runs))
	failed := 0
	for i, r := range runs {
		res := retryResult{ID: r.ID, Request: r.Key}
		var resp *payload.Response
		err := errs[i]
		if err == nil {
			select {
			case <-jobs[i].Done():
				resp, err = jobs[i].Result()
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		switch {
		case err != nil:
			res.Error = o.Values.Redact(err.Error())
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
	if o.JSON() {
		if err := writeJSON(o.Out, struct {
			Retried []retryResult `json:"retried"`
			Failed  int           `json:"failed"`
		}{results, failed}); err != nil {
			return err
		}
	} else {
		if len(results) == 0 {
			o.status("nothing to retry")
		}
		for _, r := range results {
			switch {
			case r.Error != "":
				fmt.Fprintf(o.Out, "%s: still failing: %s\n", r.Request, r.Error)
			case r.Response.Replayed:
				fmt.Fprintf(o.Out, "%s: done already, nothing done again (ticket %s)\n", r.Request, r.Response.TicketID)
			case r.Response.Status == payload.StatusIncomplete:
				fmt.Fprintf(o.Out, "%s: still incomplete (ticket %s): %s\n", r.Request, r.Response.TicketID, strings.Join(r.Response.Warnings, "; "))
			default:
				fmt.Fprintf(o.Out, "%s: finished (ticket %s)\n", r.Request, r.Response.TicketID)
			}
		}
	}
	if failed > 0 {
		return silentError{ExitFailed}
	}
	return nil
}

// planRetry says, for each request, what a retry would do: replay a finished one, resume an
// unfinished one after the steps it completed.
func planRetry(ctx context.Context, o *requestsRetryOptions, j journalReader, runs []*chain.Run) error {
	steps := []string{}
	for _, r := range runs {
		if len(r.Steps) == 0 && !r.Archived {
			// A listed run comes without its steps.
			full, err := currentRun(ctx, j, r.Key)
			if err != nil {
				return err
			}
			if full != nil {
				r = full
			}
		}
		switch {
		case r.Archived:
			return usagef("run %d (%s) was replaced by a newer run of the same key; use process --force to run its payload again", r.ID, r.Key)
		case chain.Finished(r.Status):
			steps = append(steps, fmt.Sprintf("answer request %s from the journal: done already, nothing done again", r.Key))
		default:
			done := []string{}
			for _, name := range chain.Steps {
				if _, ok := r.Steps[name]; ok {
					done = append(done, name)
				}
			}
			after := "from the start"
			if len(done) > 0 {
				after = "after " + strings.Join(done, ", ")
			}
			steps = append(steps, fmt.Sprintf("resume request %s (%s, %d attempt(s)) %s", r.Key, r.Status, r.Attempts, after))
		}
	}
	return printSteps(o.Globals, steps)
}
