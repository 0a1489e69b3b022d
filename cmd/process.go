package cmd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fatih/color"
	"github.com/spf13/cobra"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/classify"
	"github.com/figurative/figsupport/internal/objstore"
	"github.com/figurative/figsupport/internal/payload"
	"github.com/figurative/figsupport/internal/text"
)

type processOptions struct {
	*Globals
	File  string // FILE, or "-"/"" for stdin
	Force bool
	NoLLM bool
	EML   string // --eml FILE|-
}

func newProcessCmd(g *Globals, runF func(context.Context, *processOptions) error) *cobra.Command {
	o := &processOptions{Globals: g}
	c := &cobra.Command{
		Use:   "process [FILE|-]",
		Short: "Run the whole chain on a payload: classify, upload, contact, ticket, subtask, notify",
		Long: `Runs a request through the whole chain. The request is recorded in the journal before anything
else; a rerun of the same request (same request_id, or the same payload within FIGSUPPORT_HASH_TTL)
answers from the journal with "replayed": true, or resumes a run that failed half-way.

Files may be given by "url" or, on the command line, by local "path" (relative to the payload
file's directory, or to the working directory for stdin).

With --eml, the request is a raw e-mail (RFC 5322) instead: the sender (Reply-To, else From), the
subject, the text (or the HTML made text), the date and the Message-Id (the idempotency key) fill the
payload, and the attachments are its files.

With --dry-run, the plan says what the journal holds for this request (a new run, a replay, a
resume and the steps left, or a conflict: exit 2 as the run would) and where each step would
write; nothing is written, not even the data dir.`,
		Example: `  figsupport process testdata/payloads/modelisation.json
  figsupport process - -o json < testdata/payloads/support.json
  figsupport process --dry-run testdata/payloads/support.json
  figsupport process --eml testdata/emails/modelisation.eml`,
		Args: argNames("FILE?"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				o.File = args[0]
			}
			if o.EML != "" && o.File != "" {
				return usagef("give a payload FILE or --eml, not both")
			}
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runProcess(cmd.Context(), o)
		},
	}
	c.Flags().BoolVar(&o.Force, "force", false, "start a new run even if this request was processed before")
	c.Flags().BoolVar(&o.NoLLM, "no-llm", false, "classify with the rules only")
	c.Flags().StringVar(&o.EML, "eml", "", "a raw e-mail (FILE, or - for stdin) instead of a JSON payload")
	return c
}

func runProcess(ctx context.Context, o *processOptions) error {
	if o.EML != "" {
		return runProcessEmail(ctx, o)
	}
	s, err := o.settings()
	if err != nil {
		return err
	}
	req, base, err := readRequest(o.Globals, o.File, s)
	if err != nil {
		return err
	}
	if _, err := resolvePaths(req, base, s.maxFileBytes); err != nil {
		return err
	}
	if o.DryRun {
		return planProcess(ctx, o, req, s)
	}
	return processRequest(ctx, o, req)
}

// runProcessEmail reads a raw e-mail into a request; its attachments wait in the data dir's spool
// until the request is done. Bad input leaves nothing behind, not even a data dir it created.
func runProcessEmail(ctx context.Context, o *processOptions) error {
	s, err := o.settings()
	if err != nil {
		return err
	}
	in, _, err := openInput(o.Globals, o.EML, "--eml", "e-mail")
	if err != nil {
		return err
	}
	defer in.Close()
	dir, err := o.dataDir()
	if err != nil {
		return err
	}
	spool := filepath.Join(dir, "spool")
	if o.DryRun {
		// The attachments are read to check them, into a temporary directory that goes away:
		// the data dir is not touched.
		if spool, err = os.MkdirTemp("", "figsupport-eml-"); err != nil {
			return err
		}
		defer os.RemoveAll(spool)
	}
	_, statErr := os.Stat(dir)
	req, err := s.parseEmail(in, o.Now(), spool)
	if err != nil {
		if errors.Is(statErr, os.ErrNotExist) {
			os.RemoveAll(dir)
		}
		return err
	}
	if o.DryRun {
		return planProcess(ctx, o, req, s)
	}
	if err := processRequest(ctx, o, req); err != nil {
		return err
	}
	doneEmail(o.Globals, spool, req)
	return nil
}

