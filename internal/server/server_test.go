package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/payload"
	"github.com/figurative/figsupport/internal/worker"
)

// TestJSONChain drives the real chain: a new ticket, the same body replayed, a follow-up joining
// the ticket, and a request_id reused for another payload.
func TestJSONChain(t *testing.T) {
	e := newEnv(t, nil, nil)
	var ticket string
	steps := []struct {
		name       string
		body       string
		wantCode   int
		wantStatus string
		replayed   bool
		newTicket  bool
		wantField  string
	}{
		{"created", bodyA, 200, payload.StatusCreated, false, true, ""},
		{"same body replayed", bodyA, 200, payload.StatusCreated, true, true, ""},
		{"follow-up joins", `{"objet":"Re: paiement","description":"Toujours refusée","user_email":"client@example.com","received_at":"2026-01-05T09:30:00Z"}`, 200, payload.StatusUpdated, false, false, ""},
		{"explicit key", `{"objet":"Autre","user_email":"other@example.com","request_id":"form-42"}`, 200, payload.StatusCreated, false, true, ""},
		{"key reused for another payload", `{"objet":"Autre chose","user_email":"other@example.com","request_id":"form-42"}`, 409, "", false, false, "request_id"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			rec := e.do(post(s.body))
			if rec.Code != s.wantCode {
				t.Fatalf("status %d, want %d: %s", rec.Code, s.wantCode, rec.Body)
			}
			if s.wantField != "" {
				if b := decode[errBody](t, rec); b.Field != s.wantField || b.Error == "" {
					t.Fatalf("error body %+v, want field %s", b, s.wantField)
				}
				return
			}
			resp := decode[payload.Response](t, rec)
			if resp.Status != s.wantStatus || resp.Replayed != s.replayed || resp.IsNewTicket != s.newTicket {
				t.Fatalf("response %+v", resp)
			}
			if resp.Warnings == nil || resp.Files == nil {
				t.Errorf("warnings and files must be arrays: %s", rec.Body)
			}
			if strings.HasPrefix(s.name, "explicit") {
				if resp.RequestID != "form-42" {
					t.Errorf("request_id %q", resp.RequestID)
				}
				return
			}
			if ticket == "" {
				ticket = resp.TicketID
			} else if resp.TicketID != ticket {
				t.Errorf("ticket %s, want %s (one ticket per conversation)", resp.TicketID, ticket)
			}
		})
	}
	if n := e.hs.Notifier.Count(); n != 3 {
		t.Errorf("%d notifications, want 3 (the replay and the conflict touch nothing)", n)
	}
}

// TestIdempotencyKey checks where the key comes from: request_id, Idempotency-Key, webhook-id, hash.
func TestIdempotencyKey(t *testing.T) {
	tests := []struct {
		name    string
		secret  bool
		body    string
		hdr     []string
		wantKey string // "h-" means a hash
	}{
		{"payload request_id wins", false, `{"objet":"a","user_email":"a@example.com","request_id":"body-key"}`, []string{"Idempotency-Key", "hdr-key"}, "body-key"},
		{"Idempotency-Key header", false, `{"objet":"b","user_email":"b@example.com"}`, []string{"Idempotency-Key", "hdr-key"}, "hdr-key"},
		{"Idempotency-Key quoted", false, `{"objet":"c","user_email":"c@example.com"}`, []string{"Idempotency-Key", `"quoted-key"`}, "quoted-key"},
		{"a signed request's key is its webhook-id, whatever Idempotency-Key says", true, `{"objet":"d","user_email":"d@example.com"}`, []string{"Idempotency-Key", "hdr-key-2"}, "msg_2Kq"},
		{"unsigned: Idempotency-Key before webhook-id", false, `{"objet":"d","user_email":"d@example.com"}`, []string{"Idempotency-Key", "hdr-key-3", "webhook-id", "wh-3"}, "hdr-key-3"},
		{"webhook-id", true, `{"objet":"e","user_email":"e@example.com"}`, nil, "msg_2Kq"},
		{"hash", false, `{"objet":"f","user_email":"f@example.com"}`, nil, "h-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got atomic.Value
			p := procFunc(func(_ context.Context, req *payload.Request, _ chain.RunOptions) (*payload.Response, error) {
				got.Store(req.Key())
				return &payload.Response{Status: payload.StatusCreated, RequestID: req.Key()}, nil
			})
			e := newEnv(t, p, func(c *Config) {
				if tt.secret {
					c.WebhookSecret = testSecret
				}
			})
			r := post(tt.body, tt.hdr...)
			if tt.secret {
				r = signed(t, testSecret, "msg_2Kq", t0, tt.body, tt.hdr...)
			}
			rec := e.do(r)
			if rec.Code != 200 {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			key, _ := got.Load().(string)
			if tt.wantKey == "h-" && !strings.HasPrefix(key, "h-") || tt.wantKey != "h-" && key != tt.wantKey {
				t.Errorf("key %q, want %q", key, tt.wantKey)
			}
		})
	}
}

