package notify

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"github.com/figurative/figsupport/internal/text"
	"html/template"
	"net/url"
	"strings"
	"sync"
	texttemplate "text/template"
	"unicode"

	"github.com/jordan-wright/email"

	"github.com/figurative/figsupport/internal/chain"
)

// Subject is "[MODELISATION] Jean Dupont <client@x> — ticket #123 (nouveau)": what, who, which
// ticket, and whether it is a new conversation or a follow-up.
func Subject(n chain.Notification) string {
	var b strings.Builder
	if n.Classification != "" {
		b.WriteString("[" + text.OneLine(n.Classification) + "] ")
	}
	b.WriteString(customer(n))
	if n.TicketID != "" {
		state := "suivi"
		if n.IsNewTicket {
			state = "nouveau"
		}
		fmt.Fprintf(&b, " — ticket #%s (%s)", text.OneLine(n.TicketID), state)
	} else if s := text.OneLine(n.Subject); s != "" {
		b.WriteString(" — " + s)
	}
	return text.Truncate(strings.TrimSpace(b.String()), 250)
}

func customer(n chain.Notification) string {
	name, addr := text.OneLine(n.CustomerName), text.OneLine(n.CustomerEmail)
	switch {
	case name != "" && addr != "":
		return name + " <" + addr + ">"
	case name != "":
		return name
	}
	return addr
}

type fileView struct {
	Name, URL, Size string
}

type view struct {
	Heading    string
	Customer   string
	Email      string
	Received   string
	Subject    string
	Body       string
	TicketID   string
	TicketURL  string
	SubtaskID  string
	SubtaskURL string
	Files      []fileView
	RequestKey string
}

func viewOf(n chain.Notification) view {
	v := view{
		Customer: customer(n), Email: text.OneLine(n.CustomerEmail), Subject: text.OneLine(n.Subject),
		Body: cleanText(n.Body), TicketID: text.OneLine(n.TicketID),
		TicketURL: webURL(n.TicketURL), SubtaskID: text.OneLine(n.SubtaskID), SubtaskURL: webURL(n.SubtaskURL),
		RequestKey: text.OneLine(n.RequestKey),
	}
	class := text.OneLine(n.Classification)
	if class == "" {
		class = "support"
	}
	switch {
	case n.TicketID != "" && n.IsNewTicket:
		v.Heading = fmt.Sprintf("Nouvelle demande %s — ticket #%s créé", class, v.TicketID)
	case n.TicketID != "":
		v.Heading = fmt.Sprintf("Nouveau message %s sur le ticket #%s", class, v.TicketID)
	default:
		v.Heading = "Nouvelle demande " + class
	}
	if !n.ReceivedAt.IsZero() {
		v.Received = n.ReceivedAt.UTC().Format("2006-01-02 15:04 UTC")
	}
	for _, f := range n.Files {
		fv := fileView{Name: text.OneLine(f.Name), URL: webURL(f.URL)}
		if f.Size > 0 {
			fv.Size = text.HumanSize(f.Size)
		}
		v.Files = append(v.Files, fv)
	}
	return v
}

var textTmpl = strings.TrimLeft(`
{{.Heading}}

Client : {{.Customer}}
{{- if .Received}}
Reçu le : {{.Received}}{{end}}
{{- if .Subject}}
Objet : {{.Subject}}{{end}}
{{if .TicketURL}}
Ticket HubSpot : {{.TicketURL}}{{end}}
{{- if .SubtaskURL}}
Sous-tâche ClickUp : {{.SubtaskURL}}{{end}}

Message :
{{.Body}}
{{if .Files}}
Fichiers ({{len .Files}}) :
{{range .Files}}- {{.Name}}{{if .Size}} ({{.Size}}){{end}}{{if .URL}} : {{.URL}}{{end}}
{{end}}{{end}}{{if .RequestKey}}
Référence : {{.RequestKey}}
{{end}}`, "\n")

