package chain_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/chain/chaintest"
	"github.com/figurative/figsupport/internal/payload"
)

const day = 24 * time.Hour

// mail is a request that came as an e-mail: id is its Message-ID, replyTo what it answers.
func mail(t *testing.T, from, subject string, at time.Time, id string, replyTo ...string) *payload.Request {
	t.Helper()
	r := chaintest.Request(t, from, subject, at)
	r.RequestID = id
	r.Mail = &payload.Mail{MessageID: id, From: from, InReplyTo: replyTo, References: replyTo}
	return r
}

func process(t *testing.T, h *chaintest.Harness, r *payload.Request) *payload.Response {
	t.Helper()
	resp, err := h.Chain.Process(context.Background(), r, chain.RunOptions{})
	if err != nil {
		t.Fatalf("process %s: %v", r.Key(), err)
	}
	return resp
}

// recCRM records the tickets created through it.
type recCRM struct {
	chain.CRM
	mu      sync.Mutex
	created []chain.TicketInput
}

func (r *recCRM) CreateTicket(ctx context.Context, in chain.TicketInput) (chain.Ticket, error) {
	r.mu.Lock()
	r.created = append(r.created, in)
	r.mu.Unlock()
	return r.CRM.CreateTicket(ctx, in)
}

// newRec is a harness whose CRM (the embedded one) records creates.
func newRec(t *testing.T, o chaintest.Options) (*chaintest.Harness, *recCRM) {
	t.Helper()
	base := chaintest.New(t, chaintest.Options{})
	rec := &recCRM{CRM: base.Local}
	o.CRM, o.Dir = rec, base.Dir
	return chaintest.New(t, o), rec
}

func TestHeaderThreading(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		second   func(t *testing.T, h *chaintest.Harness, first *payload.Response) *payload.Request
		closeIt  bool
		wantSame bool
		// wantFollows: a new ticket that names the first (a reply to a closed ticket)
		wantFollows bool
		wantTitle   string // the follow-up note's title
	}{
		{
			name: "reply past the window joins by In-Reply-To",
			second: func(t *testing.T, _ *chaintest.Harness, _ *payload.Response) *payload.Request {
				return mail(t, "client@example.com", "Re: Problème", t0.Add(40*day), "m2@client.example", "m1@client.example")
			},
			wantSame: true, wantTitle: "Nouveau message du client",
		},
		{
			name: "reply from a colleague in Cc joins and the note names who wrote",
			second: func(t *testing.T, _ *chaintest.Harness, _ *payload.Response) *payload.Request {
				r := mail(t, "collegue@client.example", "Re: Problème", t0.Add(2*day), "m2@client.example", "m1@client.example")
				r.UserName = "Claire Collègue"
				return r
			},
			wantSame: true, wantTitle: "Nouveau message de Claire Collègue <collegue@client.example>",
		},
		{
			name: "reply to figsupport's admin notification joins",
			second: func(t *testing.T, h *chaintest.Harness, _ *payload.Response) *payload.Request {
				sent := h.Notifier.Sent
				if len(sent) != 1 || !strings.HasSuffix(sent[0].MessageID, "@figsupport.invalid") {
					t.Fatalf("notifications %+v", sent)
				}
				return mail(t, "admin@figurative.example", "Re: [SUPPORT]", t0.Add(30*day), "m2@figurative.example", sent[0].MessageID)
			},
			wantSame: true, wantTitle: "Nouveau message de admin@figurative.example",
		},
		{
			name: "the ticket's own contact may name it in the subject",
			second: func(t *testing.T, _ *chaintest.Harness, first *payload.Response) *payload.Request {
				return mail(t, "client@example.com", "Suite [#"+first.TicketID+"]", t0.Add(30*day), "m2@client.example")
			},
			wantSame: true, wantTitle: "Nouveau message du client",
		},
		{
			name: "a stranger's guessed [#N] does not join",
			second: func(t *testing.T, _ *chaintest.Harness, first *payload.Response) *payload.Request {
				return mail(t, "stranger@evil.example", "Re: [#"+first.TicketID+"]", t0.Add(time.Hour), "m2@evil.example")
			},
		},
		{
			name: "reply to a closed ticket opens a ticket that follows it",
			second: func(t *testing.T, _ *chaintest.Harness, _ *payload.Response) *payload.Request {
				return mail(t, "client@example.com", "Re: Problème", t0.Add(time.Hour), "m2@client.example", "m1@client.example")
			},
			closeIt: true, wantFollows: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, rec := newRec(t, chaintest.Options{})
			first := process(t, h, mail(t, "client@example.com", "Problème", t0, "m1@client.example"))
			if tt.closeIt {
				if err := h.Local.CloseTicket(ctx, first.TicketID); err != nil {
					t.Fatal(err)
				}
			}
			second := process(t, h, tt.second(t, h, first))
			if same := second.TicketID == first.TicketID; same != tt.wantSame {
				t.Fatalf("second on ticket %s, first %s: same = %v, want %v (%s)", second.TicketID, first.TicketID, same, tt.wantSame, second.Message)
			}
			notes, err := h.Local.Notes(ctx, first.TicketID, "")
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantSame {
				if second.Status != payload.StatusUpdated || len(notes) != 1 || notes[0].Title != tt.wantTitle {
					t.Fatalf("status %s, notes %+v; want one note titled %q", second.Status, notes, tt.wantTitle)
				}
				return
			}
			if second.Status != payload.StatusCreated || !second.IsNewTicket || len(rec.created) != 2 {
				t.Fatalf("second: %+v (%d creates), want a new ticket", second, len(rec.created))
			}
			names := strings.HasPrefix(rec.created[1].Content, "Suite du ticket #"+first.TicketID+" (fermé).")
			if names != tt.wantFollows {
				t.Errorf("new ticket's content names the first: %v, want %v:\n%s", names, tt.wantFollows, rec.created[1].Content)
			}
			if tt.wantFollows {
				if len(notes) != 1 || !strings.Contains(notes[0].Body, "ticket #"+second.TicketID) {
					t.Errorf("the closed ticket's notes %+v do not point at %s", notes, second.TicketID)
				}
				if !strings.Contains(second.Message, "suite du ticket #"+first.TicketID) {
					t.Errorf("message %q", second.Message)
				}
			} else if len(notes) != 0 {
				t.Errorf("a stranger's message left notes on the first ticket: %+v", notes)
			}
		})
	}
}

