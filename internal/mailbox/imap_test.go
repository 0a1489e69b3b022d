package mailbox_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/figurative/figsupport/internal/fakes/graphfake"
	"github.com/figurative/figsupport/internal/health"
	"github.com/figurative/figsupport/internal/mailbox"
	"github.com/figurative/figsupport/internal/oauth"
	"github.com/figurative/figsupport/internal/testsrv/imaptest"
)

func imapConfig(s *imaptest.Server) mailbox.Config {
	tlsMode := mailbox.TLSStartTLS
	if s.Implicit {
		tlsMode = mailbox.TLSImplicit
	}
	return mailbox.Config{
		Source: mailbox.SourceIMAP,
		IMAP: mailbox.IMAPConfig{Host: s.Host, Port: s.Port, TLS: tlsMode, User: s.User, Password: s.Password,
			TLSConfig: s.Cert.Client},
	}
}

func newPoller(t *testing.T, cfg mailbox.Config) *mailbox.Poller {
	t.Helper()
	p, err := mailbox.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Messages are handed over once, oldest first, then marked as configured; a second pass finds
// nothing to do.
func TestIMAPPoll(t *testing.T) {
	rev1 := imap.CapSet{imap.CapIMAP4rev1: {}}
	rev1UIDPlus := imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}}
	tests := []struct {
		name      string
		opts      imaptest.Options
		processed string
		// wantInbox: what stays in INBOX of the three handled messages; wantMoved: how many reach
		// the processed folder.
		wantInbox func(t *testing.T, m imaptest.Msg)
		wantMoved int
		action    string
	}{
		{name: "starttls, flagged seen", opts: imaptest.Options{}, action: "seen",
			wantInbox: func(t *testing.T, m imaptest.Msg) {
				if !m.Has(imap.FlagSeen) || m.Has(imap.FlagDeleted) {
					t.Errorf("%s flags %v, want \\Seen", m.MessageID, m.Flags)
				}
			}},
		{name: "implicit tls, moved (MOVE)", opts: imaptest.Options{Implicit: true, Folders: []string{"Traités"}},
			processed: "Traités", wantMoved: 3, action: "moved to Traités"},
		{name: "IMAP4rev1 with UIDPLUS: copy and UID EXPUNGE", opts: imaptest.Options{Caps: rev1UIDPlus, Folders: []string{"Traités"}},
			processed: "Traités", wantMoved: 3, action: "moved to Traités"},
		{name: "IMAP4rev1 alone: copy, left seen and deleted", opts: imaptest.Options{Caps: rev1, Folders: []string{"Traités"}},
			processed: "Traités", wantMoved: 3, action: "moved to Traités",
			wantInbox: func(t *testing.T, m imaptest.Msg) {
				if !m.Has(imap.FlagSeen) || !m.Has(imap.FlagDeleted) {
					t.Errorf("%s flags %v, want \\Seen \\Deleted (no UIDPLUS: no expunge)", m.MessageID, m.Flags)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := imaptest.Start(t, tt.opts)
			admin := srv.Admin(t)
			admin.Append("INBOX", raw("read@example.com", "Déjà lu"), imap.FlagSeen)
			for _, id := range []string{"a@example.com", "b@example.com", "c@example.com"} {
				admin.Append("INBOX", raw(id, "Demande "+id))
			}
			cfg := imapConfig(srv)
			cfg.ProcessedFolder = tt.processed
			p := newPoller(t, cfg)
			j := newJournal()
			sum := poll(t, p, j, mailbox.PassOptions{})
			if got := strings.Join(j.Calls(), ","); got != "a@example.com,b@example.com,c@example.com" {
				t.Fatalf("handed over %s, want a, b, c in UID order", got)
			}
			if sum.Processed != 3 || sum.Failed != 0 || sum.More || len(sum.Messages) != 3 {
				t.Fatalf("summary %+v", sum)
			}
			for _, m := range sum.Messages {
				if m.Action != tt.action || m.RequestID == "" || m.Replayed || m.Attempts != 1 || m.Size == 0 || m.From != "client@example.com" {
					t.Errorf("message %+v", m)
				}
			}
			inbox, _ := admin.Messages("INBOX")
			for _, m := range inbox {
				if m.MessageID == "read@example.com" {
					continue
				}
				if tt.wantInbox == nil {
					t.Errorf("%s still in INBOX (flags %v)", m.MessageID, m.Flags)
					continue
				}
				tt.wantInbox(t, m)
			}
			if tt.processed != "" {
				moved, _ := admin.Messages(tt.processed)
				if len(moved) != tt.wantMoved {
					t.Fatalf("%d message(s) in %s, want %d", len(moved), tt.processed, tt.wantMoved)
				}
			}
			again := poll(t, p, j, mailbox.PassOptions{})
			if len(again.Messages) != 0 || len(j.Calls()) != 3 {
				t.Fatalf("second pass %+v, calls %v: want nothing", again, j.Calls())
			}
		})
	}
}

