package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/figurative/figsupport/internal/fakes/graphfake"
	"github.com/figurative/figsupport/internal/fakes/graphmailfake"
	"github.com/figurative/figsupport/internal/mailbox"
	"github.com/figurative/figsupport/internal/testsrv/imaptest"
)

func customerMail(id, subject string) []byte {
	return []byte(strings.ReplaceAll(fmt.Sprintf(`From: Client <client@example.com>
To: support@figurative.fr
Subject: %s
Date: Mon, 05 Jan 2026 09:00:00 +0100
Message-ID: <%s>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Bonjour, mon paiement est refusé.
`, subject, id), "\n", "\r\n"))
}

// mailEnv points mail poll at an in-memory IMAP server on loopback (cleartext: the command line
// has no way to trust a test CA, and loopback is where MAIL_IMAP_TLS=none is allowed).
func mailEnv(t *testing.T, srv *imaptest.Server) map[string]string {
	return map[string]string{
		"FIGSUPPORT_DATA_DIR": t.TempDir(),
		"MAIL_SOURCE":         "imap", "MAIL_IMAP_HOST": srv.Host, "MAIL_IMAP_PORT": strconv.Itoa(srv.Port),
		"MAIL_IMAP_TLS": "none", "MAIL_IMAP_USER": srv.User, "MAIL_IMAP_PASSWORD": srv.Password,
	}
}

func runMail(t *testing.T, env map[string]string, args ...string) (int, *mailbox.Summary, string) {
	t.Helper()
	g, out, errb := newTestGlobals(t, env)
	code := Run(context.Background(), g, append([]string{"mail", "poll", "-o", "json"}, args...))
	var sum mailbox.Summary
	if out.Len() > 0 {
		if err := json.Unmarshal(out.Bytes(), &sum); err != nil {
			t.Fatalf("stdout is not the summary: %v\n%s", err, out)
		}
	}
	return code, &sum, errb.String()
}

func TestMailPoll(t *testing.T) {
	srv := imaptest.Start(t, imaptest.Options{Cleartext: true})
	admin := srv.Admin(t)
	env := mailEnv(t, srv)
	admin.Append("INBOX", customerMail("first@example.com", "Paiement refusé"))
	admin.Append("INBOX", customerMail("second@example.com", "Toujours refusé"))
	admin.Append("INBOX", []byte("garbage without any header\r\n"))

	t.Run("dry run changes nothing", func(t *testing.T) {
		code, sum, errs := runMail(t, env, "--dry-run")
		if code != ExitOK || !sum.DryRun || sum.Pending != 3 {
			t.Fatalf("exit %d, %+v, %s", code, sum, errs)
		}
		if _, err := os.Stat(filepath.Join(env["FIGSUPPORT_DATA_DIR"], "figsupport.db")); !os.IsNotExist(err) {
			t.Fatalf("the dry run opened the journal: %v", err)
		}
		inbox, _ := admin.Messages("INBOX")
		for _, m := range inbox {
			if len(m.Flags) != 0 {
				t.Fatalf("%s flags %v after a dry run", m.MessageID, m.Flags)
			}
		}
	})

	t.Run("one pass", func(t *testing.T) {
		code, sum, errs := runMail(t, env)
		if code != ExitOK || sum.Processed != 2 || sum.Rejected != 1 || sum.Failed != 0 {
			t.Fatalf("exit %d, %+v, %s", code, sum, errs)
		}
		first, second := sum.Messages[0], sum.Messages[1]
		if first.RequestID != "first@example.com" || first.TicketID == "" || first.Action != "seen" || second.TicketID != first.TicketID {
			t.Fatalf("messages %+v", sum.Messages)
		}
		if r := sum.Messages[2]; r.Status != mailbox.StatusRejected || r.Action != "flagged" || r.Error == "" {
			t.Fatalf("rejected %+v", r)
		}
		inbox, _ := admin.Messages("INBOX")
		for _, m := range inbox {
			if !m.Has(imap.FlagSeen) {
				t.Fatalf("%s not seen", m.MessageID)
			}
		}
		// The spool of done requests is gone.
		if left, _ := os.ReadDir(filepath.Join(env["FIGSUPPORT_DATA_DIR"], "spool")); len(left) != 0 {
			t.Fatalf("spool left: %v", left)
		}
	})

	t.Run("again: nothing to do", func(t *testing.T) {
		code, sum, errs := runMail(t, env)
		if code != ExitOK || len(sum.Messages) != 0 {
			t.Fatalf("exit %d, %+v, %s", code, sum, errs)
		}
	})

	t.Run("a message process --eml took first is replayed", func(t *testing.T) {
		raw := customerMail("third@example.com", "Par un autre chemin")
		g, _, errb := newTestGlobals(t, env)
		g.In = bytes.NewReader(raw)
		if code := Run(context.Background(), g, []string{"process", "--eml", "-", "-o", "json"}); code != ExitOK {
			t.Fatalf("process --eml: exit %d %s", code, errb)
		}
		admin.Append("INBOX", raw)
		code, sum, errs := runMail(t, env)
		if code != ExitOK || sum.Processed != 1 || !sum.Messages[0].Replayed {
			t.Fatalf("exit %d, %+v, %s", code, sum, errs)
		}
	})
}

