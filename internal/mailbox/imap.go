package mailbox

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	// go-imap v2 is the maintained Go IMAP library (client and server): its client streams FETCH
	// literals, and its in-memory server runs the tests without a mail server.
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/figurative/figsupport/internal/health"
	"github.com/figurative/figsupport/internal/oauth"
)

// IMAP connection security (MAIL_IMAP_TLS), as SMTP_TLS for the notifier.
const (
	TLSImplicit = "tls"      // TLS from the first byte (port 993): the default
	TLSStartTLS = "starttls" // plain connect, then STARTTLS, which is required
	TLSNone     = "none"     // cleartext: only to a loopback address (tests, a local proxy)
)

// IMAP authentication (MAIL_IMAP_AUTH).
const (
	AuthLogin   = "login"   // LOGIN with MAIL_IMAP_USER and MAIL_IMAP_PASSWORD
	AuthXOAuth2 = "xoauth2" // AUTHENTICATE XOAUTH2 with a client-credentials token (Office 365)
)

// IMAPConfig is the IMAP source's set-up.
type IMAPConfig struct {
	Host     string // MAIL_IMAP_HOST (Office 365: outlook.office365.com)
	Port     int    // MAIL_IMAP_PORT; default 993 with TLS, 143 with STARTTLS or none
	TLS      string // MAIL_IMAP_TLS: tls (default), starttls, none (loopback only)
	User     string // MAIL_IMAP_USER (the mailbox's UPN for XOAUTH2)
	Password string // MAIL_IMAP_PASSWORD (login)
	Auth     string // MAIL_IMAP_AUTH: login (default) or xoauth2
	// DialTimeout bounds connecting and the TLS handshake; default 15 s. Each command's answer is
	// bounded by the client itself (30 s, 5 min while a message body streams).
	DialTimeout time.Duration
	// TLSConfig, when set, is the base TLS configuration (tests use it to trust their CA).
	TLSConfig *tls.Config
}

type imapSource struct {
	cfg       IMAPConfig
	addr      string
	folder    string
	processed string
	rejected  string
	tokens    *oauth.TokenSource
}

func newIMAP(c Config) (*imapSource, error) {
	cfg := c.IMAP
	cfg.Host = strings.TrimSpace(cfg.Host)
	if cfg.Host == "" {
		return nil, configErr("MAIL_IMAP_HOST", "empty")
	}
	cfg.TLS = strings.ToLower(strings.TrimSpace(cfg.TLS))
	if cfg.TLS == "" {
		cfg.TLS = TLSImplicit
	}
	cfg.Auth = strings.ToLower(strings.TrimSpace(cfg.Auth))
	if cfg.Auth == "" {
		cfg.Auth = AuthLogin
	}
	switch cfg.TLS {
	case TLSImplicit, TLSStartTLS:
	case TLSNone:
		if !isLoopback(cfg.Host) {
			return nil, configErr("MAIL_IMAP_TLS", "none to %s would send credentials in clear: it is accepted for a loopback address only; use tls or starttls", cfg.Host)
		}
	default:
		return nil, configErr("MAIL_IMAP_TLS", "want tls, starttls or none, got %q", cfg.TLS)
	}
	if cfg.Port == 0 {
		cfg.Port = 993
		if cfg.TLS != TLSImplicit {
			cfg.Port = 143
		}
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 15 * time.Second
	}
	if strings.TrimSpace(cfg.User) == "" {
		return nil, configErr("MAIL_IMAP_USER", "empty")
	}
	s := &imapSource{cfg: cfg, addr: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)),
		folder: c.Folder, processed: c.ProcessedFolder, rejected: c.RejectedFolder}
	switch cfg.Auth {
	case AuthLogin:
		if cfg.Password == "" {
			return nil, configErr("MAIL_IMAP_PASSWORD", "empty: MAIL_IMAP_AUTH=login needs it")
		}
	case AuthXOAuth2:
		t, err := oauth.New(c.OAuth, oauth.ScopeOutlook)
		if err != nil {
			return nil, configErr("OAUTH_CLIENT_ID", "MAIL_IMAP_AUTH=xoauth2 needs the app registration: %v", err)
		}
		s.tokens = t
	default:
		return nil, configErr("MAIL_IMAP_AUTH", "want login or xoauth2, got %q", cfg.Auth)
	}
	return s, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func (s *imapSource) kind() string { return SourceIMAP }
func (s *imapSource) name() string { return s.cfg.User + "@" + s.cfg.Host + "/" + s.folder }

