package notify

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
	ScopeSMTP  = "https://outlook.office365.com/.default"
	ScopeGraph = "https://graph.microsoft.com/.default"
)

// OAuthConfig is the Microsoft Entra app registration used for XOAUTH2 and Graph.
type OAuthConfig struct {
	TenantID     string // OAUTH_TENANT_ID
	ClientID     string // OAUTH_CLIENT_ID
	ClientSecret string // OAUTH_CLIENT_SECRET
	// TokenURL overrides https://login.microsoftonline.com/{tenant}/oauth2/v2.0/token (OAUTH_TOKEN_URL).
	TokenURL   string
	HTTPClient *http.Client // default: 15 s timeout
}

func (o OAuthConfig) tokenURL() (string, error) {
	if o.TokenURL != "" {
		return o.TokenURL, nil
	}
	if strings.TrimSpace(o.TenantID) == "" {
		return "", errors.New("OAUTH_TENANT_ID is empty")
	}
	return "https://login.microsoftonline.com/" + url.PathEscape(strings.TrimSpace(o.TenantID)) + "/oauth2/v2.0/token", nil
}

// tokens is a client-credentials token source for one scope, reused until the token expires.
type tokens struct {
	src oauth2.TokenSource
	url string
}

func newTokens(o OAuthConfig, scope string) (*tokens, error) {
	if o.ClientID == "" || o.ClientSecret == "" {
		return nil, errors.New("OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET are required")
	}
	u, err := o.tokenURL()
	if err != nil {
		return nil, err
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	cc := &clientcredentials.Config{
		ClientID: o.ClientID, ClientSecret: o.ClientSecret, TokenURL: u, Scopes: []string{scope},
		// Microsoft documents the secret as a form field of the token request.
		AuthStyle: oauth2.AuthStyleInParams,
	}
	// clientcredentials already wraps its source in oauth2.ReuseTokenSource: one request per
	// token lifetime.
	src := cc.TokenSource(context.WithValue(context.Background(), oauth2.HTTPClient, hc))
	return &tokens{src: src, url: u}, nil
}

// Token returns a valid access token; ctx bounds the wait (the HTTP client's timeout bounds the
// request itself).
func (t *tokens) Token(ctx context.Context) (string, error) {
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

// tokenErr keeps Entra's error code and description (AADSTS…), which say what to fix, and never
// the request.
func tokenErr(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorCode != "" {
			desc, _, _ := strings.Cut(re.ErrorDescription, "\r\n")
			return fmt.Errorf("%s: %s", re.ErrorCode, desc)
		}
		if re.Response != nil {
			return fmt.Errorf("status %s", re.Response.Status)
		}
	}
	return err
}
