package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/figurative/figsupport/internal/backoff"
	"github.com/figurative/figsupport/internal/health"
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
}

// Graph sends through Microsoft Graph sendMail with an application (client-credentials) token.
type Graph struct {
	sender string
	base   string
	http   *http.Client
	tokens *tokens
	retry  backoff.Policy
	sleep  func(context.Context, time.Duration) error
}

// NewGraph checks cfg and the OAuth client. It does no I/O.
func NewGraph(cfg GraphConfig, oauth OAuthConfig) (*Graph, error) {
	if strings.TrimSpace(cfg.Sender) == "" {
		return nil, errors.New("notify: GRAPH_SENDER is empty")
	}
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		base = DefaultGraphBaseURL
	}
	if u, err := url.Parse(base); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("notify: GRAPH_BASE_URL %q is not an http(s) URL", cfg.BaseURL)
	}
	t, err := newTokens(oauth, ScopeGraph)
	if err != nil {
		return nil, fmt.Errorf("notify: graph: %w", err)
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: orDefault(cfg.Timeout, 30*time.Second)}
	}
	return &Graph{sender: strings.TrimSpace(cfg.Sender), base: base, http: hc, tokens: t, retry: policy(cfg.Retry), sleep: backoff.Sleep}, nil
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

type graphAddress struct {
	EmailAddress struct {
		Address string `json:"address"`
	} `json:"emailAddress"`
}

type graphMail struct {
	Message struct {
		Subject string `json:"subject"`
		Body    struct {
			ContentType string `json:"contentType"`
			Content     string `json:"content"`
		} `json:"body"`
		ToRecipients []graphAddress `json:"toRecipients"`
	} `json:"message"`
	SaveToSentItems bool `json:"saveToSentItems"`
}

// Send posts the message. 429 and 503/504 (throttling, which Graph answers before taking the
// message) are retried after Retry-After; other failures are returned.
func (g *Graph) Send(ctx context.Context, m *Message) error {
	var body graphMail
	body.Message.Subject = m.Subject
	body.Message.Body.ContentType = "HTML"
	body.Message.Body.Content = m.HTML
	for _, to := range m.To {
		var a graphAddress
		a.EmailAddress.Address = to
		body.Message.ToRecipients = append(body.Message.ToRecipients, a)
	}
	payload, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("graph: encode: %w", err)
	}
	attempts := max(1, g.retry.Attempts)
	for attempt := 1; ; attempt++ {
		err := g.once(ctx, payload)
		if err == nil {
			return nil
		}
		var ge *GraphError
		retry := errors.As(err, &ge) && (ge.Status == http.StatusTooManyRequests || ge.Status == http.StatusServiceUnavailable || ge.Status == http.StatusGatewayTimeout)
		if !retry || attempt >= attempts || ctx.Err() != nil {
			if retry {
				return fmt.Errorf("%w (gave up after %d attempts)", err, attempt)
			}
			return err
		}
		if err := g.sleep(ctx, g.retry.Delay(attempt, ge.RetryAfter)); err != nil {
			return fmt.Errorf("graph sendMail: %w", errors.Join(err, ge))
		}
	}
}

func (g *Graph) once(ctx context.Context, payload []byte) error {
	tok, err := g.tokens.Token(ctx)
	if err != nil {
		return fmt.Errorf("graph: %w", err)
	}
	u := g.base + "/v1.0/users/" + url.PathEscape(g.sender) + "/sendMail"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("graph: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.http.Do(req)
	if err != nil {
		return fmt.Errorf("graph sendMail: %w", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK {
		return nil
	}
	e := &GraphError{Status: resp.StatusCode, RequestID: resp.Header.Get("request-id")}
	if s, err := strconv.Atoi(strings.TrimSpace(resp.Header.Get("Retry-After"))); err == nil && s >= 0 {
		e.RetryAfter = max(time.Duration(s)*time.Second, time.Millisecond)
	}
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
