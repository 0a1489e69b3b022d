package local

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/sqlite"
)

var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

func open(t *testing.T) *Store {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(t.TempDir(), "figsupport.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	s, err := Open(context.Background(), db, Config{})
	if err != nil {
		t.Fatal(err)
	}
	s.SetClock(func() time.Time { return t0 })
	return s
}

func TestFindOpenTicket(t *testing.T) {
	ctx := context.Background()
	s := open(t)
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
		name   string
		stages []string
		since  time.Time
		want   string
	}{
		{"most recent open ticket", []string{"1", "2"}, t0.Add(-14 * 24 * time.Hour), newer.ID},
		{"since is inclusive", []string{"1"}, t0, newer.ID},
		{"both in the window: the most recent", []string{"1"}, t0.Add(-49 * time.Hour), newer.ID},
		{"nothing that recent", []string{"1"}, t0.Add(time.Second), ""},
		{"stage not open", []string{"2"}, t0.Add(-14 * 24 * time.Hour), ""},
		{"no stages", nil, t0.Add(-time.Hour), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.FindOpenTicket(ctx, c.ID, tt.stages, tt.since)
			if err != nil {
				t.Fatal(err)
			}
			id := ""
			if got != nil {
				id = got.ID
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
	// A note moves the ticket's last activity to the note's time, never backwards.
	if _, err := s.AddNote(ctx, chain.Note{TicketID: older.ID, Body: "x", At: t0.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddNote(ctx, chain.Note{TicketID: older.ID, Body: "y", At: t0.Add(-100 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	tk, _ := s.GetTicket(ctx, older.ID)
	if !tk.LastActivity.Equal(t0.Add(time.Hour)) {
		t.Fatalf("last activity = %v, want %v", tk.LastActivity, t0.Add(time.Hour))
	}
}

func TestNotFound(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	for name, err := range map[string]error{
		"get":            func() error { _, err := s.GetTicket(ctx, "42"); return err }(),
		"close":          s.CloseTicket(ctx, "42"),
		"append":         s.AppendFileURLs(ctx, "42", []string{"u"}),
		"subtask id":     s.SetSubtaskID(ctx, "42", "s"),
		"note":           func() error { _, err := s.AddNote(ctx, chain.Note{TicketID: "42", Body: "x"}); return err }(),
		"contact note":   func() error { _, err := s.AddNote(ctx, chain.Note{ContactID: "42", Body: "x"}); return err }(),
		"append subtask": func() error { _, err := s.AppendSubtask(ctx, "42", "x", ""); return err }(),
	} {
		if !errors.Is(err, chain.ErrNotFound) {
			t.Errorf("%s: err = %v, want ErrNotFound", name, err)
		}
	}
	if c, err := s.FindContact(ctx, "nobody@example.com"); c != nil || err != nil {
		t.Errorf("FindContact = %+v, %v; want nil, nil", c, err)
	}
}

func TestAppendFileURLsKeepsOrderAndDropsRepeats(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	c, _ := s.FindOrCreateContact(ctx, "a@example.com", "")
	tk, _ := s.CreateTicket(ctx, chain.TicketInput{ContactID: c.ID, Subject: "s", FileURLs: []string{"u1", "u2"}, At: t0})
	if err := s.AppendFileURLs(ctx, tk.ID, []string{"u2", "u3", "", "u1", "u4"}); err != nil {
		t.Fatal(err)
	}
	got, _ := s.GetTicket(ctx, tk.ID)
	want := []string{"u1", "u2", "u3", "u4"}
	if len(got.FileURLs) != len(want) {
		t.Fatalf("fichiers_urls = %q, want %q", got.FileURLs, want)
	}
	for i := range want {
		if got.FileURLs[i] != want[i] {
			t.Fatalf("fichiers_urls = %q, want %q", got.FileURLs, want)
		}
	}
}