func (s *imapSource) tlsConfig() *tls.Config {
	c := &tls.Config{}
	if s.cfg.TLSConfig != nil {
		c = s.cfg.TLSConfig.Clone()
	}
	if c.ServerName == "" {
		c.ServerName = s.cfg.Host
	}
	if c.MinVersion == 0 {
		c.MinVersion = tls.VersionTLS12
	}
	return c
}

// imapSession is one connection with the folder selected (or examined, read-only).
type imapSession struct {
	src  *imapSource
	c    *imapclient.Client
	sel  *imap.SelectData
	stop func() bool
}

// connect dials, secures, greets and logs in. The connection is closed when ctx ends, which ends
// any command waiting on it.
func (s *imapSource) connect(ctx context.Context) (*imapclient.Client, func() bool, error) {
	d := net.Dialer{Timeout: s.cfg.DialTimeout}
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, nil, fmt.Errorf("imap connect %s: %w", s.addr, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	fail := func(err error) (*imapclient.Client, func() bool, error) {
		stop()
		conn.Close()
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return nil, nil, err
	}
	opts := &imapclient.Options{TLSConfig: s.tlsConfig()}
	var c *imapclient.Client
	switch s.cfg.TLS {
	case TLSImplicit:
		hctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
		tc := tls.Client(conn, opts.TLSConfig)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			return fail(fmt.Errorf("imap tls %s: %w", s.addr, err))
		}
		c = imapclient.New(tc, opts)
	case TLSStartTLS:
		// NewStartTLS refuses a PREAUTH greeting and fails when the server refuses STARTTLS.
		if c, err = imapclient.NewStartTLS(conn, opts); err != nil {
			return fail(fmt.Errorf("imap starttls %s: %w (set MAIL_IMAP_TLS=tls for port 993)", s.addr, err))
		}
	default:
		c = imapclient.New(conn, opts)
	}
	if err := c.WaitGreeting(); err != nil {
		c.Close()
		return fail(fmt.Errorf("imap greeting from %s: %w", s.addr, err))
	}
	if c.State() == imap.ConnStateNotAuthenticated {
		if err := s.login(ctx, c); err != nil {
			c.Close()
			return fail(err)
		}
	}
	return c, stop, nil
}

func (s *imapSource) login(ctx context.Context, c *imapclient.Client) error {
	caps := c.Caps()
	switch s.cfg.Auth {
	case AuthXOAuth2:
		if !caps.Has(imap.AuthCap("XOAUTH2")) {
			return fmt.Errorf("imap %s does not offer AUTH=XOAUTH2: use MAIL_IMAP_AUTH=login", s.addr)
		}
		tok, err := s.tokens.Token(ctx)
		if err != nil {
			return fmt.Errorf("imap xoauth2: %w", err)
		}
		if err := c.Authenticate(&xoauth2Client{user: s.cfg.User, token: tok}); err != nil {
			return s.authErr("XOAUTH2", err)
		}
	default:
		if caps.Has(imap.CapLoginDisabled) {
			return fmt.Errorf("imap %s refuses LOGIN (LOGINDISABLED); Office 365 needs MAIL_IMAP_AUTH=xoauth2", s.addr)
		}
		if err := c.Login(s.cfg.User, s.cfg.Password).Wait(); err != nil {
			return s.authErr("LOGIN", err)
		}
	}
	return nil
}

// authErr tells a refusal (the server's NO or BAD: credentials) from a broken connection.
func (s *imapSource) authErr(mech string, err error) error {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return &AuthError{Server: s.addr, User: s.cfg.User, Mech: mech, Err: err}
	}
	return fmt.Errorf("imap %s %s: %w", mech, s.addr, err)
}

func (s *imapSource) open(ctx context.Context, readOnly bool) (session, error) {
	c, stop, err := s.connect(ctx)
	if err != nil {
		return nil, err
	}
	sel, err := c.Select(s.folder, &imap.SelectOptions{ReadOnly: readOnly}).Wait()
	if err != nil {
		stop()
		c.Close()
		return nil, folderErr("MAIL_FOLDER", s.folder, err)
	}
	return &imapSession{src: s, c: c, sel: sel, stop: stop}, nil
}

// folderErr makes a server's refusal to open a folder a FolderError naming the key.
func folderErr(key, folder string, err error) error {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return &FolderError{Key: key, Folder: folder, Err: err}
	}
	return fmt.Errorf("imap folder %q: %w", folder, err)
}

