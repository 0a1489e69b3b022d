package server

import (
	"bytes"
	"context"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/payload"
)

// The fuzz targets drive the HTTP surface (Server.Handler) with whatever a client may send: the
// handler must never panic, answer 2xx only for a request it could hand on whole and valid, and
// leave nothing in the spool when it refuses one. Run them with
//
//	go test ./internal/server -run '^$' -fuzz FuzzWebhookJSON -fuzztime 2m
//	go test ./internal/server -run '^$' -fuzz FuzzWebhookMultipart -fuzztime 2m

// stubIntake records what reaches the journal and the pool; the pool answers "created" at once.
type stubIntake struct {
	mu       sync.Mutex
	accepted []*payload.Request
}

func (s *stubIntake) Accept(_ context.Context, req *payload.Request) (*chain.Run, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := *req
	s.accepted = append(s.accepted, &c)
	return &chain.Run{Key: req.Key(), Hash: req.Hash(), Email: req.UserEmail, Status: chain.StatusQueued}, nil
}

func (s *stubIntake) Submit(req *payload.Request) (Job, error) {
	j := doneJob{resp: &payload.Response{Status: payload.StatusCreated, RequestID: req.Key(),
		Files: []payload.StoredFile{}, Warnings: []string{}}, done: make(chan struct{})}
	close(j.done)
	return j, nil
}

func (s *stubIntake) Full() bool { return false }

func (s *stubIntake) Get(context.Context, string) (*chain.Run, error) {
	return nil, chain.ErrRunNotFound
}

type doneJob struct {
	resp *payload.Response
	done chan struct{}
}

func (j doneJob) Done() <-chan struct{}              { return j.done }
func (j doneJob) Result() (*payload.Response, error) { return j.resp, nil }

// fuzzServer is a server on the stub, taking a bearer token or a signature, without rate limit,
// with small file limits so that the fuzzer reaches them.
func fuzzServer(t *testing.T) (http.Handler, *stubIntake, string, payload.Limits) {
	spool := t.TempDir()
	in := &stubIntake{}
	lim := withDefaultLimits(payload.Limits{MaxBodyBytes: 64 << 10, MaxFiles: 4})
	srv, err := New(Config{WebhookSecret: testSecret, BearerToken: testToken, SpoolDir: spool, RatePerIP: -1,
		Limits: lim, MaxFileBytes: 4 << 10, Now: func() time.Time { return t0 }}, in, in, in)
	if err != nil {
		t.Fatal(err)
	}
	return srv.Handler(), in, spool, lim
}

