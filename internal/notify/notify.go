// Package notify tells the admin about processed requests: it composes the e-mail (plain text and
// HTML) and hands it to a transport — SMTP (STARTTLS or TLS; LOGIN, PLAIN or XOAUTH2), Microsoft
// Graph sendMail, or the embedded outbox of .eml files.
package notify

import (
	"context"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/figurative/figsupport/internal/backoff"
	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/health"
)

// Transport kinds (NOTIFY_TRANSPORT).
const (
	KindOutbox = "outbox"
	KindSMTP   = "smtp"
	KindGraph  = "graph"
)

// Config is the whole notification set-up as plain values.
type Config struct {
	Transport string   // NOTIFY_TRANSPORT: outbox, smtp or graph; "" picks one (see Kind)
	To        []string // NOTIFICATION_EMAIL, already split; see ParseAddresses
	From      string   // SMTP_FROM; default SMTP_USER, then GRAPH_SENDER
	OutboxDir string   // where the outbox writes .eml files (the lead: <data dir>/outbox)
	SMTP      SMTPConfig
	OAuth     OAuthConfig
	Graph     GraphConfig
	Retry     *backoff.Policy // default backoff.Default
	Ack       AckConfig
}

// AckConfig is the customer acknowledgement's set-up: off unless Enabled.
type AckConfig struct {
	Enabled bool // FIGSUPPORT_ACK
	// Template is FIGSUPPORT_ACK_TEMPLATE: a Go text/template file; empty, the embedded French one.
	Template string
	From     string // FIGSUPPORT_ACK_FROM; default the notifier's sender
}

// Message is one composed e-mail: what the transports need, in the form each needs.
type Message struct {
	From    string   // bare address
	To      []string // bare addresses
	Subject string
	Text    string
	HTML    string
	Raw     []byte // the RFC 5322 message (SMTP, outbox, Graph's MIME form)
	ID      string // a short name for logs: the request's key when there is one
	// MessageID is the message's Message-ID without angle brackets: a repeat of the same
	// notification carries the same one, which the outbox and mail clients recognise.
	MessageID string
	// Headers are the fields Raw carries beyond From, To, Subject, Date and Message-ID
	// (Auto-Submitted, X-Auto-Response-Suppress, In-Reply-To, References, X-Figsupport-Request),
	// for a transport that does not send Raw as is.
	Headers map[string]string
}

// Transport delivers a composed message.
type Transport interface {
	Send(ctx context.Context, m *Message) error
	// Check verifies the transport without sending anything.
	Check(ctx context.Context) []health.Check
	Kind() string
}

// Notifier implements chain.Notifier, and chain.Acknowledger when Ack is set, over a Transport.
type Notifier struct {
	Transport Transport
	From      string
	To        []string
	Ack       *Acknowledgements // nil: no acknowledgements
}

var (
	_ chain.Notifier     = (*Notifier)(nil)
	_ chain.Acknowledger = (*Notifier)(nil)
)

// Kind is the transport cfg selects: the explicit NOTIFY_TRANSPORT, else smtp when SMTP_HOST is
// set, else graph when a Graph sender and an OAuth client are, else the outbox.
func Kind(cfg Config) string {
	if k := strings.ToLower(strings.TrimSpace(cfg.Transport)); k != "" {
		return k
	}
	switch {
	case cfg.SMTP.Host != "":
		return KindSMTP
	case cfg.Graph.Sender != "" && cfg.OAuth.ClientID != "":
		return KindGraph
	}
	return KindOutbox
}

