package notify

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/figurative/figsupport/internal/backoff"
	"github.com/figurative/figsupport/internal/health"
	"github.com/figurative/figsupport/internal/rest"
)

// DefaultGraphBaseURL is Microsoft Graph's host; the transport adds /v1.0.
const DefaultGraphBaseURL = "https://graph.microsoft.com"

// GraphConfig is the Graph transport's set-up.
type GraphConfig struct {
	Sender     string        // GRAPH_SENDER: the mailbox sending (users/{sender}/sendMail)
	BaseURL    string        // GRAPH_BASE_URL, default DefaultGraphBaseURL
	Timeout    time.Duration // per attempt, default 30 s
	Retry      *backoff.Policy
	HTTPClient *http.Client
	Retries    rest.RetryObserver // metrics; nil for none
}

// Graph sends through Microsoft Graph sendMail with an application (client-credentials) token,
// over the shared rest core: the token is set on each attempt, Graph's error body becomes a
// *GraphError, and throttling answers are retried after their Retry-After.
type Graph struct {
	sender string
	tokens *tokens
	api    rest.Client
	sleep  func(context.Context, time.Duration) error
}

// NewGraph checks cfg and the OAuth client. It does no I/O.
func NewGraph(cfg GraphConfig, oauth OAuthConfig) (*Graph, error) {
	if strings.TrimSpace(cfg.Sender) == "" {
		return nil, errors.New("notify: GRAPH_SENDER is empty")
	}
	raw := cfg.BaseURL
	if strings.TrimSpace(raw) == "" {
		raw = DefaultGraphBaseURL
	}
	base, err := rest.ParseBase(raw)
	if err != nil {
		return nil, fmt.Errorf("notify: GRAPH_BASE_URL: %w", err)
	}
	t, err := newTokens(oauth, ScopeGraph)
	if err != nil {
		return nil, fmt.Errorf("notify: graph: %w", err)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: orDefault(cfg.Timeout, 30*time.Second)}
	}
	g := &Graph{sender: strings.TrimSpace(cfg.Sender), tokens: t, sleep: backoff.Sleep}
	g.api = rest.Client{
		Service: "graph", BaseURL: base, HTTP: hc, Retry: policy(cfg.Retry),
		Authorize:     t.Authorize,
		CheckResponse: checkGraph,
		Sleep:         func(ctx context.Context, d time.Duration) error { return g.sleep(ctx, d) },
		Retries:       cfg.Retries,
	}
	return g, nil
}

// Kind is "graph".
func (g *Graph) Kind() string { return KindGraph }

// GraphError is a Graph answer other than 202.
type GraphError struct {
	Status     int
	Code       string // error.code, e.g. ErrorAccessDenied
	Message    string // error.message
	RequestID  string // request-id header, for Microsoft support
	RetryAfter time.Duration
}

// Credentials reports a refused token or permission (401, 403): the CLI exits 4 on it.
func (e *GraphError) Credentials() bool {
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
}

// Temporary reports whether trying again later may succeed: throttling, a 5xx.
func (e *GraphError) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// RateLimited reports a 429.
func (e *GraphError) RateLimited() bool { return e.Status == http.StatusTooManyRequests }

// Refused tells the retry loop that Graph did not take the message: Microsoft documents 429, and
// 503 and 504 with Retry-After, as its throttling answers, given before a request is processed.
// Any other failure may have sent the mail and is not repeated here.
func (e *GraphError) Refused() bool {
	switch e.Status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// RetryHint is Graph's Retry-After.
func (e *GraphError) RetryHint() time.Duration { return e.RetryAfter }

func (e *GraphError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "graph sendMail: %d %s", e.Status, http.StatusText(e.Status))
	if e.Code != "" {
		fmt.Fprintf(&b, ": %s", e.Code)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.RequestID != "" {
		fmt.Fprintf(&b, " (request-id %s)", e.RequestID)
	}
	switch e.Status {
	case http.StatusUnauthorized, http.StatusForbidden:
		b.WriteString(" — the app needs the Mail.Send application permission with admin consent, and access to GRAPH_SENDER's mailbox")
	case http.StatusNotFound:
		b.WriteString(" — GRAPH_SENDER is not a mailbox of this tenant")
	}
	return b.String()
}

// Send posts the message in sendMail's MIME form: the whole RFC 5322 message, base64-encoded, as
// a text/plain body. The JSON form can carry no header but x-… ones, and figsupport's messages
// need Auto-Submitted (loop protection), their Message-ID (a repeat is recognisable, a reply
// threads) and, for an acknowledgement, In-Reply-To and References. Graph saves the message in
// the sender's Sent Items. Throttling (429, 503, 504: Graph answers them before taking the
// message) is retried after Retry-After; a failure that may have sent the mail is returned
// wrapped with rest.ErrUnknownOutcome, never repeated here.
func (g *Graph) Send(ctx context.Context, m *Message) error {
	if len(m.Raw) == 0 {
		return errors.New("graph sendMail: the message has no MIME form")
	}
	body := make([]byte, base64.StdEncoding.EncodedLen(len(m.Raw)))
	base64.StdEncoding.Encode(body, m.Raw)
	if len(body) > MaxGraphRequest {
		return fmt.Errorf("graph sendMail: the message is %d bytes once encoded, over Graph's %d-byte request limit", len(body), MaxGraphRequest)
	}
	req := &rest.Request{Method: http.MethodPost, Path: "/v1.0/users/" + url.PathEscape(g.sender) + "/sendMail",
		Raw: body, ContentType: "text/plain"}
	return g.api.Do(ctx, req, nil)
}

// MaxGraphRequest is sendMail's request size limit (about 4 MB); larger messages need a draft and
// an upload session, which admin notifications never do: they link to files, not attach them.
const MaxGraphRequest = 4 << 20

// checkGraph is Graph's error body ({"error": {"code", "message"}}) as a *GraphError.
func checkGraph(_ *rest.Request, resp *http.Response, data []byte) error {
	e := &GraphError{Status: resp.StatusCode, RequestID: resp.Header.Get("request-id"), RetryAfter: rest.RetryAfter(resp.Header, time.Now())}
	var ge struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &ge) == nil {
		e.Code, e.Message = ge.Error.Code, ge.Error.Message
	}
	return e
}

// Check acquires a token; sending is the only way to test Mail.Send, so it is not tried.
func (g *Graph) Check(ctx context.Context) []health.Check {
	c := health.Check{Service: KindGraph, Name: "token"}
	if _, err := g.tokens.Token(ctx); err != nil {
		c.Status, c.Detail = health.Fail, err.Error()+" — check OAUTH_TENANT_ID, OAUTH_CLIENT_ID and OAUTH_CLIENT_SECRET"
		return []health.Check{c}
	}
	c.Status = health.OK
	c.Detail = fmt.Sprintf("token for %s obtained; mail will be sent as %s (Mail.Send itself is only proven by sending: figsupport notify)", ScopeGraph, g.sender)
	return []health.Check{c}
}
