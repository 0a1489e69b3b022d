// Package hubspot is the HubSpot CRM v3 client and the CRM backend built on it: contacts, tickets
// threaded per conversation, notes, the two custom ticket properties, and doctor checks. Every HTTP
// detail of HubSpot stays in this package.
package hubspot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/figurative/figsupport/internal/backoff"
)

// DefaultBaseURL is HubSpot's API host.
const DefaultBaseURL = "https://api.hubapi.com"

// ErrDailyLimit marks a 429 whose policy is DAILY: retrying before the portal's midnight is pointless.
var ErrDailyLimit = errors.New("hubspot daily API limit reached")

// ErrUncertainCreate is returned (wrapped) when a create may have reached HubSpot, the check for it
// could not run, and repeating it could make a duplicate.
var ErrUncertainCreate = errors.New("hubspot create may have happened and could not be checked")

// APIError is a non-2xx answer from HubSpot.
type APIError struct {
	Method        string
	Path          string // without query string
	Status        int
	Category      string // HubSpot's category: VALIDATION_ERROR, CONFLICT, MISSING_SCOPES, RATE_LIMIT…
	Message       string
	CorrelationID string
	PolicyName    string        // for 429: TEN_SECONDLY_ROLLING, SECONDLY, DAILY
	RetryAfter    time.Duration // the server's hint, from Retry-After or the rate-limit headers
	Details       []ErrorDetail

	// identityProfileVID is the id a contact 409 may carry outside its message.
	identityProfileVID string
}

// ErrorDetail is one entry of an error body's errors array.
type ErrorDetail struct {
	Message string              `json:"message"`
	Code    string              `json:"code"`
	Context map[string][]string `json:"context"`
}

// Credentials reports a refused token or missing scope (401, 403): the CLI exits 4 on it.
func (e *APIError) Credentials() bool {
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "hubspot %s %s: %d", e.Method, e.Path, e.Status)
	if e.Category != "" {
		b.WriteString(" " + e.Category)
	}
	if e.PolicyName != "" {
		b.WriteString(" " + e.PolicyName)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if s := e.MissingScopes(); len(s) > 0 {
		b.WriteString(" (missing scope " + strings.Join(s, ", ") + ")")
	}
	if e.CorrelationID != "" {
		b.WriteString(" (correlation id " + e.CorrelationID + ")")
	}
	return b.String()
}

// Is makes errors.Is(err, ErrDailyLimit) true for a DAILY 429.
func (e *APIError) Is(target error) bool {
	return target == ErrDailyLimit && e.Status == http.StatusTooManyRequests && e.PolicyName == "DAILY"
}

