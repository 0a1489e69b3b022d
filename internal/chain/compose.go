package chain

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/figurative/figsupport/internal/text"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/figurative/figsupport/internal/payload"
)

// Everything here is the same whatever the tracker or CRM: ClickUp and the embedded tracker both
// store Markdown, and the customer's text is never trusted to be plain.

// maxNameRunes keeps subtask names readable in the trackers' list views.
const maxNameRunes = 180

// timeLayout matches the admin e-mail's, so a request is found by the same date everywhere.
const timeLayout = "2006-01-02 15:04 UTC"

// customer is "Jean Dupont <jean@example.com>", or whichever of the two is known, on one line.
func customer(r *payload.Request) string {
	name, email := text.OneLine(r.UserName), text.OneLine(r.UserEmail)
	switch {
	case name != "" && email != "":
		return name + " <" + email + ">"
	case name != "":
		return name
	}
	return email
}

// ticketContent is the ticket's plain-text description: the CRM escapes it, if it stores HTML.
// follows is the closed ticket this one continues, named first so the agent sees the history.
func ticketContent(r *payload.Request, files []payload.StoredFile, follows string) string {
	var b strings.Builder
	if follows != "" {
		fmt.Fprintf(&b, "Suite du ticket #%s (fermé).\n\n", follows)
	}
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

// SubtaskName is "[MODELISATION] Jean Dupont — subject" on one line, bounded for list views. The
// e-mail stands in for a missing name; the address would only lengthen the name otherwise.
func SubtaskName(classification string, r *payload.Request) string {
	var b strings.Builder
	if c := text.OneLine(classification); c != "" {
		b.WriteString("[" + strings.ToUpper(c) + "] ")
	}
	who := text.OneLine(r.UserName)
	if who == "" {
		who = text.OneLine(r.UserEmail)
	}
	b.WriteString(who)
	if s := text.OneLine(r.Subject()); s != "" {
		if who != "" {
			b.WriteString(" — ")
		}
		b.WriteString(s)
	}
	return text.Truncate(strings.TrimSpace(b.String()), maxNameRunes)
}

// SubtaskMarkdown is a new subtask's description: who wrote, when, the ticket, the customer's text
// quoted and escaped, and the files.
func SubtaskMarkdown(r *payload.Request, ticketID, ticketURL string, files []payload.StoredFile) string {
	var b strings.Builder
	fmt.Fprintf(&b, "- **Client :** %s\n", escapeInline(customer(r)))
	if !r.ReceivedAt.IsZero() {
		fmt.Fprintf(&b, "- **Reçu le :** %s\n", r.ReceivedAt.UTC().Format(timeLayout))
	}
	writeSource(&b, r)
	switch id := escapeInline(ticketID); {
	case id != "" && safeURL(ticketURL) != "":
		fmt.Fprintf(&b, "- **Ticket :** [#%s](%s)\n", id, safeURL(ticketURL))
	case id != "":
		fmt.Fprintf(&b, "- **Ticket :** #%s\n", id)
	}
	writeBody(&b, r, files)
	return b.String()
}

// FollowUpMarkdown is what a follow-up appends to the subtask. It starts with a heading rather than
// a rule: ClickUp's AppendSubtask already puts a rule between the old text and the new.
func FollowUpMarkdown(r *payload.Request, files []payload.StoredFile) string {
	var b strings.Builder
	b.WriteString("### Nouveau message")
	if !r.ReceivedAt.IsZero() {
		b.WriteString(" du " + r.ReceivedAt.UTC().Format(timeLayout))
	}
	b.WriteString("\n\n")
	fmt.Fprintf(&b, "- **Client :** %s\n", escapeInline(customer(r)))
	writeSource(&b, r)
	writeBody(&b, r, files)
	return b.String()
}

func writeSource(b *strings.Builder, r *payload.Request) {
	if s := escapeInline(r.Source); s != "" {
		fmt.Fprintf(b, "- **Formulaire :** %s\n", s)
	}
}

// writeBody writes the subject item, then the quoted message and the files. The subject is a list
// item so that the quote holds the description alone, as the customer typed it; a subject without
// a description is the whole message, so only text with neither is marked empty.
func writeBody(b *strings.Builder, r *payload.Request, files []payload.StoredFile) {
	if s := escapeInline(r.Objet); s != "" {
		fmt.Fprintf(b, "- **Objet :** %s\n", s)
	}
	b.WriteString("\n")
	switch q := quote(r.Description); {
	case q != "":
		b.WriteString(q)
	case text.OneLine(r.Objet) == "":
		b.WriteString("*(message vide)*\n")
	}
	writeFiles(b, files)
}

func writeFiles(b *strings.Builder, files []payload.StoredFile) {
	if len(files) == 0 {
		return
	}
	fmt.Fprintf(b, "\n**Fichiers (%d) :**\n\n", len(files))
	for _, f := range files {
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
			fmt.Fprintf(b, " (%s)", text.HumanSize(f.Size))
		}
		b.WriteString("\n")
	}
}

