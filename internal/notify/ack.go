package notify

import (
	_ "embed"
	"errors"
	"fmt"
	"net/mail"
	"os"
	"regexp"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode/utf8"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/text"
)

// The configuration keys of the acknowledgement, named by its errors.
const (
	KeyAck         = "FIGSUPPORT_ACK"
	KeyAckTemplate = "FIGSUPPORT_ACK_TEMPLATE"
	KeyAckFrom     = "FIGSUPPORT_ACK_FROM"
)

// ErrAckOff is returned by Acknowledge when acknowledgements are not configured.
var ErrAckOff = errors.New("notify: acknowledgements are off (" + KeyAck + ")")

// ConfigError is a set-up problem that one configuration key fixes: cmd/ reports it under Key.
type ConfigError struct {
	Key string
	Err error
}

func (e *ConfigError) Error() string { return "notify: " + e.Key + ": " + e.Err.Error() }

func (e *ConfigError) Unwrap() error { return e.Err }

// Temporary is false: trying again with the same configuration fails the same way.
func (e *ConfigError) Temporary() bool { return false }

// Acknowledgements are the customer acknowledgements' set-up; a Notifier without one sends none.
type Acknowledgements struct {
	From     string // sender address (display name allowed)
	Template *AckTemplate
}

//go:embed ack_fr.tmpl
var defaultAckTemplate string

// AckData is what an acknowledgement template reads.
type AckData struct {
	Name  string // the customer's name, on one line; may be empty
	Email string // the customer's address
	// Subject is the customer's subject on one line, may be empty; ReplySubject is "Re: " and the
	// subject without its own reply prefixes, empty when there is no subject.
	Subject, ReplySubject string
	TicketID              string
	TicketRef             string    // "[#1234]": what the subject must carry for the reply to thread
	ReceivedAt            time.Time // when the customer wrote, UTC
	Received              string    // the same in French: "5 janvier 2026 à 09:00 UTC"; empty when unknown
}

// AckTemplate is an acknowledgement's text: a Go text/template over AckData that may define a
// "subject" template.
type AckTemplate struct {
	tmpl   *texttemplate.Template
	source string // the file, for errors
}

// LoadAckTemplate reads the template at path; an empty path is the embedded French one. Errors
// are *ConfigError naming FIGSUPPORT_ACK_TEMPLATE.
func LoadAckTemplate(path string) (*AckTemplate, error) {
	if path == "" {
		return ParseAckTemplate("ack_fr.tmpl (embedded)", defaultAckTemplate)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, &ConfigError{Key: KeyAckTemplate, Err: err}
	}
	return ParseAckTemplate(path, string(b))
}

// sampleAck is what a template is tried on when it is loaded, so that a field or function it
// does not know fails at start instead of at the first new ticket.
var sampleAck = AckData{Name: "Jeanne Dupont", Email: "jeanne@example.com", Subject: "Chaise", ReplySubject: "Re: Chaise",
	TicketID: "1234", TicketRef: "[#1234]", ReceivedAt: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC), Received: "5 janvier 2026 à 09:00 UTC"}

// ParseAckTemplate parses and tries a template; source names it in errors.
func ParseAckTemplate(source, body string) (*AckTemplate, error) {
	// Named after its file, which text/template's errors then give with the line.
	t, err := texttemplate.New(source).Parse(body)
	if err != nil {
		return nil, &ConfigError{Key: KeyAckTemplate, Err: err}
	}
	at := &AckTemplate{tmpl: t, source: source}
	if _, _, err := at.render(sampleAck); err != nil {
		return nil, err
	}
	return at, nil
}

// render gives the subject (the reply to theirs when the template defines none) and the body.
func (t *AckTemplate) render(d AckData) (subject, body string, err error) {
	var b strings.Builder
	subject = d.ReplySubject
	if s := t.tmpl.Lookup("subject"); s != nil {
		if err := s.Execute(&b, d); err != nil {
			return "", "", &ConfigError{Key: KeyAckTemplate, Err: err}
		}
		subject = b.String()
		b.Reset()
	}
	if err := t.tmpl.Execute(&b, d); err != nil {
		return "", "", &ConfigError{Key: KeyAckTemplate, Err: err}
	}
	body = strings.TrimSpace(b.String())
	if body == "" {
		return "", "", &ConfigError{Key: KeyAckTemplate, Err: fmt.Errorf("%s: the body is empty", t.source)}
	}
	return subject, body + "\n", nil
}

// replyPrefix is a reply marker at the start of a subject, in the forms mail clients write.
var replyPrefix = regexp.MustCompile(`(?i)^\s*(re|aw|réf|ref)\s*(\[\d+\])?\s*:\s*`)

func replySubject(subject string) string {
	for {
		loc := replyPrefix.FindStringIndex(subject)
		if loc == nil {
			break
		}
		subject = subject[loc[1]:]
	}
	if subject = strings.TrimSpace(subject); subject == "" {
		return ""
	}
	return "Re: " + subject
}

var frenchMonths = [...]string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre",
	"octobre", "novembre", "décembre"}

func frenchDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.UTC()
	return fmt.Sprintf("%d %s %d à %s UTC", t.Day(), frenchMonths[t.Month()-1], t.Year(), t.Format("15:04"))
}

// ComposeAck builds the acknowledgement of a: the template's text, a subject that carries the
// ticket reference, our Message-ID (a.MessageID), In-Reply-To and References to the customer's
// message when given, and Auto-Submitted: auto-replied, since it answers a message (RFC 3834).
func ComposeAck(a chain.Ack, t *AckTemplate, from string) (*Message, error) {
	to, err := mail.ParseAddress(a.To)
	if err != nil || !strings.Contains(to.Address, "@") {
		return nil, fmt.Errorf("notify: acknowledgement: recipient %q is not an e-mail address", a.To)
	}
	ref := text.OneLine(a.TicketRef)
	if ref == "" && a.TicketID != "" {
		ref = "[#" + text.OneLine(a.TicketID) + "]"
	}
	if ref == "" {
		return nil, errors.New("notify: acknowledgement: no ticket reference")
	}
	subject := text.OneLine(a.Subject)
	d := AckData{Name: text.OneLine(a.Name), Email: to.Address, Subject: subject, ReplySubject: replySubject(subject),
		TicketID: text.OneLine(a.TicketID), TicketRef: ref, Received: frenchDate(a.ReceivedAt)}
	if !a.ReceivedAt.IsZero() {
		d.ReceivedAt = a.ReceivedAt.UTC()
	}
	subj, body, err := t.render(d)
	if err != nil {
		return nil, err
	}
	html, err := textAsHTML(body)
	if err != nil {
		return nil, err
	}
	return build(draft{subject: withRef(text.OneLine(subj), ref), text: body, html: html, from: from, to: []string{to.Address},
		messageID: a.MessageID, inReplyTo: a.InReplyTo, auto: AutoReplied})
}

// withRef is the subject, at most 250 characters, with the ticket reference kept whole.
func withRef(subject, ref string) string {
	if strings.Contains(subject, ref) && utf8.RuneCountInString(subject) <= 250 {
		return subject
	}
	base := strings.TrimSpace(strings.ReplaceAll(subject, ref, ""))
	if base == "" {
		return ref
	}
	return text.Truncate(base, 250-utf8.RuneCountInString(ref)-1) + " " + ref
}
