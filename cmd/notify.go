package cmd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/payload"
	"github.com/figurative/figsupport/internal/text"
)

type notifyOptions struct {
	*Globals
	Subject, Body string
	Result        string // --result FILE|-
}

func newNotifyCmd(g *Globals, runF func(context.Context, *notifyOptions) error) *cobra.Command {
	o := &notifyOptions{Globals: g}
	c := &cobra.Command{
		Use:   "notify --subject S --body B | --result FILE|-",
		Short: "E-mail the admin (NOTIFICATION_EMAIL)",
		Long: `Sends the admin an e-mail: a free message (--subject, --body), or the notification of a processed
request from the JSON that "process -o json" printed (--result), e.g. to resend it.`,
		Example: `  figsupport notify --subject "Test" --body "Les notifications fonctionnent"
  figsupport process testdata/payloads/support.json -o json | figsupport notify --result -`,
		Args: argNames(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), o)
			}
			return runNotify(cmd.Context(), o)
		},
	}
	f := c.Flags()
	f.StringVar(&o.Subject, "subject", "", "subject")
	f.StringVar(&o.Body, "body", "", "plain-text body")
	f.StringVar(&o.Result, "result", "", "a process result (JSON file, or - for stdin) to notify about")
	c.MarkFlagsMutuallyExclusive("result", "subject")
	c.MarkFlagsMutuallyExclusive("result", "body")
	c.MarkFlagsOneRequired("result", "subject")
	return c
}

// readResult reads a `process -o json` answer, bounded like a request.
func readResult(g *Globals, file string, limit int64) (*payload.Response, error) {
	in, _, err := openInput(g, file, "--result", "process result")
	if err != nil {
		return nil, err
	}
	defer in.Close()
	body, err := io.ReadAll(io.LimitReader(in, limit+1))
	switch {
	case err != nil:
		return nil, fieldErr("--result", "cannot read: %v", err)
	case int64(len(body)) > limit:
		return nil, fieldErr("--result", "larger than %s (FIGSUPPORT_MAX_BODY_BYTES)", text.Bytes(limit))
	}
	var r payload.Response
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fieldErr("--result", "not a process result: %v", err)
	}
	if r.TicketID == "" {
		return nil, fieldErr("--result", "not a process result: no ticket_id")
	}
	return &r, nil
}

func runNotify(ctx context.Context, o *notifyOptions) error {
	s, err := o.settings()
	if err != nil {
		return err
	}
	var n *chain.Notification
	if o.Result != "" {
		r, err := readResult(o.Globals, o.Result, s.limits.MaxBodyBytes)
		if err != nil {
			return err
		}
		n = &chain.Notification{Classification: r.Classification, Subject: r.Message, TicketID: r.TicketID,
			TicketURL: r.TicketURL, IsNewTicket: r.IsNewTicket, SubtaskID: r.SubtaskID, Files: r.Files, RequestKey: r.RequestID}
	} else if strings.TrimSpace(o.Subject) == "" {
		return fieldErr("--subject", "must not be empty")
	}
	a, err := o.OpenApp(ctx, o.Globals, appOptions{noLLM: true, readOnly: o.DryRun})
	if err != nil {
		return err
	}
	defer a.Close()
	if o.DryRun {
		what := fmt.Sprintf("e-mail %q", o.Subject)
		if n != nil {
			what = fmt.Sprintf("e-mail the notification of ticket %s (request %s)", n.TicketID, n.RequestKey)
		}
		return printSteps(o.Globals, []string{what + " to " + a.target("notify")})
	}
	if n != nil {
		err = a.notify.Notify(ctx, *n)
	} else {
		err = a.notify.Send(ctx, o.Subject, o.Body)
	}
	if err != nil {
		return err
	}
	if o.JSON() {
		return writeJSON(o.Out, struct {
			Sent      bool     `json:"sent"`
			Transport string   `json:"transport"`
			To        []string `json:"to"`
		}{true, a.notify.Kind(), a.notify.To})
	}
	fmt.Fprintf(o.Out, "sent through %s to %s\n", a.notify.Kind(), strings.Join(a.notify.To, ", "))
	return nil
}
