package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/figurative/figsupport/internal/backoff"
	"github.com/figurative/figsupport/internal/health"
)

// SMTP authentication kinds (SMTP_AUTH).
const (
	AuthLogin   = "login"
	AuthPlain   = "plain"
	AuthXOAuth2 = "xoauth2"
	AuthNone    = "none"
)

// SMTP connection security (SMTP_TLS).
const (
	TLSStartTLS = "starttls" // plain connect, then STARTTLS, which is required
	TLSImplicit = "tls"      // TLS from the first byte (port 465)
	TLSNone     = "none"     // cleartext: only with SMTP_AUTH=none (a local relay)
)

// SMTPConfig is the SMTP transport's set-up.
type SMTPConfig struct {
	Host     string // SMTP_HOST
	Port     int    // SMTP_PORT, default 587 (465 with SMTP_TLS=tls)
	User     string // SMTP_USER (the mailbox's UPN for XOAUTH2)
	Password string // SMTP_PASSWORD (login, plain)
	Auth     string // SMTP_AUTH: login (default), plain, xoauth2, none
	TLS      string // SMTP_TLS: starttls (default), tls (default on port 465), none
	// HelloName is the EHLO name; default this machine's host name.
	HelloName   string
	DialTimeout time.Duration // default 10 s
	// Timeout bounds one whole session (connect to QUIT); default 60 s.
	Timeout time.Duration
	Retry   *backoff.Policy
	// TLSConfig, when set, is the base TLS configuration (tests use it to trust their CA).
	TLSConfig *tls.Config
}

// SMTP sends through an SMTP server with its own bounded dial and deadlines: every session ends
// by its deadline or its context, whichever comes first.
type SMTP struct {
	cfg    SMTPConfig
	addr   string
	tokens *tokens
	retry  backoff.Policy
	sleep  func(context.Context, time.Duration) error
}

// NewSMTP checks cfg (and the OAuth client for XOAUTH2). It does no I/O.
func NewSMTP(cfg SMTPConfig, oauth OAuthConfig) (*SMTP, error) {
	cfg.Host = strings.TrimSpace(cfg.Host)
	if cfg.Host == "" {
		return nil, errors.New("notify: SMTP_HOST is empty")
	}
	cfg.Auth = strings.ToLower(strings.TrimSpace(cfg.Auth))
	if cfg.Auth == "" {
		cfg.Auth = AuthLogin
	}
	cfg.TLS = strings.ToLower(strings.TrimSpace(cfg.TLS))
	if cfg.TLS == "" {
		cfg.TLS = TLSStartTLS
		if cfg.Port == 465 {
			cfg.TLS = TLSImplicit
		}
	}
	if cfg.Port == 0 {
		cfg.Port = 587
		if cfg.TLS == TLSImplicit {
			cfg.Port = 465
		}
	}
	switch cfg.TLS {
	case TLSStartTLS, TLSImplicit:
	case TLSNone:
		if cfg.Auth != AuthNone {
			return nil, fmt.Errorf("notify: SMTP_TLS=none with SMTP_AUTH=%s would send credentials in clear; use starttls or tls", cfg.Auth)
		}
	default:
		return nil, fmt.Errorf("notify: SMTP_TLS %q: want starttls, tls or none", cfg.TLS)
	}
	s := &SMTP{cfg: cfg, addr: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)), retry: policy(cfg.Retry), sleep: backoff.Sleep}
	switch cfg.Auth {
	case AuthLogin, AuthPlain:
		if cfg.User == "" || cfg.Password == "" {
			return nil, fmt.Errorf("notify: SMTP_AUTH=%s needs SMTP_USER and SMTP_PASSWORD", cfg.Auth)
		}
	case AuthXOAuth2:
		if cfg.User == "" {
			return nil, errors.New("notify: SMTP_AUTH=xoauth2 needs SMTP_USER (the mailbox's address)")
		}
		t, err := newTokens(oauth, ScopeSMTP)
		if err != nil {
			return nil, fmt.Errorf("notify: SMTP_AUTH=xoauth2: %w", err)
		}
		s.tokens = t
	case AuthNone:
	default:
		return nil, fmt.Errorf("notify: SMTP_AUTH %q: want login, plain, xoauth2 or none", cfg.Auth)
	}
	return s, nil
}