// processRequest runs a valid request through the chain and prints the answer.
func processRequest(ctx context.Context, o *processOptions, req *payload.Request) error {
	a, err := o.OpenApp(ctx, o.Globals, appOptions{noLLM: o.NoLLM})
	if err != nil {
		return err
	}
	defer a.Close()
	o.status("backends: %s", a.backends())
	o.Log.Debug("processing", "request_id", req.Key(), "email", req.UserEmail, "files", len(req.Fichiers))

	// A data dir's first request would learn HubSpot's properties and ClickUp's list on its path,
	// each just before its create: asked now, they come beside the first steps (a backend asked
	// again meanwhile waits for the answer in flight). Later runs read them from the journal. A
	// failure is the request's to report: the step that needs the answer asks again.
	warmCtx, stopWarm := context.WithCancel(ctx)
	warmed := make(chan struct{})
	go func() { a.warm(warmCtx, slog.New(slog.DiscardHandler)); close(warmed) }()
	defer func() { stopWarm(); <-warmed }()

	resp, err := a.chain().Process(ctx, req, chain.RunOptions{Force: o.Force})
	switch {
	case errors.Is(err, chain.ErrConflict):
		return err // it names the request already
	case err != nil:
		if exitCodeOf(err) == ExitFailed {
			o.status("request %s is kept in the journal: `figsupport requests retry %s` resumes it", req.Key(), req.Key())
		}
		return fmt.Errorf("request %s: %w", req.Key(), err)
	}
	if err := printResponse(o.Globals, resp); err != nil {
		return err
	}
	switch {
	case resp.Replayed:
		o.status("request %s was processed already: answered from the journal, nothing done again (--force runs it anew)", resp.RequestID)
	case resp.Status == payload.StatusIncomplete:
		o.status("request %s is incomplete (%d step(s) failed): `figsupport requests retry %s` (or the same command again) finishes it",
			resp.RequestID, len(resp.Warnings), resp.RequestID)
		return silentError{ExitFailed}
	}
	return nil
}

// resolvePaths makes local paths absolute and checks them before anything is written, so a
// missing or oversize file is bad input (exit 2) naming its field; it returns each file's size
// (-1 for a URL: known only once fetched).
func resolvePaths(req *payload.Request, base string, maxBytes int64) ([]int64, error) {
	sizes := make([]int64, len(req.Fichiers))
	for i := range req.Fichiers {
		f := &req.Fichiers[i]
		sizes[i] = -1
		if f.Path == "" {
			continue
		}
		field := fmt.Sprintf("fichiers[%d].path", i)
		p := f.Path
		if !filepath.IsAbs(p) && base != "" {
			p = filepath.Join(base, p)
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, &payload.ValidationError{Field: field, Msg: err.Error()}
		}
		st, err := os.Stat(abs)
		switch {
		case err != nil:
			return nil, &payload.ValidationError{Field: field, Msg: fmt.Sprintf("cannot read %s: %v", f.Path, errors.Unwrap(err))}
		case !st.Mode().IsRegular():
			return nil, &payload.ValidationError{Field: field, Msg: fmt.Sprintf("%s is not a regular file", f.Path)}
		case st.Size() > maxBytes:
			return nil, &payload.ValidationError{Field: field, Msg: fmt.Sprintf("%s is %s, over the %s cap (FIGSUPPORT_MAX_FILE_BYTES)", f.Path, text.Bytes(st.Size()), text.Bytes(maxBytes))}
		}
		f.Path = abs
		sizes[i] = st.Size()
	}
	return sizes, nil
}

// processPlan is what `process --dry-run -o json` prints. Every key is always present.
type processPlan struct {
	DryRun    bool   `json:"dry_run"`
	RequestID string `json:"request_id"`
	Email     string `json:"user_email"`
	// Journal is what the journal holds for this request: "new" (a first run, or a new one after
	// expiry or --force), "replay" (done already: answered from the journal) or "resume".
	Journal string `json:"journal"`
	// DoneSteps are the steps an earlier run completed (resume), in the chain's order.
	DoneSteps      []string          `json:"done_steps"`
	Classification classify.Result   `json:"classification"`
	Files          []plannedFile     `json:"files"`
	Response       *payload.Response `json:"response"` // the stored answer of a replay, else null
	Steps          []string          `json:"steps"`
}

type plannedFile struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	Size   *int64 `json:"size"` // bytes; null when not known before fetching (a URL)
	Key    string `json:"key"`
}

