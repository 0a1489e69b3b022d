// Package smtpfake is an in-process SMTP submission server for tests and benchmarks, built on
// go-smtp: STARTTLS or implicit TLS with a self-signed certificate made at start, AUTH LOGIN, PLAIN
// and XOAUTH2 (answering a refused token the way Office 365 does), injected recipient refusals and
// temporary failures, answers lost after the message was stored (count or seeded probability), a
// record of every message with deliveries counted per Message-ID, and a count of connections.
package smtpfake

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Options says how the server behaves. The zero value is a server that offers STARTTLS and no
// AUTH, and accepts every message.
type Options struct {
	// Mechs are the AUTH mechanisms offered (of LOGIN, PLAIN, XOAUTH2). When there are any, MAIL
	// before a successful AUTH is refused with 530.
	Mechs []string
	// NoTLS offers no STARTTLS and allows AUTH in clear, as a careless server would.
	NoTLS bool
	// Implicit speaks TLS from the first byte (port 465 style) instead of offering STARTTLS.
	Implicit bool
	// User and Pass are the credentials LOGIN and PLAIN accept; XOAUTH2 checks User too.
	User, Pass string
	// Token decides whether an XOAUTH2 bearer token is accepted; nil refuses every token.
	Token func(token string) bool
	// RejectRcpt is answered 550 5.1.1 (user unknown) at RCPT TO.
	RejectRcpt string
	// TempRcpt answers 451 4.3.0 to the first TempRcpt RCPT commands, across all connections.
	TempRcpt int
	// DropAfterData stores the first DropAfterData messages, across all connections, then closes
	// the connection instead of answering 250: the answer of a server that took the message is
	// lost, so the client cannot know, and its retry delivers the message twice.
	DropAfterData int
	// DropRate does the same to each later message with this probability (0 to 1), drawn from a
	// generator seeded with Seed: the same messages in the same order are dropped the same way.
	DropRate float64
	Seed     uint64
}

// Received is one message the server accepted, with what its session said before it.
type Received struct {
	Mech     string // the AUTH mechanism used; "" when the client did not authenticate
	User     string
	Password string // LOGIN and PLAIN only
	XOAuth2  string // the raw XOAUTH2 initial response
	TLS      bool   // whether AUTH (or, without AUTH, the message) happened over TLS
	From     string
	To       []string
	Data     string
	// MessageID is the message's Message-ID without angle brackets; "" when it has none.
	MessageID string
	// Dropped says the server stored the message and then closed the connection unanswered.
	Dropped bool
}

// Server is the fake. Its zero value is not usable: call Start.
type Server struct {
	addr    string
	certDER []byte
	pool    *x509.CertPool
	opts    Options

	mu       sync.Mutex
	got      []Received
	conns    int
	tempLeft int
	dropLeft int
	rng      *mrand.Rand
}

// Start starts a server on 127.0.0.1 with a fresh port and certificate; it closes itself when the
// test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	o.Mechs = slices.Clone(o.Mechs)
	cert, err := selfSigned()
	if err != nil {
		t.Fatalf("smtpfake: certificate: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert.Leaf)
	s := &Server{certDER: cert.Certificate[0], pool: pool, opts: o, tempLeft: o.TempRcpt, dropLeft: o.DropAfterData,
		rng: mrand.New(mrand.NewPCG(o.Seed, 0x5eed))}

	srv := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{s: s, conn: c}, nil
	}))
	srv.Domain = "localhost"
	// Generous: these only end sessions a broken client abandoned, they are not under test.
	srv.ReadTimeout = 5 * time.Second
	srv.WriteTimeout = 5 * time.Second
	tlsConf := &tls.Config{Certificates: []tls.Certificate{cert}}
	if o.NoTLS {
		srv.AllowInsecureAuth = true
	} else {
		srv.TLSConfig = tlsConf
	}
	var l net.Listener
	if o.Implicit {
		l, err = tls.Listen("tcp", "127.0.0.1:0", tlsConf)
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatalf("smtpfake: listen: %v", err)
	}
	s.addr = l.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(&countingListener{Listener: l, s: s})
	}()
	t.Cleanup(func() {
		srv.Close()
		l.Close() // Serve may not have registered it with srv yet
		<-done
	})
	return s
}

// selfSigned makes a CA certificate for 127.0.0.1 and localhost that is also the server's own, so
// that trusting it (CertPool, CAFile) is all a client needs.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "figsupport test SMTP"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr }

// Host is the server's IP address, 127.0.0.1 (which its certificate names).
func (s *Server) Host() string {
	h, _, _ := net.SplitHostPort(s.addr)
	return h
}

// Port is the server's TCP port.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// CertPool holds the server's certificate, for a client's tls.Config.RootCAs.
func (s *Server) CertPool() *x509.CertPool { return s.pool }

// CertPEM is the server's (self-signed CA) certificate in PEM.
func (s *Server) CertPEM() []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.certDER})
}