func (s *imapSession) close() error {
	s.stop()
	// A polite LOGOUT, bounded: the connection is closed either way.
	done := make(chan struct{})
	go func() {
		_ = s.c.Logout().Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	return s.c.Close()
}

func (s *imapSession) generation() string { return strconv.FormatUint(uint64(s.sel.UIDValidity), 10) }

func (s *imapSession) unread() ([]imap.UID, error) {
	data, err := s.c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen, imap.FlagDeleted}}, nil).Wait()
	if err != nil {
		return nil, fmt.Errorf("imap search unseen: %w", err)
	}
	uids := data.AllUIDs()
	slices.Sort(uids)
	return uids, nil
}

func (s *imapSession) list(ctx context.Context, limit int, retry func(string) bool) ([]Message, bool, error) {
	uids, err := s.unread()
	if err != nil {
		return nil, false, err
	}
	ids := make([]string, len(uids))
	for i, u := range uids {
		ids[i] = strconv.FormatUint(uint64(u), 10)
	}
	picked, more := pick(ids, limit, retry)
	if len(picked) == 0 {
		return nil, more, nil
	}
	var set imap.UIDSet
	for _, id := range picked {
		set.AddNum(parseUID(id))
	}
	bufs, err := s.c.Fetch(set, &imap.FetchOptions{UID: true, Envelope: true, RFC822Size: true}).Collect()
	if err != nil {
		return nil, false, fmt.Errorf("imap fetch envelopes: %w", err)
	}
	byID := map[string]Message{}
	for _, b := range bufs {
		id := strconv.FormatUint(uint64(b.UID), 10)
		m := Message{ID: id, Size: b.RFC822Size}
		if e := b.Envelope; e != nil {
			m.MessageID, m.Subject, m.Date = e.MessageID, e.Subject, e.Date
			if len(e.From) > 0 {
				m.From = e.From[0].Addr()
			}
		}
		byID[id] = m
	}
	var out []Message
	for _, id := range picked {
		if m, ok := byID[id]; ok { // else expunged meanwhile
			out = append(out, m)
		}
	}
	return out, more, nil
}

func parseUID(id string) imap.UID {
	n, _ := strconv.ParseUint(id, 10, 32)
	return imap.UID(n)
}

// fetch streams BODY.PEEK[] (PEEK: reading does not set \Seen) straight from the connection to fn.
func (s *imapSession) fetch(ctx context.Context, id string, fn func(io.Reader) error) error {
	cmd := s.c.Fetch(imap.UIDSetNum(parseUID(id)), &imap.FetchOptions{
		UID: true, BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	})
	msg := cmd.Next()
	if msg == nil {
		if err := cmd.Close(); err != nil {
			return fmt.Errorf("imap fetch %s: %w", id, err)
		}
		return errGone
	}
	var ferr error
	found := false
	for item := msg.Next(); item != nil; item = msg.Next() {
		bs, ok := item.(imapclient.FetchItemDataBodySection)
		if !ok || found {
			continue
		}
		found = true
		var r io.Reader = strings.NewReader("")
		if bs.Literal != nil {
			r = bs.Literal
		}
		ferr = fn(r)
		// What fn left unread is discarded by msg.Next, streaming.
	}
	cerr := cmd.Close()
	switch {
	case ferr != nil:
		return ferr
	case !found && cerr == nil:
		return fmt.Errorf("imap fetch %s: the server sent no body", id)
	case cerr != nil:
		return fmt.Errorf("imap fetch %s: %w", id, cerr)
	}
	return nil
}

func (s *imapSession) done(ctx context.Context, id string) (string, error) {
	if s.src.processed != "" {
		return "moved to " + s.src.processed, s.move(id, s.src.processed, "MAIL_PROCESSED_FOLDER")
	}
	return "seen", s.store(id, imap.FlagSeen)
}

func (s *imapSession) reject(ctx context.Context, id string) (string, error) {
	if s.src.rejected != "" {
		return "moved to " + s.src.rejected, s.move(id, s.src.rejected, "MAIL_REJECTED_FOLDER")
	}
	return "flagged", s.store(id, imap.FlagSeen, imap.FlagFlagged)
}

func (s *imapSession) store(id string, flags ...imap.Flag) error {
	err := s.c.Store(imap.UIDSetNum(parseUID(id)), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: flags}, nil).Close()
	if err != nil {
		return fmt.Errorf("imap store %s %v: %w", id, flags, err)
	}
	return nil
}