// Kind is "smtp".
func (s *SMTP) Kind() string { return KindSMTP }

// SMTPError is a failed SMTP session: the stage it failed at and the server's reply, if any.
type SMTPError struct {
	Stage string // connect, tls, ehlo, starttls, auth, mail, rcpt, data, quit
	Code  int    // the server's reply code; 0 when the failure was not a reply
	Msg   string
	Err   error
	// sent is true once the whole message went out with no answer: it may have been delivered.
	sent bool
	// permanent marks failures that no retry fixes (configuration, token, certificate).
	permanent bool
}

// Credentials reports the server refusing our authentication (535 and the other 5xx at AUTH):
// the CLI exits 4 on it.
func (e *SMTPError) Credentials() bool { return e.Stage == "auth" && e.Code >= 500 }

func (e *SMTPError) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("smtp %s: %d %s", e.Stage, e.Code, e.Msg)
	}
	return fmt.Sprintf("smtp %s: %v", e.Stage, e.Err)
}

func (e *SMTPError) Unwrap() error { return e.Err }

// Temporary reports whether trying again may succeed: 4xx replies and connection failures. After
// a lost answer (MaybeDelivered) that may deliver the message twice: SMTP has no idempotency, but
// both copies carry one Message-ID, which mail clients and figsupport recognise.
func (e *SMTPError) Temporary() bool {
	if e.Code != 0 {
		return e.Code >= 400 && e.Code < 500
	}
	var cert *tls.CertificateVerificationError
	if e.permanent || errors.As(e.Err, &cert) {
		return false
	}
	return !errors.Is(e.Err, errInsecure) && !errors.Is(e.Err, context.Canceled) && !errors.Is(e.Err, context.DeadlineExceeded)
}

// MaybeDelivered reports a failure after the whole message went out, before the server's answer:
// the server may have stored it.
func (e *SMTPError) MaybeDelivered() bool { return e.sent }

var errInsecure = errors.New("refusing to authenticate over an unencrypted connection")

func permanentErr(stage string, err error) *SMTPError {
	e := stageErr(stage, err)
	e.permanent = true
	return e
}

func stageErr(stage string, err error) *SMTPError {
	e := &SMTPError{Stage: stage, Err: err}
	var tp *textproto.Error
	if errors.As(err, &tp) {
		e.Code, e.Msg = tp.Code, tp.Msg
	}
	return e
}

// Send delivers m, retrying temporary failures, a lost answer included (see
// SMTPError.Temporary): the copy a retry may add carries the same Message-ID.
func (s *SMTP) Send(ctx context.Context, m *Message) error {
	attempts := max(1, s.retry.Attempts)
	for attempt := 1; ; attempt++ {
		err := s.session(ctx, true, func(c *smtp.Client) error { return deliver(c, m) })
		if err == nil {
			return nil
		}
		var se *SMTPError
		if !errors.As(err, &se) || !se.Temporary() || attempt >= attempts || ctx.Err() != nil {
			return s.explain(err)
		}
		if serr := s.sleep(ctx, s.retry.Delay(attempt, 0)); serr != nil {
			return s.explain(errors.Join(serr, err))
		}
	}
}