// TestIdempotencyKeyChain: a header key replays, and conflicts with another payload, in the real chain.
func TestIdempotencyKeyChain(t *testing.T) {
	e := newEnv(t, nil, nil)
	body := `{"objet":"Bug","user_email":"k@example.com"}`
	for i, want := range []int{200, 200, 409} {
		b := body
		if i == 2 {
			b = `{"objet":"Autre bug","user_email":"k@example.com"}`
		}
		rec := e.do(post(b, "Idempotency-Key", "idem-1"))
		if rec.Code != want {
			t.Fatalf("request %d: status %d, want %d: %s", i, rec.Code, want, rec.Body)
		}
		if i == 1 {
			if resp := decode[payload.Response](t, rec); !resp.Replayed || resp.RequestID != "idem-1" {
				t.Fatalf("second request not replayed: %+v", resp)
			}
		}
	}
}

func TestAuth(t *testing.T) {
	other := "whsec_" + strings.Repeat("QUJD", 8)
	valid := func(t *testing.T) *http.Request { return signed(t, testSecret, "msg_1", t0, bodyA) }
	tests := []struct {
		name          string
		secret, token bool
		req           func(t *testing.T) *http.Request
		want          int
	}{
		{"nothing configured: accepted", false, false, func(*testing.T) *http.Request { return post(bodyA) }, 200},
		{"signature valid", true, false, valid, 200},
		{"signature with another secret", true, false, func(t *testing.T) *http.Request { return signed(t, other, "msg_1", t0, bodyA) }, 401},
		{"body changed after signing", true, false, func(t *testing.T) *http.Request {
			r := post(strings.Replace(bodyA, "Jean", "Jeanne", 1))
			r.Header = valid(t).Header
			return r
		}, 401},
		{"webhook-id changed after signing", true, false, func(t *testing.T) *http.Request {
			r := valid(t)
			r.Header.Set(HeaderWebhookID, "msg_2")
			return r
		}, 401},
		{"stale timestamp", true, false, func(t *testing.T) *http.Request { return signed(t, testSecret, "msg_1", t0.Add(-6*time.Minute), bodyA) }, 401},
		{"future timestamp", true, false, func(t *testing.T) *http.Request { return signed(t, testSecret, "msg_1", t0.Add(6*time.Minute), bodyA) }, 401},
		{"timestamp inside the tolerance", true, false, func(t *testing.T) *http.Request { return signed(t, testSecret, "msg_1", t0.Add(-4*time.Minute), bodyA) }, 200},
		{"missing webhook-id", true, false, func(t *testing.T) *http.Request { r := valid(t); r.Header.Del(HeaderWebhookID); return r }, 401},
		{"missing webhook-timestamp", true, false, func(t *testing.T) *http.Request { r := valid(t); r.Header.Del(HeaderWebhookTimestamp); return r }, 401},
		{"missing webhook-signature", true, false, func(t *testing.T) *http.Request { r := valid(t); r.Header.Del(HeaderWebhookSignature); return r }, 401},
		{"no headers at all", true, false, func(*testing.T) *http.Request { return post(bodyA) }, 401},
		{"several signatures, one valid", true, false, func(t *testing.T) *http.Request {
			r := valid(t)
			bad, _ := SignWebhook(other, "msg_1", t0, []byte(bodyA))
			r.Header.Set(HeaderWebhookSignature, bad+" v1a,c29tZXRoaW5n v1,!!notbase64 "+r.Header.Get(HeaderWebhookSignature))
			return r
		}, 200},
		{"several signatures, none valid", true, false, func(t *testing.T) *http.Request {
			r := valid(t)
			bad, _ := SignWebhook(other, "msg_1", t0, []byte(bodyA))
			r.Header.Set(HeaderWebhookSignature, bad+" v1a,c29tZXRoaW5n")
			return r
		}, 401},
		{"bearer valid", false, true, func(*testing.T) *http.Request { return post(bodyA, "Authorization", "Bearer "+testToken) }, 200},
		{"bearer scheme in lower case", false, true, func(*testing.T) *http.Request { return post(bodyA, "Authorization", "bearer "+testToken) }, 200},
		{"bearer invalid", false, true, func(*testing.T) *http.Request { return post(bodyA, "Authorization", "Bearer "+testToken+"x") }, 401},
		{"bearer prefix of the token", false, true, func(*testing.T) *http.Request { return post(bodyA, "Authorization", "Bearer tok") }, 401},
		{"bearer missing", false, true, func(*testing.T) *http.Request { return post(bodyA) }, 401},
		{"basic instead of bearer", false, true, func(*testing.T) *http.Request { return post(bodyA, "Authorization", "Basic "+testToken) }, 401},
		{"both: token alone", true, true, func(*testing.T) *http.Request { return post(bodyA, "Authorization", "Bearer "+testToken) }, 200},
		{"both: signature alone", true, true, valid, 200},
		{"both: bad token, valid signature", true, true, func(t *testing.T) *http.Request {
			r := valid(t)
			r.Header.Set("Authorization", "Bearer nope")
			return r
		}, 200},
		{"both: bad token, stale signature", true, true, func(t *testing.T) *http.Request {
			r := signed(t, testSecret, "msg_1", t0.Add(-time.Hour), bodyA)
			r.Header.Set("Authorization", "Bearer nope")
			return r
		}, 401},
		{"both: neither", true, true, func(*testing.T) *http.Request { return post(bodyA) }, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			p := procFunc(func(ctx context.Context, req *payload.Request, ro chain.RunOptions) (*payload.Response, error) {
				calls.Add(1)
				return created(ctx, req, ro)
			})
			e := newEnv(t, p, func(c *Config) {
				if tt.secret {
					c.WebhookSecret = testSecret
				}
				if tt.token {
					c.BearerToken = testToken
				}
			})
			rec := e.do(tt.req(t))
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			if tt.want == 401 {
				if got := strings.TrimSpace(rec.Body.String()); got != `{"error":"unauthorized"}` {
					t.Errorf("401 body %s", got)
				}
				if calls.Load() != 0 {
					t.Error("the chain ran for an unauthenticated request")
				}
				if tt.token && rec.Header().Get("WWW-Authenticate") == "" {
					t.Error("no WWW-Authenticate")
				}
			}
			logs := e.logs.String()
			for _, secret := range []string{testSecret, strings.TrimPrefix(testSecret, "whsec_"), testToken} {
				if strings.Contains(logs, secret) || strings.Contains(rec.Body.String(), secret) {
					t.Errorf("a secret leaked:\n%s", logs)
				}
			}
		})
	}
}

