package rest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/backoff"
)

// apiError is a service's typed error as a CheckResponse makes it.
type apiError struct {
	status int
	hint   time.Duration
}

func (e *apiError) Error() string            { return "test: " + strconv.Itoa(e.status) }
func (e *apiError) Temporary() bool          { return e.status == 429 || e.status >= 500 }
func (e *apiError) Refused() bool            { return e.status == 429 }
func (e *apiError) RetryHint() time.Duration { return e.hint }

func check(_ *Request, resp *http.Response, _ []byte) error {
	return &apiError{status: resp.StatusCode, hint: RetryAfter(resp.Header, time.Now())}
}

// server answers the n-th call (1-based) with script[n-1] (a status, with Retry-After when set),
// then 200 {"ok":true}; it records the calls.
type server struct {
	*httptest.Server
	mu     sync.Mutex
	calls  int
	script []answer
}

type answer struct {
	status     int
	retryAfter string
	drop       bool
}

func newServer(t *testing.T, script ...answer) *server {
	s := &server{script: script}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.calls++
		n := s.calls
		s.mu.Unlock()
		if n <= len(s.script) {
			a := s.script[n-1]
			if a.drop {
				conn, _, _ := w.(http.Hijacker).Hijack()
				conn.Close()
				return
			}
			if a.retryAfter != "" {
				w.Header().Set("Retry-After", a.retryAfter)
			}
			w.WriteHeader(a.status)
			return
		}
		json.NewEncoder(w).Encode(map[string]bool{"ok": true})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func client(base string, waits *[]time.Duration) *Client {
	return &Client{
		Service: "test", BaseURL: base, HTTP: &http.Client{Timeout: 5 * time.Second}, CheckResponse: check,
		Retry: backoff.Policy{Attempts: 4, Base: time.Millisecond, Max: 10 * time.Millisecond, MaxHint: time.Minute},
		Sleep: func(ctx context.Context, d time.Duration) error {
			*waits = append(*waits, d)
			return ctx.Err()
		},
	}
}

func TestDo(t *testing.T) {
	lookupFound := func(found bool, calls *int) func(context.Context) (bool, error) {
		return func(context.Context) (bool, error) { *calls++; return found, nil }
	}
	tests := []struct {
		name        string
		script      []answer
		idempotent  bool
		lookup      bool // a Lookup is given
		found       bool // and it finds the effect
		wantCalls   int
		wantLookups int
		wantErr     error // errors.Is target; nil for success
		wantStatus  int   // the *apiError expected, when an error is
		wantWaits   []time.Duration
	}{
		{name: "5xx retried for an idempotent request", script: []answer{{status: 502}, {status: 503}}, idempotent: true, wantCalls: 3},
		{name: "dropped connection retried for an idempotent request", script: []answer{{drop: true}}, idempotent: true, wantCalls: 2},
		{name: "400 is permanent", script: []answer{{status: 400}}, idempotent: true, wantCalls: 1, wantStatus: 400},
		{name: "attempts bounded", script: []answer{{status: 500}, {status: 500}, {status: 500}, {status: 500}, {status: 500}}, idempotent: true, wantCalls: 4, wantStatus: 500},
		{name: "Retry-After seconds honoured beyond the backoff cap", script: []answer{{status: 429, retryAfter: "40"}}, idempotent: true,
			wantCalls: 2, wantWaits: []time.Duration{40 * time.Second}},
		{name: "Retry-After beyond MaxHint fails at once", script: []answer{{status: 429, retryAfter: "3600"}}, idempotent: true,
			wantCalls: 1, wantErr: backoff.ErrWaitTooLong, wantStatus: 429},
		{name: "429 repeats a create: nothing was done", script: []answer{{status: 429}}, wantCalls: 2},
		{name: "5xx on a create without look-up: outcome unknown", script: []answer{{status: 502}}, wantCalls: 1, wantErr: ErrUnknownOutcome, wantStatus: 502},
		{name: "5xx on a create, look-up finds it", script: []answer{{status: 504}}, lookup: true, found: true, wantCalls: 1, wantLookups: 1},
		{name: "5xx on a create, look-up does not find it", script: []answer{{status: 500}}, lookup: true, wantCalls: 2, wantLookups: 1},
		{name: "dropped create, look-up finds it", script: []answer{{drop: true}}, lookup: true, found: true, wantCalls: 1, wantLookups: 1},
		{name: "create gives up unknown", script: []answer{{status: 500}, {status: 500}, {status: 500}, {status: 500}}, lookup: true,
			wantCalls: 4, wantLookups: 3, wantErr: ErrUnknownOutcome, wantStatus: 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, tt.script...)
			var waits []time.Duration
			c := client(srv.URL, &waits)
			lookups := 0
			req := &Request{Method: "POST", Path: "/x", Body: map[string]string{"a": "b"}, Idempotent: tt.idempotent}
			if tt.lookup {
				req.Lookup = lookupFound(tt.found, &lookups)
			}
			var out struct{ OK bool }
			err := c.Do(context.Background(), req, &out)
			if srv.count() != tt.wantCalls || lookups != tt.wantLookups {
				t.Errorf("calls %d, look-ups %d; want %d, %d", srv.count(), lookups, tt.wantCalls, tt.wantLookups)
			}
			if tt.wantErr == nil && tt.wantStatus == 0 {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				if !out.OK && !tt.found {
					t.Errorf("answer not decoded")
				}
			} else {
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("err = %v, want %v", err, tt.wantErr)
				}
				var ae *apiError
				if tt.wantStatus != 0 && (!errors.As(err, &ae) || ae.status != tt.wantStatus) {
					t.Errorf("err = %v, want the %d answer", err, tt.wantStatus)
				}
			}
			if tt.wantWaits != nil && fmt.Sprint(waits) != fmt.Sprint(tt.wantWaits) {
				t.Errorf("waits = %v, want %v", waits, tt.wantWaits)
			}
		})
	}
}