// New builds the notifier cfg describes. It does no I/O.
func New(cfg Config) (*Notifier, error) {
	to, err := checkAddresses(cfg.To)
	if err != nil {
		return nil, err
	}
	from := firstNonEmpty(cfg.From, cfg.SMTP.User, cfg.Graph.Sender)
	kind := Kind(cfg)
	if kind == KindOutbox && from == "" {
		from = "figsupport@localhost"
	}
	if from == "" {
		return nil, errors.New("notify: no sender: set SMTP_FROM (or SMTP_USER, or GRAPH_SENDER for Graph)")
	}
	if _, err := mail.ParseAddress(from); err != nil {
		return nil, fmt.Errorf("notify: SMTP_FROM %q is not an e-mail address: %w", from, err)
	}
	if len(to) == 0 {
		return nil, errors.New("notify: NOTIFICATION_EMAIL is empty: no one to notify")
	}
	var t Transport
	switch kind {
	case KindOutbox:
		t, err = NewOutbox(cfg.OutboxDir)
	case KindSMTP:
		sc := cfg.SMTP
		if sc.Retry == nil {
			sc.Retry = cfg.Retry
		}
		t, err = NewSMTP(sc, cfg.OAuth)
	case KindGraph:
		gc := cfg.Graph
		if gc.Retry == nil {
			gc.Retry = cfg.Retry
		}
		t, err = NewGraph(gc, cfg.OAuth)
	default:
		return nil, fmt.Errorf("notify: NOTIFY_TRANSPORT %q: want outbox, smtp or graph", cfg.Transport)
	}
	if err != nil {
		return nil, err
	}
	n := &Notifier{Transport: t, From: from, To: to}
	if cfg.Ack.Enabled {
		if n.Ack, err = newAcknowledgements(cfg.Ack, from); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func newAcknowledgements(cfg AckConfig, from string) (*Acknowledgements, error) {
	tmpl, err := LoadAckTemplate(strings.TrimSpace(cfg.Template))
	if err != nil {
		return nil, err
	}
	if f := strings.TrimSpace(cfg.From); f != "" {
		if a, err := mail.ParseAddress(f); err != nil || !strings.Contains(a.Address, "@") {
			return nil, &ConfigError{Key: KeyAckFrom, Err: fmt.Errorf("%q is not an e-mail address", f)}
		}
		from = f
	}
	return &Acknowledgements{From: from, Template: tmpl}, nil
}

// Notify composes and sends the admin e-mail about one processed request.
func (n *Notifier) Notify(ctx context.Context, note chain.Notification) error {
	m, err := Compose(note, n.From, n.To)
	if err != nil {
		return err
	}
	// The caller names what failed (the chain's step, the command): the transport's error says how.
	return n.Transport.Send(ctx, m)
}

// AckEnabled reports whether Acknowledge sends anything: the chain is given the notifier as
// its Acknowledger only then.
func (n *Notifier) AckEnabled() bool { return n.Ack != nil }

// Acknowledge tells the customer their message opened a ticket (chain.Acknowledger): composed
// from the template, sent through the notifier's transport. ErrAckOff when not configured.
func (n *Notifier) Acknowledge(ctx context.Context, a chain.Ack) error {
	if n.Ack == nil {
		return ErrAckOff
	}
	m, err := ComposeAck(a, n.Ack.Template, n.Ack.From)
	if err != nil {
		return err
	}
	if err := n.Transport.Send(ctx, m); err != nil {
		return fmt.Errorf("acknowledgement to %s: %w", m.To[0], err)
	}
	return nil
}

// Send e-mails a message written by hand (the notify command).
func (n *Notifier) Send(ctx context.Context, subject, body string) error {
	m, err := ComposeManual(subject, body, n.From, n.To)
	if err != nil {
		return err
	}
	return n.Transport.Send(ctx, m)
}

// Kind is the transport in use.
func (n *Notifier) Kind() string { return n.Transport.Kind() }

// Check reports the recipients and the transport's own checks.
func (n *Notifier) Check(ctx context.Context) []health.Check {
	out := []health.Check{{Service: n.Kind(), Name: "recipients", Status: health.OK,
		Detail: fmt.Sprintf("from %s to %s", n.From, strings.Join(n.To, ", "))}}
	if n.Ack != nil {
		out = append(out, health.Check{Service: n.Kind(), Name: "acknowledgements", Status: health.OK,
			Detail: fmt.Sprintf("on: new tickets acknowledged from %s with %s", n.Ack.From, n.Ack.Template.source)})
	}
	return append(out, n.Transport.Check(ctx)...)
}

// ParseAddresses splits a NOTIFICATION_EMAIL value (addresses separated by commas or semicolons,
// with or without display names) and returns the bare addresses; every one must be valid.
func ParseAddresses(s string) ([]string, error) {
	var parts []string
	for p := range strings.FieldsFuncSeq(s, func(r rune) bool { return r == ',' || r == ';' }) {
		if p = strings.TrimSpace(p); p != "" {
			parts = append(parts, p)
		}
	}
	return checkAddresses(parts)
}

func checkAddresses(in []string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, s := range in {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		a, err := mail.ParseAddress(s)
		if err != nil || !strings.Contains(a.Address, "@") {
			return nil, fmt.Errorf("notify: NOTIFICATION_EMAIL: %q is not an e-mail address", s)
		}
		if k := strings.ToLower(a.Address); !seen[k] {
			seen[k] = true
			out = append(out, a.Address)
		}
	}
	return out, nil
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s = strings.TrimSpace(s); s != "" {
			return s
		}
	}
	return ""
}

func bareAddress(s string) string {
	if a, err := mail.ParseAddress(s); err == nil {
		return a.Address
	}
	return s
}

func policy(p *backoff.Policy) backoff.Policy {
	if p != nil {
		return *p
	}
	return backoff.Default
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}