// A failure leaves the message unread and the next pass hands it over again; a crash between
// processing and marking makes the next pass replay it, not process it twice.
func TestIMAPFailureAndCrash(t *testing.T) {
	srv := imaptest.Start(t, imaptest.Options{})
	admin := srv.Admin(t)
	admin.Append("INBOX", raw("fail@example.com", "Échoue une fois"))
	admin.Append("INBOX", raw("crash@example.com", "Plante avant le marquage"))
	p := newPoller(t, imapConfig(srv))
	j := newJournal()
	j.fail["fail@example.com"] = 1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	j.after = func(key string) {
		if key == "crash@example.com" {
			cancel() // the process dies after the chain's work, before the \Seen
		}
	}
	sum, err := p.Poll(ctx, j.handle, mailbox.PassOptions{})
	if err == nil {
		t.Fatal("the cancelled pass returned no error")
	}
	if sum.Failed != 2 || sum.Processed != 0 {
		t.Fatalf("first pass: %s (%+v)", statuses(sum), sum)
	}
	inbox, _ := admin.Messages("INBOX")
	for _, m := range inbox {
		if m.Has(imap.FlagSeen) {
			t.Fatalf("%s marked seen after a failure", m.MessageID)
		}
	}
	j.after = nil
	sum = poll(t, p, j, mailbox.PassOptions{})
	if sum.Processed != 2 || sum.Failed != 0 {
		t.Fatalf("second pass: %s", statuses(sum))
	}
	byID := map[string]mailbox.Message{}
	for _, m := range sum.Messages {
		byID[strings.Trim(m.MessageID, "<>")] = m
	}
	if m := byID["crash@example.com"]; !m.Replayed || m.Attempts != 2 || m.Action != "seen" {
		t.Fatalf("crashed message on the next pass: %+v (want a replay, marked)", m)
	}
	if m := byID["fail@example.com"]; m.Replayed || m.Attempts != 2 {
		t.Fatalf("failed message on the next pass: %+v", m)
	}
	for _, key := range []string{"fail@example.com", "crash@example.com"} {
		if n := j.Runs(key); n != 1 {
			t.Fatalf("%s processed %d times, want once", key, n)
		}
	}
	inbox, _ = admin.Messages("INBOX")
	for _, m := range inbox {
		if !m.Has(imap.FlagSeen) {
			t.Fatalf("%s left unseen", m.MessageID)
		}
	}
	if again := poll(t, p, j, mailbox.PassOptions{}); len(again.Messages) != 0 {
		t.Fatalf("third pass: %s", statuses(again))
	}
}

// A rejected message is set aside for good: flagged for a person, or moved to its folder.
func TestIMAPRejectedAndSkipped(t *testing.T) {
	for _, folder := range []string{"", "Rejetés"} {
		t.Run("rejected folder "+folder, func(t *testing.T) {
			srv := imaptest.Start(t, imaptest.Options{Folders: []string{"Rejetés"}})
			admin := srv.Admin(t)
			admin.Append("INBOX", raw("bad@example.com", "Illisible"))
			admin.Append("INBOX", raw("auto@example.com", "Réponse automatique"))
			admin.Append("INBOX", []byte("not a message at all"))
			cfg := imapConfig(srv)
			cfg.RejectedFolder = folder
			p := newPoller(t, cfg)
			j := newJournal()
			j.reject["bad@example.com"] = true
			j.skip["auto@example.com"] = true
			sum := poll(t, p, j, mailbox.PassOptions{})
			if sum.Rejected != 2 || sum.Skipped != 1 || sum.Failed != 0 {
				t.Fatalf("summary: %s", statuses(sum))
			}
			wantAction := "flagged"
			if folder != "" {
				wantAction = "moved to " + folder
			}
			for _, m := range sum.Messages {
				if m.Status == mailbox.StatusRejected && (m.Action != wantAction || m.Error == "") {
					t.Fatalf("rejected message %+v", m)
				}
				if m.Status == mailbox.StatusSkipped && m.Action != "seen" {
					t.Fatalf("skipped message %+v", m)
				}
			}
			inbox, _ := admin.Messages("INBOX")
			flagged := 0
			for _, m := range inbox {
				if !m.Has(imap.FlagSeen) {
					t.Fatalf("%s left unseen", m.MessageID)
				}
				if m.Has(imap.FlagFlagged) {
					flagged++
				}
			}
			rejected, _ := admin.Messages("Rejetés")
			if folder == "" && (flagged != 2 || len(rejected) != 0) || folder != "" && (flagged != 0 || len(rejected) != 2) {
				t.Fatalf("flagged %d in INBOX, %d in Rejetés", flagged, len(rejected))
			}
			if again := poll(t, p, j, mailbox.PassOptions{}); len(again.Messages) != 0 {
				t.Fatalf("rejected messages came back: %s", statuses(again))
			}
		})
	}
}

