package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fatih/color"
	"github.com/spf13/cobra"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/config"
	"github.com/figurative/figsupport/internal/health"
	"github.com/figurative/figsupport/internal/mailbox"
	"github.com/figurative/figsupport/internal/oauth"
	"github.com/figurative/figsupport/internal/payload"
	"github.com/figurative/figsupport/internal/server"
)

type mailPollOptions struct {
	*Globals
	Limit int
}

func newMailCmd(g *Globals) *cobra.Command {
	return newGroupCmd("mail", "Read the support mailbox (IMAP or Microsoft Graph)", newMailPollCmd(g, nil))
}

func newMailPollCmd(g *Globals, runF func(context.Context, *mailPollOptions) error) *cobra.Command {
	o := &mailPollOptions{Globals: g}
	poll := &cobra.Command{
		Use:   "poll",
		Short: "One pass over the support mailbox: each unread message through the chain",
		Long: `Reads the unread messages of the support mailbox (MAIL_SOURCE: imap or graph), oldest first, at
most MAIL_MAX_PER_PASS (or --limit), and runs each through the same chain as "process --eml". A
message is marked read, or moved to MAIL_PROCESSED_FOLDER, once its request is done; after a
failure it stays unread and the next pass takes it again (after the new ones); a message that can
never become a request (unreadable, too large, a Message-ID reused for another message) is moved to
MAIL_REJECTED_FOLDER, or marked read and flagged.

Each message's Message-ID is its request key: a message handled before — a crash between the chain
and the mark, or the same message read again after a UIDVALIDITY change — is answered from the
journal ("replayed") and only marked.

With --dry-run the folder is opened read-only and the messages that would be handled are listed;
nothing is marked, moved or written to the journal.

Exit 0 when every message was handled (or there was none), 1 when one failed and was left for the
next pass, 4 when the mailbox refused the login or is misconfigured. Meant for cron; the daemon
polls by itself with FIGSUPPORT_MAIL_POLL_INTERVAL.`,
		Example: `  figsupport mail poll
  figsupport mail poll --dry-run
  figsupport mail poll --limit 10 -o json`,
		Args: argNames(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runMailPoll(cmd.Context(), o)
		},
	}
	poll.Flags().IntVar(&o.Limit, "limit", 0, "messages looked at in this pass (default MAIL_MAX_PER_PASS)")
	return poll
}

func runMailPoll(ctx context.Context, o *mailPollOptions) error {
	g := o.Globals
	if o.Limit < 0 {
		return usagef("--limit must be positive")
	}
	dir, err := g.dataDir()
	if err != nil {
		return err
	}
	p, err := newMailPoller(g, dir)
	if err != nil {
		return err
	}
	if p == nil {
		return &config.Error{Key: "MAIL_SOURCE", Msg: "not set: no mailbox to read (imap or graph; see the README's Support mailbox section)"}
	}
	var h mailbox.Handler
	if !g.DryRun {
		a, err := g.OpenApp(ctx, g, appOptions{})
		if err != nil {
			return err
		}
		defer a.Close()
		g.status("backends: %s; mailbox: %s %s", a.backends(), p.Kind(), p.Name())
		h = a.mailHandler(a.chainRun())
	}
	sum, err := p.Poll(ctx, h, mailbox.PassOptions{Limit: o.Limit, DryRun: g.DryRun})
	// A pass that failed before any message (login, folder) prints only its error.
	if sum != nil && (err == nil || len(sum.Messages) > 0) {
		if perr := printMailSummary(g, sum); perr != nil {
			return perr
		}
	}
	if err != nil {
		return mailErr(err)
	}
	if sum.Failed > 0 {
		g.status("%d message(s) failed and stay unread: the next pass takes them again", sum.Failed)
		return silentError{ExitFailed}
	}
	return nil
}

