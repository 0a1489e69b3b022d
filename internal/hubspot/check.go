package hubspot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/figurative/figsupport/internal/health"
)

const service = "hubspot"

// Check is doctor's view of the portal: the token and its scopes, the custom properties (created
// when missing) and the pipeline's stages. No detail carries the token.
func (m *CRM) Check(ctx context.Context) []health.Check { return m.check(ctx, true) }

// CheckReadOnly is Check that creates nothing (`doctor --dry-run`): missing properties are reported.
func (m *CRM) CheckReadOnly(ctx context.Context) []health.Check { return m.check(ctx, false) }

func (m *CRM) check(ctx context.Context, create bool) []health.Check {
	var out []health.Check
	add := func(name, status, detail string) {
		out = append(out, health.Check{Service: service, Name: name, Status: status, Detail: detail})
	}
	if m.cfg.HubID == "" {
		add("config", health.Warn, "HUBSPOT_HUB_ID is not set: ticket links will not open the right portal")
	} else {
		add("config", health.OK, fmt.Sprintf("portal %s, %s, pipeline %s (new %s, open %s, closed %s)",
			m.cfg.HubID, m.cfg.AppDomain, m.cfg.PipelineID, m.cfg.StageNew, strings.Join(m.cfg.OpenStages, ","), m.cfg.StageClosed))
	}

	// The token: one cheap read per object family the chain touches.
	tokenOK := true
	for _, probe := range []struct{ name, path string }{
		{"token and contacts access", "/crm/v3/objects/contacts"},
		{"tickets access", "/crm/v3/objects/tickets"},
	} {
		err := m.c.api.Get(ctx, probe.path, url.Values{"limit": {"1"}}, nil)
		if err != nil {
			tokenOK = tokenOK && statusOf(err) != http.StatusUnauthorized
			add(probe.name, health.Fail, explain(err))
			continue
		}
		add(probe.name, health.OK, "")
	}
	if !tokenOK {
		return out
	}

	created, activity, err := m.properties(ctx, create)
	var names []string
	for _, p := range customProperties {
		names = append(names, p.name)
	}
	switch {
	case err != nil:
		add("custom properties", health.Fail, explain(err))
	case !create && len(created) > 0:
		add("custom properties", health.Warn, "missing "+strings.Join(created, ", ")+": doctor without --dry-run creates them")
	case len(created) > 0:
		add("custom properties", health.OK, "created "+strings.Join(created, ", ")+" (group ticketinformation)"+activityNote(activity))
		_ = m.memo.Put(ctx, m.memoKey(), memoValue(activity))
	default:
		add("custom properties", health.OK, strings.Join(names, ", ")+" present"+activityNote(activity))
		_ = m.memo.Put(ctx, m.memoKey(), memoValue(activity))
	}

	var p struct {
		ID     string `json:"id"`
		Label  string `json:"label"`
		Stages []struct {
			ID       string            `json:"id"`
			Label    string            `json:"label"`
			Archived bool              `json:"archived"`
			Metadata map[string]string `json:"metadata"`
		} `json:"stages"`
	}
	if err := m.c.api.Get(ctx, "/crm/v3/pipelines/tickets/"+url.PathEscape(m.cfg.PipelineID), nil, &p); err != nil {
		if statusOf(err) == http.StatusNotFound {
			add("pipeline", health.Fail, fmt.Sprintf("ticket pipeline %q does not exist: set HUBSPOT_PIPELINE_ID", m.cfg.PipelineID))
		} else {
			add("pipeline", health.Fail, explain(err))
		}
		return out
	}
	state := map[string]string{}
	var labels []string
	for _, s := range p.Stages {
		if s.Archived {
			continue
		}
		state[s.ID] = s.Metadata["ticketState"]
		labels = append(labels, s.ID+" "+s.Label)
	}
	var problems, warnings []string
	need := append([]string{m.cfg.StageNew, m.cfg.StageClosed}, m.cfg.OpenStages...)
	for _, id := range slices.Compact(need) {
		if _, ok := state[id]; !ok {
			problems = append(problems, "stage "+id+" is not in the pipeline")
		}
	}
	if st, ok := state[m.cfg.StageClosed]; ok && st != "" && st != "CLOSED" {
		warnings = append(warnings, "closed stage "+m.cfg.StageClosed+" is an open stage in HubSpot")
	}
	for _, id := range m.cfg.OpenStages {
		if st, ok := state[id]; ok && st == "CLOSED" {
			warnings = append(warnings, "open stage "+id+" is a closed stage in HubSpot")
		}
	}
	detail := fmt.Sprintf("pipeline %s %q: %s", p.ID, p.Label, strings.Join(labels, ", "))
	switch {
	case len(problems) > 0:
		add("pipeline", health.Fail, strings.Join(problems, "; ")+" — "+detail+" (set HUBSPOT_STAGE_NEW, HUBSPOT_OPEN_STAGES, HUBSPOT_STAGE_CLOSED)")
	case len(warnings) > 0:
		add("pipeline", health.Warn, strings.Join(warnings, "; ")+" — "+detail)
	default:
		add("pipeline", health.OK, detail)
	}
	return out
}

// activityNote says which of HubSpot's own activity dates threading reads on this portal.
func activityNote(activity []string) string {
	if len(activity) == 0 {
		return "; no HubSpot activity date on tickets: threading reads figsupport's and hs_lastmodifieddate"
	}
	return "; threading also reads " + strings.Join(activity, ", ")
}

// explain turns an error into an actionable sentence without secrets.
func explain(err error) string {
	var e *APIError
	if !errors.As(err, &e) {
		return err.Error()
	}
	switch {
	case e.Status == http.StatusUnauthorized:
		return "HubSpot refused the token (401 " + e.Category + "): check HUBSPOT_API_KEY (a private app access token, pat-…)"
	case e.Category == "MISSING_SCOPES" || (e.Status == http.StatusForbidden && len(e.MissingScopes()) > 0):
		if s := e.MissingScopes(); len(s) > 0 {
			return "the private app lacks scope " + strings.Join(s, " or ") + ": add it in HubSpot (Development › Legacy apps › your app › Scopes) and use the new token"
		}
		return "the private app lacks a scope for " + e.Method + " " + e.Path
	case errors.Is(e, ErrDailyLimit):
		return e.Message
	}
	return e.Error()
}
