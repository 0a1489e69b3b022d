package hubspot

import (
	"html"
	"strconv"
	"strings"
	"unicode/utf16"
)

// MaxNoteChars is HubSpot's limit on hs_note_body, in characters as HubSpot (Java) counts them:
// UTF-16 code units.
const MaxNoteChars = 65536

// NoteBody renders a note as HTML: the title in bold, the text with its line breaks, then the file
// links. Every piece of customer text is escaped. When the whole exceeds limit characters the text
// is cut between two escaped characters (never inside an entity or a tag) and a marker says so;
// file links are dropped from the end only if the title and links alone do not fit.
func NoteBody(title, text string, urls []string, limit int) string {
	var head string
	if t := strings.TrimSpace(title); t != "" {
		head = "<p><strong>" + html.EscapeString(t) + "</strong></p>"
	}
	links := make([]string, 0, len(urls))
	for _, u := range urls {
		if u = strings.TrimSpace(u); u != "" {
			e := html.EscapeString(u)
			links = append(links, `<li><a href="`+e+`">`+e+`</a></li>`)
		}
	}
	files := func(ls []string) string {
		if len(ls) == 0 {
			return ""
		}
		return "<p>Fichiers :</p><ul>" + strings.Join(ls, "") + "</ul>"
	}
	text = strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\r", "\n")
	full := escapeText(text)
	whole := func(body string) string {
		if body == "" {
			return head + files(links)
		}
		return head + "<p>" + body + "</p>" + files(links)
	}
	if out := whole(full); units(out) <= limit {
		return out
	}
	// Cut the text to what fits beside the title, links and marker.
	omitted := func(n int) string {
		return "<p><em>[… message tronqué : " + strconv.Itoa(n) + " caractères omis, limite HubSpot de " + strconv.Itoa(limit) + "]</em></p>"
	}
	total := len([]rune(text))
	marker := omitted(total) // the longest the marker can be
	for units(head+"<p></p>"+files(links)+marker) > limit && len(links) > 0 {
		links = links[:len(links)-1]
	}
	budget := limit - units(head+"<p></p>"+files(links)+marker)
	var b strings.Builder
	used, kept := 0, 0
	for _, r := range text {
		piece := escapeText(string(r))
		n := units(piece)
		if used+n > budget {
			break
		}
		b.WriteString(piece)
		used += n
		kept++
	}
	out := head
	if b.Len() > 0 {
		out += "<p>" + b.String() + "</p>"
	}
	out += omitted(total-kept) + files(links)
	if units(out) > limit { // title alone too long: keep what fits of it, escaped text only
		return truncateUnits(html.EscapeString(title), limit)
	}
	return out
}

func escapeText(s string) string {
	return strings.ReplaceAll(html.EscapeString(s), "\n", "<br>")
}

// units counts UTF-16 code units.
func units(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// truncateUnits cuts escaped text to limit units without splitting an entity.
func truncateUnits(s string, limit int) string {
	used := 0
	for i, r := range s {
		if used+utf16.RuneLen(r) > limit {
			if amp := strings.LastIndexByte(s[:i], '&'); amp >= 0 && !strings.Contains(s[amp:i], ";") {
				return s[:amp]
			}
			return s[:i]
		}
		used += utf16.RuneLen(r)
	}
	return s
}