// A pass is bounded; messages that failed go after the new ones, so they cannot hold the queue.
func TestIMAPLimitPutsFailuresLast(t *testing.T) {
	srv := imaptest.Start(t, imaptest.Options{})
	admin := srv.Admin(t)
	for _, id := range []string{"m1", "m2", "m3", "m4", "m5"} {
		admin.Append("INBOX", raw(id+"@example.com", id))
	}
	p := newPoller(t, imapConfig(srv))
	j := newJournal()
	j.fail["m1@example.com"] = 99 // fails on every pass
	j.fail["m2@example.com"] = 99
	var passes []string
	for range 4 {
		sum := poll(t, p, j, mailbox.PassOptions{Limit: 2})
		passes = append(passes, statuses(sum))
	}
	want := []string{
		"m1@example.com=failed m2@example.com=failed",
		"m3@example.com=processed m4@example.com=processed",
		"m5@example.com=processed m1@example.com=failed",
		"m1@example.com=failed m2@example.com=failed",
	}
	if !slices.Equal(passes, want) {
		t.Fatalf("passes:\n%s\nwant:\n%s", strings.Join(passes, "\n"), strings.Join(want, "\n"))
	}
}

// When the folder is renumbered (UIDVALIDITY changes), what was remembered about its UIDs is
// dropped: a new message that got an old failed UID is not treated as a retry, and the messages
// processed before are replayed, not processed again.
func TestIMAPUIDValidityChange(t *testing.T) {
	srv := imaptest.Start(t, imaptest.Options{Folders: []string{"Support"}})
	admin := srv.Admin(t)
	admin.Append("Support", raw("old1@example.com", "old1"))
	admin.Append("Support", raw("old2@example.com", "old2"))
	cfg := imapConfig(srv)
	cfg.Folder = "Support"
	state := mailbox.NewMemoryState()
	cfg.State = state
	p := newPoller(t, cfg)
	j := newJournal()
	j.fail["old1@example.com"] = 1
	first := poll(t, p, j, mailbox.PassOptions{Limit: 1})
	if first.GenerationChanged || statuses(first) != "old1@example.com=failed" {
		t.Fatalf("first pass: %s %+v", statuses(first), first)
	}
	// The folder is recreated: the same UIDs now name other messages.
	admin.Delete("Support")
	admin.Create("Support")
	admin.Append("Support", raw("new@example.com", "new"))               // UID 1, like old1
	admin.Append("Support", raw("old2@example.com", "old2 redelivered")) // processed? not yet
	admin.Append("Support", raw("old1@example.com", "old1 redelivered"))
	second := poll(t, p, j, mailbox.PassOptions{Limit: 2})
	if !second.GenerationChanged || second.Generation == first.Generation {
		t.Fatalf("generation %s → %s, changed %v", first.Generation, second.Generation, second.GenerationChanged)
	}
	// UID 1 is new: first in line, first attempt (had the old UID 1's failure been kept, new@ would
	// have gone last).
	if got := statuses(second); got != "new@example.com=processed old2@example.com=processed" || second.Messages[0].Attempts != 1 {
		t.Fatalf("second pass: %s (%+v)", got, second.Messages)
	}
	third := poll(t, p, j, mailbox.PassOptions{})
	if got := statuses(third); got != "old1@example.com=processed" {
		t.Fatalf("third pass: %s", got)
	}
	for _, key := range []string{"new@example.com", "old1@example.com", "old2@example.com"} {
		if n := j.Runs(key); n != 1 {
			t.Fatalf("%s processed %d times", key, n)
		}
	}
	f, _ := state.Load("imap:" + p.Name())
	if f.Generation != second.Generation || len(f.Failed) != 0 {
		t.Fatalf("state %+v", f)
	}
}