func TestBadRequests(t *testing.T) {
	tests := []struct {
		name      string
		req       func() *http.Request
		want      int
		wantField string
		wantInMsg string
	}{
		{"too large", func() *http.Request {
			return post(`{"objet":"x","user_email":"a@example.com","description":"` + strings.Repeat("y", 500) + `"}`)
		}, 413, "", "exceeds 300 bytes"},
		{"text/plain", func() *http.Request {
			r := post(bodyA)
			r.Header.Set("Content-Type", "text/plain")
			return r
		}, 415, "", "Content-Type"},
		{"no Content-Type", func() *http.Request {
			r := post(bodyA)
			r.Header.Del("Content-Type")
			return r
		}, 415, "", ""},
		{"malformed JSON", func() *http.Request { return post(`{"user_email":`) }, 400, "", "malformed JSON"},
		{"not an object", func() *http.Request { return post(`[1,2]`) }, 400, "", ""},
		{"empty body", func() *http.Request { return post(``) }, 400, "", "empty"},
		{"bad e-mail", func() *http.Request { return post(`{"objet":"x","user_email":"not-an-address"}`) }, 422, "user_email", "not a valid e-mail"},
		{"wrong type", func() *http.Request { return post(`{"objet":3,"user_email":"a@example.com"}`) }, 422, "objet", ""},
		{"local path in JSON", func() *http.Request {
			return post(`{"objet":"x","user_email":"a@example.com","fichiers":[{"name":"p","path":"/etc/passwd"}]}`)
		}, 422, "fichiers[0].path", "local paths are not accepted over HTTP"},
		{"Idempotency-Key too long", func() *http.Request {
			return post(`{"objet":"x","user_email":"a@example.com"}`, "Idempotency-Key", strings.Repeat("k", 201))
		}, 422, "request_id", "Idempotency-Key"},
		{"Idempotency-Key with a control character", func() *http.Request {
			r := post(`{"objet":"x","user_email":"a@example.com"}`)
			r.Header["Idempotency-Key"] = []string{"a\x01b"}
			return r
		}, 422, "request_id", "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var calls atomic.Int32
			p := procFunc(func(ctx context.Context, req *payload.Request, ro chain.RunOptions) (*payload.Response, error) {
				calls.Add(1)
				return created(ctx, req, ro)
			})
			e := newEnv(t, p, func(c *Config) { c.Limits.MaxBodyBytes = 300 })
			rec := e.do(tt.req())
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			b := decode[errBody](t, rec)
			if b.Field != tt.wantField || b.Error == "" || !strings.Contains(b.Error, tt.wantInMsg) {
				t.Errorf("body %+v, want field %q and %q in the message", b, tt.wantField, tt.wantInMsg)
			}
			if calls.Load() != 0 {
				t.Error("the chain ran for a bad request")
			}
		})
	}
}

func TestRoutes(t *testing.T) {
	e := newEnv(t, created, nil)
	tests := []struct {
		method, path string
		want         int
		wantBody     string
		wantAllow    string
	}{
		{"GET", "/healthz", 200, `{"status":"ok"}`, ""},
		{"HEAD", "/healthz", 200, "", ""},
		{"POST", "/healthz", 405, "", "GET, HEAD"},
		{"GET", WebhookPath, 405, "", "POST"},
		{"PUT", WebhookPath, 405, "", "POST"},
		{"GET", "/nope", 404, `{"error":"not found"}`, ""},
		{"POST", WebhookPath + "/x", 404, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			rec := e.do(httptest.NewRequest(tt.method, tt.path, nil))
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d", rec.Code, tt.want)
			}
			if tt.wantBody != "" && strings.TrimSpace(rec.Body.String()) != tt.wantBody {
				t.Errorf("body %s", rec.Body)
			}
			if tt.want >= 400 {
				if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Errorf("Content-Type %q", ct)
				}
				decode[errBody](t, rec)
			}
			if got := rec.Header().Get("Allow"); got != tt.wantAllow {
				t.Errorf("Allow %q, want %q", got, tt.wantAllow)
			}
		})
	}
}

