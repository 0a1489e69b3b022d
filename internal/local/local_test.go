package local

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/postgres"
	"github.com/figurative/figsupport/internal/sqlite"
	"github.com/figurative/figsupport/internal/testsrv/pgtest"
)

var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

func openDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "figsupport.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// The databases the embedded CRM runs on: the tests that hold for both run on each (PostgreSQL
// skips, saying so, where its server binaries are absent).
func onEachDB(t *testing.T, test func(t *testing.T, db string)) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) { test(t, db) })
	}
}

func open(t *testing.T) *Store { return openOn(t, "sqlite") }

// openOn is a store on a fresh database of kind db, its clock at t0.
func openOn(t *testing.T, db string) *Store {
	t.Helper()
	var s *Store
	var err error
	if db == "postgres" {
		pdb, perr := postgres.Open(context.Background(), pgtest.New(t))
		if perr != nil {
			t.Fatal(perr)
		}
		t.Cleanup(func() { pdb.Close() })
		s, err = OpenPostgres(context.Background(), pdb, Config{})
	} else {
		s, err = Open(context.Background(), openDB(t), Config{})
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	s.SetClock(func() time.Time { return t0 })
	return s
}

func TestFindOpenTicket(t *testing.T) { onEachDB(t, testFindOpenTicket) }

func testFindOpenTicket(t *testing.T, db string) {
	ctx := context.Background()
	s := openOn(t, db)
	c, err := s.FindOrCreateContact(ctx, " A@Example.com ", "Jean Paul Dupont")
	if err != nil || !c.Created || c.Email != "a@example.com" {
		t.Fatalf("contact = %+v, %v", c, err)
	}
	again, _ := s.FindOrCreateContact(ctx, "a@example.com", "")
	if again.ID != c.ID || again.Created {
		t.Fatalf("second lookup = %+v, want the same contact, not created", again)
	}
	older, _ := s.CreateTicket(ctx, chain.TicketInput{ContactID: c.ID, Subject: "ancien", At: t0.Add(-48 * time.Hour)})
	newer, _ := s.CreateTicket(ctx, chain.TicketInput{ContactID: c.ID, Subject: "récent", At: t0})
	other, _ := s.FindOrCreateContact(ctx, "b@example.com", "")
	_, _ = s.CreateTicket(ctx, chain.TicketInput{ContactID: other.ID, Subject: "autre", At: t0})

	tests := []struct {
		name    string
		contact string
		stages  []string
		since   time.Time
		want    string
	}{
		{"most recent open ticket", c.ID, []string{"1", "2"}, t0.Add(-14 * 24 * time.Hour), newer.ID},
		{"since is inclusive", c.ID, []string{"1"}, t0, newer.ID},
		{"both in the window: the most recent", c.ID, []string{"1"}, t0.Add(-49 * time.Hour), newer.ID},
		{"nothing that recent", c.ID, []string{"1"}, t0.Add(time.Second), ""},
		{"stage not open", c.ID, []string{"2"}, t0.Add(-14 * 24 * time.Hour), ""},
		{"three stages", c.ID, []string{"3", "2", "1"}, t0.Add(-14 * 24 * time.Hour), newer.ID},
		{"no stages", c.ID, nil, t0.Add(-time.Hour), ""},
		{"unknown contact", "999", []string{"1"}, t0.Add(-time.Hour), ""},
		{"contact id not a number", "abc", []string{"1"}, t0.Add(-time.Hour), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.FindOpenTicket(ctx, tt.contact, tt.stages, tt.since)
			if err != nil {
				t.Fatal(err)
			}
			id := ""
			if got != nil {
				id = got.ID
				if got.ContactID != tt.contact {
					t.Fatalf("ticket's contact = %q, want %q", got.ContactID, tt.contact)
				}
			}
			if id != tt.want {
				t.Fatalf("FindOpenTicket = %q, want %q", id, tt.want)
			}
		})
	}

	// Closing the newer one leaves the older one, if it is inside the window.
	if err := s.CloseTicket(ctx, newer.ID); err != nil {
		t.Fatal(err)
	}
	got, _ := s.FindOpenTicket(ctx, c.ID, []string{"1", "2"}, t0.Add(-72*time.Hour))
	if got == nil || got.ID != older.ID {
		t.Fatalf("after close = %+v, want ticket %s", got, older.ID)
	}
}

