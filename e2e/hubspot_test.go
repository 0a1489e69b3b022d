package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/fakes/hubspotfake"
)

// runEnv runs the binary with extra environment (service credentials pointing at fakes).
func runEnv(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = ".."
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "NO_COLOR=1"}, env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

type processResp struct {
	Status      string `json:"status"`
	TicketID    string `json:"ticket_id"`
	TicketURL   string `json:"ticket_url"`
	IsNewTicket bool   `json:"is_new_ticket"`
	SubtaskID   string `json:"subtask_id"`
	Replayed    bool   `json:"replayed"`
}

func decode(t *testing.T, r result) processResp {
	t.Helper()
	if r.code != 0 {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", r.code, r.stdout, r.stderr)
	}
	var p processResp
	if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	return p
}

// process against a fake HubSpot portal behaves as on the embedded CRM: a ticket, the follow-up
// joining it seconds later while search still lags, a replay that calls nothing, close, a new ticket.
func TestProcessOnHubSpot(t *testing.T) {
	clock := hubspotfake.NewClock(time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))
	srv := hubspotfake.New(hubspotfake.Options{Clock: clock, SearchLag: time.Hour})
	defer srv.Close()
	env := []string{
		"FIGSUPPORT_DATA_DIR=" + filepath.Join(t.TempDir(), "data"),
		"HUBSPOT_API_KEY=" + srv.Options().Token, "HUBSPOT_BASE_URL=" + srv.URL, "HUBSPOT_HUB_ID=12345",
	}
	payload := func(text, at string) string {
		return `{"user_email":"Client@Example.com","user_name":"Jean Dupont","objet":"` + text + `","received_at":"` + at + `"}`
	}
	first := decode(t, runEnv(t, env, payload("Paiement refusé", "2026-01-05T09:00:00Z"), "process", "-o", "json", "-"))
	if !first.IsNewTicket || first.TicketURL != "https://app.hubspot.com/contacts/12345/record/0-5/"+first.TicketID {
		t.Fatalf("first = %+v", first)
	}
	clock.Advance(time.Second)
	second := decode(t, runEnv(t, env, payload("Toujours bloqué <script>", "2026-01-05T09:00:01Z"), "process", "-o", "json", "-"))
	if second.IsNewTicket || second.TicketID != first.TicketID || second.Status != "updated" {
		t.Fatalf("follow-up while search lags = %+v, want it on ticket %s", second, first.TicketID)
	}
	before := len(srv.Calls())
	again := decode(t, runEnv(t, env, payload("Toujours bloqué <script>", "2026-01-05T09:00:01Z"), "process", "-o", "json", "-"))
	if !again.Replayed || len(srv.Calls()) != before {
		t.Fatalf("replay = %+v with %d HubSpot calls, want replayed and none", again, len(srv.Calls())-before)
	}
	notes := srv.Objects("notes")
	if len(notes) != 1 || !strings.Contains(notes[0].Properties["hs_note_body"], "&lt;script&gt;") {
		t.Fatalf("notes = %+v, want one note with the text escaped", notes)
	}

	if r := runEnv(t, env, "", "ticket", "close", first.TicketID); r.code != 0 {
		t.Fatalf("close: %d %s", r.code, r.stderr)
	}
	third := decode(t, runEnv(t, env, payload("Nouvelle question", "2026-01-05T10:00:00Z"), "process", "-o", "json", "-"))
	if !third.IsNewTicket || third.TicketID == first.TicketID {
		t.Fatalf("after close = %+v, want a new ticket", third)
	}
	if n := len(srv.Objects("tickets")); n != 2 {
		t.Fatalf("%d tickets on the portal, want 2", n)
	}
	if n := len(srv.Objects("contacts")); n != 1 {
		t.Fatalf("%d contacts on the portal, want 1", n)
	}

	// A refused token is a credentials problem: exit 4, the token never printed.
	bad := append(env[:1:1], "HUBSPOT_API_KEY=pat-wrong-token", "HUBSPOT_BASE_URL="+srv.URL, "HUBSPOT_HUB_ID=12345")
	r := runEnv(t, bad, payload("x", "2026-01-05T11:00:00Z"), "process", "-")
	if r.code != 4 || strings.Contains(r.stderr, "pat-wrong-token") {
		t.Fatalf("bad token: exit %d, stderr %s", r.code, r.stderr)
	}
}
