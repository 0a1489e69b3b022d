// Package clickup is the ClickUp API v2 client and the task backend that keeps one subtask per
// support ticket under a configured parent task.
package clickup

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/figurative/figsupport/internal/backoff"
	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/rest"
)

// DefaultBaseURL is ClickUp's API host; paths carry the /api/v2 prefix.
const DefaultBaseURL = "https://api.clickup.com"

// DefaultRequestsPerMinute is the limit of a personal token on most plans (Business Plus allows
// 1,000, Enterprise 10,000); CLICKUP_RATE_LIMIT's default in internal/config.Keys.
const DefaultRequestsPerMinute = 100

// DefaultTimeout bounds one HTTP attempt (no configuration key: ClickUp answers in well under it).
const DefaultTimeout = 20 * time.Second

// Config is everything the ClickUp backend needs, as plain values. cmd/ fills it from
// internal/config.Keys; the package's defaults (the same values) serve only its use on its own.
type Config struct {
	Token        string // CLICKUP_API_KEY: personal token pk_…, sent raw in Authorization
	BaseURL      string // CLICKUP_BASE_URL, default DefaultBaseURL
	ParentTaskID string // CLICKUP_PARENT_TASK_ID: subtasks are created under it
	// RequestsPerMinute bounds this process's request rate (CLICKUP_RATE_LIMIT); 0 means
	// DefaultRequestsPerMinute, a negative value disables the client-side limiter.
	RequestsPerMinute int
	Timeout           time.Duration      // per HTTP attempt; default DefaultTimeout
	Retry             *backoff.Policy    // default backoff.Default
	Retries           rest.RetryObserver // metrics; nil for none
	HTTPClient        *http.Client       // default: a client with Timeout
	// Memo, when set, remembers the parent's list id across processes (the journal implements it).
	Memo Memo
}

// Memo is a small persistent key-value store. Get reports ok=false when the key is absent.
type Memo interface {
	Get(ctx context.Context, key string) (value string, ok bool, err error)
	Put(ctx context.Context, key, value string) error
}

// APIError is a ClickUp answer other than 2xx.
type APIError struct {
	Method     string
	Path       string // without the query string
	Status     int
	Message    string        // ClickUp's "err"
	Code       string        // ClickUp's "ECODE", e.g. OAUTH_025
	RetryAfter time.Duration // from X-RateLimit-Reset or Retry-After, when given
}

// Credentials reports a refused token (401, 403): the CLI exits 4 on it.
func (e *APIError) Credentials() bool {
	return e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "clickup %s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Message != "" {
		fmt.Fprintf(&b, ": %s", e.Message)
	}
	if e.Code != "" {
		fmt.Fprintf(&b, " (%s)", e.Code)
	}
	if e.Status == http.StatusUnauthorized {
		b.WriteString(" — check CLICKUP_API_KEY (a personal token pk_… sent without Bearer) and that it can see the task")
	}
	return b.String()
}

// Is lets callers test errors.Is(err, chain.ErrNotFound) on a 404.
func (e *APIError) Is(target error) bool {
	return target == chain.ErrNotFound && e.Status == http.StatusNotFound
}

// Temporary reports whether a retry may succeed: a rate limit, a 5xx. Other 4xx will not change.
func (e *APIError) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// RateLimited reports a 429.
func (e *APIError) RateLimited() bool { return e.Status == http.StatusTooManyRequests }

// Refused tells the retry loop that ClickUp did nothing: a 429 comes before any work.
func (e *APIError) Refused() bool { return e.Status == http.StatusTooManyRequests }

// RetryHint is ClickUp's wait: until X-RateLimit-Reset, or Retry-After.
func (e *APIError) RetryHint() time.Duration { return e.RetryAfter }

// ErrUnknownOutcome marks a write that may have been done though its answer never came (or was a
// 5xx) and that was not repeated; it is rest.ErrUnknownOutcome.
var ErrUnknownOutcome = rest.ErrUnknownOutcome

// Client talks to the ClickUp API v2 through one rest.Client: its Wait hook applies the
// client-side limiter and any pause ClickUp asked for, its Observe hook reads the rate-limit
// headers of every answer, its CheckResponse decodes ClickUp's error body.
type Client struct {
	api     rest.Client
	retry   backoff.Policy
	limiter *rate.Limiter

	now   func() time.Time
	sleep func(context.Context, time.Duration) error

	mu          sync.Mutex
	pausedUntil time.Time // set when ClickUp says no request is left in the window
}

