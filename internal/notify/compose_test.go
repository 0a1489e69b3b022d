package notify

import (
	"bytes"
	"context"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/golden"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/health"
	"github.com/figurative/figsupport/internal/payload"
)

var sample = chain.Notification{
	Classification: payload.Modelisation,
	CustomerEmail:  "client@example.com",
	CustomerName:   "Jean <b>Dupont</b>",
	Subject:        "Chaise\r\nBcc: victim@example.com",
	Body:           "Bonjour,\n<script>alert(1)</script>\n<a href=\"javascript:x\">clic</a> & merci\x00",
	TicketID:       "123",
	TicketURL:      "https://app.hubspot.com/contacts/1/record/0-5/123",
	IsNewTicket:    true,
	SubtaskID:      "86c0001",
	SubtaskURL:     "https://app.clickup.com/t/86c0001",
	Files: []payload.StoredFile{
		{Name: "photo <1>.jpg", URL: "https://files.example.com/r/photo.jpg", Size: 2048},
		{Name: "evil", URL: "javascript:alert(1)"},
	},
	ReceivedAt: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC),
	RequestKey: "req-42",
	MessageID:  "figsupport.notify.0123456789abcdef01234567@figsupport.invalid",
}

// parts splits a composed message into its headers and its decoded text and HTML parts.
func parts(t *testing.T, raw []byte) (mail.Header, string, string) {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		t.Fatalf("content type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	var text, html string
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(p) // multipart decodes quoted-printable
		switch {
		case strings.HasPrefix(p.Header.Get("Content-Type"), "text/plain"):
			text = string(b)
		case strings.HasPrefix(p.Header.Get("Content-Type"), "text/html"):
			html = string(b)
		}
	}
	return msg.Header, text, html
}