// LastActivity is the later of the customer's last message and what people did to the ticket; a
// note alone is not activity, and an older message (a replayed request) never moves it back.
func TestLastActivity(t *testing.T) { onEachDB(t, testLastActivity) }

func testLastActivity(t *testing.T, db string) {
	ctx := context.Background()
	day := 24 * time.Hour
	tests := []struct {
		name string
		do   func(s *Store, id string) error
		want time.Time
	}{
		{"created: the customer's time", func(*Store, string) error { return nil }, t0.Add(-30 * day)},
		{"a follow-up moves it", func(s *Store, id string) error {
			return s.UpdateTicket(ctx, id, chain.TicketUpdate{MessageAt: t0.Add(-20 * day)})
		}, t0.Add(-20 * day)},
		{"follow-ups at +10 and +20 days", func(s *Store, id string) error {
			if err := s.UpdateTicket(ctx, id, chain.TicketUpdate{MessageAt: t0.Add(-20 * day)}); err != nil {
				return err
			}
			return s.UpdateTicket(ctx, id, chain.TicketUpdate{MessageAt: t0.Add(-10 * day)})
		}, t0.Add(-10 * day)},
		{"an older follow-up changes nothing", func(s *Store, id string) error {
			if err := s.UpdateTicket(ctx, id, chain.TicketUpdate{MessageAt: t0.Add(-10 * day)}); err != nil {
				return err
			}
			return s.UpdateTicket(ctx, id, chain.TicketUpdate{MessageAt: t0.Add(-25 * day), AddFileURLs: []string{"u"}})
		}, t0.Add(-10 * day)},
		{"a zero time changes nothing", func(s *Store, id string) error {
			return s.UpdateTicket(ctx, id, chain.TicketUpdate{AddFileURLs: []string{"u"}})
		}, t0.Add(-30 * day)},
		{"a note is not activity", func(s *Store, id string) error {
			_, err := s.AddNote(ctx, chain.Note{TicketID: id, Body: "x", At: t0.Add(-day)})
			return err
		}, t0.Add(-30 * day)},
		{"figsupport linking the subtask is not activity", func(s *Store, id string) error {
			return s.SetSubtaskID(ctx, id, "7")
		}, t0.Add(-30 * day)},
		{"a person's stage change is, at the clock's time", func(s *Store, id string) error {
			return s.CloseTicket(ctx, id)
		}, t0},
		{"a message after the person's action", func(s *Store, id string) error {
			if err := s.CloseTicket(ctx, id); err != nil {
				return err
			}
			return s.UpdateTicket(ctx, id, chain.TicketUpdate{MessageAt: t0.Add(day)})
		}, t0.Add(day)},
		{"a message before the person's action", func(s *Store, id string) error {
			if err := s.CloseTicket(ctx, id); err != nil {
				return err
			}
			return s.UpdateTicket(ctx, id, chain.TicketUpdate{MessageAt: t0.Add(-day)})
		}, t0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openOn(t, db)
			c, _ := s.FindOrCreateContact(ctx, "a@example.com", "")
			tk, err := s.CreateTicket(ctx, chain.TicketInput{ContactID: c.ID, Subject: "s", At: t0.Add(-30 * day)})
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.do(s, tk.ID); err != nil {
				t.Fatal(err)
			}
			got, err := s.GetTicket(ctx, tk.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !got.LastActivity.Equal(tt.want) {
				t.Fatalf("last activity = %v, want %v", got.LastActivity, tt.want)
			}
			// The threading query reads the same notion.
			found, err := s.FindOpenTicket(ctx, c.ID, []string{got.Stage}, tt.want)
			if err != nil || found == nil || !found.LastActivity.Equal(tt.want) {
				t.Fatalf("FindOpenTicket since %v = %+v, %v", tt.want, found, err)
			}
			if found, _ := s.FindOpenTicket(ctx, c.ID, []string{got.Stage}, tt.want.Add(time.Millisecond)); found != nil {
				t.Fatalf("FindOpenTicket after the last activity = %+v, want none", found)
			}
		})
	}
}

