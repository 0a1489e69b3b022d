package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/figurative/figsupport/internal/golden"
)

var now = time.Date(2026, 1, 5, 12, 0, 0, 0, time.UTC)

func mustParse(t *testing.T, body string) *Request {
	t.Helper()
	req, err := ParseBytes([]byte(body), DefaultLimits, now)
	if err != nil {
		t.Fatalf("ParseBytes(%s): %v", body, err)
	}
	return req
}

func TestParseValid(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		check func(t *testing.T, r *Request)
	}{
		{
			name: "full modelisation payload",
			body: `{"source":"modelisation","objet":"Modéliser une chaise","description":"Photos jointes",
				"user_email":"client@example.com","user_name":"Jean Dupont",
				"fichiers":[{"name":"photo.jpg","url":"https://cdn.example.com/a/photo.jpg"}],
				"received_at":"2026-01-05T09:00:00Z","request_id":"form-123"}`,
			check: func(t *testing.T, r *Request) {
				want := Request{Source: "modelisation", Objet: "Modéliser une chaise", Description: "Photos jointes",
					UserEmail: "client@example.com", UserName: "Jean Dupont",
					Fichiers:   []File{{Name: "photo.jpg", URL: "https://cdn.example.com/a/photo.jpg"}},
					ReceivedAt: time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC), RequestID: "form-123"}
				if !equalRequest(*r, want) {
					t.Errorf("got %+v\nwant %+v", *r, want)
				}
			},
		},
		{
			name: "unknown fields tolerated",
			body: `{"user_email":"a@example.com","description":"d","extra":{"nested":[1,2]},"utm_source":"x"}`,
			check: func(t *testing.T, r *Request) {
				if r.UserEmail != "a@example.com" || r.Description != "d" {
					t.Errorf("got %+v", *r)
				}
			},
		},
		{
			name: "trimming and source lower-cased",
			body: `{"source":"  Support \t","objet":"  Facture  ","description":"\n corps \n","user_email":"a@example.com","user_name":"  Jean  ","request_id":"  k1  "}`,
			check: func(t *testing.T, r *Request) {
				if r.Source != "support" || r.Objet != "Facture" || r.Description != "corps" || r.UserName != "Jean" || r.RequestID != "k1" {
					t.Errorf("not trimmed: %+v", *r)
				}
			},
		},
		{
			name: "e-mail trimmed and lower-cased",
			body: `{"user_email":"  Jean.Dupont@Example.COM ","objet":"o"}`,
			check: func(t *testing.T, r *Request) {
				if r.UserEmail != "jean.dupont@example.com" {
					t.Errorf("user_email = %q", r.UserEmail)
				}
			},
		},
		{
			name: "received_at with offset becomes UTC",
			body: `{"user_email":"a@example.com","objet":"o","received_at":"2026-01-05T10:30:00+02:00"}`,
			check: func(t *testing.T, r *Request) {
				want := time.Date(2026, 1, 5, 8, 30, 0, 0, time.UTC)
				if !r.ReceivedAt.Equal(want) || r.ReceivedAt.Location() != time.UTC {
					t.Errorf("received_at = %v, want %v in UTC", r.ReceivedAt, want)
				}
				if r.ReceivedAtDefault {
					t.Error("an explicit received_at is marked defaulted")
				}
			},
		},
		{
			name: "received_at with fractional seconds and negative offset",
			body: `{"user_email":"a@example.com","objet":"o","received_at":" 2026-01-04T23:00:00.250-05:00 "}`,
			check: func(t *testing.T, r *Request) {
				want := time.Date(2026, 1, 5, 4, 0, 0, 250_000_000, time.UTC)
				if !r.ReceivedAt.Equal(want) || r.ReceivedAt.Location() != time.UTC {
					t.Errorf("received_at = %v, want %v", r.ReceivedAt, want)
				}
			},
		},
		{
			name: "received_at up to a day ahead is accepted (clock skew)",
			body: `{"user_email":"a@example.com","objet":"o","received_at":"2026-01-06T11:59:59Z"}`,
			check: func(t *testing.T, r *Request) {
				if !r.ReceivedAt.Equal(now.Add(24*time.Hour - time.Second)) {
					t.Errorf("received_at = %v", r.ReceivedAt)
				}
			},
		},
		{
			name: "received_at defaults to now",
			body: `{"user_email":"a@example.com","objet":"o"}`,
			check: func(t *testing.T, r *Request) {
				if !r.ReceivedAt.Equal(now) || !r.ReceivedAtDefault {
					t.Errorf("received_at = %v (defaulted %v), want now", r.ReceivedAt, r.ReceivedAtDefault)
				}
			},
		},
		{
			name: "blank received_at defaults to now",
			body: `{"user_email":"a@example.com","objet":"o","received_at":"  "}`,
			check: func(t *testing.T, r *Request) {
				if !r.ReceivedAt.Equal(now) || !r.ReceivedAtDefault {
					t.Errorf("received_at = %v (defaulted %v), want now", r.ReceivedAt, r.ReceivedAtDefault)
				}
			},
		},
		{
			name: "null fields are absent",
			body: `{"user_email":"a@example.com","objet":null,"description":"d","fichiers":null,"received_at":null,"request_id":null}`,
			check: func(t *testing.T, r *Request) {
				if r.Objet != "" || r.Fichiers != nil || !r.ReceivedAtDefault || r.RequestID != "" {
					t.Errorf("got %+v", *r)
				}
			},
		},
		{
			name: "received_at_default from a stored request keeps its time",
			body: `{"user_email":"a@example.com","objet":"o","received_at":"2026-01-01T08:00:00Z","received_at_default":true}`,
			check: func(t *testing.T, r *Request) {
				if !r.ReceivedAt.Equal(time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)) || !r.ReceivedAtDefault {
					t.Errorf("received_at = %v (default %v)", r.ReceivedAt, r.ReceivedAtDefault)
				}
				fresh := mustParse(t, `{"user_email":"a@example.com","objet":"o"}`)
				if r.Key() != fresh.Key() {
					t.Errorf("key %s, want %s as when received_at was defaulted", r.Key(), fresh.Key())
				}
			},
		},
		{
			name: "objet alone is enough",
			body: `{"user_email":"a@example.com","objet":"Sujet seul"}`,
			check: func(t *testing.T, r *Request) {
				if r.Objet != "Sujet seul" || r.Description != "" {
					t.Errorf("got %+v", *r)
				}
			},
		},
		{
			name: "file names derived from URL and path",
			body: `{"user_email":"a@example.com","objet":"o","fichiers":[
				{"url":"https://cdn.example.com/dir/mon%20mod%C3%A8le.glb?sig=abc#frag"},
				{"url":"http://cdn.example.com/dir/sub/"},
				{"path":"/home/me/photos/chaise.jpg"},
				{"path":"C:\\Users\\me\\table.obj"},
				{"name":"  given.png  ","url":"https://cdn.example.com/x/other.png"}]}`,
			check: func(t *testing.T, r *Request) {
				want := []string{"mon modèle.glb", "sub", "chaise.jpg", "table.obj", "given.png"}
				if len(r.Fichiers) != len(want) {
					t.Fatalf("got %d files", len(r.Fichiers))
				}
				for i, w := range want {
					if r.Fichiers[i].Name != w {
						t.Errorf("fichiers[%d].name = %q, want %q", i, r.Fichiers[i].Name, w)
					}
				}
			},
		},
		{
			name: "file fields trimmed",
			body: `{"user_email":"a@example.com","objet":"o","fichiers":[{"url":"  https://cdn.example.com/a.jpg  "}]}`,
			check: func(t *testing.T, r *Request) {
				if f := r.Fichiers[0]; f.URL != "https://cdn.example.com/a.jpg" || f.Name != "a.jpg" {
					t.Errorf("got %+v", f)
				}
			},
		},
		{
			name: "request_id kept verbatim",
			body: `{"user_email":"a@example.com","objet":"o","request_id":"Mixed-Case_id/42:é"}`,
			check: func(t *testing.T, r *Request) {
				if r.RequestID != "Mixed-Case_id/42:é" || r.Key() != "Mixed-Case_id/42:é" {
					t.Errorf("request_id = %q, key = %q", r.RequestID, r.Key())
				}
			},
		},
		{
			name: "limits reached exactly",
			body: `{"user_email":"a@example.com","objet":"` + strings.Repeat("é", DefaultLimits.MaxObjetChars) +
				`","user_name":"` + strings.Repeat("n", DefaultLimits.MaxNameChars) +
				`","request_id":"` + strings.Repeat("k", DefaultLimits.MaxRequestIDBytes) + `"}`,
			check: func(t *testing.T, r *Request) {
				if utf8.RuneCountInString(r.Objet) != DefaultLimits.MaxObjetChars {
					t.Errorf("objet has %d characters", utf8.RuneCountInString(r.Objet))
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check(t, mustParse(t, tt.body))
		})
	}
}

