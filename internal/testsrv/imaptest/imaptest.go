// Package imaptest runs go-imap's in-memory IMAP server on loopback for tests, with TLS (implicit
// or STARTTLS), LOGIN and XOAUTH2, and the capabilities a test asks for (IMAP4rev2 with MOVE and
// UIDPLUS, or bare IMAP4rev1 without them); and gives tests an administrator's client (Admin) that
// works against any IMAP server, Dovecot included, to put messages in and look at their flags.
package imaptest

import (
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"

	"github.com/figurative/figsupport/internal/testsrv"
)

// Defaults of Options.
const (
	User     = "support@figurative.fr"
	Password = "s3cret-IMAP"
)

// Options shape the server.
type Options struct {
	User, Password string // default User, Password
	// Caps are the server's capabilities; default IMAP4rev2 (MOVE and UIDPLUS included).
	Caps imap.CapSet
	// Implicit makes the listener speak TLS from the first byte; else it offers STARTTLS and
	// refuses to authenticate before it.
	Implicit bool
	// Cleartext serves without TLS and lets LOGIN through (the client's loopback-only mode).
	Cleartext bool
	// Token, when set, offers AUTH=XOAUTH2 and accepts User with a token it approves.
	Token func(token string) bool
	// Folders are created besides INBOX.
	Folders []string
}

// Server is a running in-memory IMAP server.
type Server struct {
	Host      string
	Port      int
	User      string
	Password  string
	Implicit  bool
	Cleartext bool
	Cert      *testsrv.Cert // Cert.Client trusts the server

	mem  *imapmemserver.User
	mu   sync.Mutex
	sasl []string // XOAUTH2 initial responses received
}

// Start runs the server until the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.User == "" {
		o.User, o.Password = User, Password
	}
	if o.Caps == nil {
		o.Caps = imap.CapSet{imap.CapIMAP4rev2: {}}
	}
	s := &Server{User: o.User, Password: o.Password, Implicit: o.Implicit, Cleartext: o.Cleartext, Cert: testsrv.NewCert(t, t.TempDir())}
	s.mem = imapmemserver.NewUser(o.User, o.Password)
	for _, f := range append([]string{"INBOX"}, o.Folders...) {
		if err := s.mem.Create(f, nil); err != nil {
			t.Fatal(err)
		}
	}
	opts := &imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &session{srv: s, token: o.Token}, nil, nil
		},
		Caps:         o.Caps,
		InsecureAuth: o.Cleartext || o.Implicit, // with Implicit the connection is TLS already
		Logger:       discard{},
	}
	if !o.Cleartext && !o.Implicit {
		opts.TLSConfig = &tls.Config{Certificates: []tls.Certificate{s.Cert.TLS}}
	}
	srv := imapserver.New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if o.Implicit {
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{s.Cert.TLS}})
	}
	host, port, _ := net.SplitHostPort(ln.Addr().String())
	s.Host = host
	s.Port, _ = strconv.Atoi(port)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return s
}

// Addr is host:port.
func (s *Server) Addr() string { return net.JoinHostPort(s.Host, strconv.Itoa(s.Port)) }

// XOAuth2 lists the XOAUTH2 initial responses the server received.
func (s *Server) XOAuth2() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.sasl...)
}

// Admin logs in as the server's user (TLS verified with Cert.Client).
func (s *Server) Admin(t testing.TB) *Admin {
	if s.Cleartext {
		c, err := imapclient.DialInsecure(s.Addr(), nil)
		if err != nil {
			t.Fatalf("imaptest: dial %s: %v", s.Addr(), err)
		}
		return login(t, c, s.User, s.Password)
	}
	return Dial(t, s.Addr(), s.Cert.Client, s.Implicit, s.User, s.Password)
}

type discard struct{}

func (discard) Printf(string, ...any) {}

// session adds XOAUTH2 to the in-memory server's session.
type session struct {
	*imapmemserver.UserSession
	srv   *Server
	token func(string) bool
}

func (s *session) Login(user, pass string) error {
	if user != s.srv.User || pass != s.srv.Password {
		return imapserver.ErrAuthFailed
	}
	s.UserSession = imapmemserver.NewUserSession(s.srv.mem)
	return nil
}

func (s *session) AuthenticateMechanisms() []string {
	if s.token != nil {
		return []string{"PLAIN", "XOAUTH2"}
	}
	return []string{"PLAIN"}
}

func (s *session) Authenticate(mech string) (sasl.Server, error) {
	switch strings.ToUpper(mech) {
	case "PLAIN":
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user {
				return imapserver.ErrAuthFailed
			}
			return s.Login(user, pass)
		}), nil
	case "XOAUTH2":
		if s.token != nil {
			return &xoauth2Server{s: s}, nil
		}
	}
	return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "SASL mechanism not supported"}
}

// xoauth2Server answers as Microsoft does: a bad token gets a JSON challenge, then NO.
type xoauth2Server struct {
	s      *session
	failed bool
}