func TestGetTicket(t *testing.T) { onEachDB(t, testGetTicket) }

func testGetTicket(t *testing.T, db string) {
	ctx := context.Background()
	s := openOn(t, db)
	c, _ := s.FindOrCreateContact(ctx, "a@example.com", "")
	created, err := s.CreateTicket(ctx, chain.TicketInput{ContactID: c.ID, Subject: "Chaise", Content: "Bonjour",
		Classification: "MODELISATION", FileURLs: []string{"u1", "", "u2"}, At: t0})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetSubtaskID(ctx, created.ID, "86c1"); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetTicket(ctx, created.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := chain.Ticket{ID: created.ID, Subject: "Chaise", Stage: "1", ContactID: c.ID, Classification: "MODELISATION",
		FileURLs: []string{"u1", "u2"}, SubtaskID: "86c1", LastActivity: t0, URL: "figsupport://tickets/" + created.ID}
	if !equalTicket(got, want) {
		t.Fatalf("GetTicket = %+v, want %+v", got, want)
	}
	created.SubtaskID = "86c1"
	if !equalTicket(created, want) {
		t.Fatalf("CreateTicket = %+v, want what GetTicket reads %+v", created, want)
	}
}

func equalTicket(a, b chain.Ticket) bool {
	return a.ID == b.ID && a.Subject == b.Subject && a.Stage == b.Stage && a.ContactID == b.ContactID &&
		a.Classification == b.Classification && slices.Equal(a.FileURLs, b.FileURLs) && a.SubtaskID == b.SubtaskID &&
		a.LastActivity.Equal(b.LastActivity) && a.URL == b.URL
}

func TestCreateTicketResumed(t *testing.T) { onEachDB(t, testCreateTicketResumed) }

func testCreateTicketResumed(t *testing.T, db string) {
	ctx := context.Background()
	s := openOn(t, db)
	c, _ := s.FindOrCreateContact(ctx, "a@example.com", "")
	in := chain.TicketInput{ContactID: c.ID, Subject: "s", Content: "c", At: t0}
	first, err := s.CreateTicket(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	in.MayExistSince = t0.Add(-time.Minute)
	again, err := s.CreateTicket(ctx, in)
	if err != nil || again.ID != first.ID {
		t.Fatalf("resumed create = %+v, %v; want ticket %s again", again, err, first.ID)
	}
	in.Content = "autre"
	other, err := s.CreateTicket(ctx, in)
	if err != nil || other.ID == first.ID {
		t.Fatalf("different content = %+v, %v; want a new ticket", other, err)
	}
}

func TestNotFound(t *testing.T) { onEachDB(t, testNotFound) }

func testNotFound(t *testing.T, db string) {
	ctx := context.Background()
	s := openOn(t, db)
	c, _ := s.FindOrCreateContact(ctx, "a@example.com", "")
	tk, _ := s.CreateTicket(ctx, chain.TicketInput{ContactID: c.ID, Subject: "s", At: t0})
	st, _ := s.CreateSubtask(ctx, chain.SubtaskInput{Name: "n", Markdown: "m"})
	// An id that is not the decimal form of a key names nothing: "007" is not ticket 7.
	for _, id := range []string{"42", "abc", "", "0", "-1", "0" + tk.ID, "+" + tk.ID, tk.ID + " ", "99999999999999999999"} {
		for name, err := range map[string]error{
			"get":          func() error { _, err := s.GetTicket(ctx, id); return err }(),
			"close":        s.CloseTicket(ctx, id),
			"update":       s.UpdateTicket(ctx, id, chain.TicketUpdate{MessageAt: t0}),
			"update files": s.UpdateTicket(ctx, id, chain.TicketUpdate{MessageAt: t0, AddFileURLs: []string{"u"}}),
			"subtask id":   s.SetSubtaskID(ctx, id, "s"),
			"note":         func() error { _, err := s.AddNote(ctx, chain.Note{TicketID: id + "x", Body: "x"}); return err }(),
			"ticket note": func() error {
				if id == "" {
					return chain.ErrNotFound // an empty ticket id means a contact note
				}
				_, err := s.AddNote(ctx, chain.Note{TicketID: id, Body: "x"})
				return err
			}(),
			"contact note":     func() error { _, err := s.AddNote(ctx, chain.Note{ContactID: id + "x", Body: "x"}); return err }(),
			"append subtask":   func() error { _, err := s.AppendSubtask(ctx, id, "x", "r"); return err }(),
			"append nothing":   func() error { _, err := s.AppendSubtask(ctx, id, " ", ""); return err }(),
			"subtask markdown": func() error { _, err := s.SubtaskMarkdown(ctx, id); return err }(),
			"replace subtask":  func() error { _, err := s.UpdateDescription(ctx, id, "x"); return err }(),
			"ticket for contact": func() error {
				_, err := s.CreateTicket(ctx, chain.TicketInput{ContactID: id + "x", Subject: "s"})
				return err
			}(),
		} {
			if !errors.Is(err, chain.ErrNotFound) {
				t.Errorf("%s(%q): err = %v, want ErrNotFound", name, id, err)
			}
		}
	}
	if _, err := s.AddNote(ctx, chain.Note{Body: "x"}); err == nil {
		t.Error("a note with neither ticket nor contact was accepted")
	}
	if c, err := s.FindContact(ctx, "nobody@example.com"); c != nil || err != nil {
		t.Errorf("FindContact = %+v, %v; want nil, nil", c, err)
	}
	if _, err := s.AppendSubtask(ctx, st.ID, "ok", "r"); err != nil {
		t.Errorf("AppendSubtask on an existing subtask: %v", err)
	}
}

func TestUpdateTicketFilesKeepOrderAndDropRepeats(t *testing.T) {
	onEachDB(t, testUpdateTicketFilesKeepOrderAndDropRepeats)
}

func testUpdateTicketFilesKeepOrderAndDropRepeats(t *testing.T, db string) {
	ctx := context.Background()
	tests := []struct {
		name    string
		initial []string
		add     [][]string
		want    []string
	}{
		{"appended after the ticket's", []string{"u1", "u2"}, [][]string{{"u2", "u3", "", "u1", "u4"}}, []string{"u1", "u2", "u3", "u4"}},
		{"to a ticket with none", nil, [][]string{{"u1"}, {"u2", "u1"}}, []string{"u1", "u2"}},
		{"no files: the list unchanged", []string{"u1"}, [][]string{nil}, []string{"u1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openOn(t, db)
			c, _ := s.FindOrCreateContact(ctx, "a@example.com", "")
			tk, _ := s.CreateTicket(ctx, chain.TicketInput{ContactID: c.ID, Subject: "s", FileURLs: tt.initial, At: t0})
			for i, urls := range tt.add {
				if err := s.UpdateTicket(ctx, tk.ID, chain.TicketUpdate{MessageAt: t0.Add(time.Duration(i+1) * time.Hour), AddFileURLs: urls}); err != nil {
					t.Fatal(err)
				}
			}
			got, _ := s.GetTicket(ctx, tk.ID)
			if !slices.Equal(got.FileURLs, tt.want) {
				t.Fatalf("fichiers_urls = %q, want %q", got.FileURLs, tt.want)
			}
			if want := t0.Add(time.Duration(len(tt.add)) * time.Hour); !got.LastActivity.Equal(want) {
				t.Fatalf("last activity = %v, want %v (written with the files)", got.LastActivity, want)
			}
		})
	}
}

func TestAddNote(t *testing.T) { onEachDB(t, testAddNote) }

func testAddNote(t *testing.T, db string) {
	ctx := context.Background()
	s := openOn(t, db)
	c, _ := s.FindOrCreateContact(ctx, "a@example.com", "")
	tk, _ := s.CreateTicket(ctx, chain.TicketInput{ContactID: c.ID, Subject: "s", At: t0})
	first, err := s.AddNote(ctx, chain.Note{TicketID: tk.ID, Title: "Nouveau message", Body: "b", FileURLs: []string{"u"}, At: t0})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		note    chain.Note
		wantOld bool
	}{
		{"resumed: the earlier attempt's note", chain.Note{TicketID: tk.ID, Title: "Nouveau message", Body: "b", At: t0, MayExistSince: t0}, true},
		{"resumed, different body: a new note", chain.Note{TicketID: tk.ID, Title: "Nouveau message", Body: "c", At: t0, MayExistSince: t0}, false},
		{"resumed, made before the run: a new note", chain.Note{TicketID: tk.ID, Title: "Nouveau message", Body: "b", At: t0, MayExistSince: t0.Add(time.Second)}, false},
		{"not resumed: always a new note", chain.Note{TicketID: tk.ID, Title: "Nouveau message", Body: "b", At: t0}, false},
		{"on the contact: not the ticket's note", chain.Note{ContactID: c.ID, Title: "Nouveau message", Body: "b", At: t0, MayExistSince: t0}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := s.AddNote(ctx, tt.note)
			if err != nil {
				t.Fatal(err)
			}
			if (id == first) != tt.wantOld {
				t.Fatalf("note id %s, first note %s: want the earlier one %v", id, first, tt.wantOld)
			}
		})
	}
	notes, err := s.Notes(ctx, tk.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 4 || notes[0].ID != first || notes[0].TicketID != tk.ID || notes[0].ContactID != "" ||
		!slices.Equal(notes[0].Files, []string{"u"}) || !notes[0].Timestamp.Equal(t0) {
		t.Fatalf("ticket notes = %+v", notes)
	}
	onContact, err := s.Notes(ctx, "", c.ID)
	if err != nil || len(onContact) != 1 || onContact[0].ContactID != c.ID || onContact[0].TicketID != "" {
		t.Fatalf("contact notes = %+v, %v", onContact, err)
	}
}

func TestAppendSubtask(t *testing.T) { onEachDB(t, testAppendSubtask) }

func testAppendSubtask(t *testing.T, db string) {
	ctx := context.Background()
	type call struct{ markdown, ref string }
	tests := []struct {
		name   string
		create string
		calls  []call
		want   string
	}{
		{"one block, marked", "Demande", []call{{"Suite 1", "k1"}},
			"Demande\n\n---\n\nSuite 1\n\n" + chain.BlockMarker("k1")},
		{"repeat of the last block", "Demande", []call{{"Suite 1", "k1"}, {"Suite 1", "k1"}},
			"Demande\n\n---\n\nSuite 1\n\n" + chain.BlockMarker("k1")},
		{"repeat after another block was appended", "Demande", []call{{"Suite 1", "k1"}, {"Suite 2", "k2"}, {"Suite 1", "k1"}},
			"Demande\n\n---\n\nSuite 1\n\n" + chain.BlockMarker("k1") + "\n\n---\n\nSuite 2\n\n" + chain.BlockMarker("k2")},
		{"same text, other request: both", "Demande", []call{{"Merci", "k1"}, {"Merci", "k2"}},
			"Demande\n\n---\n\nMerci\n\n" + chain.BlockMarker("k1") + "\n\n---\n\nMerci\n\n" + chain.BlockMarker("k2")},
		{"no ref: unmarked, one-off", "Demande", []call{{"Note", ""}, {"Note", ""}},
			"Demande\n\n---\n\nNote\n\n---\n\nNote"},
		{"empty description: no leading rule", "", []call{{"Suite 1", "k1"}},
			"Suite 1\n\n" + chain.BlockMarker("k1")},
		{"nothing to add", "Demande", []call{{"  \n", "k1"}}, "Demande"},
		{"a ref with wildcards and quotes", "Demande", []call{{"Suite", "a%_'`\n"}, {"Suite", "a%_'`\n"}},
			"Demande\n\n---\n\nSuite\n\n" + chain.BlockMarker("a%_'`\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openOn(t, db)
			st, err := s.CreateSubtask(ctx, chain.SubtaskInput{Name: "n", Markdown: tt.create, Ref: "req"})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tt.calls {
				got, err := s.AppendSubtask(ctx, st.ID, c.markdown, c.ref)
				if err != nil || got != st {
					t.Fatalf("AppendSubtask = %+v, %v; want %+v", got, err, st)
				}
			}
			md, err := s.SubtaskMarkdown(ctx, st.ID)
			if err != nil {
				t.Fatal(err)
			}
			if md != tt.want {
				t.Fatalf("markdown =\n%q\nwant\n%q", md, tt.want)
			}
		})
	}
	if m := chain.BlockMarker("k1"); !regexp.MustCompile("^`figsupport-ref: [0-9a-f]{16}`$").MatchString(m) || m == chain.BlockMarker("k2") {
		t.Fatalf("BlockMarker = %q", m)
	}
}

func TestCreateSubtaskResumed(t *testing.T) { onEachDB(t, testCreateSubtaskResumed) }

func testCreateSubtaskResumed(t *testing.T, db string) {
	ctx := context.Background()
	s := openOn(t, db)
	first, _ := s.CreateSubtask(ctx, chain.SubtaskInput{Name: "n", Markdown: "m", Ref: "req"})
	tests := []struct {
		name string
		in   chain.SubtaskInput
		same bool
	}{
		{"resumed, same request", chain.SubtaskInput{Name: "n", Markdown: "m", Ref: "req", MayExistSince: t0}, true},
		{"resumed, other request", chain.SubtaskInput{Name: "n", Markdown: "m", Ref: "other", MayExistSince: t0}, false},
		{"not resumed", chain.SubtaskInput{Name: "n", Markdown: "m", Ref: "req"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.CreateSubtask(ctx, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if (got.ID == first.ID) != tt.same {
				t.Fatalf("subtask %s, first %s: want the same %v", got.ID, first.ID, tt.same)
			}
		})
	}
}

// A database made before last_message_at keeps threading as it did: its tickets' last message
// is their last activity so far.
func TestMigrationFromFirstSchema(t *testing.T) {
	ctx := context.Background()
	db := openDB(t)
	if err := sqlite.Migrate(ctx, db, "local", migrations[:1]); err != nil {
		t.Fatal(err)
	}
	last := t0.Add(-3 * 24 * time.Hour)
	if _, err := db.Exec(`INSERT INTO contacts(id, email, created_at) VALUES(1, 'a@example.com', 0)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO tickets(id, contact_id, subject, content, pipeline, stage, created_at, last_activity)
		VALUES(5, 1, 's', 'c', '0', '1', 0, ?)`, last.UnixMilli()); err != nil {
		t.Fatal(err)
	}
	s, err := Open(ctx, db, Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var msg int64
	if err := db.QueryRow(`SELECT last_message_at FROM tickets WHERE id = 5`).Scan(&msg); err != nil || msg != last.UnixMilli() {
		t.Fatalf("last_message_at = %d, %v; want %d", msg, err, last.UnixMilli())
	}
	if err := s.UpdateTicket(ctx, "5", chain.TicketUpdate{MessageAt: last.Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	tk, err := s.GetTicket(ctx, "5")
	if err != nil || !tk.LastActivity.Equal(last) {
		t.Fatalf("ticket = %+v, %v; want last activity %v", tk, err, last)
	}
}

var tableScan = regexp.MustCompile(`^SCAN (contacts|tickets|notes|subtasks)\b`)

// Every statement of the request path reaches its rows by the primary key or an index: a full
// scan would make each request slower as the tables grow (issue 9).
func TestQueryPlans(t *testing.T) {
	s := open(t)
	queries := slices.Clone(statements)
	for n := 1; n <= 3; n++ {
		queries = append(queries, qOpenTicket(n))
	}
	for _, q := range queries {
		t.Run(firstLine(q), func(t *testing.T) {
			args := make([]any, strings.Count(q, "?"))
			rows, err := s.db.Query("EXPLAIN QUERY PLAN "+q, args...)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			// A sort is allowed where the rows sorted are one contact's or one ticket's, off the
			// request's usual path (a resumed create, the CLI's listing).
			sortOK := q == qTicketCreated || q == qNotesOfTicket || q == qNotesOfContact
			for _, step := range plan {
				if tableScan.MatchString(step) || (strings.Contains(step, "TEMP B-TREE") && !sortOK) {
					t.Fatalf("plan of %s:\n  %s", q, strings.Join(plan, "\n  "))
				}
			}
		})
	}
}
