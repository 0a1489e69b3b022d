package smtpfake_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/smtp"
	"net/textproto"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/figurative/figsupport/internal/fakes/smtpfake"
)

// loginAuth is the client side of AUTH LOGIN, which net/smtp lacks.
type loginAuth struct{ user, pass string }

func (a loginAuth) Start(*smtp.ServerInfo) (string, []byte, error) { return "LOGIN", nil, nil }

func (a loginAuth) Next(challenge []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	switch string(challenge) {
	case "Username:":
		return []byte(a.user), nil
	case "Password:":
		return []byte(a.pass), nil
	}
	return nil, errors.New("unexpected LOGIN challenge " + string(challenge))
}

func send(t *testing.T, srv *smtpfake.Server, auth smtp.Auth) error {
	t.Helper()
	c, err := smtp.Dial(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(&tls.Config{ServerName: srv.Host(), RootCAs: srv.CertPool()}); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(auth); err != nil {
		return err
	}
	if err := c.Mail("bot@figurative.fr"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("admin@figurative.fr"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("Subject: hello\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return c.Quit()
}

func TestStartTLSLoginRecorded(t *testing.T) {
	tests := []struct {
		name     string
		pass     string
		sessions int
	}{
		{"accepted", "s3cret-PASS", 1},
		{"wrong password", "nope", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smtpfake.Start(t, smtpfake.Options{Mechs: []string{"LOGIN"}, User: "bot@figurative.fr", Pass: "s3cret-PASS"})
			err := send(t, srv, loginAuth{"bot@figurative.fr", tt.pass})
			got := srv.Sessions()
			if len(got) != tt.sessions {
				t.Fatalf("sessions = %+v, want %d", got, tt.sessions)
			}
			if srv.Conns() != 1 {
				t.Fatalf("connections = %d, want 1", srv.Conns())
			}
			if tt.sessions == 0 {
				if err == nil || !strings.Contains(err.Error(), "535") {
					t.Fatalf("err = %v, want 535", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			r := got[0]
			if !strings.Contains(r.Data, "Subject: hello") {
				t.Fatalf("data = %q", r.Data)
			}
			r.Data = ""
			want := smtpfake.Received{Mech: "LOGIN", User: "bot@figurative.fr", Password: "s3cret-PASS", TLS: true,
				From: "bot@figurative.fr", To: []string{"admin@figurative.fr"}}
			if !reflect.DeepEqual(r, want) {
				t.Fatalf("received %+v, want %+v", r, want)
			}
		})
	}
}

func TestCAFile(t *testing.T) {
	srv := smtpfake.Start(t, smtpfake.Options{})
	pem, err := os.ReadFile(srv.CAFile(t))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("CA file holds no certificate")
	}
	c, err := smtp.Dial(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(&tls.Config{ServerName: "localhost", RootCAs: pool}); err != nil {
		t.Fatalf("the CA file does not verify the server: %v", err)
	}
}

// sendID sends one message with that Message-ID, without AUTH, and returns how the server
// answered its end of data.
func sendID(t *testing.T, srv *smtpfake.Server, id string) error {
	t.Helper()
	c, err := smtp.Dial(srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.StartTLS(&tls.Config{ServerName: srv.Host(), RootCAs: srv.CertPool()}); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("bot@figurative.fr"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("admin@figurative.fr"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte("Message-ID: <" + id + ">\r\nSubject: hello\r\n\r\nbody\r\n")); err != nil {
		t.Fatal(err)
	}
	return w.Close()
}

// A dropped answer: the message is stored, the client sees the connection end with no reply, and
// its retry is a second delivery of the same Message-ID, counted.
func TestDropAfterData(t *testing.T) {
	srv := smtpfake.Start(t, smtpfake.Options{DropAfterData: 1})
	err := sendID(t, srv, "n1@figsupport.invalid")
	var tp *textproto.Error
	if err == nil || errors.As(err, &tp) {
		t.Fatalf("first send: err = %v, want the connection lost with no reply", err)
	}
	if err := sendID(t, srv, "n1@figsupport.invalid"); err != nil {
		t.Fatalf("retry: %v", err)
	}
	if err := sendID(t, srv, "n2@figsupport.invalid"); err != nil {
		t.Fatal(err)
	}
	got := srv.Sessions()
	if len(got) != 3 || !got[0].Dropped || got[1].Dropped || got[0].MessageID != "n1@figsupport.invalid" {
		t.Fatalf("sessions = %+v", got)
	}
	if d := srv.Deliveries(); !reflect.DeepEqual(d, map[string]int{"n1@figsupport.invalid": 2, "n2@figsupport.invalid": 1}) {
		t.Fatalf("deliveries = %v", d)
	}
	if srv.Repeats() != 1 || srv.Dropped() != 1 {
		t.Fatalf("repeats %d, dropped %d; want 1 and 1", srv.Repeats(), srv.Dropped())
	}
}

// DropRate draws from a seeded generator: the same seed drops the same messages.
func TestDropRateSeeded(t *testing.T) {
	pattern := func(seed uint64) []bool {
		srv := smtpfake.Start(t, smtpfake.Options{DropRate: 0.4, Seed: seed})
		var out []bool
		for i := range 30 {
			err := sendID(t, srv, strconv.Itoa(i)+"@figsupport.invalid")
			out = append(out, err != nil)
		}
		if len(srv.Sessions()) != 30 || srv.Dropped() != count(out) || srv.Repeats() != 0 {
			t.Fatalf("seed %d: %d stored, %d dropped (client saw %d), %d repeats", seed, len(srv.Sessions()), srv.Dropped(), count(out), srv.Repeats())
		}
		return out
	}
	a, b, c := pattern(7), pattern(7), pattern(8)
	if !slices.Equal(a, b) {
		t.Fatalf("seed 7 twice: %v and %v", a, b)
	}
	if slices.Equal(a, c) {
		t.Fatalf("seeds 7 and 8 dropped the same messages: %v", a)
	}
	if n := count(a); n == 0 || n == len(a) {
		t.Fatalf("rate 0.4 dropped %d of %d", n, len(a))
	}
}

func count(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}
