package notify

import (
	"context"
	"errors"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/golden"
)

var sampleAckIn = chain.Ack{
	To: "Jeanne Dupont <Jeanne@Example.com>", Name: "Jeanne\nDupont", TicketID: "1234", TicketRef: "[#1234]",
	Subject: "RE: Re : Chaise\r\nBcc: victim@example.com", ReceivedAt: time.Date(2026, 3, 5, 9, 7, 0, 0, time.UTC),
	MessageID: "figsupport.ack.00112233445566778899aabb@figsupport.invalid", InReplyTo: "<CAF+abc@mail.example.com>",
}

func defaultTemplate(t *testing.T) *AckTemplate {
	t.Helper()
	tmpl, err := LoadAckTemplate("")
	if err != nil {
		t.Fatal(err)
	}
	return tmpl
}

func TestComposeAck(t *testing.T) {
	m, err := ComposeAck(sampleAckIn, defaultTemplate(t), "Support Figurative <support@figurative.fr>")
	if err != nil {
		t.Fatal(err)
	}
	h, text, html := parts(t, m.Raw)
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"Subject":                  "Re: Chaise Bcc: victim@example.com [#1234]",
		"To":                       "<Jeanne@Example.com>",
		"Message-Id":               "<figsupport.ack.00112233445566778899aabb@figsupport.invalid>",
		"In-Reply-To":              "<CAF+abc@mail.example.com>",
		"References":               "<CAF+abc@mail.example.com>",
		"Auto-Submitted":           "auto-replied",
		"X-Auto-Response-Suppress": "All",
		"Bcc":                      "",
		"X-Figsupport-Request":     "",
	}
	for k, v := range want {
		got := h.Get(k)
		if k == "Subject" {
			got = subject
		}
		if got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if m.From != "support@figurative.fr" || len(m.To) != 1 || m.To[0] != "Jeanne@Example.com" || m.MessageID != sampleAckIn.MessageID {
		t.Errorf("envelope: from %s to %v, id %s", m.From, m.To, m.MessageID)
	}
	if !strings.Contains(html, "Jeanne Dupont") || strings.Contains(html, "\r\nBcc") {
		t.Errorf("html part:\n%s", html)
	}
	golden.Check(t, filepath.Join("testdata", "ack.txt"), text)
}

func TestAckSubject(t *testing.T) {
	tests := []struct {
		name     string
		subject  string
		ref      string
		template string // "" the embedded one
		want     string
	}{
		{"their subject, answered", "Chaise cassée", "[#7]", "", "Re: Chaise cassée [#7]"},
		{"no double Re:", "Re: RE : Réf : Chaise", "[#7]", "", "Re: Chaise [#7]"},
		{"no subject", "  ", "[#7]", "", "Votre demande [#7]"},
		{"the reference kept whole when long", strings.Repeat("é", 300), "[#7]", "", "Re: " + strings.Repeat("é", 240) + "… [#7]"},
		{"a template without subject", "Chaise", "[#7]", "Merci.", "Re: Chaise [#7]"},
		{"a template without subject, no subject", "", "[#7]", "Merci.", "[#7]"},
		{"a subject without the reference gets it", "Chaise", "[#7]", `{{define "subject"}}Bien reçu{{end}}Merci.`, "Bien reçu [#7]"},
		{"a subject with the reference keeps it where it is", "Chaise", "[#7]", `{{define "subject"}}{{.TicketRef}} bien reçu{{end}}Merci.`, "[#7] bien reçu"},
		{"reference from the ticket id", "Chaise", "", "", "Re: Chaise [#42]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tmpl := defaultTemplate(t)
			if tt.template != "" {
				var err error
				if tmpl, err = ParseAckTemplate("test", tt.template); err != nil {
					t.Fatal(err)
				}
			}
			a := chain.Ack{To: "a@example.com", TicketID: "42", TicketRef: tt.ref, Subject: tt.subject, MessageID: "x@y"}
			m, err := ComposeAck(a, tmpl, "support@figurative.fr")
			if err != nil {
				t.Fatal(err)
			}
			if m.Subject != tt.want {
				t.Fatalf("subject = %q, want %q", m.Subject, tt.want)
			}
		})
	}
}