// TestProcessorOutcomes maps what the chain returns to HTTP answers.
func TestProcessorOutcomes(t *testing.T) {
	stepErr := &chain.StepError{Step: "contact", Err: errors.New("hubspot: 503 Service Unavailable")}
	tests := []struct {
		name       string
		resp       *payload.Response
		err        error
		want       int
		wantStatus string
		wantWarn   string
		wantField  string
	}{
		{"created", &payload.Response{Status: payload.StatusCreated}, nil, 200, payload.StatusCreated, "", ""},
		{"incomplete as is", &payload.Response{Status: payload.StatusIncomplete, Warnings: []string{"notify: smtp down"}}, nil, 200, payload.StatusIncomplete, "notify: smtp down", ""},
		{"step failed: queued for retry", nil, stepErr, 202, payload.StatusQueued, "contact: hubspot: 503 Service Unavailable", ""},
		{"conflict", nil, fmt.Errorf("begin: %w", chain.ErrConflict), 409, "", "", "request_id"},
		{"invalid", nil, &payload.ValidationError{Field: "fichiers[0].url", Msg: "bad"}, 422, "", "", "fichiers[0].url"},
		{"failed after it was recorded: queued", nil, errors.New("journal: database is locked"), 202, payload.StatusQueued, "journal: database is locked", ""},
		{"input refused: 422", nil, &chain.StepError{Step: chain.StepUpload, Err: inputErr{}}, 422, "", "", "fichiers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := procFunc(func(_ context.Context, req *payload.Request, _ chain.RunOptions) (*payload.Response, error) {
				if tt.resp != nil {
					r := *tt.resp
					r.RequestID = req.Key()
					return &r, nil
				}
				return nil, tt.err
			})
			e := newEnv(t, p, nil)
			rec := e.do(post(bodyA, "Idempotency-Key", "k-1"))
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			if tt.want >= 400 {
				b := decode[errBody](t, rec)
				if b.Field != tt.wantField {
					t.Errorf("field %q, want %q", b.Field, tt.wantField)
				}
				if tt.want == 503 && rec.Header().Get("Retry-After") == "" {
					t.Error("503 without Retry-After")
				}
				return
			}
			resp := decode[payload.Response](t, rec)
			if resp.Status != tt.wantStatus || resp.RequestID != "k-1" {
				t.Errorf("response %+v", resp)
			}
			if tt.wantWarn != "" && (len(resp.Warnings) != 1 || resp.Warnings[0] != tt.wantWarn) {
				t.Errorf("warnings %q", resp.Warnings)
			}
		})
	}
}

// TestFailedRunIsKept: a service down answers 202 queued; the same request sent again (or the
// retry worker) resumes it to completion.
func TestFailedRunIsKept(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.hs.Files.Fail = errors.New("r2: connection refused")
	body := `{"objet":"Modéliser ce produit","user_email":"m@example.com","fichiers":[{"name":"a.glb","url":"https://files.example.com/a.glb"}]}`
	rec := e.do(post(body))
	if rec.Code != 202 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	resp := decode[payload.Response](t, rec)
	if resp.Status != payload.StatusQueued || len(resp.Warnings) != 1 || !strings.Contains(resp.Warnings[0], "connection refused") ||
		resp.Message != "accepted; processing failed and will be retried" {
		t.Fatalf("response %+v", resp)
	}
	e.drain(t)
	e.hs.Files.Fail = nil
	rec = e.do(post(body))
	if rec.Code != 200 {
		t.Fatalf("retry: status %d: %s", rec.Code, rec.Body)
	}
	if again := decode[payload.Response](t, rec); again.Status != payload.StatusCreated || again.RequestID != resp.RequestID {
		t.Fatalf("retry: %+v (first key %s)", again, resp.RequestID)
	}
}

// TestSlowProcessorQueued: past SyncTimeout the answer is 202 queued, the run goes on, and the
// pool's Shutdown returns once it finished.
func TestSlowProcessorQueued(t *testing.T) {
	started, release, finished := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	p := procFunc(func(ctx context.Context, req *payload.Request, _ chain.RunOptions) (*payload.Response, error) {
		close(started)
		<-release
		finished <- ctx.Err()
		return &payload.Response{Status: payload.StatusCreated, RequestID: req.Key()}, nil
	})
	e := newEnv(t, p, func(c *Config) { c.SyncTimeout = time.Nanosecond })
	rec := e.do(post(bodyA, "Idempotency-Key", "slow-1"))
	if rec.Code != 202 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	resp := decode[payload.Response](t, rec)
	if resp.Status != payload.StatusQueued || resp.RequestID != "slow-1" || resp.Warnings == nil || resp.Message == "" {
		t.Fatalf("response %s", rec.Body)
	}
	<-started
	waited := make(chan error, 1)
	go func() { waited <- e.pool.Shutdown(context.Background()) }()
	select {
	case err := <-waited:
		t.Fatalf("Wait returned (%v) while the run was going", err)
	default:
	}
	close(release)
	if err := <-waited; err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-finished:
		if err != nil {
			t.Errorf("the run's context was cancelled: %v", err)
		}
	default:
		t.Fatal("Wait returned before the run finished")
	}
}

