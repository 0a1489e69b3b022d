package hubspot

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
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

// customProperties are the two ticket properties the seed process relies on.
var customProperties = []struct{ name, label, description string }{
	{PropSubtaskID, "ClickUp subtask ID", "Id of the ClickUp subtask created for this ticket (figsupport)."},
	{PropFileURLs, "Fichiers (URLs)", "Public URLs of the files the customer sent, one per line (figsupport)."},
}

// memoKey names the fact per portal and base URL, so a test portal never vouches for production.
func (m *CRM) memoKey() string {
	return "hubspot.properties.v1." + m.cfg.HubID + "@" + strings.TrimRight(m.cfg.BaseURL, "/")
}

// EnsureProperties makes sure clickup_subtask_id and fichiers_urls exist on tickets, creating the
// missing ones. Once done it is remembered in the Memo and costs nothing more.
func (m *CRM) EnsureProperties(ctx context.Context) error {
	m.propsMu.Lock()
	defer m.propsMu.Unlock()
	if m.propsReady {
		return nil
	}
	if v, ok, err := m.memo.Get(ctx, m.memoKey()); err == nil && ok && v == "ok" {
		m.propsReady = true
		return nil
	}
	if _, err := m.ensureProperties(ctx); err != nil {
		return err
	}
	m.propsReady = true
	if err := m.memo.Put(ctx, m.memoKey(), "ok"); err != nil {
		return fmt.Errorf("remember hubspot properties: %w", err)
	}
	return nil
}

// ensureProperties checks each property and creates the missing ones; it returns their names.
func (m *CRM) ensureProperties(ctx context.Context) (created []string, err error) {
	return m.properties(ctx, true)
}

// properties reads the custom properties and, when create is set, creates the missing ones; it
// returns the names created (or, without create, missing).
func (m *CRM) properties(ctx context.Context, create bool) ([]string, error) {
	var created []string
	for _, p := range customProperties {
		err := m.c.get(ctx, "/crm/v3/properties/tickets/"+url.PathEscape(p.name), nil, nil)
		if err == nil {
			continue
		}
		if statusOf(err) != http.StatusNotFound {
			return created, fmt.Errorf("read ticket property %s: %w", p.name, err)
		}
		if !create {
			created = append(created, p.name)
			continue
		}
		body := map[string]string{
			"name": p.name, "label": p.label, "description": p.description,
			"type": "string", "fieldType": "textarea", "groupName": "ticketinformation",
		}
		if err := m.c.post(ctx, "/crm/v3/properties/tickets", body, nil); err != nil {
			if statusOf(err) == http.StatusConflict { // created meanwhile by another process
				continue
			}
			return created, fmt.Errorf("create ticket property %s: %w", p.name, err)
		}
		created = append(created, p.name)
	}
	return created, nil
}