func TestCompose(t *testing.T) {
	m, err := Compose(sample, "Figurative Support <bot@figurative.fr>", []string{"admin@figurative.fr"})
	if err != nil {
		t.Fatal(err)
	}
	h, text, html := parts(t, m.Raw)
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(h.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "[MODELISATION] Jean <b>Dupont</b> <client@example.com> — ticket #123 (nouveau)"; subject != want || m.Subject != want {
		t.Fatalf("subject = %q, want %q", subject, want)
	}
	if h.Get("Bcc") != "" {
		t.Fatal("customer text injected a header")
	}
	if h.Get("X-Figsupport-Request") != "req-42" || m.From != "bot@figurative.fr" || m.To[0] != "admin@figurative.fr" {
		t.Fatalf("headers/envelope: %v %s %v", h, m.From, m.To)
	}
	for k, want := range map[string]string{
		"Message-Id":               "<" + sample.MessageID + ">",
		"Auto-Submitted":           "auto-generated",
		"X-Auto-Response-Suppress": "All",
		"In-Reply-To":              "",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if m.MessageID != sample.MessageID || m.Headers["Auto-Submitted"] != "auto-generated" {
		t.Errorf("message = %q %v", m.MessageID, m.Headers)
	}
	for _, bad := range []string{"<script>", "<b>Dupont", `href="javascript`, `href="#`} {
		if strings.Contains(html, bad) {
			t.Fatalf("HTML keeps %q:\n%s", bad, html)
		}
	}
	for _, want := range []string{`href="https://app.hubspot.com/contacts/1/record/0-5/123"`, `href="https://app.clickup.com/t/86c0001"`, `href="https://files.example.com/r/photo.jpg"`, "&lt;script&gt;"} {
		if !strings.Contains(html, want) {
			t.Fatalf("HTML lacks %q:\n%s", want, html)
		}
	}
	golden.Check(t, filepath.Join("testdata", "notification.txt"), text)
	golden.Check(t, filepath.Join("testdata", "notification.html"), html)
}

func TestSubject(t *testing.T) {
	tests := []struct {
		name string
		n    chain.Notification
		want string
	}{
		{"new", chain.Notification{Classification: "SUPPORT", CustomerEmail: "a@b.fr", TicketID: "9", IsNewTicket: true}, "[SUPPORT] a@b.fr — ticket #9 (nouveau)"},
		{"follow-up", chain.Notification{Classification: "SUPPORT", CustomerName: "Ann", CustomerEmail: "a@b.fr", TicketID: "9"}, "[SUPPORT] Ann <a@b.fr> — ticket #9 (suivi)"},
		{"no ticket", chain.Notification{CustomerEmail: "a@b.fr", Subject: "Aide\nurgente"}, "a@b.fr — Aide urgente"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Subject(tt.n); got != tt.want {
				t.Fatalf("Subject = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseAddresses(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"a@x.fr", "a@x.fr", false},
		{" a@x.fr, b@y.fr ; Admin <c@z.fr>;", "a@x.fr b@y.fr c@z.fr", false},
		{"a@x.fr, A@x.fr", "a@x.fr", false},
		{"", "", false},
		{"admin", "", true},
		{"a@x.fr, not an address", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseAddresses(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if !tt.wantErr && strings.Join(got, " ") != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// Every message carries a Message-ID: the chain's, else a new one at the sender's domain.
func TestMessageID(t *testing.T) {
	from, to := "Figurative <bot@figurative.fr>", []string{"admin@figurative.fr"}
	tests := []struct {
		name    string
		id      string
		want    *regexp.Regexp
		wantErr bool
	}{
		{"the chain's", "figsupport.notify.abc@figsupport.invalid", regexp.MustCompile(`^figsupport\.notify\.abc@figsupport\.invalid$`), false},
		{"none given: a new one", "", regexp.MustCompile(`^figsupport\.[0-9a-f]{24}@figurative\.fr$`), false},
		{"with a space", "a b@c", nil, true},
		{"with brackets", "<a@b>", nil, true},
		{"a header in it", "a@b\r\nBcc: x@y", nil, true},
		{"no @", "abc", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := sample
			n.MessageID = tt.id
			m, err := Compose(n, from, to)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("Message-ID %q accepted", tt.id)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			h, _, _ := parts(t, m.Raw)
			if !tt.want.MatchString(m.MessageID) || h.Get("Message-Id") != "<"+m.MessageID+">" {
				t.Fatalf("Message-ID %q, header %q", m.MessageID, h.Get("Message-Id"))
			}
		})
	}
	a, _ := ComposeManual("s", "b", from, to)
	b, _ := ComposeManual("s", "b", from, to)
	if a.MessageID == b.MessageID || !ValidMessageID(a.MessageID) {
		t.Fatalf("manual messages: %q and %q", a.MessageID, b.MessageID)
	}
}

func TestValidMessageID(t *testing.T) {
	for id, want := range map[string]bool{
		"figsupport.notify.0a1b@figsupport.invalid": true,
		"CAF=x+y_z-1@mail.gmail.com":                true,
		"":                                          false,
		"@x":                                        false,
		"x@":                                        false,
		"a@b@c":                                     false,
		"a b@c":                                     false,
		"a@b\n":                                     false,
		"<a@b>":                                     false,
		`"a"@b`:                                     false,
		"a@[1.2.3.4]":                               false,
		"é@b":                                       false,
		strings.Repeat("a", 250) + "@b":             false,
	} {
		if got := ValidMessageID(id); got != want {
			t.Errorf("ValidMessageID(%q) = %v, want %v", id, got, want)
		}
	}
}

func TestOutbox(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	n, err := New(Config{To: []string{"admin@figurative.fr"}, OutboxDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if n.Kind() != KindOutbox {
		t.Fatalf("kind = %s", n.Kind())
	}
	// The same notification twice (a retry after a lost answer): one file.
	for range 2 {
		if err := n.Notify(context.Background(), sample); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.Send(context.Background(), "Test manuel", "Bonjour <admin>"); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 2 {
		t.Fatalf("outbox = %v, want the notification once and the manual message", files)
	}
	var sawID bool
	for _, f := range files {
		if !strings.HasSuffix(f, ".eml") || strings.HasPrefix(filepath.Base(f), ".tmp") {
			t.Fatalf("unexpected file %s", f)
		}
		sawID = sawID || filepath.Base(f) == sample.MessageID+".eml"
		b, _ := os.ReadFile(f)
		if _, _, html := parts(t, b); strings.Contains(html, "<admin>") {
			t.Fatal("manual body not escaped in HTML")
		}
	}
	if !sawID {
		t.Fatalf("no file named after the Message-ID: %v", files)
	}
	checks := n.Check(context.Background())
	if len(checks) != 2 || checks[1].Status != health.OK {
		t.Fatalf("checks = %+v", checks)
	}
}

// Sends of one Message-ID racing each other write one file, whole.
func TestOutboxConcurrentRepeats(t *testing.T) {
	o, err := NewOutbox(filepath.Join(t.TempDir(), "outbox"))
	if err != nil {
		t.Fatal(err)
	}
	m := testMessage(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- o.Send(context.Background(), m) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	files, _ := os.ReadDir(o.Dir)
	if len(files) != 1 {
		t.Fatalf("outbox = %v, want one file", files)
	}
	b, _ := os.ReadFile(filepath.Join(o.Dir, files[0].Name()))
	if !bytes.Equal(b, m.Raw) {
		t.Fatal("the file is not the message")
	}
	if err := o.Send(context.Background(), &Message{Raw: []byte("x")}); err == nil {
		t.Fatal("a message without Message-ID was written")
	}
}

func TestFileName(t *testing.T) {
	long := strings.Repeat("a", 130) + "@x"
	tests := []struct{ id, want string }{
		{"figsupport.notify.0a1b@figsupport.invalid", "figsupport.notify.0a1b@figsupport.invalid.eml"},
		{"a/b@c", "a_b@c-"},
		{"../x@y", "_x@y-"},
		{"a_b@c", "a_b@c.eml"},
		{long, strings.Repeat("a", 80) + "-"},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			got := FileName(tt.id)
			if !strings.HasPrefix(got, tt.want) || !strings.HasSuffix(got, ".eml") || strings.ContainsAny(got, "/\\") {
				t.Fatalf("FileName(%q) = %q, want %q…", tt.id, got, tt.want)
			}
		})
	}
	if FileName("a/b@c") == FileName("a_b@c") || FileName("a/b@c") == FileName("a:b@c") {
		t.Fatal("two Message-IDs share a file")
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		kind    string
		wantErr string
	}{
		{"outbox by default", Config{To: []string{"a@x.fr"}, OutboxDir: "/tmp/x"}, KindOutbox, ""},
		{"smtp when host set", Config{To: []string{"a@x.fr"}, SMTP: SMTPConfig{Host: "smtp.office365.com", User: "bot@x.fr", Password: "p"}}, KindSMTP, ""},
		{"graph when sender and client set", Config{To: []string{"a@x.fr"}, Graph: GraphConfig{Sender: "bot@x.fr"},
			OAuth: OAuthConfig{TenantID: "t", ClientID: "c", ClientSecret: "s"}}, KindGraph, ""},
		{"explicit outbox wins", Config{Transport: "outbox", To: []string{"a@x.fr"}, OutboxDir: "/tmp/x", SMTP: SMTPConfig{Host: "h"}}, KindOutbox, ""},
		{"unknown transport", Config{Transport: "pigeon", To: []string{"a@x.fr"}, From: "b@x.fr"}, "", "NOTIFY_TRANSPORT"},
		{"no recipient", Config{OutboxDir: "/tmp/x"}, "", "NOTIFICATION_EMAIL"},
		{"bad recipient", Config{To: []string{"admin"}, OutboxDir: "/tmp/x"}, "", "NOTIFICATION_EMAIL"},
		{"smtp without sender", Config{To: []string{"a@x.fr"}, SMTP: SMTPConfig{Host: "h", Auth: AuthNone}}, "", "SMTP_FROM"},
		{"xoauth2 without client", Config{To: []string{"a@x.fr"}, SMTP: SMTPConfig{Host: "h", User: "bot@x.fr", Auth: "xoauth2"}}, "", "OAUTH_CLIENT_ID"},
		{"xoauth2 without tenant", Config{To: []string{"a@x.fr"}, SMTP: SMTPConfig{Host: "h", User: "bot@x.fr", Auth: "xoauth2"},
			OAuth: OAuthConfig{ClientID: "c", ClientSecret: "s"}}, "", "OAUTH_TENANT_ID"},
		{"bad auth", Config{To: []string{"a@x.fr"}, SMTP: SMTPConfig{Host: "h", User: "bot@x.fr", Auth: "cram-md5"}}, "", "SMTP_AUTH"},
		{"login without password", Config{To: []string{"a@x.fr"}, SMTP: SMTPConfig{Host: "h", User: "bot@x.fr"}}, "", "SMTP_PASSWORD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := New(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want mention of %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n.Kind() != tt.kind {
				t.Fatalf("kind = %s, want %s", n.Kind(), tt.kind)
			}
		})
	}
}

func TestSMTPDefaults(t *testing.T) {
	s, err := NewSMTP(SMTPConfig{Host: "smtp.office365.com", User: "u@x.fr", Password: "p"}, OAuthConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if s.cfg.Port != 587 || s.cfg.TLS != TLSStartTLS || s.cfg.Auth != AuthLogin {
		t.Fatalf("defaults = %+v", s.cfg)
	}
	s, _ = NewSMTP(SMTPConfig{Host: "h", Port: 465, User: "u@x.fr", Password: "p"}, OAuthConfig{})
	if s.cfg.TLS != TLSImplicit {
		t.Fatalf("port 465 → %s, want tls", s.cfg.TLS)
	}
}
