package cmd

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/config"
	"github.com/figurative/figsupport/internal/notify"
	"github.com/figurative/figsupport/internal/payload"
)

// wireNotifier: SMTP or Graph when configured (NOTIFY_TRANSPORT picks explicitly), else the outbox.
func (a *app) wireNotifier(context.Context) error {
	cfg, err := notifyConfig(a.g.Values, a.dir)
	cfg.Graph.Retries = a.retries()
	if err != nil {
		return err
	}
	n, err := notify.New(cfg)
	if err != nil {
		var ce *notify.ConfigError
		if errors.As(err, &ce) {
			return &config.Error{Key: ce.Key, Msg: ce.Err.Error()}
		}
		return &config.Error{Key: "NOTIFY_TRANSPORT", Msg: err.Error()}
	}
	a.names = append(a.names, [2]string{"notify", n.Kind()})
	a.checks = append(a.checks, n.Check)
	a.notify = n
	return nil
}

// notifyConfig maps the configuration keys to notify.Config.
func notifyConfig(v *config.Values, dataDir string) (notify.Config, error) {
	cfg := notify.Config{
		Transport: v.OneOf("NOTIFY_TRANSPORT", notify.KindOutbox, notify.KindSMTP, notify.KindGraph),
		To:        v.Emails("NOTIFICATION_EMAIL"),
		From:      v.String("SMTP_FROM"),
		OutboxDir: filepath.Join(dataDir, "outbox"),
		SMTP: notify.SMTPConfig{
			Host: v.String("SMTP_HOST"), User: v.String("SMTP_USER"), Password: v.String("SMTP_PASSWORD"),
			Auth: v.OneOf("SMTP_AUTH", "login", "plain", "xoauth2", "none"),
			TLS:  v.OneOf("SMTP_TLS", "starttls", "tls", "none"),
		},
		OAuth: oauthConfig(v),
		Graph: notify.GraphConfig{Sender: v.String("GRAPH_SENDER"), BaseURL: v.URL("GRAPH_BASE_URL")},
		Ack: notify.AckConfig{Enabled: v.Bool("FIGSUPPORT_ACK"), Template: v.String("FIGSUPPORT_ACK_TEMPLATE"),
			From: v.String("FIGSUPPORT_ACK_FROM")},
	}
	if v.Set("SMTP_PORT") {
		cfg.SMTP.Port = v.Int("SMTP_PORT")
	}
	if notify.Kind(cfg) == notify.KindOutbox && len(cfg.To) == 0 {
		// The embedded default needs no set-up: messages land in the outbox addressed to a placeholder.
		cfg.To = []string{"admin@localhost"}
	}
	return cfg, v.Err()
}

type notifyOptions struct {
	g             *Globals
	subject, body string
	result        string
}

func newNotifyCmd(g *Globals) *cobra.Command {
	o := &notifyOptions{g: g}
	c := &cobra.Command{
		Use:   "notify --subject S --body B | --result FILE|-",
		Short: "E-mail the admin (NOTIFICATION_EMAIL)",
		Long: `Sends the admin an e-mail: a free message (--subject, --body), or the notification of a processed
request from the JSON that "process -o json" printed (--result), e.g. to resend it.`,
		Example: `  figsupport notify --subject "Test" --body "Les notifications fonctionnent"
  figsupport process req.json -o json | figsupport notify --result -`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runNotify(cmd.Context(), o) },
	}
	f := c.Flags()
	f.StringVar(&o.subject, "subject", "", "subject")
	f.StringVar(&o.body, "body", "", "plain-text body")
	f.StringVar(&o.result, "result", "", "a process result (JSON file, or - for stdin) to notify about")
	c.MarkFlagsMutuallyExclusive("result", "subject")
	c.MarkFlagsMutuallyExclusive("result", "body")
	c.MarkFlagsOneRequired("result", "subject")
	return c
}

func runNotify(ctx context.Context, o *notifyOptions) error {
	g := o.g
	var n *chain.Notification
	if o.result != "" {
		body, _, err := readInput(g, []string{o.result})
		if err != nil {
			return err
		}
		var r payload.Response
		if err := json.Unmarshal(body, &r); err != nil || r.TicketID == "" {
			return usagef("--result: not a process result (JSON with a ticket_id): %v", err)
		}
		n = &chain.Notification{Classification: r.Classification, Subject: r.Message, TicketID: r.TicketID,
			TicketURL: r.TicketURL, IsNewTicket: r.IsNewTicket, SubtaskID: r.SubtaskID, Files: r.Files, RequestKey: r.RequestID}
	} else if strings.TrimSpace(o.subject) == "" {
		return usagef("--subject must not be empty")
	}
	if g.DryRun {
		return dryRun(g, "e-mail "+strings.Join(g.Values.List("NOTIFICATION_EMAIL"), ", "))
	}
	a, err := openApp(ctx, g, true)
	if err != nil {
		return err
	}
	defer a.Close()
	if n != nil {
		err = a.notify.Notify(ctx, *n)
	} else {
		err = a.notify.Send(ctx, o.subject, o.body)
	}
	if err != nil {
		return err
	}
	if g.JSON() {
		return writeJSON(g.Out, struct {
			Sent      bool     `json:"sent"`
			Transport string   `json:"transport"`
			To        []string `json:"to"`
		}{true, a.notify.Kind(), a.notify.To})
	}
	fmt.Fprintf(g.Out, "sent through %s to %s\n", a.notify.Kind(), strings.Join(a.notify.To, ", "))
	return nil
}
