package chain_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/chain/chaintest"
	"github.com/figurative/figsupport/internal/payload"
)

var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

func counts(t *testing.T, h *chaintest.Harness) (contacts, tickets, notes, subtasks int) {
	t.Helper()
	c, tk, n, s, err := h.Local.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return c, tk, n, s
}

func TestThreading(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		second    time.Time // when the follow-up was written
		email     string    // the follow-up's address
		closeIt   bool      // close the first ticket before the follow-up
		wantSame  bool
		wantNotes int // notes on the first ticket
	}{
		{name: "follow-up inside the window joins", second: t0.Add(3 * 24 * time.Hour), email: "client@example.com", wantSame: true, wantNotes: 1},
		{name: "follow-up on the window's last instant joins", second: t0.Add(14 * 24 * time.Hour), email: "client@example.com", wantSame: true, wantNotes: 1},
		{name: "follow-up after the window opens a new ticket", second: t0.Add(14*24*time.Hour + time.Second), email: "client@example.com"},
		{name: "follow-up after closing opens a new ticket", second: t0.Add(time.Hour), email: "client@example.com", closeIt: true},
		{name: "e-mail case and spaces do not matter", second: t0.Add(time.Hour), email: "  Client@Example.COM ", wantSame: true, wantNotes: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := chaintest.New(t, chaintest.Options{})
			first, err := h.Chain.Process(ctx, chaintest.Request(t, "client@example.com", "Problème de paiement", t0), chain.RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if !first.IsNewTicket || first.Status != payload.StatusCreated {
				t.Fatalf("first request: %+v, want a created ticket", first)
			}
			if tt.closeIt {
				if err := h.Local.CloseTicket(ctx, first.TicketID); err != nil {
					t.Fatal(err)
				}
			}
			second, err := h.Chain.Process(ctx, chaintest.Request(t, tt.email, "Toujours bloqué", tt.second), chain.RunOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if same := second.TicketID == first.TicketID; same != tt.wantSame {
				t.Fatalf("follow-up ticket %s, first %s: same = %v, want %v", second.TicketID, first.TicketID, same, tt.wantSame)
			}
			if second.IsNewTicket == tt.wantSame {
				t.Errorf("is_new_ticket = %v, want %v", second.IsNewTicket, !tt.wantSame)
			}
			wantStatus := payload.StatusCreated
			if tt.wantSame {
				wantStatus = payload.StatusUpdated
			}
			if second.Status != wantStatus {
				t.Errorf("status = %q, want %q", second.Status, wantStatus)
			}
			if second.ContactID != first.ContactID {
				t.Errorf("contact %s, want the same contact %s", second.ContactID, first.ContactID)
			}
			notes, err := h.Local.Notes(ctx, first.TicketID, "")
			if err != nil {
				t.Fatal(err)
			}
			if len(notes) != tt.wantNotes {
				t.Fatalf("notes on the first ticket = %d, want %d", len(notes), tt.wantNotes)
			}
			if tt.wantNotes > 0 && !notes[0].Timestamp.Equal(tt.second) {
				t.Errorf("note timestamp = %v, want received_at %v", notes[0].Timestamp, tt.second)
			}
			if h.Notifier.Count() != 2 {
				t.Errorf("notifications = %d, want 2", h.Notifier.Count())
			}
		})
	}
}