func TestLoopProtection(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name       string
		req        func(t *testing.T, h *chaintest.Harness) *payload.Request
		wantReason string
		wantNoteOn bool // a bounce noted on the first ticket
	}{
		{
			name: "an out-of-office reply is skipped",
			req: func(t *testing.T, _ *chaintest.Harness) *payload.Request {
				r := mail(t, "client@example.com", "Absent du bureau", t0.Add(time.Hour), "ooo@client.example", "m1@client.example")
				r.Mail.Automatic = "Auto-Submitted: auto-replied"
				return r
			},
			wantReason: "Auto-Submitted: auto-replied",
		},
		{
			name: "a message from figsupport's own address is skipped",
			req: func(t *testing.T, _ *chaintest.Harness) *payload.Request {
				return mail(t, "support@figurative.example", "[SUPPORT] Nouveau ticket", t0.Add(time.Hour), "x@mail.example")
			},
			wantReason: "sent from figsupport's own address support@figurative.example",
		},
		{
			name: "a message whose Message-ID is figsupport's is skipped",
			req: func(t *testing.T, h *chaintest.Harness) *payload.Request {
				return mail(t, "relay@example.com", "Fwd", t0.Add(time.Hour), h.Notifier.Sent[0].MessageID)
			},
			wantReason: "written by figsupport (Message-ID at figsupport.invalid)",
		},
		{
			name: "a bounce of figsupport's notification is noted on its ticket",
			req: func(t *testing.T, h *chaintest.Harness) *payload.Request {
				r := mail(t, "mailer-daemon@mail.example", "Undelivered Mail Returned to Sender", t0.Add(time.Hour), "dsn1@mail.example")
				r.Mail.Automatic, r.Mail.BounceOf = "delivery status notification", h.Notifier.Sent[0].MessageID
				return r
			},
			wantReason: "delivery status notification", wantNoteOn: true,
		},
		{
			name: "a bounce of a message figsupport does not know is skipped",
			req: func(t *testing.T, _ *chaintest.Harness) *payload.Request {
				r := mail(t, "mailer-daemon@mail.example", "Undelivered", t0.Add(time.Hour), "dsn2@mail.example")
				r.Mail.Automatic, r.Mail.BounceOf = "delivery status notification", "unknown@elsewhere.example"
				return r
			},
			wantReason: "delivery status notification",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := chaintest.New(t, chaintest.Options{Chain: chain.Options{OwnAddresses: []string{"support@figurative.example"}}})
			first := process(t, h, mail(t, "client@example.com", "Problème", t0, "m1@client.example"))
			c0, tk0, n0, _ := counts(t, h)
			sent0 := h.Notifier.Count()

			req := tt.req(t, h)
			resp := process(t, h, req)
			if resp.Reason != tt.wantReason {
				t.Errorf("reason %q, want %q", resp.Reason, tt.wantReason)
			}
			c, tk, n, _ := counts(t, h)
			if c != c0 || tk != tk0 || h.Notifier.Count() != sent0 {
				t.Errorf("contacts %d→%d, tickets %d→%d, notifications %d→%d: a machine's message made work", c0, c, tk0, tk, sent0, h.Notifier.Count())
			}
			run, err := h.Journal.Get(ctx, req.Key())
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantNoteOn {
				notes, _ := h.Local.Notes(ctx, first.TicketID, "")
				if resp.Status != payload.StatusUpdated || resp.TicketID != first.TicketID || n != n0+1 || len(notes) != 1 || notes[0].Title != "Message non distribué" {
					t.Fatalf("bounce: %+v, notes %+v", resp, notes)
				}
				if run.Status != chain.StatusDone || run.TicketID != first.TicketID {
					t.Errorf("journal: %s on ticket %q", run.Status, run.TicketID)
				}
				return
			}
			if resp.Status != payload.StatusSkipped || resp.TicketID != "" || n != n0 {
				t.Fatalf("response %+v, notes %d→%d; want skipped and nothing done", resp, n0, n)
			}
			if run.Status != chain.StatusSkipped || run.LastError != tt.wantReason {
				t.Errorf("journal: status %s, reason %q", run.Status, run.LastError)
			}
			if again := process(t, h, req); !again.Replayed || again.Status != payload.StatusSkipped {
				t.Errorf("the same message again: %+v, want a replay", again)
			}
		})
	}
}

