package mailbox_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"github.com/figurative/figsupport/internal/fakes/graphfake"
	"github.com/figurative/figsupport/internal/health"
	"github.com/figurative/figsupport/internal/mailbox"
	"github.com/figurative/figsupport/internal/oauth"
	"github.com/figurative/figsupport/internal/testsrv/dovecot"
	"github.com/figurative/figsupport/internal/testsrv/imaptest"
)

func dovecotConfig(d *dovecot.Server, implicit bool) mailbox.Config {
	cfg := mailbox.Config{Source: mailbox.SourceIMAP, IMAP: mailbox.IMAPConfig{
		Host: d.Host, Port: d.Port, TLS: mailbox.TLSStartTLS, User: d.User, Password: d.Password, TLSConfig: d.Cert.Client,
	}}
	if implicit {
		cfg.IMAP.Port, cfg.IMAP.TLS = d.TLSPort, mailbox.TLSImplicit
	}
	return cfg
}

func dovecotAdmin(t testing.TB, d *dovecot.Server) *imaptest.Admin {
	return imaptest.Dial(t, d.TLSAddr(), d.Cert.Client, true, d.User, d.Password)
}

// The same guarantees against a real server: Debian's Dovecot, with its own quirks (modified
// UTF-7 folder names, UIDVALIDITY from its own counter, MOVE and UIDPLUS, SASL-IR).
func TestDovecot(t *testing.T) {
	d := dovecot.Start(t, dovecot.Options{})
	admin := dovecotAdmin(t, d)
	admin.Create("Traités")

	t.Run("starttls, processed once and flagged seen", func(t *testing.T) {
		admin.Append("INBOX", raw("seen-a@example.com", "A"))
		admin.Append("INBOX", raw("seen-b@example.com", "B"))
		p := newPoller(t, dovecotConfig(d, false))
		j := newJournal()
		sum := poll(t, p, j, mailbox.PassOptions{})
		if got := strings.Join(j.Calls(), ","); got != "seen-a@example.com,seen-b@example.com" || sum.Processed != 2 {
			t.Fatalf("handed over %s, %s", got, statuses(sum))
		}
		if again := poll(t, p, j, mailbox.PassOptions{}); len(again.Messages) != 0 {
			t.Fatalf("second pass %s", statuses(again))
		}
		inbox, _ := admin.Messages("INBOX")
		for _, m := range inbox {
			if !m.Has(imap.FlagSeen) {
				t.Fatalf("%s not seen", m.MessageID)
			}
		}
	})

	t.Run("implicit tls, failure then crash before the move", func(t *testing.T) {
		admin.Append("INBOX", raw("fail@example.com", "Échoue"))
		admin.Append("INBOX", raw("crash@example.com", "Plante"))
		cfg := dovecotConfig(d, true)
		cfg.ProcessedFolder = "Traités"
		p := newPoller(t, cfg)
		j := newJournal()
		j.fail["fail@example.com"] = 1
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		j.after = func(key string) {
			if key == "crash@example.com" {
				cancel()
			}
		}
		if _, err := p.Poll(ctx, j.handle, mailbox.PassOptions{}); err == nil {
			t.Fatal("the cancelled pass returned no error")
		}
		j.after = nil
		sum := poll(t, p, j, mailbox.PassOptions{})
		if sum.Processed != 2 {
			t.Fatalf("second pass %s", statuses(sum))
		}
		for _, key := range []string{"fail@example.com", "crash@example.com"} {
			if n := j.Runs(key); n != 1 {
				t.Fatalf("%s processed %d times", key, n)
			}
		}
		moved, _ := admin.Messages("Traités")
		if len(moved) != 2 {
			t.Fatalf("%d moved to Traités, want 2", len(moved))
		}
	})

	t.Run("uidvalidity change", func(t *testing.T) {
		admin.Create("Support")
		admin.Append("Support", raw("v-old@example.com", "old"))
		cfg := dovecotConfig(d, true)
		cfg.Folder = "Support"
		p := newPoller(t, cfg)
		j := newJournal()
		j.fail["v-old@example.com"] = 1
		first := poll(t, p, j, mailbox.PassOptions{})
		admin.Delete("Support")
		admin.Create("Support")
		admin.Append("Support", raw("v-new@example.com", "new"))
		admin.Append("Support", raw("v-old@example.com", "old again"))
		second := poll(t, p, j, mailbox.PassOptions{})
		if !second.GenerationChanged || second.Generation == first.Generation {
			t.Fatalf("UIDVALIDITY %s → %s, changed %v", first.Generation, second.Generation, second.GenerationChanged)
		}
		if got := statuses(second); got != "v-new@example.com=processed v-old@example.com=processed" {
			t.Fatalf("after the change: %s", got)
		}
	})

	t.Run("20 MiB attachment streamed whole", func(t *testing.T) {
		msg, sum := bigMessage(t, "big@example.com", 20<<20)
		admin.Append("INBOX", msg)
		p := newPoller(t, dovecotConfig(d, false))
		var got string
		var n int64
		h := func(ctx context.Context, r io.Reader) (mailbox.Outcome, error) {
			hs := sha256.New()
			var err error
			n, err = io.Copy(hs, r)
			got = hex.EncodeToString(hs.Sum(nil))
			return mailbox.Outcome{RequestID: "big"}, err
		}
		s, err := p.Poll(context.Background(), h, mailbox.PassOptions{})
		if err != nil || s.Processed != 1 {
			t.Fatalf("%v %s", err, statuses(s))
		}
		if got != sum || n != int64(len(msg)) {
			t.Fatalf("handler read %d bytes (sha256 %s), want %d (%s)", n, got, len(msg), sum)
		}
	})

	t.Run("doctor's check changes nothing", func(t *testing.T) {
		admin.Append("INBOX", raw("check@example.com", "Check"))
		cfg := dovecotConfig(d, false)
		cfg.ProcessedFolder = "Traités"
		for _, c := range newPoller(t, cfg).Check(context.Background()) {
			if c.Status != health.OK {
				t.Fatalf("check %+v\n%s", c, d.Log())
			}
		}
		inbox, _ := admin.Messages("INBOX")
		if m := inbox[len(inbox)-1]; m.MessageID != "check@example.com" || m.Has(imap.FlagSeen) {
			t.Fatalf("after the check: %+v", m)
		}
	})

	// Last: Dovecot slows the logins from an address that just failed one.
	t.Run("wrong password", func(t *testing.T) {
		cfg := dovecotConfig(d, false)
		cfg.IMAP.Password = "nope"
		_, err := newPoller(t, cfg).Poll(context.Background(), newJournal().handle, mailbox.PassOptions{})
		var ae *mailbox.AuthError
		if !errors.As(err, &ae) || !ae.Credentials() {
			t.Fatalf("err = %v", err)
		}
	})
}