func TestMailPollText(t *testing.T) {
	srv := imaptest.Start(t, imaptest.Options{Cleartext: true})
	srv.Admin(t).Append("INBOX", customerMail("t@example.com", "Facture"))
	g, out, errb := newTestGlobals(t, mailEnv(t, srv))
	if code := Run(context.Background(), g, []string{"mail", "poll"}); code != ExitOK {
		t.Fatalf("exit %d: %s", code, errb)
	}
	if !strings.Contains(out.String(), "imap support@figurative.fr@127.0.0.1/INBOX: 1 processed, 0 skipped, 0 rejected, 0 failed") ||
		!strings.Contains(out.String(), "Facture") || !strings.Contains(errb.String(), "backends:") {
		t.Fatalf("stdout:\n%s\nstderr:\n%s", out, errb)
	}
}

func TestMailPollExitCodes(t *testing.T) {
	srv := imaptest.Start(t, imaptest.Options{Cleartext: true})
	tests := []struct {
		name   string
		env    func(map[string]string)
		args   []string
		want   int
		stderr string
	}{
		{"no mailbox configured", func(e map[string]string) { delete(e, "MAIL_SOURCE") }, nil, ExitConfig, "MAIL_SOURCE"},
		{"password refused", func(e map[string]string) { e["MAIL_IMAP_PASSWORD"] = "nope-SECRET" }, nil, ExitConfig, "refused LOGIN"},
		{"cleartext to a remote host", func(e map[string]string) { e["MAIL_IMAP_HOST"] = "imap.example.com" }, nil, ExitConfig, "MAIL_IMAP_TLS"},
		{"missing folder", func(e map[string]string) { e["MAIL_FOLDER"] = "Absent" }, nil, ExitConfig, "MAIL_FOLDER"},
		{"bad limit", nil, []string{"--limit", "-1"}, ExitUsage, "--limit"},
		{"unknown source", func(e map[string]string) { e["MAIL_SOURCE"] = "pop3" }, nil, ExitConfig, "MAIL_SOURCE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := mailEnv(t, srv)
			if tt.env != nil {
				tt.env(env)
			}
			g, out, _ := newTestGlobals(t, env)
			code := Run(context.Background(), g, append([]string{"mail", "poll", "-o", "json"}, tt.args...))
			// A failed pass prints only its error: with -o json, one object on stdout.
			var e struct {
				Error    string `json:"error"`
				ExitCode int    `json:"exit_code"`
			}
			if err := json.Unmarshal(out.Bytes(), &e); err != nil {
				t.Fatalf("stdout %q is not one JSON error: %v", out, err)
			}
			if code != tt.want || e.ExitCode != tt.want || !strings.Contains(e.Error, tt.stderr) || strings.Contains(out.String(), "nope-SECRET") {
				t.Fatalf("exit %d (want %d), %s", code, tt.want, out)
			}
		})
	}
}