// TestShutdownDeadlineCancelsRuns: when Shutdown's context ends first, the runs are cancelled.
func TestShutdownDeadlineCancelsRuns(t *testing.T) {
	started := make(chan struct{})
	p := procFunc(func(ctx context.Context, _ *payload.Request, _ chain.RunOptions) (*payload.Response, error) {
		close(started)
		<-ctx.Done()
		return nil, &chain.StepError{Step: "contact", Err: ctx.Err()}
	})
	e := newEnv(t, p, func(c *Config) { c.SyncTimeout = time.Nanosecond })
	if rec := e.do(post(bodyA)); rec.Code != 202 {
		t.Fatalf("status %d", rec.Code)
	}
	<-started
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.pool.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := e.pool.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestClientDisconnect: the client hanging up does not cancel the run.
func TestClientDisconnect(t *testing.T) {
	started, release, finished := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	p := procFunc(func(ctx context.Context, req *payload.Request, _ chain.RunOptions) (*payload.Response, error) {
		close(started)
		<-release
		finished <- ctx.Err()
		return &payload.Response{Status: payload.StatusCreated, RequestID: req.Key()}, nil
	})
	e := newEnv(t, p, nil)
	ctx, hangUp := context.WithCancel(context.Background())
	handled := make(chan struct{})
	go func() {
		e.do(post(bodyA).WithContext(ctx))
		close(handled)
	}()
	<-started
	hangUp()
	<-handled // the handler gave up on the client...
	close(release)
	e.drain(t)
	if err := <-finished; err != nil { // ...and the run went on with a live context
		t.Fatalf("run context: %v", err)
	}
	if !strings.Contains(e.logs.String(), "status=499") {
		t.Errorf("log has no 499 line:\n%s", e.logs)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t, created, func(c *Config) {
		c.RatePerIP, c.Burst = 0.5, 2
		c.ClientIPHeader = "X-Forwarded-For"
		c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("192.0.2.1/32")} // post's peer
	})
	from := func(ip string) *http.Request { return post(bodyA, "X-Forwarded-For", "198.51.100.99, "+ip) }
	steps := []struct {
		name      string
		ip        string
		advance   time.Duration
		want      int
		wantAfter string
	}{
		{"first", "203.0.113.5", 0, 200, ""},
		{"second (burst)", "203.0.113.5", 0, 200, ""},
		{"third: limited", "203.0.113.5", 0, 429, "2"},
		{"another client", "203.0.113.6", 0, 200, ""},
		{"one token later", "203.0.113.5", 2 * time.Second, 200, ""},
		{"limited again", "203.0.113.5", 0, 429, "2"},
		{"IPv6 /64: first", "2001:db8::1", 0, 200, ""},
		{"IPv6 /64: second", "2001:db8::2", 0, 200, ""},
		{"IPv6 same /64: limited", "2001:db8::ffff", 0, 429, "2"},
		{"IPv6 other /64", "2001:db8:0:1::1", 0, 200, ""},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			e.clk.Add(s.advance)
			rec := e.do(from(s.ip))
			if rec.Code != s.want {
				t.Fatalf("status %d, want %d", rec.Code, s.want)
			}
			if got := rec.Header().Get("Retry-After"); got != s.wantAfter {
				t.Errorf("Retry-After %q, want %q", got, s.wantAfter)
			}
			if s.want == 429 {
				decode[errBody](t, rec)
			}
		})
	}
}

// TestClientIP: the address a request is limited and logged by. A header is believed only from a
// trusted proxy, and only as far as the last trusted hop.
func TestClientIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	tests := []struct {
		name    string
		header  string
		trusted []netip.Prefix
		peer    string
		xff     []string
		want    string
	}{
		{"no proxy configured: the peer", "", nil, "203.0.113.9:1234", []string{"1.2.3.4"}, "203.0.113.9"},
		{"header name without trusted proxies: the peer", "X-Forwarded-For", nil, "203.0.113.9:1234", []string{"1.2.3.4"}, "203.0.113.9"},
		{"spoofed header from an untrusted peer is ignored", "X-Forwarded-For", trusted, "203.0.113.9:1234", []string{"1.2.3.4"}, "203.0.113.9"},
		{"behind the proxy: the client it saw", "X-Forwarded-For", trusted, "10.0.0.2:1234", []string{"198.51.100.7"}, "198.51.100.7"},
		{"a client's forged entry on the left is skipped", "X-Forwarded-For", trusted, "10.0.0.2:1234", []string{"6.6.6.6, 198.51.100.7"}, "198.51.100.7"},
		{"two trusted hops", "X-Forwarded-For", trusted, "[::1]:1234", []string{"198.51.100.7, 10.1.2.3"}, "198.51.100.7"},
		{"several header lines", "X-Forwarded-For", trusted, "10.0.0.2:1234", []string{"6.6.6.6", "198.51.100.7"}, "198.51.100.7"},
		{"garbage stops at the last proxy", "X-Forwarded-For", trusted, "10.0.0.2:1234", []string{"198.51.100.7, not-an-ip"}, "10.0.0.2"},
		{"X-Real-IP from the proxy", "X-Real-IP", trusted, "10.0.0.2:1234", []string{"198.51.100.8"}, "198.51.100.8"},
		{"IPv4-mapped peer", "", nil, "[::ffff:203.0.113.9]:1", nil, "203.0.113.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &Server{cfg: Config{ClientIPHeader: tt.header, TrustedProxies: tt.trusted}}
			r := httptest.NewRequest(http.MethodPost, WebhookPath, nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add(tt.header, v)
			}
			if got := s.clientIP(r); got != tt.want {
				t.Errorf("clientIP = %s, want %s", got, tt.want)
			}
		})
	}
}