// quote renders customer text as a Markdown block quote that it cannot leave: every line, blank
// ones included, starts with ">", and whatever could become a link, an image, HTML or a heading is
// escaped. Blank text quotes to "".
func quote(text string) string {
	text = strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\r", "\n")
	text = strings.Trim(text, "\n")
	if strings.TrimSpace(text) == "" {
		return ""
	}
	var b strings.Builder
	for line := range strings.SplitSeq(text, "\n") {
		line = strings.TrimRightFunc(escapeText(line), unicode.IsSpace)
		switch {
		case line == "":
			b.WriteString(">\n")
		case isUnderline(line):
			// "===" or "---" under a line would make it a heading.
			b.WriteString(`> \` + line + "\n")
		default:
			b.WriteString("> " + line + "\n")
		}
	}
	return b.String()
}

// isUnderline reports whether line is a run of '=' or of '-' (spaces allowed), a setext heading
// underline or a thematic break.
func isUnderline(line string) bool {
	s := strings.TrimSpace(line)
	if s == "" || (s[0] != '=' && s[0] != '-') {
		return false
	}
	return strings.Trim(s, string(s[0])+" \t") == ""
}

// escapeInline is escapeText on one line.
func escapeInline(s string) string { return escapeText(text.OneLine(s)) }

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

// linkReplacer percent-encodes what would end a Markdown link target or escape its closing
// parenthesis; url.URL.String leaves some of these alone in queries and fragments.
var linkReplacer = strings.NewReplacer("(", "%28", ")", "%29", " ", "%20", "<", "%3C", ">", "%3E",
	"\"", "%22", "\\", "%5C")

// safeURL returns raw fit for a Markdown link target, or "" when it should not be a link. Only
// the schemes the backends produce are kept: http(s) (HubSpot, ClickUp, R2, a public base),
// file (the local file store) and figsupport (the embedded CRM and tracker).
func safeURL(raw string) string {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || u.Opaque != "" {
		return ""
	}
	switch u.Scheme {
	case "http", "https", "figsupport":
		if u.Host == "" {
			return ""
		}
	case "file":
		if u.Path == "" {
			return ""
		}
	default:
		return ""
	}
	return linkReplacer.Replace(u.String())
}

// BlockMarker is the line that ends the block a request appends to a subtask: a digest of the
// request's key, so that a later run of the same request finds its block anywhere in the
// description and does not append it again. Any key makes a marker with no Markdown or SQL
// wildcard in it. Every tracker (ClickUp, the embedded one) marks its blocks with it.
func BlockMarker(ref string) string {
	sum := sha256.Sum256([]byte("figsupport-append\x00" + ref))
	return "`figsupport-ref: " + hex.EncodeToString(sum[:8]) + "`"
}

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
