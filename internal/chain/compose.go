package chain

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/figurative/figsupport/internal/payload"
)

// customer is "Jean Dupont <jean@example.com>", or the address alone.
func customer(r *payload.Request) string {
	if r.UserName == "" {
		return r.UserEmail
	}
	return r.UserName + " <" + r.UserEmail + ">"
}

// ticketContent is the ticket's plain-text description.
func ticketContent(r *payload.Request, files []payload.StoredFile) string {
	var b strings.Builder
	b.WriteString(r.Text())
	fmt.Fprintf(&b, "\n\n— %s", customer(r))
	if r.Source != "" {
		fmt.Fprintf(&b, " (formulaire: %s)", r.Source)
	}
	fmt.Fprintf(&b, ", %s", r.ReceivedAt.Format("2006-01-02 15:04 MST"))
	if len(files) > 0 {
		b.WriteString("\n\nFichiers:\n")
		for _, f := range files {
			fmt.Fprintf(&b, "- %s: %s\n", f.Name, f.URL)
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// SubtaskName is "[MODELISATION] Jean Dupont — subject", bounded for the tracker's list views.
func SubtaskName(classification string, r *payload.Request) string {
	who := r.UserName
	if who == "" {
		who = r.UserEmail
	}
	s := fmt.Sprintf("[%s] %s — %s", classification, who, oneLine(r.Subject()))
	if utf8.RuneCountInString(s) > 180 {
		s = string([]rune(s)[:177]) + "..."
	}
	return s
}

// SubtaskMarkdown is a new subtask's description: the customer's text, the ticket and the files.
func SubtaskMarkdown(r *payload.Request, ticketID, ticketURL string, files []payload.StoredFile) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**Client:** %s\n\n", mdEscape(customer(r)))
	fmt.Fprintf(&b, "**Ticket HubSpot:** [#%s](%s)\n\n", ticketID, ticketURL)
	fmt.Fprintf(&b, "**Reçu le:** %s\n\n", r.ReceivedAt.Format("2006-01-02 15:04 MST"))
	b.WriteString("**Demande:**\n\n")
	b.WriteString(quote(r.Text()))
	writeFiles(&b, files)
	return b.String()
}

// FollowUpMarkdown is what a follow-up appends to the subtask.
func FollowUpMarkdown(r *payload.Request, files []payload.StoredFile) string {
	var b strings.Builder
	fmt.Fprintf(&b, "---\n\n**Suivi du %s** (%s):\n\n", r.ReceivedAt.Format("2006-01-02 15:04 MST"), mdEscape(customer(r)))
	b.WriteString(quote(r.Text()))
	writeFiles(&b, files)
	return b.String()
}

func writeFiles(b *strings.Builder, files []payload.StoredFile) {
	if len(files) == 0 {
		return
	}
	b.WriteString("\n\n**Fichiers:**\n\n")
	for _, f := range files {
		fmt.Fprintf(b, "- [%s](%s)\n", mdEscape(f.Name), f.URL)
	}
}

// quote puts customer text in a block quote, escaped so it cannot turn into links, HTML or
// headings, nor leave the quote.
func quote(s string) string {
	lines := strings.Split(strings.ReplaceAll(s, "\r\n", "\n"), "\n")
	for i, l := range lines {
		lines[i] = "> " + mdEscape(l)
	}
	return strings.Join(lines, "\n")
}

var mdReplacer = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", `*`, `\*`, `_`, `\_`, `[`, `\[`, `]`, `\]`, `<`, `&lt;`, `>`, `&gt;`,
	`#`, `\#`, `|`, `\|`, `!`, `\!`,
)

func mdEscape(s string) string { return mdReplacer.Replace(s) }

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// SplitName puts the last word of a name in lastname and the rest in firstname ("Marie Anne
// Dupont" → "Marie Anne", "Dupont"). Particles ("de la Tour") come out wrong, but CRM users fix
// names by hand and the e-mail is the identity.
func SplitName(name string) (first, last string) {
	f := strings.Fields(name)
	switch len(f) {
	case 0:
		return "", ""
	case 1:
		return f[0], ""
	}
	return strings.Join(f[:len(f)-1], " "), f[len(f)-1]
}
