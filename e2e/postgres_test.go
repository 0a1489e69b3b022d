package e2e

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/fakes/hubspotfake"
	"github.com/figurative/figsupport/internal/testsrv/pgtest"
)

// Two daemons on one PostgreSQL database share the work: requests spread over both, bursts of one
// contact hitting both at once, then one daemon killed mid-batch and the other finishing its
// work once its lease runs out. One ticket per conversation, nothing done twice, nothing lost.
//
// The CRM is the HubSpot fake, shared by both as HubSpot would be, or the embedded CRM, which is
// in the same PostgreSQL database. Requests carry no files (the embedded file store and the spool
// are per machine) and are SUPPORT requests (no subtask).
func TestTwoDaemonsOnePostgres(t *testing.T) {
	t.Run("hubspot", func(t *testing.T) {
		// The real time: a resumed run looks for what it may have created since its run began,
		// which the daemon stamps with the machine's clock.
		hs := hubspotfake.New(hubspotfake.Options{Latency: 15 * time.Millisecond, Clock: hubspotfake.NewRealClock()})
		defer hs.Close()
		twoDaemons(t, []string{"HUBSPOT_API_KEY=" + hs.Options().Token, "HUBSPOT_BASE_URL=" + hs.URL, "HUBSPOT_HUB_ID=12345", "HUBSPOT_RATE_LIMIT=10000"},
			func(*sql.DB) (map[string][]string, []string) {
				byContact := map[string][]string{}
				var texts []string
				for _, tk := range hs.Objects("tickets") {
					for cid := range tk.Assoc["contacts"] {
						byContact[cid] = append(byContact[cid], tk.ID)
					}
					texts = append(texts, tk.Properties["content"])
				}
				for _, n := range hs.Objects("notes") {
					texts = append(texts, n.Properties["hs_note_body"])
				}
				return byContact, texts
			})
	})
	t.Run("embedded", func(t *testing.T) {
		twoDaemons(t, nil, func(pg *sql.DB) (map[string][]string, []string) {
			byContact := map[string][]string{}
			var texts []string
			rows, err := pg.Query(`SELECT contact_id::text, id::text, content FROM tickets`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var c, id, content string
				if err := rows.Scan(&c, &id, &content); err != nil {
					t.Fatal(err)
				}
				byContact[c] = append(byContact[c], id)
				texts = append(texts, content)
			}
			rows.Close()
			rows, err = pg.Query(`SELECT body FROM notes`)
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var b string
				if err := rows.Scan(&b); err != nil {
					t.Fatal(err)
				}
				texts = append(texts, b)
			}
			rows.Close()
			return byContact, texts
		})
	})
}