// failOnceCRM refuses its first ticket create outright (nothing is created), as a 503 does.
type failOnceCRM struct {
	chain.CRM
	failed bool
}

func (f *failOnceCRM) CreateTicket(ctx context.Context, in chain.TicketInput) (chain.Ticket, error) {
	if !f.failed {
		f.failed = true
		return chain.Ticket{}, errors.New("hubspot: 503 Service Unavailable")
	}
	return f.CRM.CreateTicket(ctx, in)
}

// A first message whose create failed keeps its decision "new". Its follow-up, processed
// meanwhile, must not open a ticket (the failed create may have happened, unseen): it waits, as a
// temporary failure, and joins the ticket the first message's retry opens.
func TestFollowUpWaitsForTheFirstMessagesTicket(t *testing.T) {
	ctx := context.Background()
	base := chaintest.New(t, chaintest.Options{})
	crm := &failOnceCRM{CRM: base.Local}
	h := chaintest.New(t, chaintest.Options{CRM: crm, Dir: base.Dir})
	m1 := chaintest.Request(t, "client@example.com", "Problème de paiement", t0)
	if _, err := h.Chain.Process(ctx, m1, chain.RunOptions{}); err == nil {
		t.Fatal("want the first create to fail")
	}
	m2 := chaintest.Request(t, "client@example.com", "Toujours bloqué", t0.Add(time.Hour))
	_, err := h.Chain.Process(ctx, m2, chain.RunOptions{})
	if !errors.Is(err, chain.ErrEarlierCreate) || chain.Classify(err).Permanent() {
		t.Fatalf("follow-up: %v, want a temporary ErrEarlierCreate", err)
	}
	first := process(t, h, m1)
	if !first.IsNewTicket {
		t.Fatalf("resumed first message: %+v, want it to open the ticket", first)
	}
	again := process(t, h, m2)
	if again.TicketID != first.TicketID || again.IsNewTicket || again.Status != payload.StatusUpdated {
		t.Fatalf("follow-up retried: %+v, want it on ticket %s", again, first.TicketID)
	}
	if _, tickets, notes, _ := counts(t, h); tickets != 1 || notes != 1 {
		t.Fatalf("tickets %d notes %d, want one ticket and one note", tickets, notes)
	}
	// Outside the window, an unsettled first message is another conversation: nothing to wait for.
	m3 := chaintest.Request(t, "late@example.com", "Bonjour", t0)
	crm.failed = false
	if _, err := h.Chain.Process(ctx, m3, chain.RunOptions{}); err == nil {
		t.Fatal("want the create to fail")
	}
	if m4 := process(t, h, chaintest.Request(t, "late@example.com", "Autre sujet", t0.Add(30*24*time.Hour))); !m4.IsNewTicket {
		t.Fatalf("a month later: %+v, want a new ticket", m4)
	}
}

