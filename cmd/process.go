package cmd

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/fatih/color"
	"github.com/spf13/cobra"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/classify"
	"github.com/figurative/figsupport/internal/objstore"
	"github.com/figurative/figsupport/internal/payload"
)

type processOptions struct {
	g     *Globals
	force bool
	noLLM bool
	eml   string
}

func newProcessCmd(g *Globals) *cobra.Command {
	o := &processOptions{g: g}
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
payload, and the attachments are its files.`,
		Example: `  figsupport process testdata/payloads/modelisation.json
  figsupport process - -o json < request.json
  figsupport process --dry-run testdata/payloads/support.json
  figsupport process --eml message.eml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if o.eml != "" {
				if len(args) > 0 {
					return usagef("give a payload FILE or --eml, not both")
				}
				return runProcessEmail(cmd, o)
			}
			body, base, err := readInput(g, args)
			if err != nil {
				return err
			}
			return runProcess(cmd, o, body, base)
		},
	}
	c.Flags().BoolVar(&o.force, "force", false, "start a new run even if this request was processed before")
	c.Flags().BoolVar(&o.noLLM, "no-llm", false, "classify with the rules only")
	c.Flags().StringVar(&o.eml, "eml", "", "a raw e-mail (FILE, or - for stdin) instead of a JSON payload")
	return c
}

func runProcess(cmd *cobra.Command, o *processOptions, body []byte, base string) error {
	g := o.g
	s, err := g.settings()
	if err != nil {
		return err
	}
	req, err := payload.ParseBytes(body, s.limits, g.Now())
	if err != nil {
		return err
	}
	if err := resolvePaths(req, base, s.maxFileBytes); err != nil {
		return err
	}
	if g.DryRun {
		return dryRunProcess(cmd, o, req, s)
	}
	return processRequest(cmd, o, req)
}

// runProcessEmail reads a raw e-mail into a request; its attachments wait in the data dir's spool
// until the request is done. Bad input leaves nothing behind, not even a data dir it created.
func runProcessEmail(cmd *cobra.Command, o *processOptions) error {
	g := o.g
	s, err := g.settings()
	if err != nil {
		return err
	}
	var in io.Reader = g.In
	if o.eml != "-" {
		f, err := os.Open(o.eml)
		if err != nil {
			return usageErr(fmt.Errorf("--eml: %w", err))
		}
		defer f.Close()
		in = f
	}
	dir, err := g.dataDir()
	if err != nil {
		return err
	}
	spool := filepath.Join(dir, "spool")
	if g.DryRun {
		// The attachments are read to check them, into a directory that goes away.
		if spool, err = os.MkdirTemp("", "figsupport-eml-"); err != nil {
			return err
		}
		defer os.RemoveAll(spool)
	}
	_, statErr := os.Stat(dir)
	req, err := s.parseEmail(in, g.Now(), spool)
	if err != nil {
		if os.IsNotExist(statErr) {
			os.RemoveAll(dir)
		}
		return err
	}
	if g.DryRun {
		return dryRunProcess(cmd, o, req, s)
	}
	if err := processRequest(cmd, o, req); err != nil {
		return err
	}
	doneEmail(g, spool, req)
	return nil
}

// processRequest runs a valid request through the chain and prints the answer.
func processRequest(cmd *cobra.Command, o *processOptions, req *payload.Request) error {
	g := o.g
	ctx := cmd.Context()

	a, err := openApp(ctx, g, o.noLLM)
	if err != nil {
		return err
	}
	defer a.Close()
	g.status("backends: %s", a.backends())
	g.Log.Debug("processing", "request_id", req.Key(), "email", req.UserEmail, "files", len(req.Fichiers))

	resp, err := a.chain().Process(ctx, req, chain.RunOptions{Force: o.force})
	if err != nil {
		if exitCodeOf(err) == ExitFailed {
			g.status("request %s is kept in the journal: `figsupport requests retry %s` resumes it", req.Key(), req.Key())
		}
		return fmt.Errorf("request %s: %w", req.Key(), err)
	}
	if err := printResponse(g, resp); err != nil {
		return err
	}
	if resp.Status == payload.StatusIncomplete {
		g.status("request %s is incomplete: `figsupport requests retry %s` (or the same command again) finishes it", resp.RequestID, resp.RequestID)
		return silentError{ExitFailed}
	}
	return nil
}

