package e2e

import (
	"net/http"
	"net/mail"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/fakes/faults"
	"github.com/figurative/figsupport/internal/fakes/hubspotfake"
	"github.com/figurative/figsupport/internal/fakes/smtpfake"
)

// Reproductions of bugs found by the fault scenarios, each kept as a regression test.

// smtpEnv points the daemon's notifications at addr, plain SMTP without authentication.
func smtpEnv(addr string) []string {
	host, port, _ := strings.Cut(addr, ":")
	return []string{"SMTP_HOST=" + host, "SMTP_PORT=" + port, "SMTP_AUTH=none", "SMTP_TLS=none",
		"SMTP_FROM=support@figurative.fr", "NOTIFICATION_EMAIL=admin@figurative.fr"}
}

// The journal's sweep reads Pending(ctx, FIGSUPPORT_MAX_BACKLOG): the oldest unfinished runs,
// permanent failures included. With as many permanent failures as the backlog is deep, older
// than a temporary one, the sweep never sees the temporary one: it is never retried.
func TestSweepSeesPastPermanentFailures(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	base := []string{"FIGSUPPORT_DATA_DIR=" + data, "FIGSUPPORT_MAX_BACKLOG=2", "FIGSUPPORT_RETRY_INTERVAL=200ms", "FIGSUPPORT_RATE_PER_MINUTE=100000"}

	// First, every notification is lost on a reset connection: the request ends incomplete (a
	// temporary failure). Two requests whose file is on a refused address fail for good before.
	mail := smtpfake.Start(t, smtpfake.Options{NoTLS: true})
	broken := startSMTPProxy(t, mail.Addr(), &faults.Plan{Rate: 1, Kinds: []faults.Kind{faults.Reset}})
	d := startDaemon(t, append(base, smtpEnv(broken.addr())...))
	send := func(body string) int {
		req, _ := http.NewRequest("POST", d.url+"/webhook/request", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		code, _ := post(t, req)
		return code
	}
	for _, id := range []string{"r-1", "r-2"} {
		if code := send(`{"user_email":"` + id + `@example.com","objet":"Modèle 3D","fichiers":[{"url":"http://127.0.0.1:9/a.glb"}],"request_id":"` + id + `"}`); code != 422 {
			t.Fatalf("%s: %d, want 422", id, code)
		}
	}
	if code := send(`{"user_email":"q@example.com","objet":"Bonjour","request_id":"q-1"}`); code != 200 {
		t.Fatalf("q-1: %d, want 200 (incomplete)", code)
	}
	d.stop(t)

	// Then the mail server works: q-1 is due 200 ms later, and must be retried by itself.
	d = startDaemon(t, append(base, smtpEnv(mail.Addr())...))
	defer d.stop(t)
	waitDone(t, d.url, []string{"q-1"}, 30*time.Second)
}

// A notification sent again after its SMTP answer was lost must carry the same Message-ID, derived
// from the request's key (docs/threading.md): mail clients and the journal recognise the repeat,
// and a reply to either copy threads to the ticket.
func TestNotificationRepeatKeepsItsMessageID(t *testing.T) {
	// A seed whose first draw for this request's message is a lost answer and its second is not.
	const key = "mid-1"
	var plan *faults.Plan
	for seed := uint64(1); plan == nil; seed++ {
		p := &faults.Plan{Seed: seed, Rate: 0.5, Kinds: []faults.Kind{faults.Lost}}
		if p.Decide("SMTP", "DATA", []byte(key)).Kind == faults.Lost && !p.Decide("SMTP", "DATA", []byte(key)).Failed() {
			plan = &faults.Plan{Seed: seed, Rate: 0.5, Kinds: []faults.Kind{faults.Lost}}
		}
	}
	srv := smtpfake.Start(t, smtpfake.Options{NoTLS: true})
	proxy := startSMTPProxy(t, srv.Addr(), plan)
	d := startDaemon(t, append([]string{"FIGSUPPORT_DATA_DIR=" + filepath.Join(t.TempDir(), "data"),
		"FIGSUPPORT_RETRY_INTERVAL=200ms", "FIGSUPPORT_WEBHOOK_TOKEN=" + faultToken}, smtpEnv(proxy.addr())...))
	defer d.stop(t)
	req, _ := http.NewRequest("POST", d.url+"/webhook/request", strings.NewReader(`{"user_email":"m@example.com","objet":"Bonjour","request_id":"`+key+`"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+faultToken)
	if code, _ := post(t, req); code != 200 {
		t.Fatalf("status %d", code)
	}
	waitDone(t, d.url, []string{key}, 30*time.Second)
	sessions := srv.Sessions()
	if len(sessions) != 2 || proxy.Lost()[key] != 1 {
		t.Fatalf("%d messages stored, %d answers lost; want the lost one and its repeat", len(sessions), proxy.Lost()[key])
	}
	var ids []string
	for _, s := range sessions {
		m, err := mail.ReadMessage(strings.NewReader(s.Data))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.Header.Get("Message-Id"))
	}
	if ids[0] != ids[1] || !strings.HasSuffix(ids[0], "@figurative.fr>") {
		t.Errorf("Message-IDs %v, want one, at figsupport's domain", ids)
	}
}

// A first message whose ticket create happened but whose answer was lost, while HubSpot could not
// say whether it had (its associations failing), fails and waits for its retry. Its follow-up,
// sent meanwhile, cannot see that ticket (search lags writes, and nothing remembers it); it used to
// open a second one (issue 12: "a contact's unfinished runs must count when threading"). It now
// waits for the first message's retry, which finds its ticket, and then joins it.
func TestFollowUpSeesTheUnfinishedFirstMessagesTicket(t *testing.T) {
	var mu sync.Mutex
	lost, assocDown := false, true
	hs := hubspotfake.New(hubspotfake.Options{Clock: hubspotfake.NewRealClock(), SearchLag: time.Minute,
		Inject: func(_ int, method, path string) *hubspotfake.Fault {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case method == "POST" && path == "/crm/v3/objects/tickets" && !lost:
				lost = true
				return &hubspotfake.Fault{Apply: true, Drop: true}
			case lost && assocDown && strings.Contains(path, "/associations/"):
				return &hubspotfake.Fault{Status: 503}
			}
			return nil
		}})
	defer hs.Close()
	d := startDaemon(t, []string{"FIGSUPPORT_DATA_DIR=" + filepath.Join(t.TempDir(), "data"), "FIGSUPPORT_RETRY_INTERVAL=200ms",
		"FIGSUPPORT_RATE_PER_MINUTE=100000", "HUBSPOT_API_KEY=" + hs.Options().Token, "HUBSPOT_BASE_URL=" + hs.URL, "HUBSPOT_HUB_ID=1"})
	defer d.stop(t)
	at := time.Now().Add(-time.Hour).UTC()
	send := func(id, objet string, at time.Time) (int, map[string]any) {
		body := `{"user_email":"two@example.com","objet":"` + objet + `","request_id":"` + id + `","received_at":"` + at.Format(time.RFC3339) + `"}`
		req, _ := http.NewRequest("POST", d.url+"/webhook/request", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		return post(t, req)
	}
	if code, m := send("first", "Paiement refusé", at); code != 202 {
		t.Fatalf("first message: %d %v, want 202 (its create's outcome unknown)", code, m)
	}
	// The follow-up waits for the first message to settle the conversation's ticket.
	if code, m := send("second", "Toujours refusé", at.Add(time.Minute)); code != 202 {
		t.Fatalf("follow-up: %d %v, want 202 (waiting for the first message's ticket)", code, m)
	}
	mu.Lock()
	assocDown = false
	mu.Unlock()
	waitDone(t, d.url, []string{"first", "second"}, 30*time.Second)
	if n := len(hs.Objects("tickets")); n != 1 {
		t.Errorf("%d tickets for one conversation", n)
	}
}