// planProcess says what processing req would do, reading the journal and the CRM but writing
// nothing: the same decisions as the chain's (replay, resume, conflict, threading) and the real
// targets.
func planProcess(ctx context.Context, o *processOptions, req *payload.Request, s settings) error {
	a, err := o.OpenApp(ctx, o.Globals, appOptions{noLLM: o.NoLLM, readOnly: true})
	if err != nil {
		return err
	}
	defer a.Close()
	key := req.Key()
	p := processPlan{DryRun: true, RequestID: key, Email: req.UserEmail, Journal: "new", DoneSteps: []string{}, Files: []plannedFile{}}

	run, err := currentRun(ctx, a.journal, key)
	if err != nil {
		return err
	}
	record := "record the request in the journal " + a.dbFile
	switch {
	case run == nil:
	case o.Force:
		record = fmt.Sprintf("start a new run (--force); run %d stays in the journal", run.ID)
	case chain.Finished(run.Status) && !o.Now().Before(run.ExpiresAt):
		record = fmt.Sprintf("start a new run: run %d of this request expired on %s", run.ID, run.ExpiresAt.Format("2006-01-02 15:04"))
	case run.Hash != req.Hash():
		return fmt.Errorf("%w: %s", chain.ErrConflict, key)
	case chain.Finished(run.Status):
		return printReplayPlan(o, p, run)
	default:
		p.Journal = "resume"
		for name := range run.Steps {
			p.DoneSteps = append(p.DoneSteps, name)
		}
		slices.SortFunc(p.DoneSteps, func(x, y string) int { return slices.Index(chain.Steps, x) - slices.Index(chain.Steps, y) })
		stored, err := chain.DecodeRequest(run)
		if err != nil {
			return err
		}
		req = stored // a resume runs the request as first recorded
	}

	if p.Classification, err = classifyOnce(ctx, a.s, o.NoLLM, req); err != nil {
		return err
	}
	names := make([]string, len(req.Fichiers))
	for i, f := range req.Fichiers {
		names[i] = f.Name
	}
	keys := objstore.Keys(objstore.RequestPrefix(key, req.ReceivedAt), names)
	for i, f := range req.Fichiers {
		pf := plannedFile{Name: f.Name, Source: f.URL, Key: keys[i]}
		if f.Path != "" {
			pf.Source = f.Path
			if o.EML != "" {
				pf.Source = "attached to the e-mail"
			}
			if st, err := os.Stat(f.Path); err == nil {
				size := st.Size()
				pf.Size = &size
			}
		}
		p.Files = append(p.Files, pf)
	}

	if p.Journal == "resume" {
		var left []string
		for _, st := range chain.Steps {
			if !slices.Contains(p.DoneSteps, st) {
				left = append(left, st)
			}
		}
		p.Steps = []string{
			fmt.Sprintf("resume run %d (%s after %d attempt(s)): %s done earlier", run.ID, run.Status, run.Attempts, strings.Join(p.DoneSteps, ", ")),
			fmt.Sprintf("run what is left of %s (the steps that apply to this request)", strings.Join(left, ", ")),
			"e-mail the admin: " + a.target("notify"),
		}
	} else if p.Steps, err = planNewRun(ctx, a, req, p.Classification, record); err != nil {
		return err
	}
	return printPlan(o.Globals, p)
}