// mailErr maps the mailbox's configuration errors to config errors (exit 4) naming their key.
func mailErr(err error) error {
	var ce *mailbox.ConfigError
	var fe *mailbox.FolderError
	switch {
	case errors.As(err, &ce):
		return &config.Error{Key: ce.Key, Msg: ce.Msg}
	case errors.As(err, &fe):
		return &config.Error{Key: fe.Key, Msg: fmt.Sprintf("%q: no such folder in the mailbox: create it or correct the name (%v)", fe.Folder, fe.Err)}
	}
	return err
}

// newMailPoller builds the mailbox reader the configuration describes, or nil when MAIL_SOURCE is
// not set. It does no I/O. serve's poller (FIGSUPPORT_MAIL_POLL_INTERVAL) uses it too.
func newMailPoller(g *Globals, dataDir string) (*mailbox.Poller, error) {
	v := g.Values
	if !v.Set("MAIL_SOURCE") {
		return nil, nil
	}
	cfg := mailbox.Config{
		Source: v.OneOf("MAIL_SOURCE", mailbox.SourceIMAP, mailbox.SourceGraph),
		IMAP: mailbox.IMAPConfig{
			Host: v.String("MAIL_IMAP_HOST"), User: v.String("MAIL_IMAP_USER"), Password: v.String("MAIL_IMAP_PASSWORD"),
			TLS:  v.OneOf("MAIL_IMAP_TLS", mailbox.TLSImplicit, mailbox.TLSStartTLS, mailbox.TLSNone),
			Auth: v.OneOf("MAIL_IMAP_AUTH", mailbox.AuthLogin, mailbox.AuthXOAuth2),
		},
		Graph:           mailbox.GraphConfig{Mailbox: v.String("MAIL_GRAPH_MAILBOX"), BaseURL: v.URL("GRAPH_BASE_URL")},
		OAuth:           oauthConfig(v),
		Folder:          v.String("MAIL_FOLDER"),
		ProcessedFolder: v.String("MAIL_PROCESSED_FOLDER"),
		RejectedFolder:  v.String("MAIL_REJECTED_FOLDER"),
		MaxPerPass:      v.Int("MAIL_MAX_PER_PASS"),
		// cron's passes are separate processes: what failed is remembered in the data dir.
		State: &mailbox.FileState{Path: filepath.Join(dataDir, "mailbox-state.json")},
		Log:   g.Log,
		Now:   g.Now,
	}
	if v.Set("MAIL_IMAP_PORT") {
		cfg.IMAP.Port = v.Int("MAIL_IMAP_PORT")
	}
	if err := v.Err(); err != nil {
		return nil, err
	}
	p, err := mailbox.New(cfg)
	if err != nil {
		return nil, mailErr(err)
	}
	return p, nil
}

// oauthConfig is the Microsoft Entra app registration shared by the notifier and the mailbox.
func oauthConfig(v *config.Values) oauth.Config {
	return oauth.Config{
		TenantID: v.String("OAUTH_TENANT_ID"), ClientID: v.String("OAUTH_CLIENT_ID"),
		ClientSecret: v.String("OAUTH_CLIENT_SECRET"), TokenURL: v.URL("OAUTH_TOKEN_URL"),
	}
}

// parseEmail reads a raw e-mail into a request; its attachments go to spool.
func (s settings) parseEmail(raw io.Reader, now time.Time, spool string) (*payload.Request, error) {
	return payload.ParseEmail(raw, s.limits, now, spool, s.maxFileBytes)
}

// doneEmail removes the spooled attachments of a request that is done.
func doneEmail(g *Globals, spool string, req *payload.Request) {
	if err := server.RemoveSpool(spool, req); err != nil {
		g.Log.Warn("spool cleanup", "request_id", req.Key(), "err", err)
	}
}

// emailRun runs an e-mail's request: the chain itself (commands) or through the daemon's pool.
type emailRun func(ctx context.Context, req *payload.Request) (*payload.Response, error)

