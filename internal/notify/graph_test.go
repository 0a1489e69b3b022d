package notify

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/fakes/graphfake"
	"github.com/figurative/figsupport/internal/health"
	"github.com/figurative/figsupport/internal/rest"
)

func graphSetup(t *testing.T, secret string) (*graphfake.Server, *Graph, *[]time.Duration) {
	t.Helper()
	fake := graphfake.New(t)
	g, err := NewGraph(GraphConfig{Sender: "bot@figurative.fr", BaseURL: fake.URL, Retry: fastRetry},
		OAuthConfig{TenantID: graphfake.Tenant, ClientID: graphfake.ClientID, ClientSecret: secret, TokenURL: fake.TokenURL()})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var waits []time.Duration
	g.sleep = func(ctx context.Context, d time.Duration) error {
		mu.Lock()
		waits = append(waits, d)
		mu.Unlock()
		return ctx.Err()
	}
	return fake, g, &waits
}

func TestGraphSend(t *testing.T) {
	fake, g, _ := graphSetup(t, graphfake.ClientSecret)
	m := testMessage(t)
	for range 2 {
		if err := g.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	mails := fake.Mails()
	if len(mails) != 2 {
		t.Fatalf("mails = %+v", mails)
	}
	// The MIME form: the whole message as composed, so the headers loop protection and threading
	// need go through, which the JSON form cannot carry.
	got := mails[0]
	if got.Sender != "bot@figurative.fr" || got.Subject != m.Subject || got.ContentType != "MIME" || string(got.Raw) != string(m.Raw) ||
		strings.Join(got.To, ",") != "admin@figurative.fr,ops@figurative.fr" {
		t.Fatalf("mail = %+v", got)
	}
	for h, want := range map[string]string{"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "All", "Message-Id": "<" + m.MessageID + ">"} {
		if got.Header.Get(h) != want {
			t.Errorf("%s: %q, want %q", h, got.Header.Get(h), want)
		}
	}
	reqs := fake.TokenRequests()
	if len(reqs) != 1 || reqs[0].Scope != ScopeGraph || reqs[0].ClientID != graphfake.ClientID || reqs[0].GrantType != "client_credentials" {
		t.Fatalf("token requests = %+v (want one, reused)", reqs)
	}
}

func TestGraphThrottled(t *testing.T) {
	fake, g, waits := graphSetup(t, graphfake.ClientSecret)
	fake.Throttle(2, http.StatusTooManyRequests, http.StatusServiceUnavailable)
	if err := g.Send(context.Background(), testMessage(t)); err != nil {
		t.Fatal(err)
	}
	if fake.SendCalls() != 3 || len(fake.Mails()) != 1 {
		t.Fatalf("calls = %d, mails = %d", fake.SendCalls(), len(fake.Mails()))
	}
	// Retry-After: 2 is honoured whole, beyond the policy's 5 ms cap of computed delays.
	if len(*waits) != 2 || (*waits)[0] != 2*time.Second || (*waits)[1] != 2*time.Second {
		t.Fatalf("waits = %v", *waits)
	}
	fake.Throttle(1, 429, 429, 429)
	err := g.Send(context.Background(), testMessage(t))
	var ge *GraphError
	if !errors.As(err, &ge) || ge.Status != 429 || ge.Code != "ApplicationThrottled" || ge.RetryAfter != time.Second || ge.RequestID == "" {
		t.Fatalf("err = %v (%+v)", err, ge)
	}
}

func TestGraphErrors(t *testing.T) {
	t.Run("bad secret", func(t *testing.T) {
		fake, g, _ := graphSetup(t, "wrong-SECRET")
		err := g.Send(context.Background(), testMessage(t))
		if err == nil || !strings.Contains(err.Error(), "invalid_client") || !strings.Contains(err.Error(), "AADSTS7000215") {
			t.Fatalf("err = %v", err)
		}
		if strings.Contains(err.Error(), "wrong-SECRET") || strings.Contains(err.Error(), "Trace ID") {
			t.Fatalf("err = %v", err)
		}
		if fake.SendCalls() != 0 {
			t.Fatal("sendMail called without a token")
		}
		checks := g.Check(context.Background())
		if len(checks) != 1 || checks[0].Status != health.Fail || strings.Contains(checks[0].Detail, "wrong-SECRET") {
			t.Fatalf("checks = %+v", checks)
		}
	})
	t.Run("unknown sender", func(t *testing.T) {
		fake := graphfake.New(t)
		g, _ := NewGraph(GraphConfig{Sender: "nobody", BaseURL: fake.URL, Retry: fastRetry},
			OAuthConfig{ClientID: graphfake.ClientID, ClientSecret: graphfake.ClientSecret, TokenURL: fake.TokenURL()})
		err := g.Send(context.Background(), testMessage(t))
		var ge *GraphError
		if !errors.As(err, &ge) || ge.Status != 404 || ge.Code != "ErrorInvalidUser" || fake.SendCalls() != 1 {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("check ok", func(t *testing.T) {
		_, g, _ := graphSetup(t, graphfake.ClientSecret)
		checks := g.Check(context.Background())
		if len(checks) != 1 || checks[0].Status != health.OK {
			t.Fatalf("checks = %+v", checks)
		}
	})
}

func TestGraphNotifier(t *testing.T) {
	fake := graphfake.New(t)
	n, err := New(Config{
		To: []string{"admin@figurative.fr"}, Graph: GraphConfig{Sender: "bot@figurative.fr", BaseURL: fake.URL},
		OAuth: OAuthConfig{ClientID: graphfake.ClientID, ClientSecret: graphfake.ClientSecret, TokenURL: fake.TokenURL()},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n.Kind() != KindGraph || n.From != "bot@figurative.fr" {
		t.Fatalf("notifier = %+v", n)
	}
	if err := n.Notify(context.Background(), sample); err != nil {
		t.Fatal(err)
	}
	if m := fake.Mails(); len(m) != 1 || !strings.Contains(m[0].Subject, "ticket #123 (nouveau)") {
		t.Fatalf("mails = %+v", m)
	}
}

// TestGraphRetryAfterDate: a Retry-After given as an HTTP-date is honoured like seconds.
func TestGraphRetryAfterDate(t *testing.T) {
	fake, g, waits := graphSetup(t, graphfake.ClientSecret)
	fake.ThrottleUntil(time.Now().Add(30*time.Second), http.StatusTooManyRequests)
	if err := g.Send(context.Background(), testMessage(t)); err != nil {
		t.Fatal(err)
	}
	// Second precision: between 28 and 30 s.
	if len(*waits) != 1 || (*waits)[0] < 28*time.Second || (*waits)[0] > 30*time.Second {
		t.Fatalf("waits = %v, want one of about 30 s", *waits)
	}
}

// TestGraphUnknownOutcomeNotRepeated: a 500 may have sent the mail: it is not sent again here,
// and the error says the outcome is unknown.
func TestGraphUnknownOutcomeNotRepeated(t *testing.T) {
	fake, g, waits := graphSetup(t, graphfake.ClientSecret)
	fake.Throttle(0, http.StatusInternalServerError)
	err := g.Send(context.Background(), testMessage(t))
	var ge *GraphError
	if !errors.As(err, &ge) || ge.Status != 500 || !errors.Is(err, rest.ErrUnknownOutcome) {
		t.Fatalf("err = %v, want the 500 with rest.ErrUnknownOutcome", err)
	}
	if fake.SendCalls() != 1 || len(*waits) != 0 {
		t.Fatalf("calls = %d, waits %v: want one call, no retry", fake.SendCalls(), *waits)
	}
}

// TestGraphErrorClasses is the contract the chain classifies by.
func TestGraphErrorClasses(t *testing.T) {
	tests := []struct {
		status                                     int
		temporary, credentials, rateLimit, refused bool
	}{
		{400, false, false, false, false}, {401, false, true, false, false}, {403, false, true, false, false},
		{404, false, false, false, false}, {429, true, false, true, true}, {500, true, false, false, false},
		{503, true, false, false, true}, {504, true, false, false, true},
	}
	for _, tt := range tests {
		e := &GraphError{Status: tt.status}
		if e.Temporary() != tt.temporary || e.Credentials() != tt.credentials || e.RateLimited() != tt.rateLimit || e.Refused() != tt.refused {
			t.Errorf("%d: Temporary %v Credentials %v RateLimited %v Refused %v", tt.status, e.Temporary(), e.Credentials(), e.RateLimited(), e.Refused())
		}
	}
}
