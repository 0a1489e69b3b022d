package hubspot_test

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/chain/chaintest"
	"github.com/figurative/figsupport/internal/fakes/hubspotfake"
	"github.com/figurative/figsupport/internal/hubspot"
	"github.com/figurative/figsupport/internal/journal"
	"github.com/figurative/figsupport/internal/payload"
)

// fwdMemo lets the backend use the harness's journal, which exists only once the harness does.
type fwdMemo struct{ m hubspot.Memo }

func (f *fwdMemo) Get(ctx context.Context, k string) (string, bool, error) { return f.m.Get(ctx, k) }
func (f *fwdMemo) Put(ctx context.Context, k, v string) error              { return f.m.Put(ctx, k, v) }

// chainOnFake wires the real chain (journal, embedded tasks, in-memory files) to the HubSpot
// backend on a fake portal.
func chainOnFake(t *testing.T, o hubspotfake.Options) (*portal, *chaintest.Harness) {
	t.Helper()
	p := newPortal(t, o)
	fm := &fwdMemo{}
	p.crm = p.backend(t, fm)
	h := chaintest.New(t, chaintest.Options{CRM: p.crm, Now: p.clock.Now})
	fm.m = journal.Memo{J: h.Journal}
	return p, h
}

func process(t *testing.T, p *portal, h *chaintest.Harness, email, text string, at time.Time, files ...string) *payload.Response {
	t.Helper()
	p.clock.Set(at)
	resp, err := h.Chain.Process(context.Background(), chaintest.Request(t, email, text, at, files...), chain.RunOptions{})
	if err != nil {
		t.Fatalf("process %q at %v: %v", text, at, err)
	}
	return resp
}

func notesOn(p *portal, typ, id string) []hubspotfake.Object {
	var out []hubspotfake.Object
	for _, n := range p.srv.Objects("notes") {
		if _, ok := n.Assoc[typ][id]; ok {
			out = append(out, n)
		}
	}
	return out
}

func TestChainThreadingOnHubSpot(t *testing.T) {
	tests := []struct {
		name      string
		lag       time.Duration
		second    time.Duration // after the first request
		closeIt   bool
		wantSame  bool
		wantNotes int // on the first ticket
	}{
		{name: "new ticket, then follow-up inside the window", second: 3 * 24 * time.Hour, wantSame: true, wantNotes: 1},
		{name: "follow-up after the window", second: 15 * 24 * time.Hour},
		{name: "follow-up after close", second: time.Hour, closeIt: true},
		{name: "follow-up one second later while search lags", lag: 30 * time.Second, second: time.Second, wantSame: true, wantNotes: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, h := chainOnFake(t, hubspotfake.Options{SearchLag: tt.lag})
			first := process(t, p, h, "client@example.com", "Problème de paiement", t0)
			if first.Status != payload.StatusCreated || !first.IsNewTicket || first.TicketURL != "https://app.hubspot.com/contacts/12345/record/0-5/"+first.TicketID {
				t.Fatalf("first = %+v", first)
			}
			if tt.closeIt {
				if err := p.crm.CloseTicket(context.Background(), first.TicketID); err != nil {
					t.Fatal(err)
				}
			}
			second := process(t, p, h, "Client@Example.com", "Toujours bloqué", t0.Add(tt.second))
			if same := second.TicketID == first.TicketID; same != tt.wantSame {
				t.Fatalf("second ticket %s, first %s: same = %v, want %v", second.TicketID, first.TicketID, same, tt.wantSame)
			}
			wantTickets := 2
			if tt.wantSame {
				wantTickets = 1
			}
			if n := len(p.srv.Objects("tickets")); n != wantTickets {
				t.Errorf("%d tickets, want %d", n, wantTickets)
			}
			if n := len(p.srv.Objects("contacts")); n != 1 {
				t.Errorf("%d contacts, want 1", n)
			}
			if n := len(notesOn(p, "tickets", first.TicketID)); n != tt.wantNotes {
				t.Errorf("%d notes on the first ticket, want %d", n, tt.wantNotes)
			}
			if o, _ := p.srv.Object("tickets", first.TicketID); o.Properties["subject"] != "[SUPPORT] Problème de paiement" {
				t.Errorf("subject = %q", o.Properties["subject"])
			}
		})
	}
}

func TestChainEscapesHTMLInNotes(t *testing.T) {
	p, h := chainOnFake(t, hubspotfake.Options{})
	first := process(t, p, h, "a@example.com", "Bonjour", t0)
	process(t, p, h, "a@example.com", `<script>alert("x")</script><a href="javascript:1">clic</a>`, t0.Add(time.Minute))
	notes := notesOn(p, "tickets", first.TicketID)
	if len(notes) != 1 {
		t.Fatalf("%d notes, want 1", len(notes))
	}
	body := notes[0].Properties["hs_note_body"]
	if strings.Contains(body, "<script") || strings.Contains(body, "<a href=\"javascript") {
		t.Errorf("customer HTML reached the note: %s", body)
	}
	if !strings.Contains(body, "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;") {
		t.Errorf("note body = %s", body)
	}
}