// move uses MOVE where offered (IMAP4rev2 or RFC 6851). Elsewhere: COPY, then \Seen \Deleted, then
// UID EXPUNGE of that one message when UIDPLUS is offered; without UIDPLUS the message is left
// \Seen \Deleted, since a plain EXPUNGE would also remove messages someone else marked \Deleted.
func (s *imapSession) move(id, dest, key string) error {
	set := imap.UIDSetNum(parseUID(id))
	caps := s.c.Caps()
	if caps.Has(imap.CapMove) {
		if _, err := s.c.Move(set, dest).Wait(); err != nil {
			return folderErr(key, dest, err)
		}
		return nil
	}
	if _, err := s.c.Copy(set, dest).Wait(); err != nil {
		return folderErr(key, dest, err)
	}
	if err := s.store(id, imap.FlagSeen, imap.FlagDeleted); err != nil {
		return err
	}
	if caps.Has(imap.CapUIDPlus) {
		if err := s.c.UIDExpunge(set).Close(); err != nil {
			return fmt.Errorf("imap uid expunge %s: %w", id, err)
		}
	}
	return nil
}

// check logs in, examines the folder (read-only: nothing changes, not even \Recent) and looks for
// the move targets.
func (s *imapSource) check(ctx context.Context) []health.Check {
	login := health.Check{Service: "mailbox", Name: "imap login"}
	c, stop, err := s.connect(ctx)
	if err != nil {
		login.Status, login.Detail = health.Fail, err.Error()
		return []health.Check{login}
	}
	defer func() {
		stop()
		_ = c.Logout().Wait()
		c.Close()
	}()
	how := map[string]string{TLSImplicit: "TLS", TLSStartTLS: "STARTTLS", TLSNone: "no TLS (loopback)"}[s.cfg.TLS]
	login.Status = health.OK
	login.Detail = fmt.Sprintf("%s: %s, %s accepted for %s", s.addr, how, strings.ToUpper(s.cfg.Auth), s.cfg.User)
	out := []health.Check{login}

	folder := health.Check{Service: "mailbox", Name: "folder " + s.folder}
	sel, err := c.Select(s.folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		folder.Status, folder.Detail = health.Fail, folderErr("MAIL_FOLDER", s.folder, err).Error()
		return append(out, folder)
	}
	ss := &imapSession{src: s, c: c, sel: sel}
	unread, err := ss.unread()
	if err != nil {
		folder.Status, folder.Detail = health.Fail, err.Error()
	} else {
		folder.Status = health.OK
		folder.Detail = fmt.Sprintf("%d message(s), %d unread (UIDVALIDITY %d)", sel.NumMessages, len(unread), sel.UIDValidity)
	}
	out = append(out, folder)
	for _, t := range []struct{ key, name string }{{"MAIL_PROCESSED_FOLDER", s.processed}, {"MAIL_REJECTED_FOLDER", s.rejected}} {
		if t.name == "" {
			continue
		}
		ck := health.Check{Service: "mailbox", Name: "folder " + t.name + " (" + t.key + ")"}
		list, err := c.List("", t.name, nil).Collect()
		switch {
		case err != nil:
			ck.Status, ck.Detail = health.Fail, err.Error()
		case len(list) == 0:
			ck.Status, ck.Detail = health.Fail, fmt.Sprintf("%s %q does not exist: create it, or leave %s empty", t.key, t.name, t.key)
		default:
			ck.Status, ck.Detail = health.OK, "exists"
			caps := c.Caps()
			switch {
			case caps.Has(imap.CapMove):
				ck.Detail += "; MOVE offered"
			case caps.Has(imap.CapUIDPlus):
				ck.Detail += "; no MOVE: COPY, \\Deleted and UID EXPUNGE instead"
			default:
				ck.Status = health.Warn
				ck.Detail += "; neither MOVE nor UIDPLUS: a moved message is copied and left \\Seen \\Deleted in " + s.folder
			}
		}
		out = append(out, ck)
	}
	return out
}

// xoauth2Client is SASL XOAUTH2 as Microsoft and Google document it: one initial response
// "user=<upn>\x01auth=Bearer <token>\x01\x01". go-sasl has no client for it. On failure the server
// sends a JSON challenge, answered with an empty response, after which it says NO.
type xoauth2Client struct{ user, token string }

func (a *xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", []byte("user=" + a.user + "\x01auth=Bearer " + a.token + "\x01\x01"), nil
}

func (a *xoauth2Client) Next([]byte) ([]byte, error) { return []byte{}, nil }
