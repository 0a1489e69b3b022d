package bench

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/figurative/figsupport/internal/sqlite"
)

// Seed fills the data dir's database (created and migrated by a first run of the binary) with
// what n requests would have left, in one transaction of plain SQL so that 100,000 take seconds
// instead of the minutes the chain would: the embedded CRM's contacts (one per five tickets),
// tickets (four in five closed) and one note each, and the journal's runs with their steps and the
// memo of each contact's ticket. The statements follow the schemas of internal/local and
// internal/journal; a schema change there breaks this loudly (an unknown column), not quietly.
func Seed(ctx context.Context, dbPath string, n int, at time.Time) error {
	db, err := sqlite.Open(dbPath)
	if err != nil {
		return err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	defer tx.Rollback()
	stmts := map[string]string{
		"contact": `INSERT INTO contacts(email, created_at) VALUES(?, ?)`,
		"ticket": `INSERT INTO tickets(contact_id, subject, content, classification, pipeline, stage, created_at, last_message_at, last_activity)
			VALUES(?, ?, 'Bonjour', 'SUPPORT', '0', ?, ?, ?, ?)`,
		"note": `INSERT INTO notes(ticket_id, title, body, timestamp, created_at) VALUES(?, 'Nouveau message du client', 'Merci', ?, ?)`,
		"run": `INSERT INTO requests(key, hash, email, status, request, response, attempts, created_at, updated_at, expires_at, ticket_id)
			VALUES(?, ?, ?, 'done', ?, ?, 1, ?, ?, ?, ?)`,
		"step": `INSERT INTO steps(run_id, name, result, at) VALUES(?, ?, ?, ?)`,
		// The chain's memo of a contact's current ticket (chain.memoTicketKey).
		"memo": `INSERT INTO memo(key, value, updated_at) VALUES(?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`,
	}
	st := map[string]*stmt{}
	for name, q := range stmts {
		s, err := tx.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("seed: prepare %s: %w", name, err)
		}
		defer s.Close()
		st[name] = &stmt{s}
	}
	var cid int64
	for i := range n {
		t := at.Add(-time.Duration(n-i) * time.Minute)
		ms := t.UnixMilli()
		email := "seed" + strconv.Itoa(i/5) + "@example.com"
		if i%5 == 0 {
			if cid, err = st["contact"].insert(ctx, email, ms); err != nil {
				return err
			}
		}
		stage := "4"
		if i%5 == 4 {
			stage = "1"
		}
		tid, err := st["ticket"].insert(ctx, cid, "[SUPPORT] Demande "+strconv.Itoa(i), stage, ms, ms, ms)
		if err != nil {
			return err
		}
		if _, err := st["note"].insert(ctx, tid, ms, ms); err != nil {
			return err
		}
		key := "seed-" + strconv.Itoa(i)
		req, _ := json.Marshal(map[string]any{"objet": "Demande " + strconv.Itoa(i), "description": "Bonjour",
			"user_email": email, "received_at": t, "request_id": key})
		resp, _ := json.Marshal(map[string]any{"status": "created", "ticket_id": strconv.FormatInt(tid, 10), "request_id": key})
		rid, err := st["run"].insert(ctx, key, "h-"+key, email, string(req), string(resp), ms, ms, t.Add(7*24*time.Hour).UnixMilli(), strconv.FormatInt(tid, 10))
		if err != nil {
			return err
		}
		for _, s := range []struct{ name, result string }{
			{"classify", `{"classification":"SUPPORT","ambiguous":false,"method":"rules","reasons":[]}`},
			{"contact", fmt.Sprintf(`{"id":"%d","email":%q,"created":%v}`, cid, email, i%5 == 0)},
			{"thread", `{"id":"","url":"","new":true}`},
			{"ticket", fmt.Sprintf(`{"id":"%d","url":"figsupport://tickets/%d","new":true}`, tid, tid)},
			{"notify", `"figsupport.notify.seed@figsupport.invalid"`},
		} {
			if _, err := st["step"].insert(ctx, rid, s.name, s.result, ms); err != nil {
				return err
			}
		}
		if _, err := st["memo"].insert(ctx, "chain:contact-ticket:"+strconv.FormatInt(cid, 10), strconv.FormatInt(tid, 10), ms); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	return nil
}

type stmt struct{ s *sql.Stmt }

// insert runs the statement and returns the new row's id.
func (s *stmt) insert(ctx context.Context, args ...any) (int64, error) {
	res, err := s.s.ExecContext(ctx, args...)
	if err != nil {
		return 0, fmt.Errorf("seed: %w", err)
	}
	return res.LastInsertId()
}
