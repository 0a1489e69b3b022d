package hubspot

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/backoff"
	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/fakes/hubspotfake"
	"github.com/figurative/figsupport/internal/rest"
)

var testPolicy = backoff.Policy{Attempts: 4, Base: time.Millisecond, Max: 50 * time.Millisecond}

// newTestCRM wires a backend on the fake with an instant, recording sleep.
func newTestCRM(t *testing.T, srv *hubspotfake.Server) (*CRM, *[]time.Duration) {
	t.Helper()
	m, err := New(Config{Token: srv.Options().Token, BaseURL: srv.URL, HubID: "12345", Retry: testPolicy,
		RequestsPer10s: 1_000_000, SearchPerSecond: 1_000_000, Now: srv.Options().Clock.Now}, NewMemoryMemo())
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	waits := &[]time.Duration{}
	m.c.api.Sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		*waits = append(*waits, d)
		mu.Unlock()
		return ctx.Err()
	}
	return m, waits
}

func TestDoRetries(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		faults    []hubspotfake.Fault
		wantCalls int
		wantErr   bool
		wantWaits []time.Duration // exact waits when the server gave a hint
		check     func(t *testing.T, err error)
	}{
		// The server's hint is honoured whole, beyond the backoff's 50 ms cap of computed delays.
		{name: "ten-secondly 429 with Retry-After is retried after the hint",
			faults: []hubspotfake.Fault{{Status: 429, RetryAfter: "3"}}, wantCalls: 2, wantWaits: []time.Duration{3 * time.Second}},
		{name: "429 without Retry-After waits a share of the rate-limit interval",
			faults: []hubspotfake.Fault{{Status: 429}}, wantCalls: 2, wantWaits: []time.Duration{time.Second}},
		{name: "secondly search 429 is retried",
			faults: []hubspotfake.Fault{{Status: 429, Policy: "SECONDLY"}}, wantCalls: 2, wantWaits: []time.Duration{time.Second}},
		{name: "5xx then success", faults: []hubspotfake.Fault{{Status: 502}, {Status: 503}}, wantCalls: 3},
		{name: "network error then success", faults: []hubspotfake.Fault{{Drop: true}}, wantCalls: 2},
		{name: "daily 429 fails fast", faults: []hubspotfake.Fault{{Status: 429, Policy: "DAILY"}}, wantCalls: 1, wantErr: true,
			check: func(t *testing.T, err error) {
				if !errors.Is(err, ErrDailyLimit) || !errors.Is(err, backoff.ErrWaitTooLong) {
					t.Errorf("err = %v, want ErrDailyLimit, failed at once (ErrWaitTooLong)", err)
				}
				if !strings.Contains(err.Error(), "daily API limit") {
					t.Errorf("err = %q, want a clear daily-limit message", err)
				}
			}},
		{name: "attempts are bounded", faults: []hubspotfake.Fault{{Status: 500}, {Status: 500}, {Status: 500}, {Status: 500}, {Status: 500}},
			wantCalls: 4, wantErr: true, check: func(t *testing.T, err error) {
				var e *APIError
				if !errors.As(err, &e) || e.Status != 500 || e.Category != "INTERNAL_ERROR" {
					t.Errorf("err = %#v, want the last 500 as *APIError", err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := hubspotfake.New(hubspotfake.Options{Inject: hubspotfake.Script("GET", "/crm/v3/objects/tickets", tt.faults...)})
			defer srv.Close()
			m, waits := newTestCRM(t, srv)
			id := srv.SeedTicket(srv.SeedContact("a@example.com"), "s", "1", time.Now())
			_, err := m.GetTicket(ctx, id)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if n := srv.Count("GET", "/crm/v3/objects/tickets"); n != tt.wantCalls {
				t.Errorf("%d calls, want %d", n, tt.wantCalls)
			}
			if tt.wantWaits != nil && !equalDurations(*waits, tt.wantWaits) {
				t.Errorf("waits = %v, want %v", *waits, tt.wantWaits)
			}
			if tt.check != nil {
				tt.check(t, err)
			}
		})
	}
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTypedErrors(t *testing.T) {
	ctx := context.Background()
	srv := hubspotfake.New(hubspotfake.Options{})
	defer srv.Close()
	m, _ := newTestCRM(t, srv)

	// Unknown property: 400 VALIDATION_ERROR, not retried.
	err := m.c.api.Send(ctx, http.MethodPost, "/crm/v3/objects/tickets", createInput{Properties: map[string]string{"nope": "x", "hs_pipeline_stage": "1"}}, nil)
	var e *APIError
	if !errors.As(err, &e) || e.Status != 400 || e.Category != "VALIDATION_ERROR" || e.CorrelationID == "" {
		t.Fatalf("err = %#v, want a 400 VALIDATION_ERROR with a correlation id", err)
	}
	if n := srv.Count("POST", "/crm/v3/objects/tickets"); n != 1 {
		t.Errorf("%d calls, want 1 (no retry of a 400)", n)
	}

	// Missing ticket: 404 maps to chain.ErrNotFound.
	if _, err := m.GetTicket(ctx, "999999"); !errors.Is(err, chain.ErrNotFound) {
		t.Errorf("GetTicket(missing) = %v, want chain.ErrNotFound", err)
	}

	// Bad token: 401, not retried, token never in the message.
	bad, err := New(Config{Token: "pat-secret-value", BaseURL: srv.URL, Retry: testPolicy}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv.ResetCalls()
	_, err = bad.FindOrCreateContact(ctx, "a@example.com", "")
	if !errors.As(err, &e) || e.Status != 401 || e.Category != "INVALID_AUTHENTICATION" {
		t.Fatalf("err = %v, want 401 INVALID_AUTHENTICATION", err)
	}
	if strings.Contains(err.Error(), "secret") {
		t.Errorf("error %q leaks the token", err)
	}
	if n := len(srv.Calls()); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}

	// Missing scope: named.
	srv.SetScopes([]string{"tickets"})
	_, err = m.FindOrCreateContact(ctx, "a@example.com", "")
	if !errors.As(err, &e) || strings.Join(e.MissingScopes(), ",") != "crm.objects.contacts.write" {
		t.Fatalf("err = %v, want MISSING_SCOPES naming crm.objects.contacts.write", err)
	}
}

func TestRequestHeaders(t *testing.T) {
	var got http.Header
	srv := hubspotfake.New(hubspotfake.Options{})
	defer srv.Close()
	m, _ := newTestCRM(t, srv)
	m.c.api.HTTP = &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		got = r.Header.Clone()
		return http.DefaultTransport.RoundTrip(r)
	})}
	if _, err := m.FindOrCreateContact(context.Background(), "a@example.com", ""); err != nil {
		t.Fatal(err)
	}
	if got.Get("Authorization") != "Bearer pat-test" || got.Get("Content-Type") != "application/json" || got.Get("Accept") != "application/json" {
		t.Errorf("headers = %v", got)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestContextCancelsRetries(t *testing.T) {
	srv := hubspotfake.New(hubspotfake.Options{Inject: hubspotfake.Script("", "/", hubspotfake.Fault{Status: 503})})
	defer srv.Close()
	m, _ := newTestCRM(t, srv)
	ctx, cancel := context.WithCancel(context.Background())
	m.c.api.Sleep = func(ctx context.Context, d time.Duration) error {
		cancel()
		return backoff.Sleep(ctx, time.Hour)
	}
	_, err := m.FindOrCreateContact(ctx, "a@example.com", "")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := len(srv.Calls()); n != 1 {
		t.Errorf("%d calls, want 1", n)
	}
}

// TestLimiterWindows replays a flood against the limiters on a synthetic timeline, each call sent
// as soon as it may go: no rolling window ever holds more than the limit, and the limit is used
// (at least 90 % of it over five windows).
func TestLimiterWindows(t *testing.T) {
	tests := []struct {
		n      int
		window time.Duration
	}{{100, 10 * time.Second}, {190, 10 * time.Second}, {5, time.Second}, {1, time.Second}}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d per %v", tt.n, tt.window), func(t *testing.T) {
			l := newWindow(tt.n, tt.window)
			start := time.Unix(0, 0)
			var sent []time.Time
			for at := start; at.Before(start.Add(5 * tt.window)); {
				if d := l.take(at); d > 0 {
					at = at.Add(d)
					continue
				}
				sent = append(sent, at)
			}
			for i := range sent {
				j := i
				for j < len(sent) && sent[j].Sub(sent[i]) < tt.window {
					j++
				}
				if j-i > tt.n {
					t.Fatalf("%d calls in the window starting %v", j-i, sent[i])
				}
			}
			if min := tt.n * 5 * 9 / 10; len(sent) < min {
				t.Errorf("only %d calls in 5 windows, want at least %d", len(sent), min)
			}
		})
	}
}