// XOAUTH2 against Dovecot, which asks an OAuth2 introspection endpoint whether the token is good:
// the real exchange, failure challenge included.
func TestDovecotXOAuth2(t *testing.T) {
	tokens := graphfake.New(t)
	introspect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok := r.PostFormValue("token")
		ok := tokens.Scope(tok) == oauth.ScopeOutlook
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"active": ok, "username": "support@figurative.fr"})
	}))
	t.Cleanup(introspect.Close)
	d := dovecot.Start(t, dovecot.Options{IntrospectURL: introspect.URL})
	dovecotAdmin(t, d).Append("INBOX", raw("x@example.com", "XOAUTH2"))
	cfg := dovecotConfig(d, true)
	cfg.IMAP.Auth, cfg.IMAP.Password = mailbox.AuthXOAuth2, ""
	cfg.OAuth = oauth.Config{ClientID: graphfake.ClientID, ClientSecret: graphfake.ClientSecret, TokenURL: tokens.TokenURL()}
	if sum := poll(t, newPoller(t, cfg), newJournal(), mailbox.PassOptions{}); sum.Processed != 1 {
		t.Fatalf("summary %s\n%s", statuses(sum), d.Log())
	}
	// A token Dovecot's introspection says is not active: a refusal, after the JSON challenge.
	bad := cfg
	bad.IMAP.User = "other@figurative.fr"
	_, err := newPoller(t, bad).Poll(context.Background(), newJournal().handle, mailbox.PassOptions{})
	var ae *mailbox.AuthError
	if !errors.As(err, &ae) || ae.Mech != "XOAUTH2" {
		t.Fatalf("err = %v\n%s", err, d.Log())
	}
}

// bigMessage is a message with one attachment of n random bytes, base64 in 76-column lines; it
// returns the raw message and its SHA-256.
func bigMessage(t testing.TB, id string, n int) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Client <client@example.com>\r\nTo: support@figurative.fr\r\nSubject: Modèle 3D\r\n"+
		"Date: Mon, 05 Jan 2026 09:00:00 +0100\r\nMessage-ID: <%s>\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"+
		"Voici le modèle.\r\n--b\r\nContent-Type: model/gltf-binary\r\nContent-Disposition: attachment; filename=\"chaise.glb\"\r\n"+
		"Content-Transfer-Encoding: base64\r\n\r\n", id)
	data := make([]byte, n)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > 76 {
		b.WriteString(enc[:76])
		b.WriteString("\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n--b--\r\n")
	sum := sha256.Sum256(b.Bytes())
	return b.Bytes(), hex.EncodeToString(sum[:])
}