func TestHintPastDeadlineFailsAtOnce(t *testing.T) {
	srv := newServer(t, answer{status: 429, retryAfter: "40"})
	var waits []time.Duration
	c := client(srv.URL, &waits)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.Do(ctx, &Request{Method: "GET", Path: "/x", Idempotent: true}, nil)
	if !errors.Is(err, backoff.ErrWaitTooLong) || len(waits) != 0 || srv.count() != 1 {
		t.Fatalf("err = %v, waits %v, calls %d: want ErrWaitTooLong at once", err, waits, srv.count())
	}
}

func TestNeverSentCreateIsRepeated(t *testing.T) {
	// A port nothing listens on: the dial fails, the server never saw the create.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	var waits []time.Duration
	c := client("http://"+addr, &waits)
	err = c.Do(context.Background(), &Request{Method: "POST", Path: "/x"}, nil)
	var ne *NetError
	if !errors.As(err, &ne) || ne.Sent || errors.Is(err, ErrUnknownOutcome) {
		t.Fatalf("err = %v, want a NetError never sent, not an unknown outcome", err)
	}
	if len(waits) != 3 {
		t.Fatalf("waits = %v, want 3 retries of a create that never left", waits)
	}
}

func TestContextEndsRetries(t *testing.T) {
	srv := newServer(t, answer{status: 503}, answer{status: 503})
	ctx, cancel := context.WithCancel(context.Background())
	c := client(srv.URL, new([]time.Duration))
	c.Sleep = func(ctx context.Context, d time.Duration) error { cancel(); return backoff.Sleep(ctx, time.Hour) }
	err := c.Do(ctx, &Request{Method: "GET", Path: "/x", Idempotent: true}, nil)
	var ae *apiError
	if !errors.Is(err, context.Canceled) || !errors.As(err, &ae) || srv.count() != 1 {
		t.Fatalf("err = %v, calls %d: want context.Canceled with the last 503", err, srv.count())
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"", 0},
		{"3", 3 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"0", 0},
		{"-5", 0},
		{"soon", 0},
		{now.Add(40 * time.Second).Format(http.TimeFormat), 40 * time.Second},
		{"Mon, 05 Jan 2026 09:01:30 GMT", 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			h := http.Header{}
			if tt.value != "" {
				h.Set("Retry-After", tt.value)
			}
			if got := RetryAfter(h, now); got != tt.want {
				t.Errorf("RetryAfter(%q) = %v, want %v", tt.value, got, tt.want)
			}
		})
	}
}

func TestParseBase(t *testing.T) {
	for raw, want := range map[string]string{"https://api.hubapi.com/": "https://api.hubapi.com", "http://127.0.0.1:8080": "http://127.0.0.1:8080"} {
		if got, err := ParseBase(raw); err != nil || got != want {
			t.Errorf("ParseBase(%q) = %q, %v", raw, got, err)
		}
	}
	for _, bad := range []string{"ftp://x", "api.hubapi.com", "https://", ""} {
		if _, err := ParseBase(bad); err == nil {
			t.Errorf("ParseBase(%q) accepted", bad)
		}
	}
}

// counter records the repeated attempts a RetryObserver is told of.
type counter struct{ retries, limited int }

func (c *counter) Retry(service string, rateLimited bool) {
	c.retries++
	if rateLimited {
		c.limited++
	}
}

func (e *apiError) RateLimited() bool { return e.status == 429 }

func TestRetriesAreObserved(t *testing.T) {
	srv := newServer(t, answer{status: 429, retryAfter: "1"}, answer{status: 503})
	var waits []time.Duration
	c := client(srv.URL, &waits)
	obs := &counter{}
	c.Retries = obs
	if err := c.Do(context.Background(), &Request{Method: "GET", Path: "/x", Idempotent: true}, nil); err != nil {
		t.Fatal(err)
	}
	if obs.retries != 2 || obs.limited != 1 {
		t.Fatalf("observed %d retries, %d for a 429; want 2 and 1", obs.retries, obs.limited)
	}
}
