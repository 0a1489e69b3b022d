package oauth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/fakes/graphfake"
)

func TestToken(t *testing.T) {
	fake := graphfake.New(t)
	ts, err := New(Config{ClientID: graphfake.ClientID, ClientSecret: graphfake.ClientSecret, TokenURL: fake.TokenURL()}, ScopeOutlook)
	if err != nil {
		t.Fatal(err)
	}
	first, err := ts.Token(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	again, err := ts.Token(context.Background())
	if err != nil || again != first {
		t.Fatalf("second token = %q, %v; want the first one reused", again, err)
	}
	if fake.Scope(first) != ScopeOutlook {
		t.Fatalf("token scope = %q", fake.Scope(first))
	}
	reqs := fake.TokenRequests()
	if len(reqs) != 1 || reqs[0].GrantType != "client_credentials" || reqs[0].Scope != ScopeOutlook {
		t.Fatalf("token requests = %+v", reqs)
	}
}

func TestTokenErrors(t *testing.T) {
	fake := graphfake.New(t)
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	t.Cleanup(down.Close)
	tests := []struct {
		name        string
		cfg         Config
		want        string
		credentials bool
	}{
		{"wrong secret", Config{ClientID: graphfake.ClientID, ClientSecret: "wrong-SECRET", TokenURL: fake.TokenURL()},
			"invalid_client: AADSTS7000215", true},
		{"unknown client", Config{ClientID: "nope", ClientSecret: graphfake.ClientSecret, TokenURL: fake.TokenURL()},
			"unauthorized_client: AADSTS700016", true},
		{"endpoint down", Config{ClientID: "c", ClientSecret: "s", TokenURL: down.URL},
			"status 502 Bad Gateway", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ts, err := New(tt.cfg, ScopeGraph)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ts.Token(context.Background())
			var oe *Error
			if !errors.As(err, &oe) || oe.Credentials() != tt.credentials || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v (%+v), want %q with credentials=%v", err, oe, tt.want, tt.credentials)
			}
			// The secret never appears, nor Entra's trace lines.
			if strings.Contains(err.Error(), "wrong-SECRET") || strings.Contains(err.Error(), "Trace ID") {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestTokenCancelled(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) }) // runs first: the handler returns, then the server closes
	ts, err := New(Config{ClientID: "c", ClientSecret: "s", TokenURL: hang.URL, HTTPClient: &http.Client{Timeout: 5 * time.Second}}, ScopeGraph)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := ts.Token(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
}

func TestNewChecksConfig(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{TenantID: "t"}, "OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET"},
		{Config{ClientID: "c", ClientSecret: "s"}, "OAUTH_TENANT_ID"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if _, err := New(tt.cfg, ScopeGraph); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	ts, err := New(Config{TenantID: " contoso.onmicrosoft.com ", ClientID: "c", ClientSecret: "s"}, ScopeGraph)
	if err != nil || ts.url != "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token" {
		t.Fatalf("url = %v, %v", ts, err)
	}
}
