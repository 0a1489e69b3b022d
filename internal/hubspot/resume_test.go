package hubspot_test

import (
	"context"
	"testing"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/fakes/hubspotfake"
)

// A rerun of a request whose earlier run created the ticket and note but died before recording
// them finds them instead of creating them again.
func TestResumedCreatesFindEarlierAttempt(t *testing.T) {
	ctx := context.Background()
	p := newPortal(t, hubspotfake.Options{})
	c, err := p.crm.FindOrCreateContact(ctx, "resume@example.com", "")
	if err != nil {
		t.Fatal(err)
	}
	in := chain.TicketInput{ContactID: c.ID, Subject: "Bug", Content: "Le site plante", Classification: "SUPPORT", At: t0}
	first, err := p.crm.CreateTicket(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	note := chain.Note{TicketID: first.ID, Title: "Message", Body: "encore", At: t0}
	noteID, err := p.crm.AddNote(ctx, note)
	if err != nil {
		t.Fatal(err)
	}
	creates := func() int {
		n := 0
		for _, c := range p.srv.Calls() {
			if c.Method == "POST" && (c.Path == "/crm/v3/objects/tickets" || c.Path == "/crm/v3/objects/notes") {
				n++
			}
		}
		return n
	}
	posts := creates()

	in.MayExistSince, note.MayExistSince = t0, t0
	again, err := p.crm.CreateTicket(ctx, in)
	if err != nil || again.ID != first.ID {
		t.Fatalf("resumed create = %+v, %v; want ticket %s found", again, err, first.ID)
	}
	noteAgain, err := p.crm.AddNote(ctx, note)
	if err != nil || noteAgain != noteID {
		t.Fatalf("resumed note = %s, %v; want %s found", noteAgain, err, noteID)
	}
	if n := creates(); n != posts {
		t.Fatalf("%d more create calls, want none", n-posts)
	}
	if n := len(p.srv.Objects("tickets")); n != 1 {
		t.Fatalf("%d tickets, want 1", n)
	}

	// A different ticket is still created on resume.
	other := chain.TicketInput{ContactID: c.ID, Subject: "Autre", Content: "autre chose", At: t0, MayExistSince: t0}
	if x, err := p.crm.CreateTicket(ctx, other); err != nil || x.ID == first.ID {
		t.Fatalf("other = %+v, %v; want a new ticket", x, err)
	}
}