// A call waiting for its slot gives up when its context ends.
func TestLimiterWaitCancelled(t *testing.T) {
	l := newWindow(1, time.Hour)
	if err := l.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := l.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the context's deadline", err)
	}
}

func TestRetryHint(t *testing.T) {
	tests := []struct {
		name   string
		h      map[string]string
		policy string
		want   time.Duration
	}{
		{"retry-after seconds", map[string]string{"Retry-After": "3"}, "", 3 * time.Second},
		{"retry-after HTTP date", map[string]string{"Retry-After": time.Now().Add(90 * time.Second).UTC().Format(http.TimeFormat)}, "", 90 * time.Second},
		{"daily limit: no retry within the run", map[string]string{"Retry-After": "1"}, "DAILY", dailyLimitHint},
		{"secondly policy", nil, "SECONDLY", time.Second},
		{"exhausted ten-second window", map[string]string{"X-HubSpot-RateLimit-Remaining": "0", "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}, "TEN_SECONDLY_ROLLING", time.Second},
		{"window not exhausted", map[string]string{"X-HubSpot-RateLimit-Remaining": "40", "X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}, "", 0},
		{"garbage", map[string]string{"Retry-After": "soon"}, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for k, v := range tt.h {
				h.Set(k, v)
			}
			// An HTTP date has second precision: allow the second the test may straddle.
			if got := retryHint(h, tt.policy); got != tt.want && (got > tt.want || got < tt.want-time.Second) {
				t.Errorf("retryHint = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestConflictID(t *testing.T) {
	tests := []struct {
		name string
		body string
		want string
		ok   bool
	}{
		{"message", `{"status":"error","message":"Contact already exists. Existing ID: 37765128953","correlationId":"x","category":"CONFLICT"}`, "37765128953", true},
		{"identityProfile wins", `{"message":"Contact already exists.","identityProfile":{"vid":51,"identity":[{"value":"a@b.c","type":"EMAIL"}]},"category":"CONFLICT"}`, "51", true},
		{"neither", `{"message":"conflict","category":"CONFLICT"}`, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := &http.Response{StatusCode: 409, Header: http.Header{}}
			id, ok := conflictID(parseError("POST", "/crm/v3/objects/contacts", resp, []byte(tt.body)))
			if id != tt.want || ok != tt.ok {
				t.Errorf("conflictID = %q, %v; want %q, %v", id, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestMissingScopesParsing(t *testing.T) {
	body := `{"status":"error","message":"This app hasn't been granted all required scopes to make this call.","correlationId":"c","errors":[{"message":"One or more of the following scopes are required.","context":{"requiredGranularScopes":["crm.schemas.tickets.write"]}}],"links":{"scopes":"https://developers.hubspot.com/scopes"},"category":"MISSING_SCOPES"}`
	e := parseError("POST", "/crm/v3/properties/tickets", &http.Response{StatusCode: 403, Header: http.Header{}}, []byte(body))
	if got := e.MissingScopes(); len(got) != 1 || got[0] != "crm.schemas.tickets.write" {
		t.Fatalf("MissingScopes = %v", got)
	}
	if !strings.Contains(explain(e), "crm.schemas.tickets.write") {
		t.Errorf("explain = %q, want the scope named", explain(e))
	}
}

// TestCreateIsNotRepeated: a create whose answer is lost after HubSpot did it is found (through the
// consistent associations API, not the lagging search) instead of being sent again.
func TestCreateIsNotRepeated(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name        string
		fault       hubspotfake.Fault
		wantPosts   int
		wantLookups int
	}{
		{"applied, connection dropped", hubspotfake.Fault{Apply: true, Drop: true}, 1, 1},
		{"applied, 504", hubspotfake.Fault{Apply: true, Status: 504}, 1, 1},
		{"not applied, connection dropped", hubspotfake.Fault{Drop: true}, 2, 1},
		{"429 is a refusal: repeated without a look-up", hubspotfake.Fault{Status: 429}, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, kind := range []string{"tickets", "notes"} {
				srv := hubspotfake.New(hubspotfake.Options{SearchLag: time.Minute})
				m, _ := newTestCRM(t, srv)
				contact := srv.SeedContact("a@example.com")
				ticket := srv.SeedTicket(contact, "old", "1", time.Now())
				srv.SetInjector(hubspotfake.Script("POST", "/crm/v3/objects/"+kind, tt.fault))
				var err error
				if kind == "tickets" {
					_, err = m.CreateTicket(ctx, chain.TicketInput{ContactID: contact, Subject: "Paiement", Content: "refusé", Classification: "SUPPORT"})
				} else {
					_, err = m.AddNote(ctx, chain.Note{TicketID: ticket, Title: "t", Body: "b", At: time.Now()})
				}
				if err != nil {
					t.Fatalf("%s: %v", kind, err)
				}
				want := 1
				if kind == "tickets" {
					want = 2 // the seeded one and ours
				}
				if n := len(srv.Objects(kind)); n != want {
					t.Errorf("%s: %d stored, want %d", kind, n, want)
				}
				if n := srv.Count("POST", "/crm/v3/objects/"+kind) - srv.Count("POST", "/crm/v3/objects/"+kind+"/batch"); n != tt.wantPosts {
					t.Errorf("%s: %d creates sent, want %d", kind, n, tt.wantPosts)
				}
				if n := srv.Count("GET", "/crm/v4/objects/"); n != tt.wantLookups {
					t.Errorf("%s: %d association look-ups, want %d", kind, n, tt.wantLookups)
				}
				srv.Close()
			}
		})
	}
}

// TestErrorClasses is the contract the chain classifies by: Temporary, Credentials, RateLimited.
func TestErrorClasses(t *testing.T) {
	tests := []struct {
		status                            int
		policy                            string
		temporary, credentials, rateLimit bool
	}{
		{400, "", false, false, false},
		{401, "", false, true, false},
		{403, "", false, true, false},
		{404, "", false, false, false},
		{409, "", false, false, false},
		{422, "", false, false, false},
		{429, "TEN_SECONDLY_ROLLING", true, false, true},
		{429, "DAILY", true, false, true},
		{500, "", true, false, false},
		{503, "", true, false, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.status, tt.policy), func(t *testing.T) {
			e := &APIError{Status: tt.status, PolicyName: tt.policy}
			if e.Temporary() != tt.temporary || e.Credentials() != tt.credentials || e.RateLimited() != tt.rateLimit {
				t.Errorf("%d %s: Temporary %v Credentials %v RateLimited %v; want %v %v %v", tt.status, tt.policy,
					e.Temporary(), e.Credentials(), e.RateLimited(), tt.temporary, tt.credentials, tt.rateLimit)
			}
			if e.Refused() != (tt.status == 429) {
				t.Errorf("Refused = %v", e.Refused())
			}
		})
	}
	// A call that got no answer is temporary, and says so through the same methods.
	srv := hubspotfake.New(hubspotfake.Options{Inject: hubspotfake.Script("", "/", hubspotfake.Fault{Drop: true}, hubspotfake.Fault{Drop: true},
		hubspotfake.Fault{Drop: true}, hubspotfake.Fault{Drop: true})})
	defer srv.Close()
	m, _ := newTestCRM(t, srv)
	_, err := m.GetTicket(context.Background(), "1")
	var c interface {
		Temporary() bool
		Credentials() bool
		RateLimited() bool
	}
	if !errors.As(err, &c) || !c.Temporary() || c.Credentials() || c.RateLimited() {
		t.Fatalf("err = %v: want a temporary failure through the classification methods", err)
	}
	var ne *rest.NetError
	if !errors.As(err, &ne) {
		t.Fatalf("err = %v, want a *rest.NetError", err)
	}
}
