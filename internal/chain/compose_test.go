package chain

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/golden"

	"github.com/figurative/figsupport/internal/payload"
)

var t5 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.FixedZone("CET", 3600))

func TestMarkdownGolden(t *testing.T) {
	tests := []struct {
		name                string
		req                 payload.Request
		ticketID, ticketURL string
		files               []payload.StoredFile
	}{
		{
			name: "hostile", // ClickUp and HubSpot, with a customer who tries everything
			req: payload.Request{
				UserEmail:   "client@example.com",
				UserName:    "Jean [Dupont](javascript:alert(1))",
				Objet:       "Chaise\n# titre <b>gras</b>",
				Description: "Bonjour,\n\n> pas une citation\n</blockquote><script>alert(1)</script>\n[clic](https://evil.example) ![img](https://evil.example/x.png)\n`code` *gras* _it_ &amp; \x00\x1b[31m\nTitre\n===\n- - -\n- une liste",
				ReceivedAt:  t5,
			},
			ticketID:  "123",
			ticketURL: "https://app.hubspot.com/contacts/1/record/0-5/123",
			files: []payload.StoredFile{
				{Name: "photo (1).jpg", URL: "https://files.example.com/requests/2026/01/k/photo (1).jpg", Size: 123456},
				{Name: "](javascript:x)", URL: "javascript:alert(1)"},
				{Name: "plan.stl", URL: "https://files.example.com/p.stl?sig=a b\\", Size: 3 << 20},
			},
		},
		{
			name: "embedded", // the embedded CRM and tracker, files on the local disk
			req: payload.Request{
				Source:      "contact",
				UserEmail:   "marie@example.com",
				Objet:       "Modéliser une table",
				Description: "Voici les cotes.\r\n\r\nMerci",
				ReceivedAt:  t5,
			},
			ticketID:  "7",
			ticketURL: "figsupport://tickets/7",
			files: []payload.StoredFile{
				{Name: "table vue 1.jpg", URL: "file:///var/lib/figsupport/files/requests/2026/01/k/table%20vue%201.jpg", Size: 900},
				{Name: "notes.txt", URL: "memory://k/notes.txt"},
			},
		},
		{
			name:     "minimal", // what a hand-made request may lack
			req:      payload.Request{UserEmail: "x@example.com"},
			ticketID: "9",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden.Check(t, filepath.Join("testdata", tt.name+"-subtask.md"), SubtaskMarkdown(&tt.req, tt.ticketID, tt.ticketURL, tt.files))
			golden.Check(t, filepath.Join("testdata", tt.name+"-followup.md"), FollowUpMarkdown(&tt.req, tt.files))
		})
	}
}

func TestQuoteCannotBeLeft(t *testing.T) {
	tests := []string{
		"a\n\nb",
		"a\r\n\r\n# heading\r\nb",
		"a\n\n\n\n---\nb",
		"a\n   \n<div>x</div>",
		"a\rb\r\rc",
		"titre\n===",
	}
	for _, in := range tests {
		t.Run(in, func(t *testing.T) {
			q := quote(in)
			for line := range strings.SplitSeq(strings.TrimSuffix(q, "\n"), "\n") {
				if line != ">" && !strings.HasPrefix(line, "> ") {
					t.Fatalf("quote(%q) has a line outside the quote: %q", in, line)
				}
				if isUnderline(strings.TrimPrefix(line, "> ")) {
					t.Fatalf("quote(%q) keeps a heading underline: %q", in, line)
				}
			}
			if strings.Contains(q, "<") {
				t.Fatalf("quote(%q) = %q keeps raw HTML", in, q)
			}
		})
	}
	if quote(" \n\n ") != "" {
		t.Fatal("blank text should quote to nothing")
	}
}

func TestSafeURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://app.clickup.com/t/abc", "https://app.clickup.com/t/abc"},
		{" http://x.example/a b(1).jpg ", "http://x.example/a%20b%281%29.jpg"},
		{"https://x.example/a?q=a b)\\", "https://x.example/a?q=a%20b%29%5C"},
		{"HTTPS://X.example/a", "https://X.example/a"},
		{"file:///srv/files/a%20b.jpg", "file:///srv/files/a%20b.jpg"},
		{"figsupport://tickets/12", "figsupport://tickets/12"},
		{"figsupport://subtasks/3", "figsupport://subtasks/3"},
		{"javascript:alert(1)", ""},
		{"JavaScript://x.example/%0aalert(1)", ""},
		{"data:text/html,<b>x</b>", ""},
		{"memory://k/a.jpg", ""},
		{"https:///no-host", ""},
		{"file:", ""},
		{"figsupport:tickets/12", ""},
		{"/relative/path", ""},
		{"", ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := safeURL(tt.in); got != tt.want {
				t.Fatalf("safeURL(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestSubtaskName(t *testing.T) {
	tests := []struct {
		name, class string
		req         payload.Request
		want        string
	}{
		{"name and subject", "MODELISATION", payload.Request{UserName: "Jean Dupont", UserEmail: "j@x.fr", Objet: "Chaise"}, "[MODELISATION] Jean Dupont — Chaise"},
		{"e-mail stands in for the name", "support", payload.Request{UserEmail: "j@x.fr", Objet: "a\nb\tc"}, "[SUPPORT] j@x.fr — a b c"},
		{"subject from the description", "MODELISATION", payload.Request{UserEmail: "j@x.fr", Description: "une\n\ntable"}, "[MODELISATION] j@x.fr — une table"},
		{"no subject", "", payload.Request{UserEmail: "j@x.fr"}, "j@x.fr"},
		{"control characters dropped", "MODELISATION", payload.Request{UserName: "Jean\x1b[31m", Objet: "x\x00y"}, "[MODELISATION] Jean[31m — xy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SubtaskName(tt.class, &tt.req); got != tt.want {
				t.Fatalf("SubtaskName = %q, want %q", got, tt.want)
			}
		})
	}
	long := SubtaskName("SUPPORT", &payload.Request{UserEmail: "x", Objet: strings.Repeat("é", 500)})
	if n := len([]rune(long)); n != maxNameRunes || !strings.HasSuffix(long, "…") {
		t.Fatalf("long name has %d runes: %q", n, long)
	}
}