// TestSignedReplay: a captured signed request sent again, with a new Idempotency-Key each time
// (a header the signature does not cover), is the same request: one note, one notification.
func TestSignedReplay(t *testing.T) {
	e := newEnv(t, nil, func(c *Config) { c.WebhookSecret = testSecret; c.RatePerIP = -1 })
	first := e.do(signed(t, testSecret, "msg_captured", t0, bodyA))
	if first.Code != 200 {
		t.Fatalf("first: %d %s", first.Code, first.Body)
	}
	for i := range 3 {
		rec := e.do(signed(t, testSecret, "msg_captured", t0, bodyA, "Idempotency-Key", fmt.Sprintf("attacker-%d", i)))
		resp := decode[payload.Response](t, rec)
		if rec.Code != 200 || !resp.Replayed || resp.RequestID != "msg_captured" {
			t.Fatalf("replay %d: %d %+v", i, rec.Code, resp)
		}
	}
	if _, tickets, notes, _, _ := e.hs.Local.Counts(context.Background()); tickets != 1 || notes != 0 || e.hs.Notifier.Count() != 1 {
		t.Fatalf("tickets %d, notes %d, notifications %d: the replays made work", tickets, notes, e.hs.Notifier.Count())
	}
}

func TestLimiterEviction(t *testing.T) {
	l := newLimiter(2, 10) // full again after 5s; entries idle for a minute go
	for _, ip := range []string{"a", "b", "c"} {
		l.allow(ip, t0)
	}
	l.allow("a", t0.Add(30*time.Second))
	if n := l.len(); n != 3 {
		t.Fatalf("%d entries before the idle time", n)
	}
	l.allow("d", t0.Add(61*time.Second))
	if n := l.len(); n != 2 { // b and c went; a (seen at 30s) and d stay
		t.Fatalf("%d entries after the sweep, want 2", n)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"no spool", Config{}, "spool directory is required"},
		{"bad mode", Config{SpoolDir: t.TempDir(), Mode: "later"}, "want sync or async"},
		{"secret not base64", Config{SpoolDir: t.TempDir(), WebhookSecret: "whsec_not*base64!"}, "webhook secret"},
		{"secret too short", Config{SpoolDir: t.TempDir(), WebhookSecret: "whsec_c2hvcnQ="}, "at least 16"},
		{"ok", Config{SpoolDir: t.TempDir(), WebhookSecret: testSecret}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := build(tt.cfg)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want %q", err, tt.wantErr)
			}
			if tt.cfg.WebhookSecret != "" && strings.Contains(err.Error(), strings.TrimPrefix(tt.cfg.WebhookSecret, "whsec_")) {
				t.Errorf("the error quotes the secret: %v", err)
			}
		})
	}
}

func TestHTTPServer(t *testing.T) {
	s, err := build(Config{SpoolDir: t.TempDir(), SyncTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	hs := NewHTTPServer("127.0.0.1:0", s.Handler(), 10*time.Second)
	if hs.ReadHeaderTimeout != 10*time.Second || hs.ReadTimeout != 2*time.Minute || hs.IdleTimeout != time.Minute ||
		hs.MaxHeaderBytes != 64<<10 || hs.WriteTimeout != 2*time.Minute+40*time.Second {
		t.Errorf("timeouts %+v", hs)
	}
	if d := NewHTTPServer(":5000", s.Handler(), 0); d.WriteTimeout != 2*time.Minute+55*time.Second || d.Addr != ":5000" {
		t.Errorf("default WriteTimeout %v", d.WriteTimeout)
	}
}

// TestOverRealHTTP: the handler behind a real listener, with a signed request.
func TestOverRealHTTP(t *testing.T) {
	e := newEnv(t, nil, func(c *Config) { c.WebhookSecret = testSecret })
	ts := httptest.NewServer(e.h)
	defer ts.Close()
	r := signed(t, testSecret, "msg_http", t0, bodyA)
	req, _ := http.NewRequest(http.MethodPost, ts.URL+WebhookPath, strings.NewReader(bodyA))
	req.Header = r.Header
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("status %d", res.StatusCode)
	}
	if !strings.Contains(e.logs.String(), "request_id=msg_http") || !strings.Contains(e.logs.String(), "ip=127.0.0.1") {
		t.Errorf("log line:\n%s", e.logs)
	}
}

// TestSignWebhookVector is the Standard Webhooks reference libraries' known answer.
func TestSignWebhookVector(t *testing.T) {
	got, err := SignWebhook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
		time.Unix(1614265330, 0), []byte(`{"test": 2432232314}`))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// inputErr is a failure that says the request itself is at fault (a refused file URL).
type inputErr struct{}

func (inputErr) Error() string    { return "file \"a.glb\": address not allowed" }
func (inputErr) InputError() bool { return true }

// TestNotRecorded: a request the journal could not record is refused with 503: the sender must
// send it again.
func TestNotRecorded(t *testing.T) {
	e := newEnv(t, created, nil)
	srv, err := New(Config{SpoolDir: e.spool}, failingIntake{}, testQueue{e.pool}, e.hs.Journal)
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, post(bodyA))
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q: %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
	if e.pool.Depth() != 0 {
		t.Error("a request that was not recorded was queued")
	}
}

