package cmd

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/figurative/figsupport/internal/clickup"
	"github.com/figurative/figsupport/internal/config"
	"github.com/figurative/figsupport/internal/fetch"
	"github.com/figurative/figsupport/internal/health"
	"github.com/figurative/figsupport/internal/hubspot"
	"github.com/figurative/figsupport/internal/journal"
	"github.com/figurative/figsupport/internal/notify"
)

// wireCRM: HubSpot when HUBSPOT_API_KEY is set, else the embedded CRM.
func (a *app) wireCRM(context.Context) (part, error) {
	v := a.g.Values
	mark := v.Mark()
	if !v.Set("HUBSPOT_API_KEY") {
		a.crm = a.local
		return part{role: "crm", backend: "embedded", target: "the embedded CRM in " + a.dbFile, check: a.local.Check}, nil
	}
	v.Require("HUBSPOT_HUB_ID", "for ticket links when HUBSPOT_API_KEY is set")
	cfg := hubspot.Config{
		Token: v.String("HUBSPOT_API_KEY"), BaseURL: v.URL("HUBSPOT_BASE_URL"), HubID: v.String("HUBSPOT_HUB_ID"),
		AppDomain: v.String("HUBSPOT_APP_DOMAIN"), PipelineID: v.String("HUBSPOT_PIPELINE_ID"),
		StageNew: v.String("HUBSPOT_STAGE_NEW"), StageClosed: v.String("HUBSPOT_STAGE_CLOSED"),
		OpenStages: v.List("HUBSPOT_OPEN_STAGES"), RequestsPer10s: v.Int("HUBSPOT_RATE_LIMIT"),
		Timeout: v.Duration("HUBSPOT_TIMEOUT"), Retries: a.retries(),
	}
	if err := v.ErrSince(mark); err != nil {
		return part{}, err
	}
	crm, err := hubspot.New(cfg, journal.Memo{J: a.journal})
	if err != nil {
		return part{}, &config.Error{Key: "HUBSPOT_API_KEY", Msg: err.Error()}
	}
	a.crm = crm
	return part{
		role: "crm", backend: "hubspot", reach: cfg.BaseURL,
		target: fmt.Sprintf("HubSpot portal %s, pipeline %s", cfg.HubID, cfg.PipelineID),
		check:  crm.Check, checkReadOnly: crm.CheckReadOnly,
	}, nil
}

// wireTasks: ClickUp when CLICKUP_API_KEY is set, else the embedded tracker.
func (a *app) wireTasks(context.Context) (part, error) {
	v := a.g.Values
	mark := v.Mark()
	if !v.Set("CLICKUP_API_KEY") {
		a.tasks = a.local
		return part{role: "tasks", backend: "embedded", target: "the embedded tracker in " + a.dbFile}, nil
	}
	v.Require("CLICKUP_PARENT_TASK_ID", "when CLICKUP_API_KEY is set")
	cfg := clickup.Config{
		Token: v.String("CLICKUP_API_KEY"), BaseURL: v.URL("CLICKUP_BASE_URL"), ParentTaskID: v.String("CLICKUP_PARENT_TASK_ID"),
		RequestsPerMinute: v.Int("CLICKUP_RATE_LIMIT"), Memo: journal.Memo{J: a.journal}, Retries: a.retries(),
	}
	if err := v.ErrSince(mark); err != nil {
		return part{}, err
	}
	t, err := clickup.NewTasks(cfg)
	if err != nil {
		return part{}, &config.Error{Key: "CLICKUP_API_KEY", Msg: err.Error()}
	}
	a.tasks = t
	return part{role: "tasks", backend: "clickup", reach: cfg.BaseURL, target: "ClickUp, under parent task " + cfg.ParentTaskID, check: t.Check}, nil
}

// wireNotifier: SMTP or Graph when configured (NOTIFY_TRANSPORT picks explicitly), else the outbox.
func (a *app) wireNotifier(context.Context) (part, error) {
	cfg, err := notifyConfig(a.g.Values, a.dir)
	if err != nil {
		return part{}, err
	}
	cfg.Graph.Retries = a.retries()
	n, err := notify.New(cfg)
	var ce *notify.ConfigError
	switch {
	case errors.As(err, &ce):
		return part{}, &config.Error{Key: ce.Key, Msg: ce.Err.Error()}
	case err != nil:
		// notify's message names the key at fault itself.
		return part{}, configErr{err}
	}
	a.notify = n
	p := part{role: "notify", backend: n.Kind(), check: n.Check,
		target: fmt.Sprintf("%s through %s", strings.Join(n.To, ", "), n.Kind())}
	switch n.Kind() {
	case notify.KindOutbox:
		p.target = fmt.Sprintf("%s, written to %s", strings.Join(n.To, ", "), cfg.OutboxDir)
		p.checkReadOnly = func(context.Context) []health.Check {
			// The outbox's own check writes a probe file; this one only says where mail goes.
			return []health.Check{{Service: notify.KindOutbox, Name: "recipients", Status: health.OK,
				Detail: fmt.Sprintf("from %s to %s, written to %s (write not probed: --dry-run)", n.From, strings.Join(n.To, ", "), cfg.OutboxDir)}}
		}
	case notify.KindGraph:
		p.reach = cfg.Graph.BaseURL
	}
	return p, nil
}

// notifyConfig maps the configuration keys to notify.Config.
func notifyConfig(v *config.Values, dataDir string) (notify.Config, error) {
	mark := v.Mark()
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
	return cfg, v.ErrSince(mark)
}

// fetchConfig is the fetcher of file URLs, bounded as configured.
func fetchConfig(v *config.Values, maxFileBytes int64) *fetch.Fetcher {
	return fetch.New(fetch.Config{
		MaxBytes: maxFileBytes, Timeout: v.Duration("FIGSUPPORT_FETCH_TIMEOUT"),
		HeaderTimeout: v.Duration("FIGSUPPORT_FETCH_HEADER_TIMEOUT"), MaxRedirects: v.Int("FIGSUPPORT_FETCH_MAX_REDIRECTS"),
	})
}
