package server

import (
	"bytes"
	"context"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"testing"

	"github.com/figurative/figsupport/internal/payload"
)

// rawMail is a customer's e-mail with one attachment.
func rawMail(id string) string {
	return strings.ReplaceAll(`From: Jean Dupont <jean@example.com>
To: support@figurative.fr
Subject: Modéliser ma chaise
Date: Mon, 05 Jan 2026 09:00:00 +0100
Message-ID: <`+id+`>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain; charset=utf-8

Bonjour, voici la photo de ma chaise.
--b1
Content-Type: image/png
Content-Disposition: attachment; filename="chaise.png"
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--b1--
`, "\n", "\r\n")
}

func postEmail(body []byte, contentType string, hdr ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, EmailPath, bytes.NewReader(body))
	r.RemoteAddr = "192.0.2.1:40000"
	r.Header.Set("Content-Type", contentType)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	return r
}

// formWith puts the raw message in a multipart form: in the field name, or, with name "",
// in a file part typed message/rfc822; other fields around it, as the services send them.
func formWith(t *testing.T, name, raw string) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	mw.WriteField("from", "Jean Dupont <jean@example.com>")
	mw.WriteField("spam_score", "0.1")
	if name != "" {
		mw.WriteField(name, raw)
	} else {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="attachment-1"; filename="message.eml"`)
		h.Set("Content-Type", "message/rfc822")
		w, _ := mw.CreatePart(h)
		w.Write([]byte(raw))
	}
	mw.WriteField("envelope", `{"to":["support@figurative.fr"]}`)
	mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

func TestEmailWebhookShapes(t *testing.T) {
	tests := []struct {
		name string
		req  func(t *testing.T, raw string) *http.Request
	}{
		{"raw message as the body", func(_ *testing.T, raw string) *http.Request {
			return postEmail([]byte(raw), "message/rfc822")
		}},
		{"SendGrid Inbound Parse, raw MIME in email", func(t *testing.T, raw string) *http.Request {
			b, ct := formWith(t, "email", raw)
			return postEmail(b, ct)
		}},
		{"Mailgun route, raw MIME in body-mime", func(t *testing.T, raw string) *http.Request {
			b, ct := formWith(t, "body-mime", raw)
			return postEmail(b, ct)
		}},
		{"a part typed message/rfc822", func(t *testing.T, raw string) *http.Request {
			b, ct := formWith(t, "", raw)
			return postEmail(b, ct)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil, nil)
			raw := rawMail("shape-1@example.com")
			rec := e.do(tt.req(t, raw))
			resp := decode[payload.Response](t, rec)
			if rec.Code != 200 || resp.Status != payload.StatusCreated || resp.RequestID != "shape-1@example.com" ||
				resp.FilesUploaded != 1 || resp.Classification != payload.Modelisation {
				t.Fatalf("%d %+v", rec.Code, resp)
			}
			e.drain(t)
			if left := spoolEntries(t, e.spool); len(left) != 0 {
				t.Errorf("spool after a finished run: %v", left)
			}
			// The same message again, by any route, is the same request.
			again := e.do(postEmail([]byte(raw), "message/rfc822"))
			if r := decode[payload.Response](t, again); again.Code != 200 || !r.Replayed || r.TicketID != resp.TicketID {
				t.Fatalf("again: %d %+v", again.Code, r)
			}
		})
	}
}

func TestEmailWebhookRefusals(t *testing.T) {
	raw := rawMail("refused@example.com")
	tests := []struct {
		name      string
		mut       func(*Config)
		req       func(t *testing.T) *http.Request
		want      int
		wantField string
	}{
		{"bad signature", func(c *Config) { c.WebhookSecret = testSecret }, func(t *testing.T) *http.Request {
			r := postEmail([]byte(raw), "message/rfc822")
			if err := SignRequest(r, testSecret, "msg_1", t0, []byte(raw+"tampered")); err != nil {
				t.Fatal(err)
			}
			return r
		}, 401, ""},
		{"oversize message", func(c *Config) { c.Limits.MaxFiles = 1; c.MaxFileBytes = 1 << 10; c.Limits.MaxBodyBytes = 1 << 10 }, func(t *testing.T) *http.Request {
			big := strings.Replace(raw, "iVBORw0KGgo=", strings.Repeat("QUFBQUFBQUFB\r\n", 400_000), 1)
			return postEmail([]byte(big), "message/rfc822")
		}, 413, ""},
		{"not an e-mail", nil, func(t *testing.T) *http.Request {
			return postEmail([]byte("just some words\r\n"), "message/rfc822")
		}, 0, ""},
		{"a form without the message", nil, func(t *testing.T) *http.Request {
			b, ct := formWith(t, "text", "Bonjour")
			return postEmail(b, ct)
		}, 422, "email"},
		{"JSON is not an e-mail", nil, func(t *testing.T) *http.Request {
			return postEmail([]byte(`{}`), "application/json")
		}, 415, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, nil, tt.mut)
			rec := e.do(tt.req(t))
			if tt.want == 0 { // any 4xx that names the problem
				if rec.Code < 400 || rec.Code >= 500 {
					t.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			} else if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			if tt.wantField != "" {
				if b := decode[errBody](t, rec); b.Field != tt.wantField {
					t.Errorf("field %q, want %q", b.Field, tt.wantField)
				}
			}
			if left := spoolEntries(t, e.spool); len(left) != 0 {
				t.Errorf("a refused message left %v in the spool", left)
			}
			if runs, _ := e.hs.Journal.List(context.Background(), nil, 10); len(runs) != 0 {
				t.Errorf("a refused message was recorded: %d runs", len(runs))
			}
		})
	}
}