// currentRun is the journal's current run of key, or nil.
func currentRun(ctx context.Context, j journalReader, key string) (*chain.Run, error) {
	run, err := j.Get(ctx, key)
	switch {
	case errors.Is(err, chain.ErrRunNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case run.Key != key || run.Archived:
		return nil, nil // Get also answers run ids; this is another request
	}
	return run, nil
}

// planNewRun is the chain's path for a new run, its threading decided as the chain would now.
func planNewRun(ctx context.Context, a *app, req *payload.Request, cls classify.Result, record string) ([]string, error) {
	steps := []string{record, fmt.Sprintf("classify: %s by %s", cls.Classification, cls.Method)}
	if n := len(req.Fichiers); n > 0 {
		steps = append(steps, fmt.Sprintf("upload %d file(s) to %s", n, a.target("files")))
	}
	var contact *chain.Contact
	if finder, ok := a.crm.(contactFinder); ok {
		var err error
		if contact, err = finder.FindContact(ctx, req.UserEmail); err != nil {
			return nil, err
		}
	}
	var t *chain.Ticket
	if contact == nil {
		steps = append(steps, fmt.Sprintf("create the contact %s in %s", req.UserEmail, a.target("crm")))
	} else {
		steps = append(steps, fmt.Sprintf("use contact %s (%s) in %s", contact.ID, req.UserEmail, a.target("crm")))
		var err error
		if t, err = a.chain().FindOpenTicket(ctx, contact.ID, req.ReceivedAt); err != nil {
			return nil, err
		}
	}
	if t != nil {
		steps = append(steps, fmt.Sprintf("add a note to ticket %s %q (stage %s, last activity %s)", t.ID, t.Subject, t.Stage, t.LastActivity.Format("2006-01-02 15:04")))
		if n := len(req.Fichiers); n > 0 {
			steps = append(steps, fmt.Sprintf("append %d file URL(s) to the ticket's fichiers_urls", n))
		}
		if t.SubtaskID != "" {
			steps = append(steps, fmt.Sprintf("append the message to subtask %s in %s", t.SubtaskID, a.target("tasks")))
		}
	} else {
		steps = append(steps, fmt.Sprintf("create a %s ticket in %s (no open ticket active since %s)", cls.Classification, a.target("crm"),
			req.ReceivedAt.Add(-a.s.chain.Window).Format("2006-01-02 15:04")))
		if cls.Classification == payload.Modelisation {
			steps = append(steps, "create a modelling subtask in "+a.target("tasks"))
		}
		if len(req.Fichiers) > 0 {
			steps = append(steps, "add a note with the files to the contact")
		}
	}
	return append(steps, "e-mail the admin: "+a.target("notify")), nil
}

func printReplayPlan(o *processOptions, p processPlan, run *chain.Run) error {
	p.Journal = "replay"
	resp, err := decodeResponse(run)
	if err != nil {
		return err
	}
	resp.Replayed = true
	p.Response = resp
	p.Classification = classify.Result{Classification: resp.Classification, Reasons: []string{}}
	p.Steps = []string{fmt.Sprintf("answer from the journal (run %d, done %s): ticket %s; nothing is done again (--force runs it anew)",
		run.ID, run.UpdatedAt.Format("2006-01-02 15:04"), resp.TicketID)}
	for name := range run.Steps {
		p.DoneSteps = append(p.DoneSteps, name)
	}
	slices.SortFunc(p.DoneSteps, func(x, y string) int { return slices.Index(chain.Steps, x) - slices.Index(chain.Steps, y) })
	return printPlan(o.Globals, p)
}

func printPlan(g *Globals, p processPlan) error {
	if g.JSON() {
		return writeJSON(g.Out, p)
	}
	what := map[string]string{"new": "a new request", "replay": "processed already", "resume": "an unfinished request"}[p.Journal]
	fmt.Fprintf(g.Out, "dry run: nothing written\nrequest %s from %s: %s\n", p.RequestID, p.Email, what)
	if p.Journal != "replay" {
		fmt.Fprintf(g.Out, "  classification: %s by %s\n", p.Classification.Classification, p.Classification.Method)
	}
	for _, f := range p.Files {
		size := "size known once fetched"
		if f.Size != nil {
			size = text.Bytes(*f.Size)
		}
		fmt.Fprintf(g.Out, "  file %s (%s) from %s\n    → %s\n", f.Name, size, f.Source, f.Key)
	}
	for i, st := range p.Steps {
		fmt.Fprintf(g.Out, "  %d. would %s\n", i+1, st)
	}
	return nil
}

// headline is the result line the support team reads, in French: what happened to the customer's
// message. It is built from the answer's fields, so a replay never claims a creation.
func headline(r *payload.Response) string {
	switch {
	case r.TicketID == "":
		return r.Message // no ticket involved (a message skipped as automatic)
	case r.Replayed:
		return "Demande déjà traitée: ticket #" + r.TicketID
	case r.IsNewTicket:
		return "Nouveau ticket créé: #" + r.TicketID
	}
	return "Message ajouté au ticket #" + r.TicketID
}

// printResponse prints the chain's answer: the JSON contract, or for people a French result
// block (sizes in French units) and, in English, the warnings (the tool's own mechanics).
func printResponse(g *Globals, r *payload.Response) error {
	if g.JSON() {
		return writeJSON(g.Out, r)
	}
	head := g.paint(g.Out, headline(r), color.FgGreen)
	if r.Status == payload.StatusIncomplete {
		head = g.paint(g.Out, headline(r), color.FgYellow)
	}
	fmt.Fprintln(g.Out, head)
	fmt.Fprintf(g.Out, "  ticket:         %s %s\n", r.TicketID, r.TicketURL)
	fmt.Fprintf(g.Out, "  classification: %s\n", r.Classification)
	fmt.Fprintf(g.Out, "  contact:        %s\n", r.ContactID)
	if r.SubtaskID != "" {
		fmt.Fprintf(g.Out, "  sous-tâche:     %s\n", r.SubtaskID)
	}
	for _, f := range r.Files {
		fmt.Fprintf(g.Out, "  fichier:        %s (%s) %s\n", f.Name, text.HumanSize(f.Size), f.URL)
	}
	fmt.Fprintf(g.Out, "  demande:        %s\n", r.RequestID)
	for _, w := range r.Warnings {
		fmt.Fprintf(g.Out, "  %s %s\n", g.paint(g.Out, "warning:", color.FgYellow), w)
	}
	return nil
}
