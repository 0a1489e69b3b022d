package clickup

import (
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/figurative/figsupport/internal/chain"
)

// maxNameRunes keeps subtask names readable in ClickUp's list view.
const maxNameRunes = 200

// SubtaskName is "[CLASSIFICATION] customer — subject", on one line and bounded.
func SubtaskName(classification, customer, subject string) string {
	var b strings.Builder
	if c := oneLine(classification); c != "" {
		b.WriteString("[" + strings.ToUpper(c) + "] ")
	}
	b.WriteString(oneLine(customer))
	if s := oneLine(subject); s != "" {
		if b.Len() > 0 {
			b.WriteString(" — ")
		}
		b.WriteString(s)
	}
	return truncateRunes(strings.TrimSpace(b.String()), maxNameRunes)
}

// Customer is "Name <email>", or whichever of the two is known.
func Customer(name, email string) string {
	name, email = oneLine(name), oneLine(email)
	switch {
	case name != "" && email != "":
		return name + " <" + email + ">"
	case name != "":
		return name
	}
	return email
}

// SubtaskMarkdown is the description of a new subtask: who wrote, when, the HubSpot ticket, the
// customer's text quoted and escaped, and the files.
func SubtaskMarkdown(n chain.Notification) string {
	var b strings.Builder
	fmt.Fprintf(&b, "- **Client :** %s\n", escapeInline(Customer(n.CustomerName, n.CustomerEmail)))
	if !n.ReceivedAt.IsZero() {
		fmt.Fprintf(&b, "- **Reçu le :** %s\n", n.ReceivedAt.UTC().Format("2006-01-02 15:04 UTC"))
	}
	if n.Classification != "" {
		fmt.Fprintf(&b, "- **Type :** %s\n", escapeInline(n.Classification))
	}
	writeTicket(&b, n)
	if s := oneLine(n.Subject); s != "" {
		fmt.Fprintf(&b, "- **Objet :** %s\n", escapeInline(s))
	}
	b.WriteString("\n")
	writeMessage(&b, n.Body)
	writeFiles(&b, n)
	return b.String()
}

// FollowUpMarkdown is what AppendSubtask adds on a follow-up message: its date, the text and the
// new files.
func FollowUpMarkdown(n chain.Notification) string {
	var b strings.Builder
	b.WriteString("### Nouveau message")
	if !n.ReceivedAt.IsZero() {
		b.WriteString(" du " + n.ReceivedAt.UTC().Format("2006-01-02 15:04 UTC"))
	}
	b.WriteString("\n\n")
	if s := oneLine(n.Subject); s != "" {
		fmt.Fprintf(&b, "**Objet :** %s\n\n", escapeInline(s))
	}
	writeMessage(&b, n.Body)
	writeFiles(&b, n)
	return b.String()
}

func writeTicket(b *strings.Builder, n chain.Notification) {
	switch {
	case n.TicketID != "" && n.TicketURL != "":
		fmt.Fprintf(b, "- **Ticket HubSpot :** [#%s](%s)\n", escapeInline(n.TicketID), safeURL(n.TicketURL))
	case n.TicketID != "":
		fmt.Fprintf(b, "- **Ticket HubSpot :** #%s\n", escapeInline(n.TicketID))
	}
}

func writeMessage(b *strings.Builder, text string) {
	q := Quote(text)
	if q == "" {
		b.WriteString("*(message vide)*\n")
		return
	}
	b.WriteString(q)
}

func writeFiles(b *strings.Builder, n chain.Notification) {
	if len(n.Files) == 0 {
		return
	}
	fmt.Fprintf(b, "\n**Fichiers (%d) :**\n\n", len(n.Files))
	for _, f := range n.Files {
		name := escapeInline(f.Name)
		if name == "" {
			name = "fichier"
		}
		if u := safeURL(f.URL); u != "" {
			fmt.Fprintf(b, "- [%s](%s)", name, u)
		} else {
			fmt.Fprintf(b, "- %s", name)
		}
		if f.Size > 0 {
			fmt.Fprintf(b, " (%s)", humanSize(f.Size))
		}
		b.WriteString("\n")
	}
}

// Quote renders customer text as a Markdown quote block that it cannot leave: every line, blank
// ones included, starts with "> ", and whatever could become a link, an image, HTML or a heading
// is escaped.
func Quote(text string) string {
	text = strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\r", "\n")
	text = strings.Trim(text, "\n")
	if strings.TrimSpace(text) == "" {
		return ""
	}
	var b strings.Builder
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimRightFunc(escapeText(line), unicode.IsSpace)
		if line == "" {
			b.WriteString(">\n")
			continue
		}
		b.WriteString("> " + line + "\n")
	}
	return b.String()
}

// escapeInline is escapeText on one line.
func escapeInline(s string) string { return escapeText(oneLine(s)) }

// escapeText neutralises Markdown and HTML in customer text: HTML's special characters become
// entities and Markdown's link, emphasis, code and heading characters are backslash-escaped.
// Control characters other than tab are dropped.
func escapeText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '&':
			b.WriteString("&amp;")
		case r == '<':
			b.WriteString("&lt;")
		case r == '>':
			b.WriteString("&gt;")
		case strings.ContainsRune("\\`*_[]()#|~!{}", r):
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\t':
			b.WriteRune(r)
		case unicode.IsControl(r), r == utf8.RuneError:
			// dropped
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// safeURL keeps http(s) URLs only and percent-encodes what would end a Markdown link target.
func safeURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return ""
	}
	r := strings.NewReplacer("(", "%28", ")", "%29", " ", "%20", "<", "%3C", ">", "%3E", "\"", "%22")
	return r.Replace(u.String())
}

// oneLine folds whitespace runs (newlines included) into single spaces and drops control characters.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return ' '
		}
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

func truncateRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:n-1])) + "…"
}

func humanSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d o", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %co", float64(n)/float64(div), "KMGTPE"[exp])
}
