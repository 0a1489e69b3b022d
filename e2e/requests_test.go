package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/figurative/figsupport/internal/fakes/smtpfake"
)

// A request whose notification is refused ends incomplete (exit 1), waits in the journal, and
// `requests retry --failed` finishes it without redoing what was done; a file URL pointing at this
// machine fails the request for good (the fetcher refuses loopback: exit 2, the input is at fault,
// no advice to retry) and stays failed.
func TestRequestsRetry(t *testing.T) {
	mail := smtpfake.Start(t, smtpfake.Options{Mechs: []string{"LOGIN"}, User: "support@figurative.fr", Pass: "pw", RejectRcpt: "gone@figurative.fr"})
	host, port, _ := strings.Cut(mail.Addr(), ":")
	base := []string{
		"FIGSUPPORT_DATA_DIR=" + filepath.Join(t.TempDir(), "data"), "SSL_CERT_FILE=" + mail.CAFile(t),
		"SMTP_HOST=" + host, "SMTP_PORT=" + port, "SMTP_USER=support@figurative.fr", "SMTP_PASSWORD=pw",
	}
	bad := append(base, "NOTIFICATION_EMAIL=gone@figurative.fr")
	good := append(base, "NOTIFICATION_EMAIL=admin@figurative.fr")

	r := runEnv(t, bad, "", "process", "-o", "json", "testdata/payloads/support.json")
	if r.code != 1 || !strings.Contains(r.stdout, `"status": "incomplete"`) {
		t.Fatalf("process with a refused admin address: exit %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	loop := `{"user_email":"x@example.com","objet":"Modèle 3D","fichiers":[{"url":"http://127.0.0.1:9/a.glb"}],"request_id":"loop-1"}`
	if r := runEnv(t, good, loop, "process", "-"); r.code != 2 || strings.Contains(r.stderr, "requests retry") || !strings.Contains(r.stderr, "not allowed") {
		t.Fatalf("loopback file URL: exit %d, stderr %s", r.code, r.stderr)
	}

	var list struct {
		Requests []struct {
			RequestID string `json:"request_id"`
			Status    string `json:"status"`
			TicketID  string `json:"ticket_id"`
			LastError string `json:"last_error"`
		} `json:"requests"`
	}
	r = runEnv(t, good, "", "requests", "list", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || len(list.Requests) != 2 {
		t.Fatalf("list: %v\n%s", err, r.stdout)
	}
	if l := list.Requests[0]; l.RequestID != "loop-1" || l.Status != "failed" || !strings.Contains(l.LastError, "not allowed") {
		t.Errorf("loop-1 = %+v", l)
	}
	if l := list.Requests[1]; l.Status != "incomplete" || l.TicketID != "1" || !strings.Contains(l.LastError, "550") {
		t.Errorf("support request = %+v", l)
	}

	r = runEnv(t, good, "", "requests", "retry", "--failed", "-o", "json")
	var retried struct {
		Retried []struct {
			Request  string `json:"request_id"`
			Error    string `json:"error"`
			Response *struct {
				Status   string `json:"status"`
				TicketID string `json:"ticket_id"`
			} `json:"response"`
		} `json:"retried"`
		Failed int `json:"failed"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &retried); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if r.code != 1 || retried.Failed != 1 || len(retried.Retried) != 2 {
		t.Fatalf("retry --failed: exit %d %+v", r.code, retried)
	}
	for _, x := range retried.Retried {
		switch x.Request {
		case "loop-1":
			if x.Error == "" {
				t.Errorf("loop-1 retried without error")
			}
		default:
			if x.Response == nil || x.Response.Status != "created" || x.Response.TicketID != "1" {
				t.Errorf("support request after retry = %+v", x)
			}
		}
	}
	if s := mail.Sessions(); len(s) != 1 || s[0].To[0] != "admin@figurative.fr" {
		t.Fatalf("mail sessions = %+v, want the one notification to the new address", s)
	}
	// Once done, retrying it again answers from the journal and sends nothing.
	r = runEnv(t, good, "", "requests", "retry", list.Requests[1].RequestID)
	if r.code != 0 || len(mail.Sessions()) != 1 {
		t.Fatalf("retry of a done request: exit %d, %d mails\n%s", r.code, len(mail.Sessions()), r.stderr)
	}
	if r := runEnv(t, good, "", "requests", "show", "nope"); r.code != 2 {
		t.Errorf("show unknown: exit %d, want 2", r.code)
	}
	if r := runEnv(t, good, "", "requests", "show", "loop-1"); r.code != 0 || !strings.Contains(r.stdout, "failed after 2 attempt(s)") {
		t.Errorf("show loop-1: exit %d\n%s", r.code, r.stdout)
	}
}
