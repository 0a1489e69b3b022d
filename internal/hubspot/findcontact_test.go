package hubspot_test

import (
	"context"
	"testing"

	"github.com/figurative/figsupport/internal/fakes/hubspotfake"
)

func TestFindContactNeverCreates(t *testing.T) {
	ctx := context.Background()
	p := newPortal(t, hubspotfake.Options{})
	got, err := p.crm.FindContact(ctx, "Nobody@Example.com")
	if err != nil || got != nil {
		t.Fatalf("FindContact on an empty portal = %+v, %v; want nil, nil", got, err)
	}
	created, err := p.crm.FindOrCreateContact(ctx, "someone@example.com", "Some One")
	if err != nil {
		t.Fatal(err)
	}
	before := len(p.srv.Calls())
	got, err = p.crm.FindContact(ctx, " SOMEONE@example.com ")
	if err != nil || got == nil || got.ID != created.ID {
		t.Fatalf("FindContact = %+v, %v; want contact %s", got, err, created.ID)
	}
	calls := p.srv.Calls()[before:]
	if len(calls) != 1 || calls[0].Method != "GET" {
		t.Fatalf("calls = %+v, want one GET", calls)
	}
}

func TestCheckReadOnlyCreatesNothing(t *testing.T) {
	ctx := context.Background()
	p := newPortal(t, hubspotfake.Options{})
	var props string
	for _, c := range p.crm.CheckReadOnly(ctx) {
		if c.Name == "custom properties" {
			props = c.Status + " " + c.Detail
		}
	}
	if props != "warn missing clickup_subtask_id, fichiers_urls, figsupport_last_message_at: doctor without --dry-run creates them" {
		t.Fatalf("properties check = %q", props)
	}
	if p.srv.HasProperty("tickets", "fichiers_urls") || p.srv.Count("POST", "/crm/v3/properties") != 0 {
		t.Fatal("a read-only check created a property")
	}
}