// mailHandler reads each mailbox message into a request, has run process it, and tells the
// poller what became of it: a message that can never be processed — unreadable, a Message-ID
// reused for another message, a file the chain can never fetch — is rejected (never retried);
// any other failure, or an incomplete run, leaves it unread for the next pass.
func (a *app) mailHandler(run emailRun) mailbox.Handler {
	return func(ctx context.Context, raw io.Reader) (mailbox.Outcome, error) {
		req, err := a.s.parseEmail(raw, a.g.Now(), a.spoolDir())
		switch {
		case errors.Is(err, payload.ErrInvalid):
			return mailbox.Outcome{}, mailbox.Reject(err)
		case err != nil: // the spool's disk: the next pass tries again
			return mailbox.Outcome{}, err
		}
		resp, err := run(ctx, req)
		switch {
		case errors.Is(err, chain.ErrConflict), chain.Classify(err) == chain.FailureInput:
			doneEmail(a.g, a.spoolDir(), req)
			return mailbox.Outcome{}, mailbox.Reject(fmt.Errorf("request %s: %w", req.Key(), err))
		case err != nil:
			return mailbox.Outcome{}, fmt.Errorf("request %s: %w", req.Key(), err)
		}
		out := mailbox.Outcome{RequestID: resp.RequestID, TicketID: resp.TicketID, Replayed: resp.Replayed}
		switch resp.Status {
		case payload.StatusSkipped:
			out.Status = mailbox.StatusSkipped
		case payload.StatusIncomplete:
			return out, fmt.Errorf("request %s is incomplete (%s): the next pass resumes it", resp.RequestID, strings.Join(resp.Warnings, "; "))
		}
		doneEmail(a.g, a.spoolDir(), req)
		return out, nil
	}
}

// chainRun runs the request through the chain in this process (mail poll, process --eml).
func (a *app) chainRun() emailRun {
	c := a.chain()
	return func(ctx context.Context, req *payload.Request) (*payload.Response, error) {
		return c.Process(ctx, req, chain.RunOptions{})
	}
}

func mailChecks(ctx context.Context, g *Globals, dataDir string) []health.Check {
	p, err := newMailPoller(g, dataDir)
	switch {
	case err != nil:
		return []health.Check{{Service: "mailbox", Name: "configuration", Status: health.Fail, Detail: err.Error()}}
	case p == nil:
		return []health.Check{{Service: "mailbox", Name: "configuration", Status: health.OK, Detail: "MAIL_SOURCE not set: no mailbox is read"}}
	}
	return p.Check(ctx)
}

func printMailSummary(g *Globals, s *mailbox.Summary) error {
	if g.JSON() {
		return writeJSON(g.Out, s)
	}
	if s.DryRun {
		fmt.Fprintf(g.Out, "dry run: nothing marked, moved or processed\n")
	}
	fmt.Fprintf(g.Out, "%s %s: %d processed, %d skipped, %d rejected, %d failed", s.Source, s.Mailbox, s.Processed, s.Skipped, s.Rejected, s.Failed)
	if s.DryRun {
		fmt.Fprintf(g.Out, ", %d to handle", s.Pending)
	}
	if s.More {
		fmt.Fprint(g.Out, " (more unread messages wait for the next pass)")
	}
	fmt.Fprintln(g.Out)
	if s.GenerationChanged {
		fmt.Fprintln(g.Out, "  the folder was renumbered (UIDVALIDITY changed): every unread message was looked at afresh")
	}
	tw := tabwriter.NewWriter(g.Out, 0, 4, 2, ' ', 0)
	for _, m := range s.Messages {
		st := m.Status
		switch st {
		case mailbox.StatusProcessed, mailbox.StatusSkipped:
			st = g.paint(g.Out, st, color.FgGreen)
		case mailbox.StatusFailed, mailbox.StatusRejected:
			st = g.paint(g.Out, st, color.FgRed)
		}
		detail := m.Action
		if m.RequestID != "" {
			detail = strings.TrimSpace(detail + " request " + m.RequestID)
		}
		if m.Replayed {
			detail += " (replayed)"
		}
		if m.Error != "" {
			detail = strings.TrimSpace(detail + " " + m.Error)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", st, m.From, m.Subject, detail)
	}
	return tw.Flush()
}
