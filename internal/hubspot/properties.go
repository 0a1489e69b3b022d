package hubspot

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// Memo remembers small facts across runs (the journal implements it), so that the custom
// properties are checked once per portal rather than on every request.
type Memo interface {
	Get(ctx context.Context, key string) (value string, ok bool, err error)
	Put(ctx context.Context, key, value string) error
}

// MemoryMemo is a Memo for tests and single runs.
type MemoryMemo struct {
	mu sync.Mutex
	m  map[string]string
}

// NewMemoryMemo returns an empty in-memory Memo.
func NewMemoryMemo() *MemoryMemo { return &MemoryMemo{m: map[string]string{}} }

// Get implements Memo.
func (m *MemoryMemo) Get(_ context.Context, key string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.m[key]
	return v, ok, nil
}

// Put implements Memo.
func (m *MemoryMemo) Put(_ context.Context, key, value string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.m[key] = value
	return nil
}

// customProperties are the ticket properties figsupport owns. Labels are what the support team
// reads in HubSpot; HubSpot datetime properties are type datetime, field type date.
var customProperties = []struct{ name, label, description, typ, fieldType string }{
	{PropSubtaskID, "ClickUp subtask ID", "Id of the ClickUp subtask created for this ticket (figsupport).", "string", "textarea"},
	{PropFileURLs, "Fichiers (URLs)", "Public URLs of the files the customer sent, one per line (figsupport).", "string", "textarea"},
	{PropLastMessageAt, "Dernier message du client", "When the customer last wrote; figsupport threads follow-ups by it.", "datetime", "date"},
}

// memoKey names the fact per portal and base URL, so a test portal never vouches for production.
// v2: figsupport_last_message_at joined the properties, so a v1 "ok" no longer covers them.
func (m *CRM) memoKey() string {
	return "hubspot.properties.v2." + m.cfg.HubID + "@" + strings.TrimRight(m.cfg.BaseURL, "/")
}

// memoValue records that the properties exist and which of HubSpot's activity dates the portal has.
func memoValue(activity []string) string { return "ok;" + strings.Join(activity, ",") }

func parseMemo(v string) (activity []string, ok bool) {
	rest, ok := strings.CutPrefix(v, "ok;")
	if !ok {
		return nil, false
	}
	for _, p := range strings.Split(rest, ",") {
		if slices.Contains(hubspotActivityProps, p) {
			activity = append(activity, p)
		}
	}
	return activity, true
}

// EnsureProperties makes sure the custom ticket properties exist, creating the missing ones, and
// learns which of HubSpot's activity dates the portal has. Once done it is remembered in the Memo
// and costs nothing more; the first time it costs one GET of the ticket properties and one POST per
// missing property.
func (m *CRM) EnsureProperties(ctx context.Context) error {
	m.propsMu.Lock()
	defer m.propsMu.Unlock()
	if m.propsReady {
		return nil
	}
	if v, ok, err := m.memo.Get(ctx, m.memoKey()); err == nil && ok {
		if activity, ok := parseMemo(v); ok {
			m.ready(activity)
			return nil
		}
	}
	_, activity, err := m.properties(ctx, true)
	if err != nil {
		return err
	}
	m.ready(activity)
	if err := m.memo.Put(ctx, m.memoKey(), memoValue(activity)); err != nil {
		return fmt.Errorf("remember hubspot properties: %w", err)
	}
	return nil
}

// ready records the properties as known; propsMu is held.
func (m *CRM) ready(activity []string) {
	m.propsReady = true
	m.searchDates = append([]string{PropLastMessageAt, "hs_lastmodifieddate"}, activity...)
}

// loadSearchDates are the dates FindOpenTicket may filter on. Before the properties are known (a
// portal's first request: nothing of ours exists to match yet) it is hs_lastmodifieddate alone; it
// makes no HTTP call, only a Memo read.
func (m *CRM) loadSearchDates(ctx context.Context) []string {
	m.propsMu.Lock()
	defer m.propsMu.Unlock()
	if !m.propsReady {
		if v, ok, err := m.memo.Get(ctx, m.memoKey()); err == nil && ok {
			if activity, ok := parseMemo(v); ok {
				m.ready(activity)
			}
		}
	}
	if !m.propsReady {
		return []string{"hs_lastmodifieddate"}
	}
	return m.searchDates
}

// properties reads the ticket properties and, when create is set, creates the missing custom ones.
// It returns the names created (or, without create, missing) and HubSpot's activity dates present.
func (m *CRM) properties(ctx context.Context, create bool) (created, activity []string, err error) {
	var list struct {
		Results []struct {
			Name string `json:"name"`
			Type string `json:"type"`
		} `json:"results"`
	}
	if err := m.c.api.Get(ctx, "/crm/v3/properties/tickets", nil, &list); err != nil {
		return nil, nil, fmt.Errorf("read ticket properties: %w", err)
	}
	have := map[string]string{}
	for _, p := range list.Results {
		have[p.Name] = p.Type
	}
	for _, name := range hubspotActivityProps {
		if have[name] == "datetime" {
			activity = append(activity, name)
		}
	}
	for _, p := range customProperties {
		if _, ok := have[p.name]; ok {
			continue
		}
		if !create {
			created = append(created, p.name)
			continue
		}
		body := map[string]string{
			"name": p.name, "label": p.label, "description": p.description,
			"type": p.typ, "fieldType": p.fieldType, "groupName": "ticketinformation",
		}
		if err := m.c.api.Send(ctx, http.MethodPost, "/crm/v3/properties/tickets", body, nil); err != nil {
			if statusOf(err) == http.StatusConflict { // created meanwhile by another process
				continue
			}
			return created, activity, fmt.Errorf("create ticket property %s: %w", p.name, err)
		}
		created = append(created, p.name)
	}
	return created, activity, nil
}