// TestChainUnderFaults: 30 % of calls fail with 429s, 5xx (some after HubSpot did the work) and
// dropped connections; every request still makes exactly one ticket per conversation and one note
// per follow-up.
func TestChainUnderFaults(t *testing.T) {
	faults := []hubspotfake.Fault{
		{Status: 429}, {Status: 429, Policy: "SECONDLY"}, {Status: 429, RetryAfter: "1"},
		{Status: 500}, {Status: 502, Apply: true}, {Status: 503}, {Status: 504, Apply: true},
		{Drop: true}, {Drop: true, Apply: true},
	}
	for _, seed := range []uint64{1, 2, 3} {
		t.Run(fmt.Sprint("seed ", seed), func(t *testing.T) {
			p, h := chainOnFake(t, hubspotfake.Options{SearchLag: 10 * time.Second, Inject: hubspotfake.Random(seed, 0.3, faults...)})
			const customers = 4
			tickets := map[string]string{}
			for i := range customers {
				email := fmt.Sprintf("c%d@example.com", i)
				r := process(t, p, h, email, fmt.Sprintf("Demande %d", i), t0.Add(time.Duration(i)*time.Minute))
				tickets[email] = r.TicketID
			}
			for i := range customers {
				email := fmt.Sprintf("c%d@example.com", i)
				r := process(t, p, h, email, "Suite avec photo", t0.Add(time.Hour+time.Duration(i)*time.Second), fmt.Sprintf("photo%d.jpg", i))
				if r.TicketID != tickets[email] || r.IsNewTicket {
					t.Errorf("%s follow-up went to %s (new %v), want %s", email, r.TicketID, r.IsNewTicket, tickets[email])
				}
			}
			if n := len(p.srv.Objects("contacts")); n != customers {
				t.Errorf("%d contacts, want %d", n, customers)
			}
			if n := len(p.srv.Objects("tickets")); n != customers {
				t.Errorf("%d tickets, want %d", n, customers)
			}
			if n := len(p.srv.Objects("notes")); n != customers {
				t.Errorf("%d notes, want %d", n, customers)
			}
			for email, id := range tickets {
				if n := len(notesOn(p, "tickets", id)); n != 1 {
					t.Errorf("%s: %d notes on ticket %s, want 1", email, n, id)
				}
				o, _ := p.srv.Object("tickets", id)
				if got := strings.Count(o.Properties["fichiers_urls"], "memory://"); got != 1 {
					t.Errorf("%s: fichiers_urls = %q, want one URL", email, o.Properties["fichiers_urls"])
				}
			}
			failed := 0
			for _, c := range p.srv.Calls() {
				if c.Status == 0 || c.Status >= 429 {
					failed++
				}
			}
			p.mu.Lock()
			waits := slices.Clone(p.waits)
			p.mu.Unlock()
			hinted := 0
			for _, w := range waits {
				if w >= time.Second { // a Retry-After or rate-limit hint, not cut to the 1 ms backoff cap
					hinted++
				}
			}
			t.Logf("%d calls, %d failed, %d waits (%d on a server's hint)", len(p.srv.Calls()), failed, len(waits), hinted)
			if failed == 0 {
				t.Error("no fault was injected")
			}
		})
	}
}