// twoDaemons runs the scenario with crm's settings; crm lists the CRM's tickets by contact and
// the text of every ticket and note.
func twoDaemons(t *testing.T, crm []string, collect func(*sql.DB) (map[string][]string, []string)) {
	url := pgtest.New(t)
	const token = "tok-0123456789abcdef"
	env := func(name string) []string {
		return append([]string{
			"FIGSUPPORT_DATA_DIR=" + filepath.Join(t.TempDir(), name),
			"FIGSUPPORT_DATABASE_URL=" + url,
			// A short lease, so that the killed daemon's runs are taken over within seconds
			// (the default is a minute).
			"FIGSUPPORT_LEASE=3s",
			"FIGSUPPORT_WEBHOOK_TOKEN=" + token, "FIGSUPPORT_MODE=async", "FIGSUPPORT_RATE_PER_MINUTE=100000", "FIGSUPPORT_RATE_BURST=1000",
		}, crm...)
	}
	a := startDaemon(t, env("a"))
	b := startDaemon(t, env("b"))
	pg, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()

	send := func(d *daemon, contact, id string, minute int) {
		body := fmt.Sprintf(`{"source":"support","objet":"Question %s","description":"Message %s","user_email":"%s","request_id":"%s","received_at":"%s"}`,
			id, id, contact, id, time.Date(2026, 1, 5, 9, minute, 0, 0, time.UTC).Format(time.RFC3339))
		req, _ := http.NewRequest("POST", d.url+"/webhook/request", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		code, m := post(t, req)
		if code != 202 || m["status"] != "queued" {
			t.Errorf("%s: %d %v", id, code, m)
		}
	}
	// batch sends four requests for each of contacts, each contact's at once: the first two to
	// one daemon, the last two to the other (or all to one).
	batch := func(prefix string, contacts int, to func(i int) *daemon) {
		var wg sync.WaitGroup
		for c := range contacts {
			contact := fmt.Sprintf("%s%02d@example.com", prefix, c)
			for i := range 4 {
				wg.Go(func() { send(to(c+i/2), contact, fmt.Sprintf("%s%02d-%d", prefix, c, i), i) })
			}
		}
		wg.Wait()
	}
	done := func() int {
		var n int
		if err := pg.QueryRow(`SELECT COUNT(*) FROM requests WHERE status = 'done' AND archived = 0`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	waitAll := func(want int, logs ...*daemon) {
		t.Helper()
		deadline := time.Now().Add(3 * time.Minute)
		for done() < want {
			if time.Now().After(deadline) {
				rows, _ := pg.Query(`SELECT key, status, attempts, owner, last_error FROM requests WHERE status <> 'done' ORDER BY id LIMIT 20`)
				var left []string
				for rows != nil && rows.Next() {
					var k, s, o, e string
					var n int
					rows.Scan(&k, &s, &n, &o, &e)
					left = append(left, fmt.Sprintf("%s %s×%d %s %s", k, s, n, o, e))
				}
				for _, d := range logs {
					t.Logf("daemon log:\n%s", d.stderr)
				}
				t.Fatalf("%d of %d done after 3 min; left: %s", done(), want, strings.Join(left, "; "))
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// 200 requests from 50 contacts, each contact's burst hitting both daemons at once.
	both := []*daemon{a, b}
	batch("c", 50, func(i int) *daemon { return both[i%2] })
	waitAll(200, a, b)

	// 100 more from 25 contacts, all to a, which is killed mid-batch: b takes its runs over.
	batch("k", 25, func(int) *daemon { return a })
	for done() < 200+10 {
		time.Sleep(20 * time.Millisecond)
	}
	if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a.done
	killedAt, left := time.Now(), 300-done()
	if left == 0 {
		t.Fatal("a finished its batch before it was killed: the test proves nothing")
	}
	waitAll(300, b)
	took := time.Since(killedAt)
	t.Logf("%d requests left by the killed daemon finished by the other in %v", left, took.Round(time.Second))
	// With the default lease (a minute) the takeover could not begin before a minute: a bound far
	// above the 5–7 s it takes shows FIGSUPPORT_LEASE reached the journal.
	if took > 45*time.Second {
		t.Errorf("takeover took %v: FIGSUPPORT_LEASE=3s not applied?", took.Round(time.Second))
	}
	if !strings.Contains(b.stderr.String(), "resuming unfinished requests") {
		t.Errorf("b never said it resumed a's requests:\n%s", b.stderr)
	}

	// One ticket per contact, each request's message on it once.
	byContact, texts := collect(pg)
	tickets := 0
	for cid, ids := range byContact {
		tickets += len(ids)
		if len(ids) != 1 {
			t.Errorf("contact %s has tickets %v", cid, ids)
		}
	}
	if len(byContact) != 75 || tickets != 75 {
		t.Errorf("%d tickets for %d contacts, want 75", tickets, len(byContact))
	}
	seen := map[string]int{}
	for _, text := range texts {
		for _, prefix := range []string{"c", "k"} {
			for c := range 50 {
				for i := range 4 {
					id := fmt.Sprintf("%s%02d-%d", prefix, c, i)
					if strings.Contains(text, "Message "+id) { // every id has the same length: none is a prefix of another
						seen[id]++
					}
				}
			}
		}
	}
	if len(seen) != 300 {
		t.Errorf("%d requests' messages reached the CRM, want 300", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("message %s is in the CRM %d times", id, n)
		}
	}
	var twice int
	if err := pg.QueryRowContext(context.Background(), `SELECT COUNT(*) FROM requests WHERE attempts > 1`).Scan(&twice); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d runs needed a second attempt (the killed daemon's)", twice)
	b.stop(t)
}

// doctor on PostgreSQL: with --dry-run on a fresh database it says the migrations are pending
// and creates no table; without, they are applied and every database check passes. The password
// never shows.
func TestDoctorPostgres(t *testing.T) {
	url := pgtest.New(t)
	pg, err := sql.Open("pgx", url)
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	// The cluster trusts its socket: a password in the URL is accepted, and must never show.
	withPassword := strings.Replace(url, "&sslmode=", "&password=s3cret-pass&sslmode=", 1)
	env := []string{"FIGSUPPORT_DATA_DIR=" + filepath.Join(t.TempDir(), "data"), "FIGSUPPORT_DATABASE_URL=" + withPassword}
	tables := func() int {
		var n int
		if err := pg.QueryRow(`SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	r := runEnv(t, env, "", "--dry-run", "doctor", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, "no table yet: the first run that writes applies the migrations") {
		t.Fatalf("dry run on a fresh database: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if n := tables(); n != 0 {
		t.Errorf("the dry run created %d tables", n)
	}

	r = runEnv(t, env, "", "doctor", "-o", "json")
	if r.code != 0 || !strings.Contains(r.stdout, `"ok": true`) || !strings.Contains(r.stdout, "advisory locks usable") {
		t.Fatalf("doctor: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	if tables() == 0 {
		t.Error("doctor did not apply the migrations")
	}
	r = runEnv(t, env, "", "--dry-run", "doctor")
	if r.code != 0 || !strings.Contains(r.stdout, "migrations applied") || strings.Contains(r.stdout+r.stderr, "s3cret-pass") {
		t.Errorf("doctor names the database without the password: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