// check asserts what any answer must respect: a 2xx only with one valid request handed on, a
// refusal with nothing handed on and nothing left in the spool.
func check(t *testing.T, rec *httptest.ResponseRecorder, in *stubIntake, spool string, lim payload.Limits, multipartBody bool) {
	t.Helper()
	in.mu.Lock()
	accepted := in.accepted
	in.mu.Unlock()
	ok := rec.Code >= 200 && rec.Code < 300
	if ok != (len(accepted) == 1) || len(accepted) > 1 {
		t.Fatalf("status %d with %d requests handed on: %s", rec.Code, len(accepted), rec.Body)
	}
	if !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") || !json.Valid(rec.Body.Bytes()) {
		t.Fatalf("status %d: the answer is not JSON: %q", rec.Code, rec.Body)
	}
	if !ok {
		if left := spoolEntries(t, spool); len(left) != 0 {
			t.Fatalf("status %d left %v in the spool", rec.Code, left)
		}
		return
	}
	if rec.Code != http.StatusOK && rec.Code != http.StatusAccepted {
		t.Fatalf("2xx other than 200 or 202: %d", rec.Code)
	}
	req := accepted[0]
	for name, v := range map[string]string{"source": req.Source, "objet": req.Objet, "description": req.Description,
		"user_email": req.UserEmail, "user_name": req.UserName, "request_id": req.RequestID} {
		if !utf8.ValidString(v) || strings.ContainsRune(v, 0) || v != strings.TrimSpace(v) {
			t.Fatalf("accepted %s %q", name, v)
		}
	}
	at := strings.LastIndexByte(req.UserEmail, '@')
	if at <= 0 || req.UserEmail != strings.ToLower(req.UserEmail) || !strings.Contains(req.UserEmail[at+1:], ".") {
		t.Fatalf("accepted user_email %q", req.UserEmail)
	}
	if req.Objet == "" && req.Description == "" {
		t.Fatal("accepted a request with neither objet nor description")
	}
	if k := req.Key(); k == "" || len(k) > lim.MaxRequestIDBytes {
		t.Fatalf("accepted key %q", k)
	}
	if len(req.Fichiers) > lim.MaxFiles {
		t.Fatalf("accepted %d files, at most %d", len(req.Fichiers), lim.MaxFiles)
	}
	for _, f := range req.Fichiers {
		switch {
		case f.URL != "" && f.Path != "":
			t.Fatalf("accepted a file with a url and a path: %+v", f)
		case f.URL != "" && !strings.HasPrefix(f.URL, "http://") && !strings.HasPrefix(f.URL, "https://"):
			t.Fatalf("accepted file url %q", f.URL)
		case f.Path != "" && !multipartBody:
			t.Fatalf("accepted a local path over JSON: %q", f.Path)
		case f.Path != "":
			rel, err := filepath.Rel(spool, f.Path)
			if err != nil || strings.HasPrefix(rel, "..") {
				t.Fatalf("spooled file %q outside the spool %s", f.Path, spool)
			}
			if st, err := os.Stat(f.Path); err != nil || st.Size() > 4<<10 {
				t.Fatalf("spooled file %q: %v", f.Path, err)
			}
		}
	}
	again := *req
	if err := again.Normalize(lim, t0); err != nil {
		t.Fatalf("accepted a request that does not validate again: %v", err)
	}
}

func fuzzRequest(body []byte, contentType string, signed bool, idemKey string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, WebhookPath, bytes.NewReader(body))
	r.RemoteAddr = "192.0.2.1:40000"
	r.Header.Set("Content-Type", contentType)
	if idemKey != "" {
		r.Header.Set(HeaderIdempotencyKey, idemKey)
	}
	if signed {
		_ = SignRequest(r, testSecret, "msg_fuzz", t0, body)
	} else {
		r.Header.Set("Authorization", "Bearer "+testToken)
	}
	return r
}

func FuzzWebhookJSON(f *testing.F) {
	for _, seed := range []string{
		bodyA,
		`{"source":"modelisation","objet":"Modèle","user_email":"a@b.fr","fichiers":[{"name":"x.glb","url":"https://f.example.com/x.glb"}],"request_id":"k-1"}`,
		`{"user_email":"a@b.fr","description":"x","received_at":"2026-01-05T09:00:00+02:00"}`,
		`{"user_email":"a@b.fr","objet":"x","fichiers":[{"path":"/etc/passwd"}]}`,
		`{"user_email":"a@b.fr","objet":"x"}}`,
		`{"user_email":"a@b.fr","objet":"x","objet":"y"}`,
		`[1,2]`, `null`, ``, `{"user_email":"A@B.FR ","objet":" \u0000 "}`,
		`{"user_email":"a@b.fr","objet":"x","request_id":"\u0007"}`,
	} {
		f.Add([]byte(seed), false, "")
		f.Add([]byte(seed), true, "")
	}
	f.Add([]byte(bodyA), false, `"idem-1"`)
	f.Add([]byte(bodyA), false, "\x01")
	f.Fuzz(func(t *testing.T, body []byte, signed bool, idemKey string) {
		h, in, spool, lim := fuzzServer(t)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, fuzzRequest(body, "application/json", signed, idemKey))
		check(t, rec, in, spool, lim, false)
		if rec.Code/100 == 2 && !json.Valid(body) {
			t.Fatalf("accepted a body that is not JSON: %q", body)
		}
	})
}