type failingIntake struct{}

func (failingIntake) Accept(context.Context, *payload.Request) (*chain.Run, error) {
	return nil, errors.New("journal: database is locked")
}

// TestProcessorPanic: the chain panicking is an error for that request (kept in the journal,
// retried), not the daemon's end.
func TestProcessorPanic(t *testing.T) {
	p := procFunc(func(context.Context, *payload.Request, chain.RunOptions) (*payload.Response, error) { panic("boom") })
	e := newEnv(t, p, nil)
	rec := e.do(post(bodyA))
	if rec.Code != 202 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if !strings.Contains(e.logs.String(), "chain panicked") {
		t.Errorf("log:\n%s", e.logs)
	}
}

// TestConcurrentDuplicates: the same form posted many times at once makes one ticket.
func TestConcurrentDuplicates(t *testing.T) {
	e := newEnv(t, nil, func(c *Config) { c.RatePerIP = -1 })
	const n = 8
	codes := make(chan *httptest.ResponseRecorder, n)
	for range n {
		go func() { codes <- e.do(post(bodyA)) }()
	}
	created, tickets := 0, map[string]bool{}
	for range n {
		rec := <-codes
		// Each duplicate is answered with the one run's result, marked replayed.
		if rec.Code != 200 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		resp := decode[payload.Response](t, rec)
		if !resp.Replayed {
			created++
		}
		tickets[resp.TicketID] = true
	}
	if created != 1 || len(tickets) != 1 {
		t.Errorf("%d runs, %d tickets; want 1 and 1", created, len(tickets))
	}
}

// TestAsyncMode: 202 as soon as the request is in the journal; the run goes on; GET
// /requests/{id} tells how it ended.
func TestAsyncMode(t *testing.T) {
	e := newEnv(t, nil, func(c *Config) { c.Mode = ModeAsync; c.BearerToken = testToken })
	rec := e.do(post(bodyA, "Authorization", "Bearer "+testToken, "Idempotency-Key", "async-1"))
	if rec.Code != 202 {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if resp := decode[payload.Response](t, rec); resp.Status != payload.StatusQueued || resp.RequestID != "async-1" {
		t.Fatalf("response %+v", resp)
	}
	// Whatever the run's progress, the request is in the journal once the 202 is out.
	run, err := e.hs.Journal.Get(context.Background(), "async-1")
	if err != nil {
		t.Fatalf("acknowledged but not recorded: %v", err)
	}
	if run.Email != "client@example.com" {
		t.Errorf("recorded %+v", run)
	}
	e.drain(t)

	get := func(id string, hdr ...string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/requests/"+id, nil)
		r.RemoteAddr = "192.0.2.1:40000"
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Set(hdr[i], hdr[i+1])
		}
		return e.do(r)
	}
	if rec := get("async-1"); rec.Code != 401 {
		t.Fatalf("unauthenticated GET: %d", rec.Code)
	}
	rec = get("async-1", "Authorization", "Bearer "+testToken)
	if rec.Code != 200 {
		t.Fatalf("GET: %d %s", rec.Code, rec.Body)
	}
	st := decode[RequestState](t, rec)
	if st.Status != "done" || st.RequestID != "async-1" || st.TicketID == "" || st.Response == nil || st.Response.Status != payload.StatusCreated || st.Attempts != 1 {
		t.Fatalf("state %+v", st)
	}
	if rec := get("nope", "Authorization", "Bearer "+testToken); rec.Code != 404 {
		t.Fatalf("unknown id: %d", rec.Code)
	}
	// The same request again is answered from the journal.
	rec = e.do(post(bodyA, "Authorization", "Bearer "+testToken, "Idempotency-Key", "async-1"))
	if resp := decode[payload.Response](t, rec); rec.Code != 200 || !resp.Replayed || resp.TicketID != st.TicketID {
		t.Fatalf("resent: %d %+v", rec.Code, resp)
	}
}