func equalRequest(a, b Request) bool {
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return bytes.Equal(ja, jb) && a.ReceivedAt.Location() == b.ReceivedAt.Location()
}

// TestParseGolden runs the files of testdata/valid through Parse and compares the normalised
// request with the golden JSON beside it (regenerate with -update).
func TestParseGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "valid", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata: %v", err)
	}
	for _, in := range files {
		if strings.HasSuffix(in, ".golden.json") {
			continue
		}
		t.Run(filepath.Base(in), func(t *testing.T) {
			f, err := os.Open(in)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			req, err := Parse(f, DefaultLimits, now)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			got, err := json.MarshalIndent(struct {
				Request *Request `json:"request"`
				Key     string   `json:"key"`
				Subject string   `json:"subject"`
			}{req, req.Key(), req.Subject()}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden.Check(t, strings.TrimSuffix(in, ".json")+".golden.json", string(got))
		})
	}
}

func TestParseInvalid(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	files := func(n int) string {
		fs := make([]string, n)
		for i := range fs {
			fs[i] = `{"url":"https://cdn.example.com/f.jpg"}`
		}
		return `[` + strings.Join(fs, ",") + `]`
	}
	tests := []struct {
		name  string
		body  string
		field string
	}{
		{"user_email missing", `{"objet":"o"}`, "user_email"},
		{"user_email blank", `{"objet":"o","user_email":"   "}`, "user_email"},
		{"user_email without at", `{"objet":"o","user_email":"client.example.com"}`, "user_email"},
		{"user_email without domain dot", `{"objet":"o","user_email":"client@localhost"}`, "user_email"},
		{"user_email trailing dot", `{"objet":"o","user_email":"client@example.com."}`, "user_email"},
		{"user_email with display name", `{"objet":"o","user_email":"Jean <jean@example.com>"}`, "user_email"},
		{"user_email two addresses", `{"objet":"o","user_email":"a@example.com, b@example.com"}`, "user_email"},
		{"user_email quoted local part", `{"objet":"o","user_email":"\"a b\"@example.com"}`, "user_email"},
		{"user_email too long", `{"objet":"o","user_email":"` + long(64) + `@` + strings.Repeat(long(60)+".", 4) + `com"}`, "user_email"},
		{"user_email NUL", `{"objet":"o","user_email":"a\u0000@example.com"}`, "user_email"},
		{"neither objet nor description", `{"user_email":"a@example.com"}`, "description"},
		{"objet and description blank", `{"user_email":"a@example.com","objet":"  ","description":"\n\t"}`, "description"},
		{"objet too long", `{"user_email":"a@example.com","objet":"` + strings.Repeat("é", DefaultLimits.MaxObjetChars+1) + `"}`, "objet"},
		{"description too long", `{"user_email":"a@example.com","description":"` + long(DefaultLimits.MaxDescriptionChar+1) + `"}`, "description"},
		{"user_name too long", `{"user_email":"a@example.com","objet":"o","user_name":"` + long(DefaultLimits.MaxNameChars+1) + `"}`, "user_name"},
		{"source too long", `{"user_email":"a@example.com","objet":"o","source":"` + long(101) + `"}`, "source"},
		{"objet NUL", `{"user_email":"a@example.com","objet":"a\u0000b"}`, "objet"},
		{"too many files", `{"user_email":"a@example.com","objet":"o","fichiers":` + files(DefaultLimits.MaxFiles+1) + `}`, "fichiers"},
		{"file without url or path", `{"user_email":"a@example.com","objet":"o","fichiers":[{"name":"a.jpg"}]}`, "fichiers[0].url"},
		{"file with blank url", `{"user_email":"a@example.com","objet":"o","fichiers":[{"url":"https://cdn.example.com/a"},{"url":"  "}]}`, "fichiers[1].url"},
		{"file with url and path", `{"user_email":"a@example.com","objet":"o","fichiers":[{"url":"https://cdn.example.com/a","path":"/tmp/a"}]}`, "fichiers[0]"},
		{"file url ftp", `{"user_email":"a@example.com","objet":"o","fichiers":[{"url":"ftp://cdn.example.com/a"}]}`, "fichiers[0].url"},
		{"file url file scheme", `{"user_email":"a@example.com","objet":"o","fichiers":[{"url":"file:///etc/passwd"}]}`, "fichiers[0].url"},
		{"file url javascript", `{"user_email":"a@example.com","objet":"o","fichiers":[{"url":"javascript:alert(1)"}]}`, "fichiers[0].url"},
		{"file url relative", `{"user_email":"a@example.com","objet":"o","fichiers":[{"url":"/uploads/a.jpg"}]}`, "fichiers[0].url"},
		{"file url without host", `{"user_email":"a@example.com","objet":"o","fichiers":[{"url":"https:///a.jpg"}]}`, "fichiers[0].url"},
		{"file url unparsable", `{"user_email":"a@example.com","objet":"o","fichiers":[{"url":"http://[::1"}]}`, "fichiers[0].url"},
		{"file url with credentials", `{"user_email":"a@example.com","objet":"o","fichiers":[{"url":"https://user:secret@cdn.example.com/a.jpg"}]}`, "fichiers[0].url"},
		{"file url with user only", `{"user_email":"a@example.com","objet":"o","fichiers":[{"url":"https://user@cdn.example.com/a.jpg"}]}`, "fichiers[0].url"},
		{"file url too long", `{"user_email":"a@example.com","objet":"o","fichiers":[{"url":"https://cdn.example.com/` + long(DefaultLimits.MaxURLBytes) + `"}]}`, "fichiers[0].url"},
		{"file name too long", `{"user_email":"a@example.com","objet":"o","fichiers":[{"name":"` + long(DefaultLimits.MaxFileNameBytes+1) + `","url":"https://cdn.example.com/a"}]}`, "fichiers[0].name"},
		{"derived file name too long", `{"user_email":"a@example.com","objet":"o","fichiers":[{"path":"/tmp/` + long(DefaultLimits.MaxFileNameBytes+1) + `"}]}`, "fichiers[0].name"},
		{"derived file name invalid UTF-8", `{"user_email":"a@example.com","objet":"o","fichiers":[{"url":"https://cdn.example.com/%ff.jpg"}]}`, "fichiers[0].name"},
		{"received_at not a date", `{"user_email":"a@example.com","objet":"o","received_at":"yesterday"}`, "received_at"},
		{"received_at without zone", `{"user_email":"a@example.com","objet":"o","received_at":"2026-01-05T09:00:00"}`, "received_at"},
		{"received_at date only", `{"user_email":"a@example.com","objet":"o","received_at":"2026-01-05"}`, "received_at"},
		{"received_at more than a day ahead", `{"user_email":"a@example.com","objet":"o","received_at":"2026-01-06T12:00:01Z"}`, "received_at"},
		{"received_at far future", `{"user_email":"a@example.com","objet":"o","received_at":"9999-12-31T23:59:59Z"}`, "received_at"},
		{"received_at before year 1 in UTC", `{"user_email":"a@example.com","objet":"o","received_at":"0001-01-01T00:00:00+01:00"}`, "received_at"},
		{"received_at year -1 in UTC", `{"user_email":"a@example.com","objet":"o","received_at":"0000-01-01T00:30:00+01:00"}`, "received_at"},
		{"received_at before 1970", `{"user_email":"a@example.com","objet":"o","received_at":"1969-12-31T23:59:59Z"}`, "received_at"},
		{"received_at year 0", `{"user_email":"a@example.com","objet":"o","received_at":"0000-06-01T00:00:00Z"}`, "received_at"},
		{"request_id with newline", `{"user_email":"a@example.com","objet":"o","request_id":"a\nb"}`, "request_id"},
		{"request_id with tab", `{"user_email":"a@example.com","objet":"o","request_id":"a\tb"}`, "request_id"},
		{"request_id with DEL", `{"user_email":"a@example.com","objet":"o","request_id":"a\u007fb"}`, "request_id"},
		{"request_id with escape", `{"user_email":"a@example.com","objet":"o","request_id":"a\u001b[31mb"}`, "request_id"},
		{"request_id too long", `{"user_email":"a@example.com","objet":"o","request_id":"` + long(DefaultLimits.MaxRequestIDBytes+1) + `"}`, "request_id"},
		{"objet is a number", `{"user_email":"a@example.com","objet":42}`, "objet"},
		{"description is an object", `{"user_email":"a@example.com","description":{"a":1}}`, "description"},
		{"user_email is an array", `{"user_email":["a@example.com"],"objet":"o"}`, "user_email"},
		{"user_name is a bool", `{"user_email":"a@example.com","objet":"o","user_name":true}`, "user_name"},
		{"fichiers is a string", `{"user_email":"a@example.com","objet":"o","fichiers":"x"}`, "fichiers"},
		{"fichiers is an object", `{"user_email":"a@example.com","objet":"o","fichiers":{"url":"https://cdn.example.com/a"}}`, "fichiers"},
		{"received_at is a number", `{"user_email":"a@example.com","objet":"o","received_at":1767603600}`, "received_at"},
		{"request_id is a number", `{"user_email":"a@example.com","objet":"o","request_id":7}`, "request_id"},
		{"file url is a number", `{"user_email":"a@example.com","objet":"o","fichiers":[{"url":1}]}`, "fichiers.url"},
		{"not JSON", `objet=o&user_email=a@example.com`, ""},
		{"top-level array", `[{"user_email":"a@example.com","objet":"o"}]`, ""},
		{"top-level string", `"a@example.com"`, ""},
		{"truncated JSON", `{"user_email":"a@example.com","objet":"o"`, ""},
		{"trailing object", `{"user_email":"a@example.com","objet":"o"} {}`, ""},
		{"trailing garbage", `{"user_email":"a@example.com","objet":"o"}x`, ""},
		{"trailing closing brace", `{"user_email":"a@example.com","objet":"o"}}`, ""},
		{"trailing closing bracket", `{"user_email":"a@example.com","objet":"o"}]`, ""},
		{"empty body", ``, ""},
		{"blank body", " \n\t ", ""},
		{"null body", `null`, "user_email"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := ParseBytes([]byte(tt.body), DefaultLimits, now)
			checkInvalid(t, req, err, tt.field)
		})
	}
}