// fuzzBoundary is the boundary the multipart seeds use; the fuzzer mutates the body around it.
const fuzzBoundary = "fuzzb0undary"

func multipartSeed(parts ...part) []byte {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	_ = mw.SetBoundary(fuzzBoundary)
	for _, p := range parts {
		if p.filename != "" {
			w, _ := mw.CreateFormFile(p.field, p.filename)
			w.Write([]byte(p.content))
		} else {
			mw.WriteField(p.field, p.content)
		}
	}
	mw.Close()
	return b.Bytes()
}

func FuzzWebhookMultipart(f *testing.F) {
	seeds := [][]byte{
		multipartSeed(withParts(part{field: "fichiers", filename: "photo.jpg", content: "JPEG"})...),
		multipartSeed(withParts(
			part{field: "fichiers", content: `[{"name":"ref.jpg","url":"https://files.example.com/ref.jpg"}]`},
			part{field: "files", filename: `C:\Users\x\..\modèle.glb`, content: "glTF"},
			part{field: "empty", filename: "", content: ""},
			part{field: "request_id", content: "form-1"},
		)...),
		multipartSeed(withParts(part{field: "fichiers", filename: "big.bin", content: strings.Repeat("x", 5<<10)})...),
		multipartSeed(part{field: "user_email", content: "a@b.fr"}, part{field: "user_email", content: "c@d.fr"}),
		multipartSeed(withParts(part{field: "fichiers", content: `[{"path":"/etc/passwd"}]`})...),
		multipartSeed(withParts(part{field: "fichiers", filename: "../../escape.txt", content: "x"})...),
		[]byte("--" + fuzzBoundary + "\r\nContent-Disposition: form-data; name=\"objet\"\r\n\r\nx"),
	}
	for _, s := range seeds {
		f.Add(s, false, false)
		f.Add(s, true, false)
	}
	f.Add(seeds[0], false, true)
	f.Fuzz(func(t *testing.T, body []byte, signed, otherBoundary bool) {
		h, in, spool, lim := fuzzServer(t)
		ct := "multipart/form-data; boundary=" + fuzzBoundary
		if otherBoundary {
			ct = "multipart/form-data; boundary=\"a b\"" // a boundary the body does not use
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, fuzzRequest(body, ct, signed, ""))
		check(t, rec, in, spool, lim, true)
	})
}

// The fuzz targets' harness: their valid seeds reach the stub and their invalid ones do not, so
// the fuzzers start from both sides of every check.
func TestFuzzHarness(t *testing.T) {
	tests := []struct {
		name        string
		body        []byte
		contentType string
		signed      bool
		want        int
	}{
		{"JSON by token", []byte(bodyA), "application/json", false, 200},
		{"JSON signed", []byte(bodyA), "application/json", true, 200},
		{"JSON local path", []byte(`{"user_email":"a@b.fr","objet":"x","fichiers":[{"path":"/etc/passwd"}]}`), "application/json", false, 422},
		{"JSON trailing data", []byte(`{"user_email":"a@b.fr","objet":"x"}}`), "application/json", false, 400},
		{"multipart with a file", multipartSeed(withParts(part{field: "fichiers", filename: "photo.jpg", content: "JPEG"})...),
			"multipart/form-data; boundary=" + fuzzBoundary, true, 200},
		{"multipart file too large", multipartSeed(withParts(part{field: "fichiers", filename: "big.bin", content: strings.Repeat("x", 5<<10)})...),
			"multipart/form-data; boundary=" + fuzzBoundary, false, 413},
		{"multipart cut short", []byte("--" + fuzzBoundary + "\r\nContent-Disposition: form-data; name=\"objet\"\r\n\r\nx"),
			"multipart/form-data; boundary=" + fuzzBoundary, false, 400},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, in, spool, lim := fuzzServer(t)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, fuzzRequest(tt.body, tt.contentType, tt.signed, ""))
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			check(t, rec, in, spool, lim, strings.HasPrefix(tt.contentType, "multipart/"))
		})
	}
}