// TestChainThreadingFollowsLastMessage (issue 7): on a portal where a note does not move
// hs_lastmodifieddate, a conversation whose customer writes every ten days stays one ticket, the
// window is measured from the last message, and an agent's change of stage in HubSpot counts as
// activity. Each case runs with the ticket remembered by the journal (read by id) and found by
// search (a fresh journal for every message).
func TestChainThreadingFollowsLastMessage(t *testing.T) {
	day := 24 * time.Hour
	type message struct {
		at       time.Duration // after t0
		agentAt  time.Duration // when set, an agent moves the first ticket to stage 2 at t0+agentAt first
		wantSame bool          // joins the first ticket
	}
	tests := []struct {
		name     string
		messages []message
	}{
		{name: "follow-ups at +10 and +20 days join; 15 days after the last one opens a new ticket",
			messages: []message{{at: 10 * day, wantSame: true}, {at: 20 * day, wantSame: true}, {at: 35 * day}}},
		{name: "an agent's stage change counts as activity",
			messages: []message{{agentAt: 10 * day, at: 20 * day, wantSame: true}}},
		{name: "without it, 20 days of silence open a new ticket",
			messages: []message{{at: 20 * day}}},
	}
	for _, tt := range tests {
		for _, viaSearch := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/search=%v", tt.name, viaSearch), func(t *testing.T) {
				p, h := chainOnFake(t, hubspotfake.Options{SearchLag: 30 * time.Second})
				harness := func() *chaintest.Harness {
					if !viaSearch {
						return h
					}
					return chaintest.New(t, chaintest.Options{CRM: p.crm, Now: p.clock.Now})
				}
				first := process(t, p, harness(), "client@example.com", "Problème de paiement", t0)
				for i, m := range tt.messages {
					if m.agentAt > 0 {
						p.clock.Set(t0.Add(m.agentAt))
						if !p.srv.AgentSetStage(first.TicketID, "2") {
							t.Fatal("agent could not move the ticket")
						}
					}
					r := process(t, p, harness(), "client@example.com", fmt.Sprintf("Message %d", i+2), t0.Add(m.at))
					if same := r.TicketID == first.TicketID; same != m.wantSame || r.IsNewTicket == m.wantSame {
						t.Fatalf("message at +%v went to ticket %s (new %v), first %s: want same %v", m.at, r.TicketID, r.IsNewTicket, first.TicketID, m.wantSame)
					}
				}
				joined := 0
				for _, m := range tt.messages {
					if m.wantSame {
						joined++
					}
				}
				if n := len(notesOn(p, "tickets", first.TicketID)); n != joined {
					t.Errorf("%d notes on the first ticket, want %d", n, joined)
				}
				if n, want := len(p.srv.Objects("tickets")), 1+len(tt.messages)-joined; n != want {
					t.Errorf("%d tickets, want %d", n, want)
				}
				o, _ := p.srv.Object("tickets", first.TicketID)
				if o.Properties["fichiers_urls"] != "" {
					t.Errorf("fichiers_urls = %q, want none (no file came)", o.Properties["fichiers_urls"])
				}
				last := t0
				for _, m := range tt.messages {
					if m.wantSame {
						last = t0.Add(m.at)
					}
				}
				if got := o.Properties["figsupport_last_message_at"]; got != strconv.FormatInt(last.UnixMilli(), 10) {
					t.Errorf("figsupport_last_message_at = %s, want %d (the last message that joined)", got, last.UnixMilli())
				}
			})
		}
	}
}

// TestChainCallBudgets measures what one request costs in HubSpot calls in steady state (the custom
// properties known) and what each call is for; the README's call table says the same.
func TestChainCallBudgets(t *testing.T) {
	ctx := context.Background()
	p, h := chainOnFake(t, hubspotfake.Options{SearchLag: 5 * time.Second})
	if err := p.crm.EnsureProperties(ctx); err != nil {
		t.Fatal(err)
	}
	ids := regexp.MustCompile(`/\d+$`)
	measure := func(name string, want []string, email, text string, at time.Time, files ...string) *payload.Response {
		t.Helper()
		p.srv.ResetCalls()
		r := process(t, p, h, email, text, at, files...)
		var got []string
		for _, c := range p.srv.Calls() {
			got = append(got, ids.ReplaceAllString(c.String(), "/{id}"))
		}
		t.Logf("%-40s %d calls: %s", name, len(got), strings.Join(got, ", "))
		// Steps run in parallel: the calls are compared as a set.
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: calls %v, want %v", name, got, want)
		}
		return r
	}
	const (
		contact = "POST /crm/v3/objects/contacts"
		search  = "POST /crm/v3/objects/tickets/search"
		create  = "POST /crm/v3/objects/tickets"
		read    = "GET /crm/v3/objects/tickets/{id}"
		patch   = "PATCH /crm/v3/objects/tickets/{id}"
		note    = "POST /crm/v3/objects/notes"
	)
	// A contact the request itself creates has no ticket to search for.
	first := measure("new SUPPORT ticket, no files", []string{contact, create}, "a@example.com", "Paiement refusé", t0)
	second := measure("follow-up (remembered ticket)", []string{contact, read, note, patch}, "a@example.com", "Toujours refusé", t0.Add(2*time.Second))
	if second.TicketID != first.TicketID {
		t.Fatalf("follow-up made a new ticket")
	}
	measure("follow-up with 2 files", []string{contact, read, note, patch}, "a@example.com", "Captures", t0.Add(time.Minute), "a.png", "b.png")
	if o, _ := p.srv.Object("tickets", first.TicketID); strings.Count(o.Properties["fichiers_urls"], "memory://") != 2 {
		t.Errorf("fichiers_urls = %q, want the two files", o.Properties["fichiers_urls"])
	}
	measure("new MODELISATION ticket with 2 files", []string{contact, create, note, patch}, "m@example.com", "Modéliser ce fauteuil", t0.Add(2*time.Minute), "f.jpg", "g.glb")
	p.srv.SeedContact("known@example.com")
	measure("new ticket for a contact HubSpot knew", []string{contact, search, create}, "known@example.com", "Bonjour", t0.Add(3*time.Minute))
	if err := p.crm.CloseTicket(ctx, first.TicketID); err != nil {
		t.Fatal(err)
	}
	measure("after close (new ticket)", []string{contact, read, search, create}, "a@example.com", "Autre chose", t0.Add(time.Hour))
}