// --dry-run examines the folder: it lists what would be handed over and changes nothing.
func TestIMAPDryRun(t *testing.T) {
	srv := imaptest.Start(t, imaptest.Options{Folders: []string{"Traités"}})
	admin := srv.Admin(t)
	admin.Append("INBOX", raw("a@example.com", "Première"))
	admin.Append("INBOX", raw("b@example.com", "Seconde"))
	cfg := imapConfig(srv)
	cfg.ProcessedFolder = "Traités"
	p := newPoller(t, cfg)
	sum, err := p.Poll(context.Background(), nil, mailbox.PassOptions{DryRun: true, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	if !sum.DryRun || sum.Pending != 1 || !sum.More || sum.Messages[0].Subject != "Première" || sum.Messages[0].Status != mailbox.StatusPending {
		t.Fatalf("dry run: %+v", sum)
	}
	inbox, _ := admin.Messages("INBOX")
	for _, m := range inbox {
		if len(m.Flags) != 0 {
			t.Fatalf("%s flags %v after a dry run", m.MessageID, m.Flags)
		}
	}
}

func TestIMAPXOAuth2(t *testing.T) {
	tokens := graphfake.New(t)
	srv := imaptest.Start(t, imaptest.Options{Implicit: true, Token: func(tok string) bool { return tokens.Scope(tok) == oauth.ScopeOutlook }})
	srv.Admin(t).Append("INBOX", raw("a@example.com", "XOAUTH2"))
	cfg := imapConfig(srv)
	cfg.IMAP.Auth, cfg.IMAP.Password = mailbox.AuthXOAuth2, ""
	cfg.OAuth = oauth.Config{ClientID: graphfake.ClientID, ClientSecret: graphfake.ClientSecret, TokenURL: tokens.TokenURL()}

	t.Run("accepted", func(t *testing.T) {
		sum := poll(t, newPoller(t, cfg), newJournal(), mailbox.PassOptions{})
		if sum.Processed != 1 {
			t.Fatalf("summary %s", statuses(sum))
		}
		got := srv.XOAuth2()
		if len(got) != 1 || !strings.HasPrefix(got[0], "user="+srv.User+"\x01auth=Bearer ey") || !strings.HasSuffix(got[0], "\x01\x01") {
			t.Fatalf("SASL initial responses %q", got)
		}
	})
	tests := []struct {
		name   string
		mutate func(*mailbox.Config)
		check  func(error) bool
	}{
		{"token refused by the server", func(c *mailbox.Config) { c.IMAP.User = "other@figurative.fr" },
			func(err error) bool { var ae *mailbox.AuthError; return errors.As(err, &ae) && ae.Mech == "XOAUTH2" }},
		{"wrong client secret", func(c *mailbox.Config) { c.OAuth.ClientSecret = "wrong-SECRET" },
			func(err error) bool {
				var oe *oauth.Error
				return errors.As(err, &oe) && strings.Contains(err.Error(), "AADSTS7000215") && !strings.Contains(err.Error(), "wrong-SECRET")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := cfg
			tt.mutate(&c)
			_, err := newPoller(t, c).Poll(context.Background(), newJournal().handle, mailbox.PassOptions{})
			var ce interface{ Credentials() bool }
			if !tt.check(err) || !errors.As(err, &ce) || !ce.Credentials() {
				t.Fatalf("err = %v, want a credentials error", err)
			}
		})
	}
}

func TestIMAPConnectErrors(t *testing.T) {
	srv := imaptest.Start(t, imaptest.Options{})
	t.Run("wrong password", func(t *testing.T) {
		cfg := imapConfig(srv)
		cfg.IMAP.Password = "nope-PASSWORD"
		_, err := newPoller(t, cfg).Poll(context.Background(), newJournal().handle, mailbox.PassOptions{})
		var ae *mailbox.AuthError
		if !errors.As(err, &ae) || !ae.Credentials() || strings.Contains(err.Error(), "nope-PASSWORD") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("missing folder", func(t *testing.T) {
		cfg := imapConfig(srv)
		cfg.Folder = "Nulle part"
		_, err := newPoller(t, cfg).Poll(context.Background(), newJournal().handle, mailbox.PassOptions{})
		if !errors.Is(err, mailbox.ErrFolder) || !strings.Contains(err.Error(), "MAIL_FOLDER") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		cfg := imapConfig(srv)
		cfg.IMAP.TLSConfig = nil // the system roots do not know the test CA
		_, err := newPoller(t, cfg).Poll(context.Background(), newJournal().handle, mailbox.PassOptions{})
		if err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("cleartext on loopback", func(t *testing.T) {
		clear := imaptest.Start(t, imaptest.Options{Cleartext: true})
		cfg := imapConfig(clear)
		cfg.IMAP.TLS = mailbox.TLSNone
		if sum := poll(t, newPoller(t, cfg), newJournal(), mailbox.PassOptions{}); sum.Failed != 0 {
			t.Fatalf("summary %+v", sum)
		}
	})
}

func TestNewRefusesBadConfig(t *testing.T) {
	base := mailbox.Config{Source: "imap", IMAP: mailbox.IMAPConfig{Host: "imap.example.com", User: "u", Password: "p"}}
	tests := []struct {
		name   string
		mutate func(*mailbox.Config)
		want   string
	}{
		{"no source", func(c *mailbox.Config) { c.Source = "" }, "MAIL_SOURCE"},
		{"unknown source", func(c *mailbox.Config) { c.Source = "pop3" }, "MAIL_SOURCE"},
		{"cleartext to a remote host", func(c *mailbox.Config) { c.IMAP.TLS = "none" }, "MAIL_IMAP_TLS"},
		{"no password", func(c *mailbox.Config) { c.IMAP.Password = "" }, "MAIL_IMAP_PASSWORD"},
		{"no host", func(c *mailbox.Config) { c.IMAP.Host = "" }, "MAIL_IMAP_HOST"},
		{"unknown auth", func(c *mailbox.Config) { c.IMAP.Auth = "cram-md5" }, "MAIL_IMAP_AUTH"},
		{"xoauth2 without a client", func(c *mailbox.Config) { c.IMAP.Auth = "xoauth2" }, "OAUTH_CLIENT_ID"},
		{"processed folder is the folder", func(c *mailbox.Config) { c.ProcessedFolder = "inbox" }, "MAIL_PROCESSED_FOLDER"},
		{"graph without a mailbox", func(c *mailbox.Config) { c.Source = "graph" }, "MAIL_GRAPH_MAILBOX"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			tt.mutate(&c)
			_, err := mailbox.New(c)
			var ce *mailbox.ConfigError
			if !errors.As(err, &ce) || ce.Key != tt.want {
				t.Fatalf("err = %v, want a configuration error naming %s", err, tt.want)
			}
		})
	}
}

func TestIMAPCheck(t *testing.T) {
	srv := imaptest.Start(t, imaptest.Options{Caps: imap.CapSet{imap.CapIMAP4rev1: {}}, Folders: []string{"Traités"}})
	srv.Admin(t).Append("INBOX", raw("a@example.com", "Bonjour"))
	cfg := imapConfig(srv)
	cfg.ProcessedFolder, cfg.RejectedFolder = "Traités", "Absent"
	checks := newPoller(t, cfg).Check(context.Background())
	got := map[string]health.Check{}
	for _, c := range checks {
		got[c.Name] = c
	}
	if c := got["imap login"]; c.Status != health.OK || !strings.Contains(c.Detail, "STARTTLS") {
		t.Errorf("login %+v", c)
	}
	if c := got["folder INBOX"]; c.Status != health.OK || !strings.Contains(c.Detail, "1 unread") {
		t.Errorf("folder %+v", c)
	}
	if c := got["folder Traités (MAIL_PROCESSED_FOLDER)"]; c.Status != health.Warn || !strings.Contains(c.Detail, "neither MOVE nor UIDPLUS") {
		t.Errorf("processed %+v", c)
	}
	if c := got["folder Absent (MAIL_REJECTED_FOLDER)"]; c.Status != health.Fail {
		t.Errorf("rejected %+v", c)
	}
	// The check changed nothing: the message is still unread.
	if inbox, _ := srv.Admin(t).Messages("INBOX"); len(inbox) != 1 || len(inbox[0].Flags) != 0 {
		t.Fatalf("inbox after the check: %+v", inbox)
	}
}
