package notify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// testCert is a self-signed certificate for 127.0.0.1 and localhost, made at test time.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "figsupport test SMTP"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

// received is what one SMTP session told the server.
type received struct {
	Mech     string
	User     string
	Password string
	XOAuth2  string // the raw XOAUTH2 initial response
	TLS      bool   // whether AUTH happened over TLS
	From     string
	To       []string
	Data     string
}

type serverOpts struct {
	mechs      []string // offered AUTH mechanisms
	noTLS      bool     // offer no STARTTLS (and allow AUTH in clear, as a careless server would)
	implicit   bool     // TLS from the first byte
	user, pass string
	token      func(string) bool // XOAUTH2 token check
	rejectRcpt string            // 550 for this recipient
	tempRcpt   int               // answer 451 to the first n RCPTs
}

type testSMTP struct {
	addr  string
	pool  *x509.CertPool
	mu    sync.Mutex
	got   []received
	conns int
	opts  serverOpts
}

func (s *testSMTP) sessions() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

func startSMTP(t *testing.T, o serverOpts) *testSMTP {
	t.Helper()
	cert, pool := testCert(t)
	ts := &testSMTP{pool: pool, opts: o}
	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{ts: ts, conn: c}, nil
	}))
	srv.Domain = "localhost"
	srv.ReadTimeout = 5 * time.Second
	srv.WriteTimeout = 5 * time.Second
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}}
	if !o.noTLS {
		srv.TLSConfig = tlsConf
	} else {
		srv.AllowInsecureAuth = true
	}
	var l net.Listener
	var err error
	if o.implicit {
		l, err = tls.Listen("tcp", "127.0.0.1:0", tlsConf)
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	ts.addr = l.Addr().String()
	go srv.Serve(&countingListener{Listener: l, ts: ts})
	t.Cleanup(func() { srv.Close() })
	return ts
}

type session struct {
	ts   *testSMTP
	conn *smtp.Conn
	r    received
	rcpt int
}

func (s *session) AuthMechanisms() []string { return s.ts.opts.mechs }

func (s *session) Auth(mech string) (sasl.Server, error) {
	_, s.r.TLS = s.conn.TLSConnectionState()
	s.r.Mech = mech
	o := s.ts.opts
	check := func(user, pass string) error {
		s.r.User, s.r.Password = user, pass
		if user != o.user || pass != o.pass {
			return smtp.ErrAuthFailed
		}
		return nil
	}
	switch mech {
	case "PLAIN":
		return sasl.NewPlainServer(func(_, user, pass string) error { return check(user, pass) }), nil
	case "LOGIN":
		return &loginServer{check: check}, nil
	case "XOAUTH2":
		return &xoauth2Server{s: s}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.r.Mech == "" && len(s.ts.opts.mechs) > 0 {
		return smtp.ErrAuthRequired
	}
	s.r.From = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpt++
	if s.ts.opts.tempRcpt > 0 {
		s.ts.mu.Lock()
		s.ts.opts.tempRcpt--
		s.ts.mu.Unlock()
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary local problem, try later"}
	}
	if to == s.ts.opts.rejectRcpt {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "Recipient address rejected: User unknown"}
	}
	s.r.To = append(s.r.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.r.Data = string(b)
	s.ts.mu.Lock()
	s.ts.got = append(s.ts.got, s.r)
	s.ts.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.r = received{Mech: s.r.Mech, User: s.r.User, TLS: s.r.TLS} }
func (s *session) Logout() error { return nil }

// loginServer is the server side of SASL LOGIN (go-sasl only has the client).
type loginServer struct {
	check func(user, pass string) error
	step  int
	user  string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		if len(resp) > 0 { // initial response carries the user name
			l.user = string(resp)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 2:
		l.user = string(resp)
		return []byte("Password:"), false, nil
	case 3:
		return nil, true, l.check(l.user, string(resp))
	}
	return nil, false, errors.New("unexpected LOGIN step")
}

// xoauth2Server answers like Office 365: a JSON error challenge, then 535 after the client's
// empty reply.
type xoauth2Server struct {
	s      *session
	failed bool
}

func (x *xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	if x.failed {
		return nil, true, &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 3}, Message: "Authentication unsuccessful"}
	}
	if resp == nil {
		return []byte{}, false, nil
	}
	raw := string(resp)
	x.s.r.XOAuth2 = raw
	fields := strings.Split(strings.TrimSuffix(raw, "\x01\x01"), "\x01")
	var user, tok string
	for _, f := range fields {
		if v, ok := strings.CutPrefix(f, "user="); ok {
			user = v
		}
		if v, ok := strings.CutPrefix(f, "auth=Bearer "); ok {
			tok = v
		}
	}
	x.s.r.User = user
	o := x.s.ts.opts
	if user == o.user && o.token != nil && o.token(tok) {
		return nil, true, nil
	}
	x.failed = true
	return []byte(`{"status":"401","schemes":"bearer","scope":"https://outlook.office365.com/.default"}`), false, nil
}

// countingListener counts connections (go-smtp makes a new session after STARTTLS, so sessions
// are not connections).
type countingListener struct {
	net.Listener
	ts *testSMTP
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.ts.mu.Lock()
		l.ts.conns++
		l.ts.mu.Unlock()
	}
	return c, err
}
