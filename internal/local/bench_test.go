package local

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/sqlite"
)

// populated opens a store whose tables already hold tickets tickets (five per contact) and as many
// notes, written straight in SQL so that building 100,000 rows takes seconds; it returns the store
// and one contact with an open ticket among them, the rows a request would touch.
func populated(b *testing.B, tickets int) (*Store, chain.Contact, chain.Ticket) {
	b.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(filepath.Join(b.TempDir(), "figsupport.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	s, err := Open(ctx, db, Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	s.SetClock(func() time.Time { return t0 })
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	contact, err := tx.PrepareContext(ctx, `INSERT INTO contacts(email, created_at) VALUES(?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	ticket, err := tx.PrepareContext(ctx, `INSERT INTO tickets(contact_id, subject, content, pipeline, stage, created_at, last_activity)
		VALUES(?, ?, ?, '0', ?, ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	note, err := tx.PrepareContext(ctx, `INSERT INTO notes(ticket_id, title, body, timestamp, created_at) VALUES(?, ?, ?, ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	var cid int64
	for i := range tickets {
		if i%5 == 0 {
			res, err := contact.ExecContext(ctx, fmt.Sprintf("c%d@example.com", i/5), t0.UnixMilli())
			if err != nil {
				b.Fatal(err)
			}
			cid, _ = res.LastInsertId()
		}
		at := t0.Add(-time.Duration(tickets-i) * time.Minute).UnixMilli()
		stage := "4"
		if i%5 == 4 {
			stage = "1"
		}
		res, err := ticket.ExecContext(ctx, cid, "Demande "+strconv.Itoa(i), "Bonjour", stage, at, at)
		if err != nil {
			b.Fatal(err)
		}
		tid, _ := res.LastInsertId()
		if _, err := note.ExecContext(ctx, tid, "Nouveau message du client", "Merci", at, at); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	c, err := s.FindOrCreateContact(ctx, "bench@example.com", "Banc d'Essai")
	if err != nil {
		b.Fatal(err)
	}
	t, err := s.CreateTicket(ctx, chain.TicketInput{ContactID: c.ID, Subject: "Banc", Content: "Bonjour", At: t0})
	if err != nil {
		b.Fatal(err)
	}
	return s, c, t
}

// BenchmarkStore measures the calls every request makes, from an empty database to 100,000
// tickets: with every lookup on an index their cost must stay flat as the tables grow.
//
//	go test ./internal/local -run '^$' -bench Store
func BenchmarkStore(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{0, 10_000, 100_000} {
		b.Run(fmt.Sprintf("tickets=%d", n), func(b *testing.B) {
			s, c, t := populated(b, n)
			b.Run("FindOpenTicket", func(b *testing.B) {
				for b.Loop() {
					got, err := s.FindOpenTicket(ctx, c.ID, []string{"1", "2"}, t0.Add(-14*24*time.Hour))
					if err != nil || got == nil {
						b.Fatalf("FindOpenTicket = %v, %v", got, err)
					}
				}
			})
			b.Run("GetTicket", func(b *testing.B) {
				for b.Loop() {
					if _, err := s.GetTicket(ctx, t.ID); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("UpdateTicket", func(b *testing.B) {
				for b.Loop() {
					if err := s.UpdateTicket(ctx, t.ID, chain.TicketUpdate{MessageAt: t0}); err != nil {
						b.Fatal(err)
					}
				}
			})
			b.Run("AddNote", func(b *testing.B) {
				at := t0
				for b.Loop() {
					at = at.Add(time.Millisecond) // each message its own time, as in life
					if _, err := s.AddNote(ctx, chain.Note{TicketID: t.ID, Title: "Nouveau message du client", Body: "Merci", At: at}); err != nil {
						b.Fatal(err)
					}
				}
			})
			// A resumed run looks for the note an earlier attempt may have added (the first call
			// adds it, the others find it).
			b.Run("AddNoteResumed", func(b *testing.B) {
				for b.Loop() {
					if _, err := s.AddNote(ctx, chain.Note{TicketID: t.ID, Title: "Reprise", Body: "Merci", At: t0.Add(-time.Hour), MayExistSince: t0}); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