func deliver(c *smtp.Client, m *Message) error {
	if err := c.Mail(m.From); err != nil {
		return stageErr("mail from <"+m.From+">", err)
	}
	for _, to := range m.To {
		if err := c.Rcpt(to); err != nil {
			return stageErr("rcpt to <"+to+">", err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return stageErr("data", err)
	}
	if _, err := w.Write(m.Raw); err != nil {
		// The end-of-data mark goes out with Close: the server cannot have taken the message.
		return stageErr("data", err)
	}
	if err := w.Close(); err != nil {
		e := stageErr("data", err)
		// A reply (4xx/5xx) means the server did not take it; no reply means it may have.
		e.sent = e.Code == 0
		return e
	}
	return nil
}

// session dials, secures, greets and authenticates, runs fn, and quits. The connection is closed
// when ctx ends, and every read and write is bounded by the session deadline.
func (s *SMTP) session(ctx context.Context, auth bool, fn func(*smtp.Client) error) error {
	ctx, cancel := context.WithTimeout(ctx, orDefault(s.cfg.Timeout, 60*time.Second))
	defer cancel()
	d := net.Dialer{Timeout: orDefault(s.cfg.DialTimeout, 10*time.Second)}
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return stageErr("connect "+s.addr, ctxErr(ctx, err))
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	secure := false
	if s.cfg.TLS == TLSImplicit {
		tc := tls.Client(conn, s.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			return stageErr("tls", ctxErr(ctx, err))
		}
		conn, secure = tc, true
	}
	c, err := smtp.NewClient(conn, s.cfg.Host)
	if err != nil {
		return stageErr("greeting", ctxErr(ctx, err))
	}
	defer c.Close()
	if err := c.Hello(s.helloName()); err != nil {
		return stageErr("ehlo", ctxErr(ctx, err))
	}
	if s.cfg.TLS == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return stageErr("starttls", fmt.Errorf("%s does not offer STARTTLS: %w (set SMTP_TLS=tls for port 465)", s.addr, errInsecure))
		}
		if err := c.StartTLS(s.tlsConfig()); err != nil {
			return stageErr("starttls", ctxErr(ctx, err))
		}
		secure = true
	}
	if auth && s.cfg.Auth != AuthNone {
		if !secure {
			return stageErr("auth", errInsecure)
		}
		if err := s.authenticate(ctx, c); err != nil {
			return err
		}
	}
	if fn != nil {
		if err := fn(c); err != nil {
			var se *SMTPError
			if errors.As(err, &se) && se.Code == 0 {
				se.Err = ctxErr(ctx, se.Err)
			}
			return err
		}
	}
	if err := c.Quit(); err != nil && fn == nil {
		return stageErr("quit", ctxErr(ctx, err))
	}
	return nil
}

// ctxErr prefers the context's error to the closed-connection or timeout error it caused.
func ctxErr(ctx context.Context, err error) error {
	cerr := ctx.Err()
	if cerr == nil {
		// The connection's deadline is the context's: a timeout at it is the context's deadline,
		// though the context's own timer may not have fired yet.
		var ne net.Error
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) && errors.As(err, &ne) && ne.Timeout() {
			cerr = context.DeadlineExceeded
		}
	}
	if cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%w (%v)", cerr, err)
	}
	return err
}

func (s *SMTP) authenticate(ctx context.Context, c *smtp.Client) error {
	mech := strings.ToUpper(s.cfg.Auth)
	ok, params := c.Extension("AUTH")
	if !ok {
		return permanentErr("auth", fmt.Errorf("%s offers no AUTH after TLS; set SMTP_AUTH=none if it is an open relay for this host", s.addr))
	}
	if !hasWord(params, mech) {
		hint := ""
		if hasWord(params, "LOGIN") && hasWord(params, "XOAUTH2") {
			hint = " (Office 365: use SMTP_AUTH=login or xoauth2)"
		}
		return permanentErr("auth", fmt.Errorf("%s offers AUTH %s, not %s%s", s.addr, params, mech, hint))
	}
	var a smtp.Auth
	switch s.cfg.Auth {
	case AuthLogin:
		a = &loginAuth{user: s.cfg.User, pass: s.cfg.Password}
	case AuthPlain:
		a = &plainAuth{user: s.cfg.User, pass: s.cfg.Password}
	case AuthXOAuth2:
		tok, err := s.tokens.Token(ctx)
		if err != nil {
			// The token client has its own timeout; Entra's refusals are configuration errors.
			return permanentErr("auth", err)
		}
		a = &xoauth2Auth{user: s.cfg.User, token: tok}
	}
	if err := c.Auth(a); err != nil {
		e := stageErr("auth", ctxErr(ctx, err))
		if e.Code == 535 {
			e.Msg += " — check SMTP_USER and its credentials" + authHint(s.cfg.Auth)
		}
		return e
	}
	return nil
}

func authHint(kind string) string {
	switch kind {
	case AuthXOAuth2:
		return " (the app needs SMTP.SendAsApp, a service principal in Exchange and FullAccess on the mailbox)"
	case AuthLogin, AuthPlain:
		return " (Office 365 also needs SMTP AUTH enabled on the mailbox)"
	}
	return ""
}