// The HTML part goes through html/template: customer text is escaped and only http(s) URLs
// survive in href attributes.
var htmlTmpl = template.Must(template.New("html").Parse(`<!DOCTYPE html>
<html><body style="font-family:sans-serif">
<h2>{{.Heading}}</h2>
<table>
<tr><td><b>Client</b></td><td>{{.Customer}}</td></tr>
{{- if .Received}}
<tr><td><b>Reçu le</b></td><td>{{.Received}}</td></tr>{{end}}
{{- if .Subject}}
<tr><td><b>Objet</b></td><td>{{.Subject}}</td></tr>{{end}}
{{- if .TicketURL}}
<tr><td><b>Ticket HubSpot</b></td><td><a href="{{.TicketURL}}">#{{.TicketID}}</a></td></tr>{{end}}
{{- if .SubtaskURL}}
<tr><td><b>Sous-tâche ClickUp</b></td><td><a href="{{.SubtaskURL}}">{{if .SubtaskID}}{{.SubtaskID}}{{else}}{{.SubtaskURL}}{{end}}</a></td></tr>{{end}}
</table>
<h3>Message</h3>
<blockquote style="white-space:pre-wrap">{{.Body}}</blockquote>
{{- if .Files}}
<h3>Fichiers ({{len .Files}})</h3>
<ul>
{{- range .Files}}
<li>{{if .URL}}<a href="{{.URL}}">{{.Name}}</a>{{else}}{{.Name}}{{end}}{{if .Size}} ({{.Size}}){{end}}</li>
{{- end}}
</ul>{{end}}
{{- if .RequestKey}}
<p style="color:#888">Référence : {{.RequestKey}}</p>{{end}}
</body></html>
`))

// Compose builds the admin e-mail about n: plain text and HTML, subject with classification,
// customer and ticket, links to the ticket, the subtask and the files.
func Compose(n chain.Notification, from string, to []string) (*Message, error) {
	v := viewOf(n)
	var text strings.Builder
	if err := renderText(&text, v); err != nil {
		return nil, err
	}
	var html bytes.Buffer
	if err := htmlTmpl.Execute(&html, v); err != nil {
		return nil, fmt.Errorf("notify: render html: %w", err)
	}
	return build(Subject(n), text.String(), html.String(), from, to, n.RequestKey)
}

// ComposeManual builds a hand-written message: the body is plain text, also shown escaped in HTML.
func ComposeManual(subject, body, from string, to []string) (*Message, error) {
	subject = text.OneLine(subject)
	if subject == "" {
		return nil, fmt.Errorf("notify: empty subject")
	}
	var html bytes.Buffer
	err := template.Must(template.New("m").Parse(`<!DOCTYPE html>
<html><body style="font-family:sans-serif"><div style="white-space:pre-wrap">{{.}}</div></body></html>
`)).Execute(&html, body)
	if err != nil {
		return nil, fmt.Errorf("notify: render html: %w", err)
	}
	return build(text.Truncate(subject, 250), body, html.String(), from, to, "")
}

func build(subject, text, html, from string, to []string, key string) (*Message, error) {
	if len(to) == 0 {
		return nil, fmt.Errorf("notify: no recipient")
	}
	e := email.NewEmail()
	e.From = from
	e.To = append([]string(nil), to...)
	e.Subject = subject
	e.Text = []byte(text)
	e.HTML = []byte(html)
	if key != "" {
		e.Headers.Set("X-Figsupport-Request", key)
	}
	e.Headers.Set("Auto-Submitted", "auto-generated")
	raw, err := e.Bytes()
	if err != nil {
		return nil, fmt.Errorf("notify: compose: %w", err)
	}
	rcpts := make([]string, len(to))
	for i, a := range to {
		rcpts[i] = bareAddress(a)
	}
	id := key
	if id == "" {
		var b [6]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	return &Message{From: bareAddress(from), To: rcpts, Subject: subject, Text: text, HTML: html, Raw: raw, ID: id}, nil
}

var textTemplate = sync.OnceValue(func() *texttemplate.Template {
	return texttemplate.Must(texttemplate.New("text").Parse(textTmpl))
})

func renderText(w *strings.Builder, v view) error {
	if err := textTemplate().Execute(w, v); err != nil {
		return fmt.Errorf("notify: render text: %w", err)
	}
	return nil
}

// webURL keeps http(s) URLs only: anything else is not shown as a link.
func webURL(raw string) string {
	raw = strings.TrimSpace(raw)
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(raw, " \r\n") {
		return ""
	}
	return raw
}

// cleanText normalises line ends and drops control characters other than newline and tab.
func cleanText(s string) string {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) && r != '\n' && r != '\t' {
			return -1
		}
		return r
	}, s))
}