func TestReplayTouchesNothing(t *testing.T) {
	ctx := context.Background()
	h := chaintest.New(t, chaintest.Options{})
	req := chaintest.Request(t, "a@example.com", "Modéliser ce produit", t0, "chaise.glb")
	first, err := h.Chain.Process(ctx, req, chain.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if first.Replayed {
		t.Fatal("first run marked replayed")
	}
	_, tickets, notes, subtasks := counts(t, h)
	again, err := h.Chain.Process(ctx, chaintest.Request(t, "a@example.com", "Modéliser ce produit", t0, "chaise.glb"), chain.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Replayed || again.TicketID != first.TicketID || again.SubtaskID != first.SubtaskID {
		t.Fatalf("replay = %+v, want the stored response of %+v with replayed", again, first)
	}
	_, tickets2, notes2, subtasks2 := counts(t, h)
	if tickets2 != tickets || notes2 != notes || subtasks2 != subtasks || h.Files.Calls != 1 || h.Notifier.Count() != 1 {
		t.Fatalf("replay wrote something: tickets %d→%d notes %d→%d subtasks %d→%d uploads %d notifications %d",
			tickets, tickets2, notes, notes2, subtasks, subtasks2, h.Files.Calls, h.Notifier.Count())
	}

	// --force starts a new run: the message joins the open ticket as a follow-up.
	forced, err := h.Chain.Process(ctx, chaintest.Request(t, "a@example.com", "Modéliser ce produit", t0, "chaise.glb"), chain.RunOptions{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	if forced.Replayed || forced.IsNewTicket || forced.TicketID != first.TicketID {
		t.Fatalf("forced run = %+v, want a follow-up on %s", forced, first.TicketID)
	}
}

func TestSameKeyOtherPayloadConflicts(t *testing.T) {
	ctx := context.Background()
	h := chaintest.New(t, chaintest.Options{})
	a := chaintest.Request(t, "a@example.com", "Bonjour", t0)
	a.RequestID = "form-42"
	if _, err := h.Chain.Process(ctx, a, chain.RunOptions{}); err != nil {
		t.Fatal(err)
	}
	b := chaintest.Request(t, "a@example.com", "Autre chose", t0)
	b.RequestID = "form-42"
	_, err := h.Chain.Process(ctx, b, chain.RunOptions{})
	if !errors.Is(err, chain.ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict", err)
	}
}

func TestFailedStepResumesWithoutRepeating(t *testing.T) {
	ctx := context.Background()
	h := chaintest.New(t, chaintest.Options{})
	h.Notifier.Fail = errors.New("smtp: 451 try later")
	req := chaintest.Request(t, "a@example.com", "Modélisation 3D", t0, "a.glb")
	resp, err := h.Chain.Process(ctx, req, chain.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The warning names the step once, then the notifier's own words.
	if resp.Status != payload.StatusIncomplete || len(resp.Warnings) != 1 || resp.Warnings[0] != "notify: smtp: 451 try later" {
		t.Fatalf("resp = %+v, want incomplete with the notification's error", resp)
	}
	h.Notifier.Fail = nil
	again, err := h.Chain.Process(ctx, chaintest.Request(t, "a@example.com", "Modélisation 3D", t0, "a.glb"), chain.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.Replayed || again.Status != payload.StatusCreated || again.TicketID != resp.TicketID || again.SubtaskID != resp.SubtaskID {
		t.Fatalf("resumed = %+v, want created on the same ticket %s", again, resp.TicketID)
	}
	_, tickets, notes, subtasks := counts(t, h)
	if tickets != 1 || notes != 1 || subtasks != 1 || h.Files.Calls != 1 || h.Notifier.Count() != 1 {
		t.Fatalf("after resume: tickets %d notes %d subtasks %d uploads %d notifications %d, want 1 each",
			tickets, notes, subtasks, h.Files.Calls, h.Notifier.Count())
	}
}

func TestUploadFailureFailsBeforeTheTicket(t *testing.T) {
	ctx := context.Background()
	h := chaintest.New(t, chaintest.Options{})
	h.Files.Fail = errors.New(`file "plan.stl": fetch: 404`)
	_, err := h.Chain.Process(ctx, chaintest.Request(t, "a@example.com", "Modélisation", t0, "plan.stl"), chain.RunOptions{})
	var se *chain.StepError
	if !errors.As(err, &se) || se.Step != "upload" || !strings.Contains(err.Error(), "plan.stl") {
		t.Fatalf("err = %v, want the upload step's error naming the file", err)
	}
	if _, tickets, _, _ := counts(t, h); tickets != 0 {
		t.Fatalf("%d tickets after a failed upload, want 0", tickets)
	}
	h.Files.Fail = nil
	resp, err := h.Chain.Process(ctx, chaintest.Request(t, "a@example.com", "Modélisation", t0, "plan.stl"), chain.RunOptions{})
	if err != nil || !resp.IsNewTicket || resp.FilesUploaded != 1 {
		t.Fatalf("retry = %+v, %v; want a new ticket with the file", resp, err)
	}
}

func TestModelisationCreatesAndUpdatesSubtask(t *testing.T) {
	ctx := context.Background()
	h := chaintest.New(t, chaintest.Options{})
	first, err := h.Chain.Process(ctx, chaintest.Request(t, "m@example.com", "Modéliser <b>chaise</b>", t0, "chaise.glb"), chain.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if first.Classification != payload.Modelisation || first.SubtaskID == "" {
		t.Fatalf("first = %+v, want MODELISATION with a subtask", first)
	}
	tk, err := h.Local.GetTicket(ctx, first.TicketID)
	if err != nil {
		t.Fatal(err)
	}
	if tk.SubtaskID != first.SubtaskID || len(tk.FileURLs) != 1 {
		t.Fatalf("ticket = %+v, want subtask %s and one file URL", tk, first.SubtaskID)
	}
	contactNotes, _ := h.Local.Notes(ctx, "", first.ContactID)
	if len(contactNotes) != 1 {
		t.Fatalf("contact notes = %d, want 1 (files attached)", len(contactNotes))
	}
	second, err := h.Chain.Process(ctx, chaintest.Request(t, "m@example.com", "Voici l'autre vue", t0.Add(time.Hour), "dos.jpg"), chain.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if second.TicketID != first.TicketID || second.SubtaskID != first.SubtaskID {
		t.Fatalf("second = %+v, want the same ticket and subtask", second)
	}
	tk, _ = h.Local.GetTicket(ctx, first.TicketID)
	if len(tk.FileURLs) != 2 || !strings.HasSuffix(tk.FileURLs[0], "chaise.glb") || !strings.HasSuffix(tk.FileURLs[1], "dos.jpg") {
		t.Fatalf("fichiers_urls = %v, want both files in order", tk.FileURLs)
	}
	md, _ := h.Local.SubtaskMarkdown(ctx, first.SubtaskID)
	for _, want := range []string{"&lt;b&gt;chaise&lt;/b&gt;", "Voici l'autre vue", "dos.jpg", "chaise.glb", "#" + first.TicketID} {
		if !strings.Contains(md, want) {
			t.Errorf("subtask markdown lacks %q:\n%s", want, md)
		}
	}
}

func TestConcurrentRequestsOneTicket(t *testing.T) {
	ctx := context.Background()
	h := chaintest.New(t, chaintest.Options{})
	var wg sync.WaitGroup
	ids := make([]string, 10)
	errs := make([]error, 10)
	for i := range 10 {
		wg.Go(func() {
			r := chaintest.Request(t, "rush@example.com", "Message "+string(rune('A'+i)), t0.Add(time.Duration(i)*time.Second))
			resp, err := h.Chain.Process(ctx, r, chain.RunOptions{})
			errs[i] = err
			if resp != nil {
				ids[i] = resp.TicketID
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	contacts, tickets, notes, _ := counts(t, h)
	if contacts != 1 || tickets != 1 || notes != 9 {
		t.Fatalf("contacts %d tickets %d notes %d, want 1, 1 and 9 follow-up notes; ticket ids %v", contacts, tickets, notes, ids)
	}
}

// lagCRM hides tickets from search for a while, as HubSpot's index does.
type lagCRM struct {
	chain.CRM
	hidden map[string]bool
	gets   int
}

func (l *lagCRM) CreateTicket(ctx context.Context, in chain.TicketInput) (chain.Ticket, error) {
	t, err := l.CRM.CreateTicket(ctx, in)
	l.hidden[t.ID] = true
	return t, err
}

func (l *lagCRM) FindOpenTicket(ctx context.Context, contactID string, stages []string, since time.Time) (*chain.Ticket, error) {
	t, err := l.CRM.FindOpenTicket(ctx, contactID, stages, since)
	if t != nil && l.hidden[t.ID] {
		return nil, err
	}
	return t, err
}

func (l *lagCRM) GetTicket(ctx context.Context, id string) (chain.Ticket, error) {
	l.gets++
	return l.CRM.GetTicket(ctx, id)
}

func TestFollowUpWhileSearchLags(t *testing.T) {
	ctx := context.Background()
	base := chaintest.New(t, chaintest.Options{})
	lag := &lagCRM{CRM: base.Local, hidden: map[string]bool{}}
	h := chaintest.New(t, chaintest.Options{CRM: lag, Dir: base.Dir})
	first, err := h.Chain.Process(ctx, chaintest.Request(t, "lag@example.com", "Bug", t0), chain.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := h.Chain.Process(ctx, chaintest.Request(t, "lag@example.com", "Précision", t0.Add(time.Second)), chain.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if second.TicketID != first.TicketID || lag.gets != 1 {
		t.Fatalf("follow-up on %s (gets %d), want %s found by id", second.TicketID, lag.gets, first.TicketID)
	}
}

// lostAnswerCRM performs the first create of each kind, then fails as if its answer had been lost:
// the journal cannot record what happened.
type lostAnswerCRM struct {
	chain.CRM
	ticketLost, noteLost bool
}

func (l *lostAnswerCRM) CreateTicket(ctx context.Context, in chain.TicketInput) (chain.Ticket, error) {
	t, err := l.CRM.CreateTicket(ctx, in)
	if err == nil && !l.ticketLost {
		l.ticketLost = true
		return chain.Ticket{}, errors.New("read tcp: connection reset by peer")
	}
	return t, err
}

func (l *lostAnswerCRM) AddNote(ctx context.Context, n chain.Note) (string, error) {
	id, err := l.CRM.AddNote(ctx, n)
	if err == nil && !l.noteLost {
		l.noteLost = true
		return "", errors.New("context deadline exceeded")
	}
	return id, err
}

type lostAnswerTasks struct {
	chain.Tasks
	lost bool
}

func (l *lostAnswerTasks) CreateSubtask(ctx context.Context, in chain.SubtaskInput) (chain.Subtask, error) {
	s, err := l.Tasks.CreateSubtask(ctx, in)
	if err == nil && !l.lost {
		l.lost = true
		return chain.Subtask{}, errors.New("502 bad gateway")
	}
	return s, err
}

// A rerun after creates whose answers were lost finds what the earlier run made: one ticket, one
// note, one subtask, however many runs it took.
func TestResumeAfterLostAnswersMakesNoDuplicates(t *testing.T) {
	ctx := context.Background()
	base := chaintest.New(t, chaintest.Options{})
	crm := &lostAnswerCRM{CRM: base.Local}
	tasks := &lostAnswerTasks{Tasks: base.Local}
	h := chaintest.New(t, chaintest.Options{CRM: crm, Tasks: tasks, Dir: base.Dir})
	req := func() *payload.Request { return chaintest.Request(t, "lost@example.com", "Modélisation", t0, "a.glb") }

	var resp *payload.Response
	var err error
	runs := 0
	for runs < 6 {
		runs++
		resp, err = h.Chain.Process(ctx, req(), chain.RunOptions{})
		if err == nil && resp.Status == payload.StatusCreated {
			break
		}
	}
	if err != nil || resp.Status != payload.StatusCreated {
		t.Fatalf("after %d runs: %+v, %v", runs, resp, err)
	}
	if runs < 3 || !crm.ticketLost || !crm.noteLost || !tasks.lost {
		t.Fatalf("%d runs; lost answers ticket %v note %v subtask %v: the test did not exercise every resume", runs, crm.ticketLost, crm.noteLost, tasks.lost)
	}
	_, tickets, notes, subtasks := counts(t, h)
	if tickets != 1 || notes != 1 || subtasks != 1 {
		t.Fatalf("tickets %d notes %d subtasks %d, want one of each", tickets, notes, subtasks)
	}
}

// A request waiting for its contact's lock is already in the journal, queued: a crash then loses
// nothing.
func TestWaitingRequestIsRecorded(t *testing.T) {
	ctx := context.Background()
	h := chaintest.New(t, chaintest.Options{})
	unlock, err := h.Journal.Lock(ctx, "busy@example.com")
	if err != nil {
		t.Fatal(err)
	}
	req := chaintest.Request(t, "busy@example.com", "Bonjour", t0)
	done := make(chan error, 1)
	go func() {
		_, err := h.Chain.Process(ctx, req, chain.RunOptions{})
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		run, err := h.Journal.Get(ctx, req.Key())
		if err == nil {
			if run.Status != "queued" {
				t.Fatalf("while waiting: status %q, want queued", run.Status)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the waiting request was never recorded")
		}
		time.Sleep(5 * time.Millisecond)
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	run, _ := h.Journal.Get(ctx, req.Key())
	if run.Status != "done" || run.Attempts != 1 {
		t.Fatalf("after the lock: %+v", run)
	}
}

// rateLimited is a 429 as a backend reports it.
type rateLimited struct{}

func (rateLimited) Error() string     { return "429 rate limited" }
func (rateLimited) RateLimited() bool { return true }

// scriptedCreateCRM fails its ticket creates, without making a ticket, with the errors given in
// turn, and counts the look-ups for an earlier attempt's ticket.
type scriptedCreateCRM struct {
	chain.CRM
	fails   []error
	lookups int
}

func (s *scriptedCreateCRM) CreateTicket(ctx context.Context, in chain.TicketInput) (chain.Ticket, error) {
	if len(s.fails) > 0 {
		err := s.fails[0]
		s.fails = s.fails[1:]
		return chain.Ticket{}, err
	}
	return s.CRM.CreateTicket(ctx, in)
}

func (s *scriptedCreateCRM) FindCreatedTicket(ctx context.Context, in chain.TicketInput) (*chain.Ticket, error) {
	s.lookups++
	return s.CRM.FindCreatedTicket(ctx, in)
}

// A resumed run looks for the ticket an earlier attempt may have made only when that attempt's
// create may have happened: not after a refusal (a 429, a 4xx), always after an unknown outcome.
func TestResumeLooksForTheTicketOnlyWhenItMayExist(t *testing.T) {
	unknown := errors.New("read tcp: connection reset by peer")
	tests := []struct {
		name        string
		fails       []error
		wantLookups int
	}{
		{name: "refused", fails: []error{rateLimited{}}, wantLookups: 0},
		{name: "refused twice", fails: []error{rateLimited{}, rateLimited{}}, wantLookups: 0},
		{name: "unknown outcome", fails: []error{unknown}, wantLookups: 1},
		{name: "refused, then unknown outcome", fails: []error{rateLimited{}, unknown}, wantLookups: 1},
		{name: "unknown outcome, then refused", fails: []error{unknown, rateLimited{}}, wantLookups: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			base := chaintest.New(t, chaintest.Options{})
			crm := &scriptedCreateCRM{CRM: base.Local, fails: tt.fails}
			h := chaintest.New(t, chaintest.Options{CRM: crm, Dir: base.Dir})
			req := func() *payload.Request { return chaintest.Request(t, "resume@example.com", "Facture", t0) }
			for i := range tt.fails {
				if _, err := h.Chain.Process(ctx, req(), chain.RunOptions{}); err == nil {
					t.Fatalf("attempt %d succeeded, want its create to fail", i+1)
				}
			}
			resp, err := h.Chain.Process(ctx, req(), chain.RunOptions{})
			if err != nil || resp.Status != payload.StatusCreated {
				t.Fatalf("last attempt: %+v, %v", resp, err)
			}
			if crm.lookups != tt.wantLookups {
				t.Errorf("%d look-ups for an earlier ticket, want %d", crm.lookups, tt.wantLookups)
			}
			if _, tickets, _, _ := counts(t, h); tickets != 1 {
				t.Errorf("%d tickets, want 1", tickets)
			}
		})
	}
}
