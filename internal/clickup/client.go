// Package clickup is the ClickUp API v2 client and the task backend that keeps one subtask per
// support ticket under a configured parent task.
package clickup

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
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/figurative/figsupport/internal/backoff"
	"github.com/figurative/figsupport/internal/chain"
)

// DefaultBaseURL is ClickUp's API host; paths carry the /api/v2 prefix.
const DefaultBaseURL = "https://api.clickup.com"

// DefaultRequestsPerMinute is the limit of a personal token on most plans (Business Plus allows
// 1,000, Enterprise 10,000).
const DefaultRequestsPerMinute = 100

// Config is everything the ClickUp backend needs, as plain values.
type Config struct {
	Token        string // CLICKUP_API_KEY: personal token pk_…, sent raw in Authorization
	BaseURL      string // CLICKUP_BASE_URL, default DefaultBaseURL
	ParentTaskID string // CLICKUP_PARENT_TASK_ID: subtasks are created under it
	// RequestsPerMinute bounds this process's request rate (CLICKUP_RATE_LIMIT); 0 means
	// DefaultRequestsPerMinute, a negative value disables the client-side limiter.
	RequestsPerMinute int
	Timeout           time.Duration   // per HTTP attempt; default 20 s
	Retry             *backoff.Policy // default backoff.Default
	HTTPClient        *http.Client    // default: a client with Timeout
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
	fmt.Fprintf(&b, "clickup: %s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
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

// Temporary reports whether a retry may succeed.
func (e *APIError) Temporary() bool {
	return e.Status == http.StatusTooManyRequests || e.Status >= 500
}

// ErrUnknownOutcome marks a write whose request was sent but whose answer never came (or was a
// 5xx): the object may exist. Callers check before repeating it.
var ErrUnknownOutcome = errors.New("outcome unknown")

// Client talks to the ClickUp API v2.
type Client struct {
	token   string
	base    string
	http    *http.Client
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
	base := strings.TrimRight(cfg.BaseURL, "/")
	if base == "" {
		base = DefaultBaseURL
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("clickup: CLICKUP_BASE_URL %q is not an http(s) URL", cfg.BaseURL)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: timeout}
	}
	retry := backoff.Default
	if cfg.Retry != nil {
		retry = *cfg.Retry
	}
	c := &Client{token: strings.TrimSpace(cfg.Token), base: base, http: hc, retry: retry, now: time.Now, sleep: backoff.Sleep}
	rpm := cfg.RequestsPerMinute
	if rpm == 0 {
		rpm = DefaultRequestsPerMinute
	}
	if rpm > 0 {
		// A small burst keeps interactive use snappy while a bulk replay settles at the rate.
		c.limiter = rate.NewLimiter(rate.Every(time.Minute/time.Duration(rpm)), max(1, rpm/20))
	}
	return c, nil
}

// request is one API call.
type request struct {
	method string
	path   string // below the base URL, e.g. /api/v2/task/abc
	query  url.Values
	body   any // JSON-encoded when not nil
	// idempotent requests are retried on 5xx and network errors; the others only on 429 (not
	// processed) and answer ErrUnknownOutcome otherwise, so that the caller checks first.
	idempotent bool
}

// do sends r with retries and decodes a 2xx JSON answer into out (when not nil).
func (c *Client) do(ctx context.Context, r request, out any) error {
	var payload []byte
	if r.body != nil {
		var err error
		if payload, err = json.Marshal(r.body); err != nil {
			return fmt.Errorf("clickup: encode %s %s: %w", r.method, r.path, err)
		}
	}
	attempts := max(1, c.retry.Attempts)
	var last error
	for attempt := 1; ; attempt++ {
		err := c.once(ctx, r, payload, out)
		if err == nil {
			return nil
		}
		last = err
		if ctx.Err() != nil {
			return fmt.Errorf("clickup: %s %s: %w", r.method, r.path, errors.Join(ctx.Err(), err))
		}
		var hint time.Duration
		var apiErr *APIError
		switch {
		case errors.As(err, &apiErr) && apiErr.Status == http.StatusTooManyRequests:
			hint = apiErr.RetryAfter
		case errors.As(err, &apiErr) && apiErr.Status >= 500, isNetErr(err):
			if !r.idempotent {
				return fmt.Errorf("%w: %w", ErrUnknownOutcome, err)
			}
		default:
			return err
		}
		if attempt >= attempts {
			return fmt.Errorf("%w (gave up after %d attempts)", last, attempt)
		}
		if err := c.sleep(ctx, c.retry.Delay(attempt, hint)); err != nil {
			return fmt.Errorf("clickup: %s %s: %w", r.method, r.path, errors.Join(err, last))
		}
	}
}

// netError wraps a transport failure so do can tell it from an API answer.
type netError struct{ err error }

func (e *netError) Error() string { return e.err.Error() }
func (e *netError) Unwrap() error { return e.err }

func isNetErr(err error) bool {
	var n *netError
	return errors.As(err, &n)
}

func (c *Client) once(ctx context.Context, r request, payload []byte, out any) error {
	if err := c.wait(ctx); err != nil {
		return err
	}
	u := c.base + r.path
	if len(r.query) > 0 {
		u += "?" + r.query.Encode()
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, u, body)
	if err != nil {
		return fmt.Errorf("clickup: %s %s: %w", r.method, r.path, err)
	}
	req.Header.Set("Authorization", c.token)
	req.Header.Set("Accept", "application/json")
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// url.Error carries the URL, never the token: safe to show.
		return &netError{fmt.Errorf("clickup: %s %s: %w", r.method, r.path, err)}
	}
	defer resp.Body.Close()
	c.notePause(resp.Header)
	data, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return &netError{fmt.Errorf("clickup: %s %s: read answer: %w", r.method, r.path, err)}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		e := &APIError{Method: r.method, Path: r.path, Status: resp.StatusCode, RetryAfter: c.retryHint(resp.Header)}
		var body struct {
			Err   string `json:"err"`
			ECode string `json:"ECODE"`
		}
		if json.Unmarshal(data, &body) == nil {
			e.Message, e.Code = body.Err, body.ECode
		}
		return e
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("clickup: %s %s: decode answer: %w", r.method, r.path, err)
	}
	return nil
}

// wait applies the client-side limiter and any pause ClickUp asked for.
func (c *Client) wait(ctx context.Context) error {
	c.mu.Lock()
	until := c.pausedUntil
	c.mu.Unlock()
	if d := until.Sub(c.now()); d > 0 {
		if err := c.sleep(ctx, min(d, c.retry.Max)); err != nil {
			return err
		}
	}
	if c.limiter != nil {
		if err := c.limiter.Wait(ctx); err != nil {
			return fmt.Errorf("clickup: rate limiter: %w", err)
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

// retryHint reads X-RateLimit-Reset (Unix seconds, ClickUp) or Retry-After (seconds).
func (c *Client) retryHint(h http.Header) time.Duration {
	if reset, ok := parseUnix(h.Get("X-RateLimit-Reset")); ok {
		// The reset is in whole seconds: waiting until it has passed avoids a second 429.
		if d := reset.Sub(c.now()); d > 0 {
			return d
		}
		return time.Millisecond
	}
	if s, err := strconv.Atoi(strings.TrimSpace(h.Get("Retry-After"))); err == nil && s >= 0 {
		return max(time.Duration(s)*time.Second, time.Millisecond)
	}
	return 0
}

func parseUnix(s string) (time.Time, bool) {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, false
	}
	return time.Unix(n, 0), true
}