// New checks cfg and returns a client. It does no I/O.
func New(cfg Config) (*Client, error) {
	if strings.TrimSpace(cfg.Token) == "" {
		return nil, errors.New("clickup: CLICKUP_API_KEY is empty")
	}
	raw := cfg.BaseURL
	if strings.TrimSpace(raw) == "" {
		raw = DefaultBaseURL
	}
	base, err := rest.ParseBase(raw)
	if err != nil {
		return nil, fmt.Errorf("clickup: CLICKUP_BASE_URL: %w", err)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: timeout}
	}
	retry := backoff.Default
	if cfg.Retry != nil {
		retry = *cfg.Retry
	}
	c := &Client{retry: retry, now: time.Now, sleep: backoff.Sleep}
	rpm := cfg.RequestsPerMinute
	if rpm == 0 {
		rpm = DefaultRequestsPerMinute
	}
	if rpm > 0 {
		// A small burst keeps interactive use snappy while a bulk replay settles at the rate.
		c.limiter = rate.NewLimiter(rate.Every(time.Minute/time.Duration(rpm)), max(1, rpm/20))
	}
	token := strings.TrimSpace(cfg.Token)
	c.api = rest.Client{
		Service: "clickup", BaseURL: base, HTTP: hc, Retry: retry,
		Authorize: func(_ context.Context, r *http.Request) error {
			r.Header.Set("Authorization", token) // personal tokens go raw, without "Bearer"
			return nil
		},
		CheckResponse: c.checkResponse,
		Wait:          c.wait,
		Observe:       func(resp *http.Response) { c.notePause(resp.Header) },
		Sleep:         func(ctx context.Context, d time.Duration) error { return c.sleep(ctx, d) },
		Retries:       cfg.Retries,
	}
	return c, nil
}

// checkResponse is ClickUp's error body ({"err", "ECODE"}) as an *APIError.
func (c *Client) checkResponse(req *rest.Request, resp *http.Response, data []byte) error {
	e := &APIError{Method: req.Method, Path: req.Path, Status: resp.StatusCode}
	if e.RateLimited() {
		e.RetryAfter = c.retryHint(resp.Header)
	} else {
		// X-RateLimit-Reset comes with every answer: it says when a 429 ends, not when a 5xx
		// may pass.
		e.RetryAfter = rest.RetryAfter(resp.Header, c.now())
	}
	var body struct {
		Err   string `json:"err"`
		ECode string `json:"ECODE"`
	}
	if json.Unmarshal(data, &body) == nil {
		e.Message, e.Code = body.Err, body.ECode
	}
	return e
}

// wait applies any pause ClickUp asked for (within the policy's MaxHint and the context's
// deadline) and the client-side limiter.
func (c *Client) wait(ctx context.Context, _ *rest.Request) error {
	c.mu.Lock()
	until := c.pausedUntil
	c.mu.Unlock()
	if d := until.Sub(c.now()); d > 0 {
		d, err := c.retry.Next(ctx, 1, d)
		if err != nil {
			return fmt.Errorf("rate limit window: %w", err)
		}
		if err := c.sleep(ctx, d); err != nil {
			return err
		}
	}
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			return fmt.Errorf("rate limiter: %w", err)
		}
	}
	return nil
}

// notePause remembers the window's reset when no request is left in it, so the next call waits
// instead of bouncing off a 429.
func (c *Client) notePause(h http.Header) {
	if h.Get("X-RateLimit-Remaining") != "0" {
		return
	}
	if reset, ok := parseUnix(h.Get("X-RateLimit-Reset")); ok {
		c.mu.Lock()
		c.pausedUntil = reset
		c.mu.Unlock()
	}
}

// retryHint reads X-RateLimit-Reset (Unix seconds, ClickUp's own) or Retry-After.
func (c *Client) retryHint(h http.Header) time.Duration {
	if reset, ok := parseUnix(h.Get("X-RateLimit-Reset")); ok {
		// The reset is in whole seconds: waiting until it has passed avoids a second 429.
		if d := reset.Sub(c.now()); d > 0 {
			return d
		}
		return time.Millisecond
	}
	return rest.RetryAfter(h, c.now())
}

func parseUnix(s string) (time.Time, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}