func TestComposeAckRefusals(t *testing.T) {
	tmpl := defaultTemplate(t)
	tests := []struct {
		name string
		edit func(a *chain.Ack)
	}{
		{"recipient not an address", func(a *chain.Ack) { a.To = "jeanne" }},
		{"no ticket", func(a *chain.Ack) { a.TicketID, a.TicketRef = "", "" }},
		{"our Message-ID malformed", func(a *chain.Ack) { a.MessageID = "a b@c" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := sampleAckIn
			tt.edit(&a)
			if m, err := ComposeAck(a, tmpl, "support@figurative.fr"); err == nil {
				t.Fatalf("composed %q", m.Raw)
			}
		})
	}
	// Their Message-ID comes from outside: a malformed one is left out, the acknowledgement sent.
	a := sampleAckIn
	a.InReplyTo = "<not an id>"
	m, err := ComposeAck(a, tmpl, "support@figurative.fr")
	if err != nil {
		t.Fatal(err)
	}
	if h, _, _ := parts(t, m.Raw); h.Get("In-Reply-To") != "" || h.Get("References") != "" {
		t.Fatalf("In-Reply-To %q kept", h.Get("In-Reply-To"))
	}
}

// Template problems are configuration errors that name FIGSUPPORT_ACK_TEMPLATE, found when the
// template is loaded rather than at the first new ticket.
func TestAckTemplateErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name   string
		path   string
		detail string
	}{
		{"missing file", filepath.Join(dir, "absent.tmpl"), "absent.tmpl"},
		{"syntax", write("syntax.tmpl", "Bonjour {{.Name"), "syntax.tmpl"},
		{"unknown field", write("field.tmpl", "Bonjour {{.Prenom}}"), "Prenom"},
		{"unknown field in the subject", write("subject.tmpl", `{{define "subject"}}{{.Objet}}{{end}}Bonjour`), "Objet"},
		{"empty body", write("empty.tmpl", `{{define "subject"}}x{{end}}  `), "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadAckTemplate(tt.path)
			var ce *ConfigError
			if !errors.As(err, &ce) || ce.Key != KeyAckTemplate || !strings.Contains(err.Error(), tt.detail) {
				t.Fatalf("err = %v, want a %s error mentioning %q", err, KeyAckTemplate, tt.detail)
			}
			// Through New, as cmd/ builds it.
			_, err = New(Config{To: []string{"a@x.fr"}, OutboxDir: dir, Ack: AckConfig{Enabled: true, Template: tt.path}})
			if !errors.As(err, &ce) || ce.Key != KeyAckTemplate {
				t.Fatalf("New: err = %v, want a %s error", err, KeyAckTemplate)
			}
		})
	}
	custom := write("ok.tmpl", `{{define "subject"}}Bien reçu {{.TicketRef}}{{end}}Bonjour {{.Name}}, ticket {{.TicketID}} ({{.Received}}).`)
	if _, err := LoadAckTemplate(custom); err != nil {
		t.Fatalf("a good template refused: %v", err)
	}
	_, err := New(Config{To: []string{"a@x.fr"}, OutboxDir: dir, Ack: AckConfig{Enabled: true, From: "support"}})
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Key != KeyAckFrom {
		t.Fatalf("bad FIGSUPPORT_ACK_FROM: err = %v", err)
	}
}

func TestAcknowledge(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "outbox")
	off, err := New(Config{To: []string{"admin@figurative.fr"}, OutboxDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if off.AckEnabled() || !errors.Is(off.Acknowledge(ctx, sampleAckIn), ErrAckOff) {
		t.Fatal("acknowledgements are on by default")
	}
	on, err := New(Config{To: []string{"admin@figurative.fr"}, From: "bot@figurative.fr", OutboxDir: dir,
		Ack: AckConfig{Enabled: true, From: "Support <support@figurative.fr>"}})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // a repeat writes nothing more
		if err := on.Acknowledge(ctx, sampleAckIn); err != nil {
			t.Fatal(err)
		}
	}
	files, _ := os.ReadDir(dir)
	if len(files) != 1 || files[0].Name() != sampleAckIn.MessageID+".eml" {
		t.Fatalf("outbox = %v", files)
	}
	b, _ := os.ReadFile(filepath.Join(dir, files[0].Name()))
	h, _, _ := parts(t, b)
	if h.Get("From") != `"Support" <support@figurative.fr>` || h.Get("Auto-Submitted") != "auto-replied" {
		t.Fatalf("headers = %v", h)
	}
}

func TestFrenchDate(t *testing.T) {
	tests := []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 8, 1, 23, 5, 0, 0, time.UTC), "1 août 2026 à 23:05 UTC"},
		{time.Date(2026, 12, 31, 23, 30, 0, 0, time.FixedZone("CET", 3600)), "31 décembre 2026 à 22:30 UTC"},
		{time.Time{}, ""},
	}
	for _, tt := range tests {
		if got := frenchDate(tt.in); got != tt.want {
			t.Errorf("frenchDate(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