// TestBacklogFull: past the backlog limit the answer is 503 with Retry-After, and nothing is
// recorded (the sender sends again later).
func TestBacklogFull(t *testing.T) {
	release := make(chan struct{})
	p := procFunc(func(ctx context.Context, req *payload.Request, _ chain.RunOptions) (*payload.Response, error) {
		<-release
		return &payload.Response{Status: payload.StatusCreated, RequestID: req.Key()}, nil
	})
	e := newEnv(t, p, func(c *Config) { c.Mode = ModeAsync; c.RatePerIP = -1 })
	defer close(release)
	e.pool.Shutdown(context.Background())
	small := worker.New(p, e.hs.Journal, worker.Config{Workers: 1, MaxBacklog: 2, SweepEvery: -1})
	small.Start()
	t.Cleanup(func() { small.Shutdown(context.Background()) })
	var logs bytes.Buffer
	srv, err := New(Config{SpoolDir: e.spool, Mode: ModeAsync, RatePerIP: -1, Log: slog.New(slog.NewJSONHandler(&syncWriter{w: &logs}, nil))},
		e.hs.Chain, testQueue{small}, e.hs.Journal)
	if err != nil {
		t.Fatal(err)
	}
	send := func(i int) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, post(bodyA, "Idempotency-Key", fmt.Sprintf("b-%d", i)))
		return rec
	}
	for i := range 2 {
		if rec := send(i); rec.Code != 202 {
			t.Fatalf("request %d: %d", i, rec.Code)
		}
	}
	rec := send(2)
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("past the backlog: %d, Retry-After %q", rec.Code, rec.Header().Get("Retry-After"))
	}
	if _, err := e.hs.Journal.Get(context.Background(), "b-2"); !errors.Is(err, chain.ErrRunNotFound) {
		t.Errorf("a refused request was recorded: %v", err)
	}
	// Back-pressure the sender retries is a warning, not an error.
	if line := logLine(t, logs.String(), `"status":503`); !strings.Contains(line, `"level":"WARN"`) {
		t.Errorf("the 503 is logged as %s, want WARN", line)
	}
	// Refused before its body is read: an upload is not spooled for nothing.
	for _, path := range []string{WebhookPath, EmailPath} {
		body := &readCounter{r: strings.NewReader(bodyA)}
		req := post("", "Idempotency-Key", "b-3")
		req.URL.Path, req.Body = path, io.NopCloser(body)
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		if rec.Code != 503 || body.n != 0 {
			t.Errorf("%s past the backlog: %d after reading %d bytes, want 503 before reading any", path, rec.Code, body.n)
		}
	}
}

// readCounter counts the bytes read from r.
type readCounter struct {
	r io.Reader
	n int
}

func (c *readCounter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// TestReadyz: ready while the journal is writable; 503 once the server stops, when new requests
// are refused too.
func TestReadyz(t *testing.T) {
	e := newEnv(t, created, func(c *Config) {
		c.Ready = func(context.Context) error { return nil }
	})
	get := func(path string) int {
		return e.do(httptest.NewRequest(http.MethodGet, path, nil)).Code
	}
	if get("/readyz") != 200 || get("/livez") != 200 || get("/healthz") != 200 {
		t.Fatal("not ready at start")
	}
	e.srv.Stop()
	if c := get("/readyz"); c != 503 {
		t.Errorf("/readyz while stopping: %d", c)
	}
	if c := get("/livez"); c != 200 {
		t.Errorf("/livez while stopping: %d", c)
	}
	if rec := e.do(post(bodyA)); rec.Code != 503 {
		t.Errorf("a request while stopping: %d", rec.Code)
	}
	broken := newEnv(t, created, func(c *Config) {
		c.Ready = func(context.Context) error { return errors.New("journal: database is locked") }
	})
	if c := broken.do(httptest.NewRequest(http.MethodGet, "/readyz", nil)).Code; c != 503 {
		t.Errorf("/readyz with an unwritable journal: %d", c)
	}
}

// recMetrics records what the server reports.
type recMetrics struct {
	mu       sync.Mutex
	requests []*payload.Response
	answers  []string
}

func (m *recMetrics) HTTP(route string, code int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.answers = append(m.answers, fmt.Sprintf("%s %d", route, code))
}

func (m *recMetrics) Request(resp *payload.Response, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests = append(m.requests, resp)
}

func (m *recMetrics) Handler() http.Handler { return http.NotFoundHandler() }

// A request answered from the journal (a replay) never reaches the pool, which counts the runs:
// the server counts it, so that /metrics shows replays.
func TestReplayIsCounted(t *testing.T) {
	m := &recMetrics{}
	e := newEnv(t, nil, func(c *Config) { c.Metrics = m })
	for range 2 {
		if rec := e.do(post(bodyA)); rec.Code != 200 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.requests) != 1 || !m.requests[0].Replayed || m.requests[0].Status != payload.StatusCreated {
		t.Fatalf("requests counted by the server: %+v, want the replay", m.requests)
	}
	if fmt.Sprint(m.answers) != "[POST /webhook/request 200 POST /webhook/request 200]" {
		t.Errorf("answers %v", m.answers)
	}
}

// syncWriter serialises writes to w (the server logs from its handlers' goroutines).
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// logLine is the first line of logs that holds want.
func logLine(t *testing.T, logs, want string) string {
	t.Helper()
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, want) {
			return l
		}
	}
	t.Fatalf("no log line with %s in:\n%s", want, logs)
	return ""
}