// resolvePaths makes local paths absolute and checks them before anything is written, so a
// missing file is bad input (exit 2) naming its field.
func resolvePaths(req *payload.Request, base string, maxBytes int64) error {
	for i := range req.Fichiers {
		f := &req.Fichiers[i]
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
			return &payload.ValidationError{Field: field, Msg: err.Error()}
		}
		st, err := os.Stat(abs)
		switch {
		case err != nil:
			return &payload.ValidationError{Field: field, Msg: fmt.Sprintf("cannot read %s: %v", f.Path, errorsUnwrapPath(err))}
		case !st.Mode().IsRegular():
			return &payload.ValidationError{Field: field, Msg: fmt.Sprintf("%s is not a regular file", f.Path)}
		case st.Size() > maxBytes:
			return &payload.ValidationError{Field: field, Msg: fmt.Sprintf("%s is %d bytes, over the %d-byte cap (FIGSUPPORT_MAX_FILE_BYTES)", f.Path, st.Size(), maxBytes)}
		}
		f.Path = abs
	}
	return nil
}

func errorsUnwrapPath(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// plan is what --dry-run prints for process.
type plan struct {
	DryRun         bool            `json:"dry_run"`
	RequestID      string          `json:"request_id"`
	Email          string          `json:"user_email"`
	Classification classify.Result `json:"classification"`
	Files          []plannedFile   `json:"files"`
	Steps          []string        `json:"steps"`
}

type plannedFile struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	Key    string `json:"key"`
}

func dryRunProcess(cmd *cobra.Command, o *processOptions, req *payload.Request, s settings) error {
	g := o.g
	res, err := classifyOnce(cmd.Context(), s, o.noLLM, req)
	if err != nil {
		return err
	}
	p := plan{DryRun: true, RequestID: req.Key(), Email: req.UserEmail, Classification: res, Files: []plannedFile{}}
	names := make([]string, len(req.Fichiers))
	for i, f := range req.Fichiers {
		names[i] = f.Name
	}
	keys := objstore.Keys(objstore.RequestPrefix(req.Key(), req.ReceivedAt), names)
	for i, f := range req.Fichiers {
		src := f.URL
		if src == "" {
			src = f.Path
		}
		p.Files = append(p.Files, plannedFile{Name: f.Name, Source: src, Key: keys[i]})
	}
	since := req.ReceivedAt.Add(-s.chain.Window)
	p.Steps = append(p.Steps,
		"record the request in the journal (replay if already processed)",
		fmt.Sprintf("upload %d file(s)", len(req.Fichiers)),
		"find or create the contact "+req.UserEmail,
		fmt.Sprintf("look for the contact's ticket in stages %s active since %s", strings.Join(s.chain.OpenStages, ","), since.Format("2006-01-02T15:04:05Z")),
		"found: add a note, append the file URLs, update the subtask if any",
		"not found: create the ticket"+map[bool]string{true: ", create the modelling subtask", false: ""}[res.Classification == payload.Modelisation]+", note on the contact if files",
		"notify "+strings.Join(g.Values.List("NOTIFICATION_EMAIL"), ", "),
	)
	if g.JSON() {
		return writeJSON(g.Out, p)
	}
	fmt.Fprintf(g.Out, "dry run: nothing written\nrequest %s from %s: %s (%s)\n", p.RequestID, p.Email, res.Classification, res.Method)
	for _, f := range p.Files {
		fmt.Fprintf(g.Out, "  file %s ← %s\n", f.Key, f.Source)
	}
	for i, st := range p.Steps {
		fmt.Fprintf(g.Out, "  %d. %s\n", i+1, st)
	}
	return nil
}

// printResponse prints the chain's answer: the JSON contract, or a short summary for people.
func printResponse(g *Globals, r *payload.Response) error {
	if g.JSON() {
		return writeJSON(g.Out, r)
	}
	head := r.Message
	switch r.Status {
	case payload.StatusIncomplete:
		head = paint(g.Out, head, color.FgYellow)
	default:
		head = paint(g.Out, head, color.FgGreen)
	}
	if r.Replayed {
		head += " (replayed from the journal: nothing was done again)"
	}
	fmt.Fprintln(g.Out, head)
	fmt.Fprintf(g.Out, "  ticket:         %s %s\n", r.TicketID, r.TicketURL)
	fmt.Fprintf(g.Out, "  classification: %s\n", r.Classification)
	fmt.Fprintf(g.Out, "  contact:        %s\n", r.ContactID)
	if r.SubtaskID != "" {
		fmt.Fprintf(g.Out, "  subtask:        %s\n", r.SubtaskID)
	}
	for _, f := range r.Files {
		fmt.Fprintf(g.Out, "  file:           %s (%d bytes) %s\n", f.Name, f.Size, f.URL)
	}
	fmt.Fprintf(g.Out, "  request id:     %s\n", r.RequestID)
	for _, w := range r.Warnings {
		fmt.Fprintf(g.Out, "  %s %s\n", paint(g.Out, "warning:", color.FgYellow), w)
	}
	return nil
}
