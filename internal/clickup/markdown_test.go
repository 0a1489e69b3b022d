package clickup

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/payload"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

func golden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("%s differs:\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

var hostile = chain.Notification{
	Classification: payload.Modelisation,
	CustomerEmail:  "client@example.com",
	CustomerName:   "Jean [Dupont](javascript:alert(1))",
	Subject:        "Chaise\n# titre <b>gras</b>",
	Body:           "Bonjour,\n\n> pas une citation\n</blockquote><script>alert(1)</script>\n[clic](https://evil.example) ![img](https://evil.example/x.png)\n`code` *gras* _it_ \x00\x1b[31m",
	TicketID:       "123",
	TicketURL:      "https://app.hubspot.com/contacts/1/record/0-5/123",
	Files: []payload.StoredFile{
		{Name: "photo (1).jpg", URL: "https://files.example.com/requests/2026/01/k/photo (1).jpg", Size: 123456},
		{Name: "](javascript:x)", URL: "javascript:alert(1)"},
	},
	ReceivedAt: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC),
}

func TestSubtaskMarkdown(t *testing.T) {
	golden(t, "subtask.md", SubtaskMarkdown(hostile))
	golden(t, "followup.md", FollowUpMarkdown(hostile))
}

func TestQuoteCannotBeLeft(t *testing.T) {
	tests := []string{
		"a\n\nb",
		"a\r\n\r\n# heading\r\nb",
		"a\n\n\n\n---\nb",
		"a\n   \n<div>x</div>",
	}
	for _, in := range tests {
		q := Quote(in)
		for line := range strings.SplitSeq(strings.TrimSuffix(q, "\n"), "\n") {
			if line != ">" && !strings.HasPrefix(line, "> ") {
				t.Fatalf("Quote(%q) has a line outside the quote: %q", in, line)
			}
		}
		if strings.ContainsAny(q, "<") {
			t.Fatalf("Quote(%q) = %q keeps raw HTML", in, q)
		}
	}
	if Quote(" \n\n ") != "" {
		t.Fatal("blank text should quote to nothing")
	}
}

func TestSubtaskName(t *testing.T) {
	tests := []struct {
		class, customer, subject, want string
	}{
		{"MODELISATION", "Jean Dupont <j@x.fr>", "Chaise", "[MODELISATION] Jean Dupont <j@x.fr> — Chaise"},
		{"support", "j@x.fr", "a\nb\tc", "[SUPPORT] j@x.fr — a b c"},
		{"", "j@x.fr", "", "j@x.fr"},
	}
	for _, tt := range tests {
		if got := SubtaskName(tt.class, tt.customer, tt.subject); got != tt.want {
			t.Errorf("SubtaskName(%q, %q, %q) = %q, want %q", tt.class, tt.customer, tt.subject, got, tt.want)
		}
	}
	long := SubtaskName("SUPPORT", "x", strings.Repeat("é", 500))
	if n := len([]rune(long)); n != maxNameRunes || !strings.HasSuffix(long, "…") {
		t.Fatalf("long name has %d runes: %q", n, long)
	}
}
