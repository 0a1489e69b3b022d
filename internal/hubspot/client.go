// Package hubspot is the HubSpot CRM v3 client and the CRM backend built on it: contacts, tickets
// threaded per conversation, notes, the custom ticket properties, and doctor checks. Every HTTP
// detail of HubSpot stays in this package.
package hubspot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/figurative/figsupport/internal/backoff"
	"github.com/figurative/figsupport/internal/rest"
)

// DefaultBaseURL is HubSpot's API host.
const DefaultBaseURL = "https://api.hubapi.com"

// ErrDailyLimit marks a 429 whose policy is DAILY: retrying before the portal's midnight is pointless.
var ErrDailyLimit = errors.New("hubspot daily API limit reached")

// dailyLimitHint is the wait given for a DAILY 429. HubSpot resets the daily limit at midnight in
// the portal's time zone, which the API does not tell; an hour is beyond any in-run wait
// (backoff.DefaultMaxHint), so the call fails at once while a later retry of the request (the
// daemon's) may find the limit reset.
const dailyLimitHint = time.Hour

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

// Temporary says whether trying again later may succeed: a rate limit (the daily one too, after
// HubSpot's reset), a 5xx. Any other 4xx will not change by waiting.
func (e *APIError) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// RateLimited reports a 429, whatever its policy.
func (e *APIError) RateLimited() bool { return e.Status == http.StatusTooManyRequests }

// Refused tells the retry loop that HubSpot did nothing: a 429 is refused before any work, so
// even a create may be sent again without looking for it first.
func (e *APIError) Refused() bool { return e.Status == http.StatusTooManyRequests }

// RetryHint is the server's wait: Retry-After, or one derived from the rate-limit headers.
func (e *APIError) RetryHint() time.Duration { return e.RetryAfter }

// ClientConfig configures a Client. Zero values take the package's defaults, which are those of
// internal/config.Keys (HUBSPOT_TIMEOUT, HUBSPOT_RATE_LIMIT) for use of the package on its own.
type ClientConfig struct {
	Token           string
	BaseURL         string         // default DefaultBaseURL
	Timeout         time.Duration  // per attempt; default DefaultTimeout
	RequestsPer10s  int            // client-side limit of all calls; default DefaultRequestsPer10s
	SearchPerSecond int            // client-side limit of search calls; default DefaultSearchPerSecond
	Retry           backoff.Policy // default backoff.Default
	HTTPClient      *http.Client   // default: one with Timeout and bounded dial/TLS/header waits
	UserAgent       string
	// Sleep waits between attempts; nil is backoff.Sleep. Tests replace it so that a server's
	// hint (seconds) is recorded rather than slept.
	Sleep func(ctx context.Context, d time.Duration) error
	// Retries is told of every repeated attempt (metrics); nil for none.
	Retries rest.RetryObserver
}

// Package defaults, the same as internal/config.Keys where a key exists.
const (
	DefaultTimeout         = 30 * time.Second // HUBSPOT_TIMEOUT
	DefaultRequestsPer10s  = 100              // HUBSPOT_RATE_LIMIT (the lowest tier)
	DefaultSearchPerSecond = 5                // search's own limit, per account; no key
)

// Client talks to HubSpot: every call goes through one rest.Client, whose Wait hook applies the
// client-side limits and whose CheckResponse decodes HubSpot's error bodies into *APIError.
type Client struct {
	api    rest.Client
	all    *window
	search *window
}

// NewClient builds a client; the token is never put in an error.
func NewClient(cfg ClientConfig) (*Client, error) {
	if strings.TrimSpace(cfg.Token) == "" {
		return nil, errors.New("hubspot: no token configured (HUBSPOT_API_KEY)")
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = DefaultBaseURL
	}
	base, err := rest.ParseBase(cfg.BaseURL)
	if err != nil {
		return nil, fmt.Errorf("hubspot: HUBSPOT_BASE_URL: %w", err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.RequestsPer10s <= 0 {
		cfg.RequestsPer10s = DefaultRequestsPer10s
	}
	if cfg.SearchPerSecond <= 0 {
		cfg.SearchPerSecond = DefaultSearchPerSecond
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
	c := &Client{
		all:    newWindow(cfg.RequestsPer10s, 10*time.Second),
		search: newWindow(cfg.SearchPerSecond, time.Second),
	}
	token := cfg.Token
	c.api = rest.Client{
		Service: "hubspot", BaseURL: base, HTTP: hc, Retry: cfg.Retry, UserAgent: ua,
		Authorize: func(_ context.Context, r *http.Request) error {
			r.Header.Set("Authorization", "Bearer "+token)
			return nil
		},
		CheckResponse: checkResponse,
		Wait:          c.wait,
		Sleep:         cfg.Sleep,
		Retries:       cfg.Retries,
	}
	return c, nil
}

// wait keeps every call under the portal's limit and searches under search's own, which HubSpot
// does not announce in headers.
func (c *Client) wait(ctx context.Context, req *rest.Request) error {
	if err := c.all.Wait(ctx); err != nil {
		return fmt.Errorf("rate limiter: %w", err)
	}
	if strings.HasSuffix(req.Path, "/search") {
		if err := c.search.Wait(ctx); err != nil {
			return fmt.Errorf("search rate limiter: %w", err)
		}
	}
	return nil
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

// checkResponse is the rest.Client's CheckResponse: HubSpot's error body as an *APIError.
func checkResponse(req *rest.Request, resp *http.Response, data []byte) error {
	return parseError(req.Method, req.Path, resp, data)
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
	if policy == "DAILY" {
		return dailyLimitHint
	}
	if d := rest.RetryAfter(h, time.Now()); d > 0 {
		return d
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
