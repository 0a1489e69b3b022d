// Package oauth is the Microsoft Entra client-credentials token source shared by the notifier
// (SMTP XOAUTH2, Graph sendMail) and the mailbox readers (IMAP XOAUTH2, Graph mail): one app
// registration, one token per scope, reused until it expires.
package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// Scopes of the client-credentials tokens.
const (
	// ScopeOutlook is Exchange Online's resource: SMTP AUTH and IMAP with XOAUTH2.
	ScopeOutlook = "https://outlook.office365.com/.default"
	// ScopeGraph is Microsoft Graph's resource.
	ScopeGraph = "https://graph.microsoft.com/.default"
)

// Config is the Microsoft Entra app registration.
type Config struct {
	TenantID     string // OAUTH_TENANT_ID
	ClientID     string // OAUTH_CLIENT_ID
	ClientSecret string // OAUTH_CLIENT_SECRET
	// TokenURL overrides https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token (OAUTH_TOKEN_URL).
	TokenURL   string
	HTTPClient *http.Client // default: 15 s timeout
}

func (o Config) tokenURL() (string, error) {
	if o.TokenURL != "" {
		return o.TokenURL, nil
	}
	if strings.TrimSpace(o.TenantID) == "" {
		return "", errors.New("OAUTH_TENANT_ID is empty")
	}
	return "https://login.microsoftonline.com/" + url.PathEscape(strings.TrimSpace(o.TenantID)) + "/oauth2/v2.0/token", nil
}

// TokenSource is a client-credentials token source for one scope, reused until the token expires.
// It is safe for concurrent use.
type TokenSource struct {
	src oauth2.TokenSource
	url string
}

// New checks cfg and returns the token source for scope. It does no I/O.
func New(cfg Config, scope string) (*TokenSource, error) {
	if cfg.ClientID == "" || cfg.ClientSecret == "" {
		return nil, errors.New("OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET are required")
	}
	u, err := cfg.tokenURL()
	if err != nil {
		return nil, err
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	cc := &clientcredentials.Config{
		ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, TokenURL: u, Scopes: []string{scope},
		// Microsoft documents the secret as a form field of the token request.
		AuthStyle: oauth2.AuthStyleInParams,
	}
	// clientcredentials already wraps its source in oauth2.ReuseTokenSource: one request per
	// token lifetime.
	src := cc.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, hc))
	return &TokenSource{src: src, url: u}, nil
}

// Token returns a valid access token; ctx bounds the wait (the HTTP client's timeout bounds the
// request itself).
func (t *TokenSource) Token(ctx context.Context) (string, error) {
	type result struct {
		tok *oauth2.Token
		err error
	}
	ch := make(chan result, 1)
	go func() {
		tok, err := t.src.Token()
		ch <- result{tok, err}
	}()
	select {
	case <-ctx.Done():
		return "", fmt.Errorf("oauth2 token from %s: %w", t.url, ctx.Err())
	case r := <-ch:
		if r.err != nil {
			return "", fmt.Errorf("oauth2 token from %s: %w", t.url, tokenErr(r.err))
		}
		if r.tok.AccessToken == "" {
			return "", fmt.Errorf("oauth2 token from %s: empty access token", t.url)
		}
		return r.tok.AccessToken, nil
	}
}

// Authorize sets r's bearer token: the rest core's Authorize hook, called for each attempt.
func (t *TokenSource) Authorize(ctx context.Context, r *http.Request) error {
	tok, err := t.Token(ctx)
	if err != nil {
		return err
	}
	r.Header.Set("Authorization", "Bearer "+tok)
	return nil
}

// Error is the token endpoint refusing the request: Entra's error code and the first line of its
// description (AADSTS…), which say what to fix, and never the request.
type Error struct {
	Status      int    // HTTP status of the token endpoint's answer
	Code        string // e.g. invalid_client
	Description string // e.g. AADSTS7000215: Invalid client secret provided…
}

func (e *Error) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("status %d %s", e.Status, http.StatusText(e.Status))
	}
	return e.Code + ": " + e.Description
}

// Credentials reports a refusal of the app registration itself (unknown tenant or client, wrong
// secret, missing consent: Entra answers 4xx): the CLI exits 4 on it. A 5xx is an outage, not a
// credentials problem.
func (e *Error) Credentials() bool { return e.Status >= 400 && e.Status < 500 }

func tokenErr(err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		return err
	}
	e := &Error{Code: re.ErrorCode}
	if re.Response != nil {
		e.Status = re.Response.StatusCode
	}
	desc, _, _ := strings.Cut(re.ErrorDescription, "\r\n")
	e.Description = desc
	if e.Code == "" && e.Status == 0 {
		return err
	}
	return e
}