// MissingScopes lists the scopes a 403 MISSING_SCOPES says the token lacks.
func (e *APIError) MissingScopes() []string {
	if e.Category != "MISSING_SCOPES" {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, d := range e.Details {
		for _, k := range []string{"requiredGranularScopes", "requiredScopes"} {
			for _, s := range d.Context[k] {
				if !seen[s] {
					seen[s] = true
					out = append(out, s)
				}
			}
		}
	}
	return out
}

// Temporary says whether trying again later may succeed.
func (e *APIError) Temporary() bool {
	if e.Status == http.StatusTooManyRequests {
		return e.PolicyName != "DAILY"
	}
	return e.Status >= 500
}

// ClientConfig configures a Client. Zero values take the defaults.
type ClientConfig struct {
	Token           string
	BaseURL         string         // default DefaultBaseURL
	Timeout         time.Duration  // per attempt; default 30 s
	RequestsPer10s  int            // client-side limit of all calls; default 100
	SearchPerSecond int            // client-side limit of search calls; default 5
	Retry           backoff.Policy // default backoff.Default
	HTTPClient      *http.Client   // default: one with Timeout and bounded dial/TLS/header waits
	UserAgent       string
}

// Client talks to HubSpot: one do method, retries and limits inside it.
type Client struct {
	token   string
	base    *url.URL
	http    *http.Client
	retry   backoff.Policy
	all     *rate.Limiter
	search  *rate.Limiter
	ua      string
	sleep   func(context.Context, time.Duration) error
	onRetry func(attempt int, err error, wait time.Duration)
}

// NewClient builds a client; the token is never put in an error.
func NewClient(cfg ClientConfig) (*Client, error) {
	if strings.TrimSpace(cfg.Token) == "" {
		return nil, errors.New("hubspot: no token configured (HUBSPOT_API_KEY)")
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	u, err := url.Parse(strings.TrimRight(cfg.BaseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("hubspot: base URL %q is not an http(s) URL", cfg.BaseURL)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.RequestsPer10s <= 0 {
		cfg.RequestsPer10s = 100
	}
	if cfg.SearchPerSecond <= 0 {
		cfg.SearchPerSecond = 5
	}
	if cfg.Retry.Attempts == 0 {
		cfg.Retry = backoff.Default
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: cfg.Timeout,
			IdleConnTimeout:       90 * time.Second,
			MaxIdleConnsPerHost:   10,
			ForceAttemptHTTP2:     true,
		}}
	}
	ua := cfg.UserAgent
	if ua == "" {
		ua = "figsupport"
	}
	return &Client{
		token:  cfg.Token,
		base:   u,
		http:   hc,
		retry:  cfg.Retry,
		all:    newLimiter(cfg.RequestsPer10s, 10*time.Second),
		search: newLimiter(cfg.SearchPerSecond, time.Second),
		ua:     ua,
		sleep:  backoff.Sleep,
	}, nil
}

// newLimiter allows at most n events in any window: a token bucket whose burst plus refill over one
// window equals n (a plain n/window rate with burst b would allow n+b in a rolling window).
func newLimiter(n int, window time.Duration) *rate.Limiter {
	burst := max(1, n/10)
	if n <= 1 {
		return rate.NewLimiter(rate.Every(window), 1)
	}
	refill := n - burst
	return rate.NewLimiter(rate.Limit(float64(refill)/window.Seconds()), burst)
}

// request is one logical call.
type request struct {
	method string
	path   string
	query  url.Values
	body   any
	// created looks for what this POST would have created, after an attempt whose outcome is
	// unknown (network error, timeout, 5xx): found means done, and out has been filled.
	created func(ctx context.Context) (found bool, err error)
}

func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	return c.do(ctx, request{method: http.MethodGet, path: path, query: q}, out)
}

func (c *Client) post(ctx context.Context, path string, body, out any) error {
	return c.do(ctx, request{method: http.MethodPost, path: path, body: body}, out)
}

func (c *Client) patch(ctx context.Context, path string, body, out any) error {
	return c.do(ctx, request{method: http.MethodPatch, path: path, body: body}, out)
}

// do sends a request, decodes a 2xx JSON answer into out, and retries 429 (except DAILY), 5xx and
// network errors under the shared backoff policy, honouring the server's hints. Before repeating a
// create whose first attempt may have landed, it runs req.created.
func (c *Client) do(ctx context.Context, req request, out any) error {
	var payload []byte
	if req.body != nil {
		var err error
		if payload, err = json.Marshal(req.body); err != nil {
			return fmt.Errorf("hubspot %s %s: encode body: %w", req.method, req.path, err)
		}
	}
	isSearch := strings.HasSuffix(req.path, "/search")
	uncertain := false
	var last error
	for attempt := 1; ; attempt++ {
		if uncertain && req.created != nil {
			found, err := req.created(ctx)
			if err != nil {
				return fmt.Errorf("%w: %s %s (%v); last error: %w", ErrUncertainCreate, req.method, req.path, err, last)
			}
			if found {
				return nil
			}
		}
		if err := c.all.Wait(ctx); err != nil {
			return fmt.Errorf("hubspot %s %s: %w", req.method, req.path, err)
		}
		if isSearch {
			if err := c.search.Wait(ctx); err != nil {
				return fmt.Errorf("hubspot %s %s: %w", req.method, req.path, err)
			}
		}
		hint, err := c.once(ctx, req, payload, out)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("hubspot %s %s: %w", req.method, req.path, ctx.Err())
		}
		last = err
		var apiErr *APIError
		switch {
		case errors.As(err, &apiErr):
			if !apiErr.Temporary() {
				return err
			}
			// A 429 was refused before doing anything; a 5xx may have been done.
			uncertain = uncertain || apiErr.Status >= 500
		default: // transport error: the request may have reached HubSpot
			uncertain = true
		}
		if attempt >= c.retry.Attempts {
			return err
		}
		wait := c.retry.Delay(attempt, hint)
		if c.onRetry != nil {
			c.onRetry(attempt, err, wait)
		}
		if err := c.sleep(ctx, wait); err != nil {
			return fmt.Errorf("hubspot %s %s: %w (after %w)", req.method, req.path, err, last)
		}
	}
}

