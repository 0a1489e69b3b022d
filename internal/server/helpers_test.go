package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/chain/chaintest"
	"github.com/figurative/figsupport/internal/payload"
	"github.com/figurative/figsupport/internal/worker"
)

var t0 = time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)

// testSecret is a Standard Webhooks secret: whsec_ and 32 base64-encoded bytes.
var testSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

const testToken = "tok-s3cr3t-value"

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// syncBuffer collects the log for assertions (what it must never contain).
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// procFunc is a Processor made of a function, for tests that control timing and outcomes.
type procFunc func(ctx context.Context, req *payload.Request, ro chain.RunOptions) (*payload.Response, error)

func (f procFunc) Process(ctx context.Context, req *payload.Request, ro chain.RunOptions) (*payload.Response, error) {
	return f(ctx, req, ro)
}

// created is a Processor that answers "created" at once.
var created = procFunc(func(_ context.Context, req *payload.Request, _ chain.RunOptions) (*payload.Response, error) {
	return &payload.Response{Status: payload.StatusCreated, TicketID: "1", RequestID: req.Key()}, nil
})

type env struct {
	srv   *Server
	h     http.Handler
	clk   *clock
	spool string
	logs  *syncBuffer
	hs    *chaintest.Harness // the real chain and journal: requests are always recorded there
	pool  *worker.Pool
}

// Processor is what the pool runs: the real chain, or a test's function.
type Processor = worker.Processor

// newEnv builds a server recording requests in a real journal, whose pool runs them on p (nil:
// the real chain on a temporary data dir), with a fixed clock.
func newEnv(t *testing.T, p Processor, mut func(*Config)) *env {
	t.Helper()
	e := &env{clk: &clock{t: t0}, spool: t.TempDir(), logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := Config{SpoolDir: e.spool, Now: e.clk.Now, Log: log}
	if mut != nil {
		mut(&cfg)
	}
	e.hs = chaintest.New(t, chaintest.Options{Now: e.clk.Now})
	if p == nil {
		p = e.hs.Chain
	}
	e.pool = worker.New(p, e.hs.Journal, worker.Config{SweepEvery: -1, Log: log, Done: func(o worker.Outcome) {
		if err := CleanSpool(cfg.SpoolDir, o.Request, o.Response, o.Err); err != nil {
			t.Error(err)
		}
	}})
	e.pool.Start()
	srv, err := New(cfg, e.hs.Chain, testQueue{e.pool}, e.hs.Journal)
	if err != nil {
		t.Fatal(err)
	}
	e.srv, e.h = srv, srv.Handler()
	t.Cleanup(func() {
		if err := e.pool.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return e
}

// build is New with an intake, queue and journal that no request reaches (configuration tests).
func build(cfg Config) (*Server, error) { return New(cfg, unused{}, unused{}, unused{}) }

type unused struct{}

func (unused) Accept(context.Context, *payload.Request) (*chain.Run, error) { panic("unused") }
func (unused) Submit(*payload.Request) (Job, error)                         { panic("unused") }
func (unused) Full() bool                                                   { panic("unused") }
func (unused) Get(context.Context, string) (*chain.Run, error)              { panic("unused") }

type testQueue struct{ p *worker.Pool }

func (q testQueue) Submit(req *payload.Request) (Job, error) { return q.p.Submit(req) }
func (q testQueue) Full() bool                               { return q.p.Full() }

// drain waits until the pool has nothing waiting or running.
func (e *env) drain(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for e.pool.Depth() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the pool did not drain")
		}
		time.Sleep(time.Millisecond)
	}
}

func (e *env) do(r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, r)
	return rec
}

// post is a JSON POST to the webhook from 192.0.2.1; hdr are header name, value pairs.
func post(body string, hdr ...string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, WebhookPath, strings.NewReader(body))
	r.RemoteAddr = "192.0.2.1:40000"
	r.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	return r
}

// signed is post with Standard Webhooks headers for body, signed at ts with secret.
func signed(t *testing.T, secret, id string, ts time.Time, body string, hdr ...string) *http.Request {
	t.Helper()
	r := post(body, hdr...)
	if err := SignRequest(r, secret, id, ts, []byte(body)); err != nil {
		t.Fatal(err)
	}
	return r
}

type part struct {
	field, filename, content string
}

// form builds a multipart/form-data body; a part with a filename is a file part.
func form(t *testing.T, parts ...part) (body []byte, contentType string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, p := range parts {
		var err error
		if p.filename != "" {
			var w interface{ Write([]byte) (int, error) }
			w, err = mw.CreateFormFile(p.field, p.filename)
			if err == nil {
				_, err = w.Write([]byte(p.content))
			}
		} else {
			err = mw.WriteField(p.field, p.content)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), mw.FormDataContentType()
}

func postForm(t *testing.T, parts ...part) (*http.Request, []byte) {
	t.Helper()
	body, ct := form(t, parts...)
	r := httptest.NewRequest(http.MethodPost, WebhookPath, bytes.NewReader(body))
	r.RemoteAddr = "192.0.2.1:40000"
	r.Header.Set("Content-Type", ct)
	return r, body
}

type errBody struct {
	Error string `json:"error"`
	Field string `json:"field"`
}

func decode[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("status %d, body %q: %v", rec.Code, rec.Body.String(), err)
	}
	return v
}

// spoolEntries lists what is left in the spool directory.
func spoolEntries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

const bodyA = `{"objet":"Problème de paiement","description":"Ma carte est refusée","user_email":"Client@Example.com","user_name":"Jean Dupont","received_at":"2026-01-05T09:00:00Z"}`