func checkInvalid(t *testing.T, req *Request, err error, field string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted: %+v", req)
	}
	if req != nil {
		t.Errorf("a request came back with the error %v", err)
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("error %v (%T) is not a *ValidationError", err, err)
	}
	if ve.Field != field {
		t.Errorf("field = %q, want %q (error %v)", ve.Field, field, err)
	}
	if !errors.Is(err, ErrInvalid) {
		t.Errorf("errors.Is(%v, ErrInvalid) = false", err)
	}
	if ve.Msg == "" || err.Error() == "" {
		t.Error("empty error message")
	}
	if field != "" && !strings.HasPrefix(err.Error(), field+": ") {
		t.Errorf("message %q does not start with the field", err.Error())
	}
}

func TestParseBodyLimit(t *testing.T) {
	lim := DefaultLimits
	lim.MaxBodyBytes = 200
	base := `{"user_email":"a@example.com","objet":"o","description":"`
	fit := base + strings.Repeat("d", int(lim.MaxBodyBytes)-len(base)-2) + `"}`
	if len(fit) != int(lim.MaxBodyBytes) {
		t.Fatalf("test body is %d bytes", len(fit))
	}
	t.Run("exactly the limit", func(t *testing.T) {
		if _, err := Parse(strings.NewReader(fit), lim, now); err != nil {
			t.Fatalf("Parse: %v", err)
		}
	})
	t.Run("one byte over", func(t *testing.T) {
		req, err := Parse(strings.NewReader(fit+" "), lim, now)
		checkInvalid(t, req, err, "")
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("errors.Is(%v, ErrTooLarge) = false", err)
		}
	})
	t.Run("a huge stream is not read whole", func(t *testing.T) {
		r := &countingReader{max: 1 << 30}
		req, err := Parse(r, lim, now)
		checkInvalid(t, req, err, "")
		if r.n > lim.MaxBodyBytes+1 {
			t.Errorf("read %d bytes of a %d-byte limit", r.n, lim.MaxBodyBytes)
		}
	})
	t.Run("read error is not a validation error", func(t *testing.T) {
		boom := errors.New("connection reset")
		_, err := Parse(errReader{boom}, lim, now)
		if !errors.Is(err, boom) || errors.Is(err, ErrInvalid) {
			t.Errorf("err = %v", err)
		}
	})
}