// once is one attempt; it returns the server's retry hint with any error.
func (c *Client) once(ctx context.Context, req request, payload []byte, out any) (time.Duration, error) {
	u := *c.base
	u.Path = c.base.Path + req.path
	if len(req.query) > 0 {
		u.RawQuery = req.query.Encode()
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u.String(), body)
	if err != nil {
		return 0, fmt.Errorf("hubspot %s %s: %w", req.method, req.path, err)
	}
	hr.Header.Set("Authorization", "Bearer "+c.token)
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("User-Agent", c.ua)
	if payload != nil {
		hr.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(hr)
	if err != nil {
		return 0, fmt.Errorf("hubspot %s %s: %w", req.method, req.path, redact(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return 0, fmt.Errorf("hubspot %s %s: read answer: %w", req.method, req.path, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out == nil || len(bytes.TrimSpace(data)) == 0 {
			return 0, nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return 0, fmt.Errorf("hubspot %s %s: decode answer: %w", req.method, req.path, err)
		}
		return 0, nil
	}
	e := parseError(req.method, req.path, resp, data)
	return e.RetryAfter, e
}

// redact drops the URL from a transport error: it holds no secret today, but query strings might.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return fmt.Errorf("%s: %w", ue.Op, ue.Err)
	}
	return err
}

// errorBody is HubSpot's error shape; 429s use errorType and policyName.
type errorBody struct {
	Status          string        `json:"status"`
	Message         string        `json:"message"`
	CorrelationID   string        `json:"correlationId"`
	Category        string        `json:"category"`
	ErrorType       string        `json:"errorType"`
	PolicyName      string        `json:"policyName"`
	Errors          []ErrorDetail `json:"errors"`
	IdentityProfile *struct {
		VID json.Number `json:"vid"`
	} `json:"identityProfile"`
}

func parseError(method, path string, resp *http.Response, data []byte) *APIError {
	e := &APIError{Method: method, Path: path, Status: resp.StatusCode}
	var b errorBody
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if dec.Decode(&b) == nil {
		e.Message = b.Message
		e.CorrelationID = b.CorrelationID
		e.Category = b.Category
		if e.Category == "" {
			e.Category = b.ErrorType
		}
		e.PolicyName = b.PolicyName
		e.Details = b.Errors
		if b.IdentityProfile != nil {
			e.identityProfileVID = b.IdentityProfile.VID.String()
		}
	} else {
		e.Message = strings.TrimSpace(string(data[:min(len(data), 200)]))
	}
	if e.CorrelationID == "" {
		e.CorrelationID = resp.Header.Get("X-HubSpot-Correlation-Id")
	}
	if e.Status == http.StatusTooManyRequests && e.PolicyName == "DAILY" {
		e.Message = "daily API limit reached; HubSpot resets it at midnight in the portal's time zone"
	}
	e.RetryAfter = retryHint(resp.Header, e.PolicyName)
	return e
}

// retryHint reads Retry-After (seconds or HTTP date), else derives a wait from HubSpot's
// X-HubSpot-RateLimit-* headers when the window is exhausted.
func retryHint(h http.Header, policy string) time.Duration {
	if v := strings.TrimSpace(h.Get("Retry-After")); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			return time.Duration(n) * time.Second
		}
		if t, err := http.ParseTime(v); err == nil {
			return max(time.Until(t), 0)
		}
	}
	if policy == "SECONDLY" || h.Get("X-HubSpot-RateLimit-Secondly-Remaining") == "0" {
		return time.Second
	}
	if h.Get("X-HubSpot-RateLimit-Remaining") == "0" {
		if ms, err := strconv.Atoi(h.Get("X-HubSpot-RateLimit-Interval-Milliseconds")); err == nil && ms > 0 {
			// A rolling window frees a slot well before a full interval; a fraction avoids idling.
			return time.Duration(ms) * time.Millisecond / 10
		}
	}
	return 0
}

var existingID = regexp.MustCompile(`Existing ID:\s*(\d+)`)

// conflictID is the existing object's id a 409 carries: identityProfile.vid, else "Existing ID: N".
func conflictID(err error) (string, bool) {
	var e *APIError
	if !errors.As(err, &e) || e.Status != http.StatusConflict {
		return "", false
	}
	if e.identityProfileVID != "" && e.identityProfileVID != "0" {
		return e.identityProfileVID, true
	}
	if m := existingID.FindStringSubmatch(e.Message); m != nil {
		return m[1], true
	}
	return "", false
}

func statusOf(err error) int {
	var e *APIError
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}