// A message that fails stays unread and the command exits 1; the next pass takes it again.
func TestMailPollFailureExit1(t *testing.T) {
	srv := imaptest.Start(t, imaptest.Options{Cleartext: true})
	admin := srv.Admin(t)
	admin.Append("INBOX", customerMail("f@example.com", "Paiement"))
	env := mailEnv(t, srv)
	// A CRM that answers 400 to everything: the chain fails at the contact step.
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		w.Write([]byte(`{"status":"error","message":"broken on purpose","category":"VALIDATION_ERROR"}`))
	}))
	t.Cleanup(broken.Close)
	env["HUBSPOT_API_KEY"], env["HUBSPOT_HUB_ID"], env["HUBSPOT_BASE_URL"] = "pat-na1-test", "1", broken.URL
	code, sum, errs := runMail(t, env)
	if code != ExitFailed || sum.Failed != 1 || sum.Messages[0].Error == "" || sum.Messages[0].Action != "" {
		t.Fatalf("exit %d, %+v, %s", code, sum, errs)
	}
	inbox, _ := admin.Messages("INBOX")
	if len(inbox) != 1 || inbox[0].Has(imap.FlagSeen) {
		t.Fatalf("inbox %+v", inbox)
	}
	// The CRM is back (the embedded one): the next pass resumes the request.
	delete(env, "HUBSPOT_API_KEY")
	code, sum, errs = runMail(t, env)
	if code != ExitOK || sum.Processed != 1 || sum.Messages[0].Attempts != 2 {
		t.Fatalf("next pass: exit %d, %+v, %s", code, sum, errs)
	}
}

func TestMailPollGraph(t *testing.T) {
	f := graphmailfake.New(t, "support@figurative.fr", "Traités")
	f.Add("inbox", customerMail("g@example.com", "Par Graph"), time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))
	env := map[string]string{
		"FIGSUPPORT_DATA_DIR": t.TempDir(),
		"MAIL_SOURCE":         "graph", "MAIL_GRAPH_MAILBOX": "support@figurative.fr", "MAIL_PROCESSED_FOLDER": "Traités",
		"GRAPH_BASE_URL": f.URL, "OAUTH_TOKEN_URL": f.Tokens.TokenURL(),
		"OAUTH_CLIENT_ID": graphfake.ClientID, "OAUTH_CLIENT_SECRET": graphfake.ClientSecret,
	}
	code, sum, errs := runMail(t, env)
	if code != ExitOK || sum.Processed != 1 || sum.Messages[0].Action != "moved to Traités" || len(f.Messages("Traités")) != 1 {
		t.Fatalf("exit %d, %+v, %s", code, sum, errs)
	}
	env["OAUTH_CLIENT_SECRET"] = "wrong-SECRET"
	g, out, _ := newTestGlobals(t, env)
	if code := Run(context.Background(), g, []string{"mail", "poll", "-o", "json"}); code != ExitConfig ||
		strings.Contains(out.String(), "wrong-SECRET") || !strings.Contains(out.String(), "AADSTS7000215") {
		t.Fatalf("wrong secret: exit %d, %s", code, out)
	}
}

func TestDoctorChecksTheMailbox(t *testing.T) {
	srv := imaptest.Start(t, imaptest.Options{Cleartext: true})
	env := mailEnv(t, srv)
	env["MAIL_PROCESSED_FOLDER"] = "Absent"
	g, out, _ := newTestGlobals(t, env)
	code := Run(context.Background(), g, []string{"doctor", "--dry-run", "-o", "json"})
	var rep struct {
		Checks []struct{ Service, Name, Status, Detail string } `json:"checks"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range rep.Checks {
		if c.Service == "mailbox" {
			got[c.Name] = c.Status
		}
	}
	if code != ExitConfig || got["imap login"] != "ok" || got["folder INBOX"] != "ok" || got["folder Absent (MAIL_PROCESSED_FOLDER)"] != "fail" {
		t.Fatalf("exit %d, mailbox checks %v", code, got)
	}
}
