package cmd

import (
	"context"

	"github.com/figurative/figsupport/internal/clickup"
	"github.com/figurative/figsupport/internal/config"
	"github.com/figurative/figsupport/internal/hubspot"
	"github.com/figurative/figsupport/internal/journal"
)

// wireCRM: HubSpot when HUBSPOT_API_KEY is set, else the embedded CRM.
func (a *app) wireCRM(context.Context) error {
	v := a.g.Values
	if !v.Set("HUBSPOT_API_KEY") {
		a.crm = a.local
		a.names = append(a.names, [2]string{"crm", "embedded"})
		a.checks = append(a.checks, a.local.Check)
		return nil
	}
	v.Require("HUBSPOT_HUB_ID", "for ticket links when HUBSPOT_API_KEY is set")
	cfg := hubspot.Config{
		Token: v.String("HUBSPOT_API_KEY"), BaseURL: v.URL("HUBSPOT_BASE_URL"), HubID: v.String("HUBSPOT_HUB_ID"),
		AppDomain: v.String("HUBSPOT_APP_DOMAIN"), PipelineID: v.String("HUBSPOT_PIPELINE_ID"),
		StageNew: v.String("HUBSPOT_STAGE_NEW"), StageClosed: v.String("HUBSPOT_STAGE_CLOSED"),
		OpenStages: v.List("HUBSPOT_OPEN_STAGES"), RequestsPer10s: v.Int("HUBSPOT_RATE_LIMIT"),
		Timeout: v.Duration("HUBSPOT_TIMEOUT"), Retries: a.retries(),
	}
	if err := v.Err(); err != nil {
		return err
	}
	crm, err := hubspot.New(cfg, journal.Memo{J: a.journal})
	if err != nil {
		return &config.Error{Key: "HUBSPOT_API_KEY", Msg: err.Error()}
	}
	a.crm = crm
	a.names = append(a.names, [2]string{"crm", "hubspot"})
	a.checks = append(a.checks, crm.Check)
	if a.g.DryRun {
		a.checks[len(a.checks)-1] = crm.CheckReadOnly
	}
	return nil
}

// wireTasks: ClickUp when CLICKUP_API_KEY is set, else the embedded tracker.
func (a *app) wireTasks(context.Context) error {
	v := a.g.Values
	if !v.Set("CLICKUP_API_KEY") {
		a.tasks = a.local
		a.names = append(a.names, [2]string{"tasks", "embedded"})
		return nil
	}
	v.Require("CLICKUP_PARENT_TASK_ID", "when CLICKUP_API_KEY is set")
	cfg := clickup.Config{
		Token: v.String("CLICKUP_API_KEY"), BaseURL: v.URL("CLICKUP_BASE_URL"), ParentTaskID: v.String("CLICKUP_PARENT_TASK_ID"),
		RequestsPerMinute: v.Int("CLICKUP_RATE_LIMIT"), Memo: journal.Memo{J: a.journal}, Retries: a.retries(),
	}
	if err := v.Err(); err != nil {
		return err
	}
	t, err := clickup.NewTasks(cfg)
	if err != nil {
		return &config.Error{Key: "CLICKUP_API_KEY", Msg: err.Error()}
	}
	a.tasks = t
	a.names = append(a.names, [2]string{"tasks", "clickup"})
	a.checks = append(a.checks, t.Check)
	return nil
}