func hasWord(list, w string) bool {
	for f := range strings.FieldsSeq(list) {
		if strings.EqualFold(f, w) {
			return true
		}
	}
	return false
}

func (s *SMTP) tlsConfig() *tls.Config {
	var c *tls.Config
	if s.cfg.TLSConfig != nil {
		c = s.cfg.TLSConfig.Clone()
	} else {
		c = &tls.Config{}
	}
	if c.ServerName == "" {
		c.ServerName = s.cfg.Host
	}
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	return c
}

func (s *SMTP) helloName() string {
	if s.cfg.HelloName != "" {
		return s.cfg.HelloName
	}
	if h, err := os.Hostname(); err == nil && h != "" && !strings.ContainsAny(h, " \r\n") {
		return h
	}
	return "localhost"
}

// explain adds the server address; the error never carries a credential (the SASL exchange is
// not part of any message).
// explain adds what the error alone does not say: the server, and for a refused login the
// mechanism tried.
func (s *SMTP) explain(err error) error {
	var se *SMTPError
	if errors.As(err, &se) && se.Stage == "auth" {
		return fmt.Errorf("smtp %s, SMTP_AUTH=%s: %w", s.addr, s.cfg.Auth, err)
	}
	if errors.As(err, &se) && strings.HasPrefix(se.Stage, "connect") {
		return err // the connect stage names the address
	}
	return fmt.Errorf("smtp %s: %w", s.addr, err)
}

// Check connects, says EHLO, starts TLS and authenticates, without sending anything.
func (s *SMTP) Check(ctx context.Context) []health.Check {
	c := health.Check{Service: KindSMTP, Name: "handshake and auth"}
	if err := s.session(ctx, true, nil); err != nil {
		c.Status, c.Detail = health.Fail, s.explain(err).Error()
		return []health.Check{c}
	}
	how := "STARTTLS"
	if s.cfg.TLS == TLSImplicit {
		how = "TLS"
	} else if s.cfg.TLS == TLSNone {
		how = "no TLS"
	}
	c.Status = health.OK
	c.Detail = fmt.Sprintf("%s: connected with %s, AUTH %s accepted for %s", s.addr, how, strings.ToUpper(s.cfg.Auth), s.cfg.User)
	if s.cfg.Auth == AuthNone {
		c.Detail = fmt.Sprintf("%s: connected with %s, no authentication", s.addr, how)
	}
	return []health.Check{c}
}

// loginAuth is SASL LOGIN (what Office 365 offers besides XOAUTH2): the server prompts for the
// user name, then the password.
type loginAuth struct {
	user, pass string
	step       int
}

func (a *loginAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS {
		return "", nil, errInsecure
	}
	a.step = 0
	return "LOGIN", nil, nil
}

func (a *loginAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	prompt := strings.ToLower(string(fromServer))
	a.step++
	switch {
	case strings.Contains(prompt, "username"), strings.Contains(prompt, "user name"):
		return []byte(a.user), nil
	case strings.Contains(prompt, "password"):
		return []byte(a.pass), nil
	case a.step == 1:
		return []byte(a.user), nil
	case a.step == 2:
		return []byte(a.pass), nil
	}
	return nil, fmt.Errorf("unexpected LOGIN challenge %q", fromServer)
}

// plainAuth is SASL PLAIN, refused without TLS even to localhost (net/smtp's allows that).
type plainAuth struct{ user, pass string }

func (a *plainAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS {
		return "", nil, errInsecure
	}
	return "PLAIN", []byte("\x00" + a.user + "\x00" + a.pass), nil
}

func (a *plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("unexpected PLAIN challenge")
	}
	return nil, nil
}

// xoauth2Auth is Microsoft's and Google's XOAUTH2: one initial response
// "user=<upn>\x01auth=Bearer <token>\x01\x01". On failure the server sends a JSON challenge that
// is answered with an empty line, after which it gives its final error.
type xoauth2Auth struct{ user, token string }

func (a *xoauth2Auth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS {
		return "", nil, errInsecure
	}
	return "XOAUTH2", []byte("user=" + a.user + "\x01auth=Bearer " + a.token + "\x01\x01"), nil
}

func (a *xoauth2Auth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return []byte{}, nil
	}
	return nil, nil
}