// CAFile writes the server's certificate as PEM into a temporary directory of t and returns the
// file's path. A child process trusts the server when given SSL_CERT_FILE=<path> (Go reads it on
// Linux; it then trusts only that file, not the system's roots).
func (s *Server) CAFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "smtpfake-ca.pem")
	if err := os.WriteFile(path, s.CertPEM(), 0o600); err != nil {
		t.Fatalf("smtpfake: %v", err)
	}
	return path
}

// Sessions returns the messages accepted so far, in order: one Received per message, each with
// the authentication of the session that sent it.
func (s *Server) Sessions() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Received, len(s.got))
	for i, r := range s.got {
		r.To = slices.Clone(r.To)
		out[i] = r
	}
	return out
}

// Deliveries counts the messages accepted per Message-ID ("" for those without one), dropped
// answers included: a count above one is a message delivered again.
func (s *Server) Deliveries() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for _, r := range s.got {
		out[r.MessageID]++
	}
	return out
}

// Repeats is the number of accepted messages whose Message-ID had been accepted before.
func (s *Server) Repeats() int {
	n := 0
	for id, k := range s.Deliveries() {
		if id != "" {
			n += k - 1
		}
	}
	return n
}

// Dropped is the number of messages stored whose answer was dropped.
func (s *Server) Dropped() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, r := range s.got {
		if r.Dropped {
			n++
		}
	}
	return n
}

// Conns is the number of TCP connections accepted so far. It differs from the sessions: go-smtp
// starts a new session after STARTTLS, and a connection may send no message or several.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

type session struct {
	s    *Server
	conn *smtp.Conn
	r    Received
}

func (ss *session) AuthMechanisms() []string { return ss.s.opts.Mechs }

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if !slices.Contains(ss.s.opts.Mechs, mech) {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	_, ss.r.TLS = ss.conn.TLSConnectionState()
	ss.r.Mech = mech
	o := ss.s.opts
	check := func(user, pass string) error {
		ss.r.User, ss.r.Password = user, pass
		if user != o.User || pass != o.Pass {
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
		return &xoauth2Server{ss: ss}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if ss.r.Mech == "" && len(ss.s.opts.Mechs) > 0 {
		return smtp.ErrAuthRequired
	}
	if ss.r.Mech == "" {
		_, ss.r.TLS = ss.conn.TLSConnectionState()
	}
	ss.r.From = from
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	ss.s.mu.Lock()
	temp := ss.s.tempLeft > 0
	if temp {
		ss.s.tempLeft--
	}
	ss.s.mu.Unlock()
	if temp {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary local problem, try later"}
	}
	if to == ss.s.opts.RejectRcpt {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "Recipient address rejected: User unknown"}
	}
	ss.r.To = append(ss.r.To, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.r.Data = string(b)
	rec := ss.r
	rec.To = slices.Clone(ss.r.To)
	rec.MessageID = messageID(rec.Data)
	ss.s.mu.Lock()
	switch {
	case ss.s.dropLeft > 0:
		ss.s.dropLeft--
		rec.Dropped = true
	case ss.s.opts.DropRate > 0:
		rec.Dropped = ss.s.rng.Float64() < ss.s.opts.DropRate
	}
	ss.s.got = append(ss.s.got, rec)
	ss.s.mu.Unlock()
	if rec.Dropped {
		// Stored, and the connection goes before the 250: go-smtp's reply then fails to write.
		ss.conn.Conn().Close()
		return errDropped
	}
	return nil
}

var errDropped = errors.New("smtpfake: connection dropped after the message was stored")

func messageID(data string) string {
	m, err := mail.ReadMessage(strings.NewReader(data))
	if err != nil {
		return ""
	}
	return strings.Trim(strings.TrimSpace(m.Header.Get("Message-Id")), "<>")
}

// Reset ends a message, not the session: its authentication carries over to the next message.
func (ss *session) Reset() {
	ss.r = Received{Mech: ss.r.Mech, User: ss.r.User, Password: ss.r.Password, XOAuth2: ss.r.XOAuth2, TLS: ss.r.TLS}
}

func (ss *session) Logout() error { return nil }

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
		if len(resp) > 0 { // an initial response carries the user name
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

// xoauth2Server answers like Office 365: a refused token gets a JSON error challenge, then 535
// after the client's empty reply.
type xoauth2Server struct {
	ss     *session
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
	x.ss.r.XOAuth2 = raw
	var user, tok string
	for _, f := range strings.Split(strings.TrimSuffix(raw, "\x01\x01"), "\x01") {
		if v, ok := strings.CutPrefix(f, "user="); ok {
			user = v
		}
		if v, ok := strings.CutPrefix(f, "auth=Bearer "); ok {
			tok = v
		}
	}
	x.ss.r.User = user
	o := x.ss.s.opts
	if user == o.User && o.Token != nil && o.Token(tok) {
		return nil, true, nil
	}
	x.failed = true
	return []byte(`{"status":"401","schemes":"bearer","scope":"https://outlook.office365.com/.default"}`), false, nil
}

// countingListener counts connections, because sessions are not connections (see Conns).
type countingListener struct {
	net.Listener
	s *Server
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.s.mu.Lock()
		l.s.conns++
		l.s.mu.Unlock()
	}
	return c, err
}