// failTasks fails every call while down.
type failTasks struct {
	chain.Tasks
	down bool
}

func (f *failTasks) CreateSubtask(ctx context.Context, in chain.SubtaskInput) (chain.Subtask, error) {
	if f.down {
		return chain.Subtask{}, errors.New("clickup: 503")
	}
	return f.Tasks.CreateSubtask(ctx, in)
}

func (f *failTasks) AppendSubtask(ctx context.Context, id, md, ref string) (chain.Subtask, error) {
	if f.down {
		return chain.Subtask{}, errors.New("clickup: 503")
	}
	return f.Tasks.AppendSubtask(ctx, id, md, ref)
}

// A follow-up that comes before its ticket's subtask exists is in the subtask once it is made.
func TestFollowUpBeforeTheSubtask(t *testing.T) {
	ctx := context.Background()
	base := chaintest.New(t, chaintest.Options{})
	tasks := &failTasks{Tasks: base.Local, down: true}
	h := chaintest.New(t, chaintest.Options{Tasks: tasks, Dir: base.Dir})
	m1 := chaintest.Request(t, "client@example.com", "Modéliser ma chaise", t0, "chaise.glb")
	first := process(t, h, m1)
	if first.Status != payload.StatusIncomplete || first.SubtaskID != "" {
		t.Fatalf("first: %+v, want a ticket without its subtask", first)
	}
	m2 := chaintest.Request(t, "client@example.com", "Voici les cotes", t0.Add(time.Hour))
	if second := process(t, h, m2); second.TicketID != first.TicketID {
		t.Fatalf("follow-up on %s, want %s", second.TicketID, first.TicketID)
	}
	tasks.down = false
	done := process(t, h, m1)
	if done.Status != payload.StatusCreated || done.SubtaskID == "" {
		t.Fatalf("resumed: %+v", done)
	}
	md, err := base.Local.SubtaskMarkdown(ctx, done.SubtaskID)
	if err != nil {
		t.Fatal(err)
	}
	second, third := "### Nouveau message du 2026-01-05 10:00", "### Nouveau message du 2026-01-05 11:00"
	if strings.Count(md, second) != 1 || !strings.Contains(md, "Modéliser ma chaise") {
		t.Fatalf("subtask:\n%s\nwant the follow-up once", md)
	}
	// A third message appends itself; nothing is repeated.
	process(t, h, chaintest.Request(t, "client@example.com", "Et la couleur ?", t0.Add(2*time.Hour)))
	md, _ = base.Local.SubtaskMarkdown(ctx, done.SubtaskID)
	if strings.Count(md, second) != 1 || strings.Count(md, third) != 1 {
		t.Fatalf("subtask after a third message:\n%s", md)
	}
}