func (x *xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	if x.failed {
		return nil, true, imapserver.ErrAuthFailed
	}
	if resp == nil {
		return []byte{}, false, nil // no SASL-IR: ask for the initial response
	}
	x.s.srv.mu.Lock()
	x.s.srv.sasl = append(x.s.srv.sasl, string(resp))
	x.s.srv.mu.Unlock()
	user, tok, ok := parseXOAuth2(string(resp))
	if !ok || user != x.s.srv.User || !x.s.token(tok) {
		x.failed = true
		return []byte(`{"status":"401","schemes":"bearer","scope":"https://outlook.office365.com/.default"}`), false, nil
	}
	x.s.UserSession = imapmemserver.NewUserSession(x.s.srv.mem)
	return nil, true, nil
}

func parseXOAuth2(s string) (user, token string, ok bool) {
	rest, found := strings.CutSuffix(s, "\x01\x01")
	if !found {
		return "", "", false
	}
	u, a, found := strings.Cut(rest, "\x01")
	if !found {
		return "", "", false
	}
	user, ok1 := strings.CutPrefix(u, "user=")
	token, ok2 := strings.CutPrefix(a, "auth=Bearer ")
	return user, token, ok1 && ok2
}

// Admin is a test's own IMAP client.
type Admin struct {
	t testing.TB
	c *imapclient.Client
}

// Dial logs in to addr; implicit selects TLS from the first byte, else STARTTLS.
func Dial(t testing.TB, addr string, tc *tls.Config, implicit bool, user, pass string) *Admin {
	t.Helper()
	var c *imapclient.Client
	var err error
	if implicit {
		c, err = imapclient.DialTLS(addr, &imapclient.Options{TLSConfig: tc})
	} else {
		c, err = imapclient.DialStartTLS(addr, &imapclient.Options{TLSConfig: tc})
	}
	if err != nil {
		t.Fatalf("imaptest: dial %s: %v", addr, err)
	}
	return login(t, c, user, pass)
}

func login(t testing.TB, c *imapclient.Client, user, pass string) *Admin {
	t.Helper()
	if err := c.Login(user, pass).Wait(); err != nil {
		c.Close()
		t.Fatalf("imaptest: login: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return &Admin{t: t, c: c}
}

// Append puts a raw message in folder with flags and returns its UID.
func (a *Admin) Append(folder string, raw []byte, flags ...imap.Flag) imap.UID {
	a.t.Helper()
	cmd := a.c.Append(folder, int64(len(raw)), &imap.AppendOptions{Flags: flags})
	if _, err := cmd.Write(raw); err != nil {
		a.t.Fatal(err)
	}
	if err := cmd.Close(); err != nil {
		a.t.Fatal(err)
	}
	data, err := cmd.Wait()
	if err != nil {
		a.t.Fatalf("imaptest: append to %s: %v", folder, err)
	}
	return data.UID
}

// Create makes a folder; Delete removes one (a folder created again gets a new UIDVALIDITY).
func (a *Admin) Create(folder string) {
	a.t.Helper()
	if err := a.c.Create(folder, nil).Wait(); err != nil {
		a.t.Fatalf("imaptest: create %s: %v", folder, err)
	}
}

// Delete removes a folder and its messages.
func (a *Admin) Delete(folder string) {
	a.t.Helper()
	if err := a.c.Delete(folder).Wait(); err != nil {
		a.t.Fatalf("imaptest: delete %s: %v", folder, err)
	}
}

// Msg is a message as the administrator sees it.
type Msg struct {
	UID       imap.UID
	MessageID string
	Flags     []imap.Flag
}

// Has reports a flag.
func (m Msg) Has(f imap.Flag) bool {
	for _, x := range m.Flags {
		if strings.EqualFold(string(x), string(f)) {
			return true
		}
	}
	return false
}

// Messages lists a folder's messages (examined read-only: looking changes nothing) and its
// UIDVALIDITY.
func (a *Admin) Messages(folder string) ([]Msg, uint32) {
	a.t.Helper()
	sel, err := a.c.Select(folder, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		a.t.Fatalf("imaptest: examine %s: %v", folder, err)
	}
	defer func() {
		if err := a.c.Unselect().Wait(); err != nil {
			a.t.Fatal(err)
		}
	}()
	if sel.NumMessages == 0 {
		return nil, sel.UIDValidity
	}
	bufs, err := a.c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Flags: true, Envelope: true}).Collect()
	if err != nil {
		a.t.Fatalf("imaptest: fetch %s: %v", folder, err)
	}
	out := make([]Msg, 0, len(bufs))
	for _, b := range bufs {
		m := Msg{UID: b.UID, Flags: b.Flags}
		if b.Envelope != nil {
			m.MessageID = b.Envelope.MessageID
		}
		out = append(out, m)
	}
	return out, sel.UIDValidity
}

// Close logs out and closes the connection before the test ends.
func (a *Admin) Close() {
	_ = a.c.Logout().Wait()
	a.c.Close()
}