type countingReader struct{ n, max int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	c.n += int64(len(p))
	return len(p), nil
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestNormalizeInCode(t *testing.T) {
	t.Run("request built by the CLI", func(t *testing.T) {
		r := Request{UserEmail: " A@Example.com", Objet: " o ", Fichiers: []File{{Path: "./x/y.stl"}}}
		if err := r.Normalize(DefaultLimits, now); err != nil {
			t.Fatal(err)
		}
		if r.UserEmail != "a@example.com" || r.Objet != "o" || r.Fichiers[0].Name != "y.stl" || !r.ReceivedAt.Equal(now) {
			t.Errorf("got %+v", r)
		}
	})
	t.Run("invalid UTF-8", func(t *testing.T) {
		r := Request{UserEmail: "a@example.com", Objet: "o\xff"}
		err := r.Normalize(DefaultLimits, now)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != "objet" {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("file name invalid UTF-8", func(t *testing.T) {
		r := Request{UserEmail: "a@example.com", Objet: "o", Fichiers: []File{{Name: "\xfe.jpg", URL: "https://h.example/a"}}}
		err := r.Normalize(DefaultLimits, now)
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != "fichiers[0].name" {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("local time converted to UTC", func(t *testing.T) {
		paris := time.FixedZone("CET", 3600)
		r := Request{UserEmail: "a@example.com", Objet: "o", ReceivedAt: time.Date(2026, 1, 5, 10, 0, 0, 0, paris)}
		if err := r.Normalize(DefaultLimits, now); err != nil {
			t.Fatal(err)
		}
		if r.ReceivedAt.Location() != time.UTC || r.ReceivedAt.Hour() != 9 {
			t.Errorf("received_at = %v", r.ReceivedAt)
		}
	})
	t.Run("normalising twice changes nothing", func(t *testing.T) {
		r := mustParse(t, `{"user_email":"A@B.example","objet":" o ","fichiers":[{"url":"https://h.example/%20a%20"}]}`)
		before, key := *r, r.Key()
		before.Fichiers = append([]File(nil), r.Fichiers...)
		if err := r.Normalize(DefaultLimits, now.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if !equalRequest(*r, before) || r.Key() != key {
			t.Errorf("second Normalize changed %+v into %+v", before, *r)
		}
	})
}

func TestNormalizeEmail(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"a@example.com", "a@example.com", true},
		{" Jean.Dupont+tag@Sub.Example.FR\t", "jean.dupont+tag@sub.example.fr", true},
		{"o'brien@example.ie", "o'brien@example.ie", true},
		{"", "", false},
		{"a@", "", false},
		{"@example.com", "", false},
		{"a@b", "", false},
		{"a@@example.com", "", false},
		{"a b@example.com", "", false},
		{"<a@example.com>", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := NormalizeEmail(tt.in)
			if tt.ok {
				if err != nil || got != tt.want {
					t.Errorf("NormalizeEmail(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != "user_email" || !errors.Is(err, ErrInvalid) {
				t.Errorf("NormalizeEmail(%q) = %q, %v; want a user_email error", tt.in, got, err)
			}
		})
	}
}

func TestKeyAndHash(t *testing.T) {
	const base = `{"user_email":"a@example.com","objet":"Facture","description":"Je n'ai pas reçu ma facture"`
	parseAt := func(t *testing.T, body string, at time.Time) *Request {
		t.Helper()
		r, err := ParseBytes([]byte(body), DefaultLimits, at)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	t.Run("same payload same key", func(t *testing.T) {
		a := parseAt(t, base+`,"received_at":"2026-01-05T09:00:00Z"}`, now)
		b := parseAt(t, base+`,"received_at":"2026-01-05T09:00:00Z"}`, now.Add(time.Hour))
		if a.Key() != b.Key() || a.Hash() != b.Hash() {
			t.Errorf("keys differ: %s %s", a.Key(), b.Key())
		}
		if !strings.HasPrefix(a.Key(), "h-") || len(a.Key()) != 2+32 || len(a.Hash()) != 64 {
			t.Errorf("key %q hash %q have the wrong shape", a.Key(), a.Hash())
		}
	})
	t.Run("normalisation happens before hashing", func(t *testing.T) {
		a := parseAt(t, base+`,"received_at":"2026-01-05T09:00:00Z"}`, now)
		b := parseAt(t, `{"user_email":"  A@EXAMPLE.com ","objet":" Facture ","description":"Je n'ai pas reçu ma facture\n",
			"received_at":"2026-01-05T10:00:00+01:00","ignored":1}`, now)
		if a.Key() != b.Key() {
			t.Errorf("equivalent payloads have keys %s and %s", a.Key(), b.Key())
		}
	})
	t.Run("explicit request_id wins", func(t *testing.T) {
		a := parseAt(t, base+`,"request_id":"client-key-1"}`, now)
		b := parseAt(t, `{"user_email":"b@example.com","objet":"autre","request_id":"client-key-1"}`, now)
		if a.Key() != "client-key-1" || b.Key() != "client-key-1" {
			t.Errorf("keys %q %q, want the request_id", a.Key(), b.Key())
		}
		if a.Hash() == b.Hash() {
			t.Error("different payloads under one request_id have the same hash: conflicts would go unseen")
		}
	})
	t.Run("request_id left out of the hash", func(t *testing.T) {
		a := parseAt(t, base+`,"request_id":"k1"}`, now)
		b := parseAt(t, base+`,"request_id":"k2"}`, now)
		if a.Hash() != b.Hash() {
			t.Error("the hash depends on request_id")
		}
	})
	t.Run("defaulted received_at left out", func(t *testing.T) {
		a := parseAt(t, base+`}`, now)
		b := parseAt(t, base+`}`, now.Add(72*time.Hour))
		if a.Key() != b.Key() || a.Hash() != b.Hash() {
			t.Errorf("the same message resent later has keys %s and %s", a.Key(), b.Key())
		}
		if a.ReceivedAt.Equal(b.ReceivedAt) {
			t.Error("received_at was not defaulted to now")
		}
	})
	t.Run("explicit received_at counts", func(t *testing.T) {
		a := parseAt(t, base+`,"received_at":"2026-01-05T09:00:00Z"}`, now)
		b := parseAt(t, base+`,"received_at":"2026-01-05T09:00:01Z"}`, now)
		c := parseAt(t, base+`}`, now)
		if a.Key() == b.Key() || a.Key() == c.Key() {
			t.Error("received_at does not change the key")
		}
	})
	t.Run("different content different key", func(t *testing.T) {
		ref := parseAt(t, base+`}`, now).Key()
		for name, body := range map[string]string{
			"text":    `{"user_email":"a@example.com","objet":"Facture","description":"Je n'ai pas reçu ma facture !"}`,
			"objet":   `{"user_email":"a@example.com","objet":"Factures","description":"Je n'ai pas reçu ma facture"}`,
			"email":   `{"user_email":"b@example.com","objet":"Facture","description":"Je n'ai pas reçu ma facture"}`,
			"name":    base + `,"user_name":"Jean"}`,
			"source":  base + `,"source":"support"}`,
			"file":    base + `,"fichiers":[{"url":"https://h.example/a.jpg"}]}`,
			"swapped": `{"user_email":"a@example.com","objet":"Je n'ai pas reçu ma facture","description":"Facture"}`,
		} {
			if k := parseAt(t, body, now).Key(); k == ref {
				t.Errorf("%s: same key %s", name, k)
			}
		}
	})
	t.Run("stored JSON re-parses to the same key", func(t *testing.T) {
		for name, body := range map[string]string{
			"explicit time": base + `,"received_at":"2026-01-05T09:00:00.123456789+02:00"}`,
			"default time":  base + `}`,
			"request_id":    base + `,"request_id":"rid"}`,
			"files":         base + `,"fichiers":[{"url":"https://h.example/%20a%20b%20"},{"path":"/tmp/x.glb"}]}`,
		} {
			a := parseAt(t, body, now)
			js, err := json.Marshal(a)
			if err != nil {
				t.Fatal(err)
			}
			b := parseAt(t, string(js), now.Add(48*time.Hour))
			if a.Key() != b.Key() || a.Hash() != b.Hash() {
				t.Errorf("%s: key %s became %s through %s", name, a.Key(), b.Key(), js)
			}
			var c Request
			if err := json.Unmarshal(js, &c); err != nil {
				t.Fatal(err)
			}
			if a.Key() != c.Key() || !c.ReceivedAt.Equal(a.ReceivedAt) {
				t.Errorf("%s: json.Unmarshal gives key %s, want %s", name, c.Key(), a.Key())
			}
		}
	})
}

func TestSubject(t *testing.T) {
	tests := []struct {
		name, objet, desc, want string
	}{
		{"objet wins", "Mon sujet", "long description", "Mon sujet"},
		{"short description", "", "  Bonjour,\n\n  mon   paiement\ta échoué ", "Bonjour, mon paiement a échoué"},
		{"exactly 80 characters", "", strings.Repeat("é", 80), strings.Repeat("é", 80)},
		{"81 characters cut to 80", "", strings.Repeat("é", 81), strings.Repeat("é", 77) + "..."},
		{"long objet not cut", strings.Repeat("o", 120), "", strings.Repeat("o", 120)},
		{"empty", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Request{Objet: tt.objet, Description: tt.desc}
			got := r.Subject()
			if got != tt.want {
				t.Errorf("Subject() = %q, want %q", got, tt.want)
			}
			if n := utf8.RuneCountInString(got); tt.objet == "" && n > 80 {
				t.Errorf("subject has %d characters", n)
			}
			if !utf8.ValidString(got) {
				t.Error("subject is not valid UTF-8")
			}
		})
	}
}

func TestText(t *testing.T) {
	tests := []struct {
		name, objet, desc, want string
	}{
		{"both", "Sujet", "Corps", "Sujet\n\nCorps"},
		{"objet only", "Sujet", "", "Sujet"},
		{"description only", "", "Corps", "Corps"},
		{"neither", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Request{Objet: tt.objet, Description: tt.desc}
			if got := r.Text(); got != tt.want {
				t.Errorf("Text() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestValidationErrorText(t *testing.T) {
	if got := (&ValidationError{Field: "objet", Msg: "too long"}).Error(); got != "objet: too long" {
		t.Errorf("got %q", got)
	}
	if got := (&ValidationError{Msg: "empty request body"}).Error(); got != "empty request body" {
		t.Errorf("got %q", got)
	}
	if errors.Is(&ValidationError{}, ErrTooLarge) {
		t.Error("every validation error claims to be ErrTooLarge")
	}
}

func FuzzParse(f *testing.F) {
	seeds := []string{
		`{"source":"modelisation","objet":"Modéliser","description":"d","user_email":"Client@Example.com","user_name":"Jean",
			"fichiers":[{"name":"photo.jpg","url":"https://cdn.example.com/photo.jpg"}],"received_at":"2026-01-05T09:00:00Z","request_id":"k"}`,
		`{"user_email":"a@example.com","description":"paiement refusé"}`,
		`{"user_email":" A@B.example ","objet":" o ","fichiers":[{"url":"https://h.example/%20a%20"},{"path":"C:\\x\\y.glb"}]}`,
		`{"user_email":"a@example.com","objet":"o","received_at":"2026-01-05T10:30:00.5+02:00"}`,
		`{"user_email":"a@example.com","objet":"o","received_at":"0001-01-01T00:30:00+01:00"}`,
		`{"user_email":"a@example.com","objet":"o"}}`,
		`{"user_email":"a@example.com","objet":42}`,
		`{"user_email":"a@example.com","objet":"o","fichiers":"x"}`,
		`[]`,
		`null`,
		``,
		`{"user_email":"a@example.com","objet":"\u0000"}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	dir := filepath.Join("testdata", "valid")
	if ents, err := os.ReadDir(dir); err == nil {
		for _, e := range ents {
			if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && !strings.HasSuffix(e.Name(), ".golden.json") {
				f.Add(b)
			}
		}
	}
	lim := DefaultLimits
	lim.MaxBodyBytes = 64 << 10
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := Parse(bytes.NewReader(body), lim, now)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v (%T) is not a validation error", err, err)
			}
			if req != nil {
				t.Fatal("request returned with an error")
			}
			return
		}
		if req.UserEmail != strings.ToLower(req.UserEmail) || req.UserEmail == "" {
			t.Fatalf("user_email %q is not lower-case", req.UserEmail)
		}
		if req.Objet == "" && req.Description == "" {
			t.Fatal("accepted without objet or description")
		}
		if req.ReceivedAt.Location() != time.UTC {
			t.Fatalf("received_at %v is not UTC", req.ReceivedAt)
		}
		key := req.Key()
		again := *req
		again.Fichiers = append([]File(nil), req.Fichiers...)
		if err := again.Normalize(lim, now); err != nil {
			t.Fatalf("a parsed request does not re-validate: %v", err)
		}
		if again.Key() != key {
			t.Fatalf("Normalize is not idempotent: key %s became %s", key, again.Key())
		}
		js, err := json.Marshal(req)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		re, err := ParseBytes(js, lim, now)
		if err != nil {
			t.Fatalf("the request's JSON %s does not re-parse: %v", js, err)
		}
		if re.Key() != key {
			t.Fatalf("the request's JSON %s re-parses to key %s, want %s", js, re.Key(), key)
		}
		_ = req.Subject()
		_ = req.Text()
	})
}