// ackRec records acknowledgements.
type ackRec struct {
	mu   sync.Mutex
	sent []chain.Ack
}

func (a *ackRec) Acknowledge(_ context.Context, x chain.Ack) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.sent = append(a.sent, x)
	return nil
}

func TestAcknowledgement(t *testing.T) {
	acks := &ackRec{}
	h := chaintest.New(t, chaintest.Options{Ack: acks, Chain: chain.Options{MessageIDDomain: "support.figurative.example"}})
	first := process(t, h, mail(t, "client@example.com", "Problème", t0, "m1@client.example"))
	if len(acks.sent) != 1 {
		t.Fatalf("acks %+v, want one", acks.sent)
	}
	a := acks.sent[0]
	if a.To != "client@example.com" || a.TicketRef != "[#"+first.TicketID+"]" || a.InReplyTo != "m1@client.example" ||
		!strings.HasSuffix(a.MessageID, "@support.figurative.example") {
		t.Errorf("ack %+v", a)
	}
	// The customer answers the acknowledgement weeks later: it threads by its Message-ID.
	reply := process(t, h, mail(t, "client@example.com", "Re: Problème "+a.TicketRef, t0.Add(30*day), "m2@client.example", a.MessageID))
	if reply.TicketID != first.TicketID || len(acks.sent) != 1 {
		t.Fatalf("reply on %s (acks %d), want %s and no new acknowledgement", reply.TicketID, len(acks.sent), first.TicketID)
	}
	// New tickets from one address: at most three acknowledgements in ten minutes.
	for i := range 4 {
		r := chaintest.Request(t, "busy@example.com", "Demande", t0.Add(time.Duration(i)*time.Minute))
		h.Local.CloseTicket(context.Background(), process(t, h, r).TicketID)
	}
	if n := len(acks.sent); n != 1+3 {
		t.Errorf("%d acknowledgements, want 1 + 3 (rate limit)", n)
	}
	process(t, h, chaintest.Request(t, "no-reply@shop.example", "Commande", t0))
	if n := len(acks.sent); n != 4 {
		t.Errorf("an automated address was acknowledged (%d)", n)
	}
}

// failUpdateCRM refuses ticket updates while down, as a 503 does.
type failUpdateCRM struct {
	chain.CRM
	down atomic.Bool
}

func (f *failUpdateCRM) UpdateTicket(ctx context.Context, id string, u chain.TicketUpdate) error {
	if f.down.Load() {
		return errors.New("hubspot: 503 Service Unavailable")
	}
	return f.CRM.UpdateTicket(ctx, id, u)
}

// A notification under way is not cut off when a step beside it fails: an e-mail has no
// idempotency, and one cut after the server stored it would be sent again by the retry.
func TestNotificationOutlivesAFailingSibling(t *testing.T) {
	ctx := context.Background()
	base := chaintest.New(t, chaintest.Options{})
	crm := &failUpdateCRM{CRM: base.Local}
	h := chaintest.New(t, chaintest.Options{CRM: crm, Dir: base.Dir})
	process(t, h, chaintest.Request(t, "client@example.com", "Bonjour", t0))
	crm.down.Store(true)
	h.Notifier.Delay = 100 * time.Millisecond
	follow := chaintest.Request(t, "client@example.com", "Encore moi", t0.Add(time.Hour))
	if _, err := h.Chain.Process(ctx, follow, chain.RunOptions{}); err == nil {
		t.Fatal("want the follow-up to fail at the ticket's update")
	}
	if n := h.Notifier.Count(); n != 2 {
		t.Fatalf("%d notifications after the failed follow-up, want 2: its own was cut off", n)
	}
	crm.down.Store(false)
	if resp := process(t, h, follow); resp.Status != payload.StatusUpdated {
		t.Fatalf("retried follow-up: %+v", resp)
	}
	if n := h.Notifier.Count(); n != 2 {
		t.Errorf("%d notifications after the retry, want 2 (the follow-up's not sent again)", n)
	}
}
