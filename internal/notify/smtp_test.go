package notify

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	netsmtp "net/smtp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/backoff"
	"github.com/figurative/figsupport/internal/fakes/graphfake"
	"github.com/figurative/figsupport/internal/fakes/smtpfake"
	"github.com/figurative/figsupport/internal/health"
)

var fastRetry = &backoff.Policy{Attempts: 3, Base: time.Millisecond, Max: 5 * time.Millisecond}

func smtpConfig(ts *smtpfake.Server, auth string) SMTPConfig {
	return SMTPConfig{
		Host: ts.Host(), Port: ts.Port(), User: "bot@figurative.fr", Password: "s3cret-PASS", Auth: auth,
		HelloName: "figsupport.test", Timeout: 5 * time.Second, DialTimeout: time.Second, Retry: fastRetry,
		TLSConfig: &tls.Config{RootCAs: ts.CertPool()},
	}
}

func testMessage(t *testing.T) *Message {
	t.Helper()
	m, err := Compose(sample, "Figurative <bot@figurative.fr>", []string{"admin@figurative.fr", "ops@figurative.fr"})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSMTPAuthExchanges(t *testing.T) {
	tokens := graphfake.New(t)
	oauth := OAuthConfig{TenantID: graphfake.Tenant, ClientID: graphfake.ClientID, ClientSecret: graphfake.ClientSecret, TokenURL: tokens.TokenURL()}
	tests := []struct {
		name     string
		auth     string
		mechs    []string
		implicit bool
	}{
		{"LOGIN over STARTTLS (Office 365)", AuthLogin, []string{"LOGIN", "XOAUTH2"}, false},
		{"PLAIN over STARTTLS", AuthPlain, []string{"PLAIN", "LOGIN"}, false},
		{"XOAUTH2 over STARTTLS", AuthXOAuth2, []string{"LOGIN", "XOAUTH2"}, false},
		{"LOGIN over implicit TLS", AuthLogin, []string{"LOGIN"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := smtpfake.Start(t, smtpfake.Options{
				Mechs: tt.mechs, Implicit: tt.implicit, User: "bot@figurative.fr", Pass: "s3cret-PASS",
				Token: func(tok string) bool { return tokens.Scope(tok) == ScopeSMTP },
			})
			cfg := smtpConfig(ts, tt.auth)
			if tt.implicit {
				cfg.TLS = TLSImplicit
			}
			s, err := NewSMTP(cfg, oauth)
			if err != nil {
				t.Fatal(err)
			}
			m := testMessage(t)
			if err := s.Send(context.Background(), m); err != nil {
				t.Fatal(err)
			}
			got := ts.Sessions()
			if len(got) != 1 {
				t.Fatalf("sessions = %+v", got)
			}
			r := got[0]
			if !r.TLS {
				t.Fatal("authenticated without TLS")
			}
			if r.Mech != strings.ToUpper(tt.auth) || r.User != "bot@figurative.fr" {
				t.Fatalf("auth = %s as %q", r.Mech, r.User)
			}
			if tt.auth == AuthXOAuth2 {
				reqs := tokens.TokenRequests()
				if len(reqs) != 1 || reqs[0].Scope != ScopeSMTP || reqs[0].GrantType != "client_credentials" {
					t.Fatalf("token requests = %+v", reqs)
				}
				tok := strings.TrimSuffix(strings.TrimPrefix(r.XOAuth2, "user=bot@figurative.fr\x01auth=Bearer "), "\x01\x01")
				if want := "user=bot@figurative.fr\x01auth=Bearer " + tok + "\x01\x01"; r.XOAuth2 != want || tokens.Scope(tok) != ScopeSMTP {
					t.Fatalf("XOAUTH2 string = %q, want %q with a token the endpoint issued", r.XOAuth2, want)
				}
			} else if r.Password != "s3cret-PASS" {
				t.Fatalf("password received = %q", r.Password)
			}
			if r.From != "bot@figurative.fr" || strings.Join(r.To, ",") != "admin@figurative.fr,ops@figurative.fr" {
				t.Fatalf("envelope = %s → %v", r.From, r.To)
			}
			if !strings.Contains(r.Data, "Subject: ") || !strings.Contains(r.Data, "X-Figsupport-Request: req-42") {
				t.Fatalf("data = %q", r.Data)
			}
		})
	}
}

func TestXOAuth2TokenCached(t *testing.T) {
	tokens := graphfake.New(t)
	oauth := OAuthConfig{TenantID: graphfake.Tenant, ClientID: graphfake.ClientID, ClientSecret: graphfake.ClientSecret, TokenURL: tokens.TokenURL()}
	ts := smtpfake.Start(t, smtpfake.Options{Mechs: []string{"XOAUTH2"}, User: "bot@figurative.fr", Token: func(tok string) bool { return tokens.Scope(tok) != "" }})
	s, err := NewSMTP(smtpConfig(ts, AuthXOAuth2), oauth)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := s.Send(context.Background(), testMessage(t)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(tokens.TokenRequests()); n != 1 {
		t.Fatalf("token requests = %d, want 1 (cached until expiry)", n)
	}
}

func TestSMTPRefusesCleartextAuth(t *testing.T) {
	for _, auth := range []string{AuthLogin, AuthPlain} {
		t.Run(auth, func(t *testing.T) {
			ts := smtpfake.Start(t, smtpfake.Options{NoTLS: true, Mechs: []string{"LOGIN", "PLAIN"}, User: "bot@figurative.fr", Pass: "s3cret-PASS"})
			s, err := NewSMTP(smtpConfig(ts, auth), OAuthConfig{})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Send(context.Background(), testMessage(t))
			if !errors.Is(err, errInsecure) || !strings.Contains(err.Error(), "does not offer STARTTLS") {
				t.Fatalf("err = %v, want a refusal to authenticate in clear", err)
			}
			if got := ts.Sessions(); len(got) != 0 {
				t.Fatalf("the server received %+v", got)
			}
		})
	}
	t.Run("config", func(t *testing.T) {
		_, err := NewSMTP(SMTPConfig{Host: "h", User: "u", Password: "p", TLS: TLSNone}, OAuthConfig{})
		if err == nil || !strings.Contains(err.Error(), "in clear") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("auth objects", func(t *testing.T) {
		// Even if a session skipped the TLS check, the mechanisms themselves refuse.
		for name, start := range map[string]func() error{
			"login":   func() error { _, _, err := (&loginAuth{}).Start(plainInfo()); return err },
			"plain":   func() error { _, _, err := (&plainAuth{}).Start(plainInfo()); return err },
			"xoauth2": func() error { _, _, err := (&xoauth2Auth{}).Start(plainInfo()); return err },
		} {
			if err := start(); !errors.Is(err, errInsecure) {
				t.Errorf("%s over cleartext: err = %v", name, err)
			}
		}
	})
}

func TestSMTPNoAuthWithoutTLSAllowed(t *testing.T) {
	// A local relay: SMTP_TLS=none and SMTP_AUTH=none.
	ts := smtpfake.Start(t, smtpfake.Options{NoTLS: true})
	cfg := smtpConfig(ts, AuthNone)
	cfg.TLS = TLSNone
	s, err := NewSMTP(cfg, OAuthConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Send(context.Background(), testMessage(t)); err != nil {
		t.Fatal(err)
	}
	if got := ts.Sessions(); len(got) != 1 || got[0].Mech != "" {
		t.Fatalf("sessions = %+v", got)
	}
}

func TestSMTPServerErrors(t *testing.T) {
	tokens := graphfake.New(t)
	tests := []struct {
		name   string
		opts   smtpfake.Options
		auth   string
		oauth  OAuthConfig
		code   int
		stage  string
		detail string
		conns  int
	}{
		{"wrong password", smtpfake.Options{Mechs: []string{"LOGIN"}, User: "bot@figurative.fr", Pass: "other"}, AuthLogin, OAuthConfig{},
			535, "auth", "check SMTP_USER", 1},
		{"PLAIN not offered (Office 365)", smtpfake.Options{Mechs: []string{"LOGIN", "XOAUTH2"}}, AuthPlain, OAuthConfig{},
			0, "auth", "use SMTP_AUTH=login or xoauth2", 1},
		{"token refused", smtpfake.Options{Mechs: []string{"XOAUTH2"}, User: "bot@figurative.fr", Token: func(string) bool { return false }}, AuthXOAuth2,
			OAuthConfig{TenantID: graphfake.Tenant, ClientID: graphfake.ClientID, ClientSecret: graphfake.ClientSecret, TokenURL: tokens.TokenURL()},
			535, "auth", "SMTP.SendAsApp", 1},
		{"bad client secret", smtpfake.Options{Mechs: []string{"XOAUTH2"}, User: "bot@figurative.fr"}, AuthXOAuth2,
			OAuthConfig{TenantID: graphfake.Tenant, ClientID: graphfake.ClientID, ClientSecret: "nope", TokenURL: tokens.TokenURL()},
			0, "auth", "invalid_client", 1},
		{"recipient rejected", smtpfake.Options{Mechs: []string{"LOGIN"}, User: "bot@figurative.fr", Pass: "s3cret-PASS", RejectRcpt: "ops@figurative.fr"}, AuthLogin, OAuthConfig{},
			550, "rcpt to <ops@figurative.fr>", "User unknown", 1},
		{"temporary failure retried", smtpfake.Options{Mechs: []string{"LOGIN"}, User: "bot@figurative.fr", Pass: "s3cret-PASS", TempRcpt: 1}, AuthLogin, OAuthConfig{},
			-1, "", "", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := smtpfake.Start(t, tt.opts)
			s, err := NewSMTP(smtpConfig(ts, tt.auth), tt.oauth)
			if err != nil {
				t.Fatal(err)
			}
			err = s.Send(context.Background(), testMessage(t))
			if tt.code == -1 {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				var se *SMTPError
				if !errors.As(err, &se) || se.Code != tt.code || se.Stage != tt.stage || !strings.Contains(err.Error(), tt.detail) {
					t.Fatalf("err = %v (%+v), want stage %q code %d mentioning %q", err, se, tt.stage, tt.code, tt.detail)
				}
				for _, secret := range []string{"s3cret-PASS", graphfake.ClientSecret, "nope"} {
					if strings.Contains(err.Error(), secret) {
						t.Fatalf("error shows a secret: %v", err)
					}
				}
			}
			if conns := ts.Conns(); conns != tt.conns {
				t.Fatalf("connections = %d, want %d", conns, tt.conns)
			}
		})
	}
}

func TestSMTPStalledServerCancelled(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close() // accept and say nothing
		}
	}()
	host, port, _ := net.SplitHostPort(l.Addr().String())
	p, _ := strconv.Atoi(port)
	s, err := NewSMTP(SMTPConfig{Host: host, Port: p, User: "u", Password: "p", Timeout: time.Minute, Retry: fastRetry}, OAuthConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("context", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- s.Send(ctx, &Message{From: "a@b.c", To: []string{"d@e.f"}, Raw: []byte("x")}) }()
		select {
		case err := <-done:
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want the context's deadline", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Send did not return after its context ended")
		}
	})
	t.Run("session timeout", func(t *testing.T) {
		s.cfg.Timeout = 100 * time.Millisecond
		s.retry = backoff.Policy{Attempts: 1}
		done := make(chan error, 1)
		go func() {
			done <- s.Send(context.Background(), &Message{From: "a@b.c", To: []string{"d@e.f"}, Raw: []byte("x")})
		}()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "greeting") {
				t.Fatalf("err = %v, want a failed greeting", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Send did not honour its session timeout")
		}
	})
}

func TestSMTPCheck(t *testing.T) {
	ts := smtpfake.Start(t, smtpfake.Options{Mechs: []string{"LOGIN", "XOAUTH2"}, User: "bot@figurative.fr", Pass: "s3cret-PASS"})
	s, err := NewSMTP(smtpConfig(ts, AuthLogin), OAuthConfig{})
	if err != nil {
		t.Fatal(err)
	}
	checks := s.Check(context.Background())
	if len(checks) != 1 || checks[0].Status != health.OK || !strings.Contains(checks[0].Detail, "STARTTLS") {
		t.Fatalf("checks = %+v", checks)
	}
	if len(ts.Sessions()) != 0 {
		t.Fatal("the check sent a message")
	}
	cfg := smtpConfig(ts, AuthLogin)
	cfg.Password = "wrong-SECRET"
	bad, _ := NewSMTP(cfg, OAuthConfig{})
	checks = bad.Check(context.Background())
	if checks[0].Status != health.Fail || !strings.Contains(checks[0].Detail, "535") || strings.Contains(checks[0].Detail, "wrong-SECRET") {
		t.Fatalf("checks = %+v", checks)
	}
}

func TestSMTPUntrustedCertificate(t *testing.T) {
	ts := smtpfake.Start(t, smtpfake.Options{Mechs: []string{"LOGIN"}, User: "bot@figurative.fr", Pass: "s3cret-PASS"})
	cfg := smtpConfig(ts, AuthLogin)
	cfg.TLSConfig = nil // system roots: the test CA is not among them
	s, _ := NewSMTP(cfg, OAuthConfig{})
	err := s.Send(context.Background(), testMessage(t))
	var se *SMTPError
	if !errors.As(err, &se) || se.Stage != "starttls" {
		t.Fatalf("err = %v, want a STARTTLS failure", err)
	}
	if conns := ts.Conns(); conns != 1 {
		t.Fatalf("connections = %d: a certificate failure is not worth retrying", conns)
	}
}

func plainInfo() *netsmtp.ServerInfo {
	return &netsmtp.ServerInfo{Name: "127.0.0.1", TLS: false, Auth: []string{"LOGIN", "PLAIN", "XOAUTH2"}}
}

// A server that stores the message and loses its answer: the retry delivers it again under the
// same Message-ID, which is how the repeat is recognised and counted.
func TestSMTPLostAnswer(t *testing.T) {
	tests := []struct {
		name       string
		attempts   int
		wantErr    bool
		deliveries int
	}{
		{"retried: a repeat with the same Message-ID", 3, false, 2},
		{"no retry left: temporary, maybe delivered", 1, true, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts := smtpfake.Start(t, smtpfake.Options{Mechs: []string{"LOGIN"}, User: "bot@figurative.fr", Pass: "s3cret-PASS", DropAfterData: 1})
			cfg := smtpConfig(ts, AuthLogin)
			cfg.Retry = &backoff.Policy{Attempts: tt.attempts, Base: time.Millisecond, Max: 5 * time.Millisecond}
			s, err := NewSMTP(cfg, OAuthConfig{})
			if err != nil {
				t.Fatal(err)
			}
			m := testMessage(t)
			err = s.Send(context.Background(), m)
			if tt.wantErr {
				var se *SMTPError
				if !errors.As(err, &se) || !se.MaybeDelivered() || !se.Temporary() || se.Code != 0 {
					t.Fatalf("err = %v (%+v), want a temporary failure that may have delivered", err, se)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if got := ts.Deliveries()[m.MessageID]; got != tt.deliveries {
				t.Fatalf("deliveries of %s = %d, want %d (all: %v)", m.MessageID, got, tt.deliveries, ts.Deliveries())
			}
			if ts.Repeats() != tt.deliveries-1 {
				t.Fatalf("repeats = %d", ts.Repeats())
			}
		})
	}
}
