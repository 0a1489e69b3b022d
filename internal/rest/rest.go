// Package rest is the HTTP core the outside-service clients share (HubSpot, ClickUp, Microsoft
// Graph): one request shape, one retry loop under the project's backoff policy, hooks for each
// service's credentials and rate limits, answers decoded into the service's own typed errors by its
// CheckResponse, and a look for the effect of a create whose outcome is unknown before it is sent
// again. It follows go-github's Client.Do with CheckResponse; endpoints and error types stay in each
// service's package, and no call site retries on its own.
package rest

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
	"strconv"
	"strings"
	"time"

	"github.com/figurative/figsupport/internal/backoff"
)

// ErrUnknownOutcome marks a request that may have been carried out though no answer said so (a
// lost answer, a timeout, a 5xx) and was not sent again, because repeating it could do it twice.
var ErrUnknownOutcome = errors.New("outcome unknown: the request may have been carried out")

// MaxAnswer bounds how much of an answer is read: the largest the services send (a HubSpot
// property list, a batch read) are well under it.
const MaxAnswer = 16 << 20

// Request is one logical call; Do may send it several times.
type Request struct {
	Method string
	Path   string // below the base URL, its segments already escaped
	Query  url.Values
	Body   any // sent as JSON when not nil
	// Raw, when not nil, is sent as it is, with ContentType, instead of Body.
	Raw         []byte
	ContentType string
	// Op names the request in errors ("list messages"); default "METHOD path".
	Op string
	// Stream, when set, reads a 2xx answer's body itself (a large download) instead of Do
	// decoding it; its error ends Do, never retried (the body was consumed).
	Stream func(io.Reader) error
	// Idempotent says that repeating the request cannot do its work twice (a GET, a PUT or PATCH
	// setting whole values): it is retried after any temporary failure. A request that is not is
	// sent again after a failure whose outcome is unknown only once Lookup has not found its effect.
	Idempotent bool
	// Lookup looks for what the request would have made, after an attempt whose outcome is
	// unknown. Found ends Do without error; Lookup has then filled the caller's result.
	Lookup func(ctx context.Context) (found bool, err error)
}

// Failure is what the retry loop asks of a failed attempt's error. The errors a CheckResponse
// returns implement it (NetError does for transport failures); an error that does not is permanent.
type Failure interface {
	error
	// Temporary says that trying again later may succeed (a rate limit, a 5xx, no answer).
	Temporary() bool
	// Refused says that the server did nothing (it refused the request, as a rate limit does), so
	// even a request that is not idempotent may be sent again.
	Refused() bool
	// RetryHint is the server's own wait before trying again (Retry-After, a rate-limit reset);
	// 0 for none.
	RetryHint() time.Duration
}

// Client sends Requests to one service. The zero value is not usable: set Service, BaseURL, HTTP
// and CheckResponse.
type Client struct {
	Service string // names the service in every error: "hubspot"
	BaseURL string // scheme://host[/prefix], without a trailing slash (see ParseBase)
	HTTP    *http.Client
	Retry   backoff.Policy
	// UserAgent, when set, is sent with every attempt.
	UserAgent string
	// Authorize sets the credentials of each attempt (a fixed token, or an OAuth token that may
	// have been renewed). Its error ends Do at once.
	Authorize func(ctx context.Context, r *http.Request) error
	// CheckResponse turns an answer other than 2xx into the service's typed error; it must return
	// an error, and that error should implement Failure.
	CheckResponse func(req *Request, resp *http.Response, body []byte) error
	// Wait runs before every attempt: client-side rate limiters, a pause the service asked for.
	Wait func(ctx context.Context, req *Request) error
	// Observe sees every answer before its body is read (rate-limit bookkeeping).
	Observe func(resp *http.Response)
	// Retries, when set, is told of every attempt about to be repeated (metrics).
	Retries RetryObserver

	// Sleep waits between attempts (backoff.Sleep when nil); tests replace it.
	Sleep func(ctx context.Context, d time.Duration) error
}

// RetryObserver counts repeated attempts; rateLimited says the service answered 429.
type RetryObserver interface {
	Retry(service string, rateLimited bool)
}

// ParseBase checks a service's base URL (http or https, with a host) and drops trailing slashes.
func ParseBase(raw string) (string, error) {
	base := strings.TrimRight(strings.TrimSpace(raw), "/")
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not an http(s) URL", raw)
	}
	return base, nil
}

// Get reads path: safe to repeat.
func (c *Client) Get(ctx context.Context, path string, q url.Values, out any) error {
	return c.Do(ctx, &Request{Method: http.MethodGet, Path: path, Query: q, Idempotent: true}, out)
}

// Send sends a request whose repeat does no harm: a PUT or PATCH of whole values, a search, a POST
// whose repeat is refused (a 409). It is retried after any temporary failure.
func (c *Client) Send(ctx context.Context, method, path string, body, out any) error {
	return c.Do(ctx, &Request{Method: method, Path: path, Body: body, Idempotent: true}, out)
}

// Create sends a POST that would make a second object if repeated: after an attempt whose outcome
// is unknown, lookup looks for the first one before the POST is sent again.
func (c *Client) Create(ctx context.Context, path string, body, out any, lookup func(context.Context) (bool, error)) error {
	return c.Do(ctx, &Request{Method: http.MethodPost, Path: path, Body: body, Lookup: lookup}, out)
}

// Do sends req, decodes a 2xx JSON answer into out (when out is not nil and the answer not empty)
// and retries under c.Retry what may succeed later: answers whose Failure is Temporary, and no
// answer at all. A server's wait is honoured up to the policy's MaxHint and never past ctx's
// deadline (backoff.ErrWaitTooLong then ends Do at once). A request that is not Idempotent is sent
// again after an unknown outcome only when Lookup did not find its effect; without a Lookup Do
// returns the failure wrapped with ErrUnknownOutcome.
func (c *Client) Do(ctx context.Context, req *Request, out any) error {
	payload := req.Raw
	if req.Body != nil && payload == nil {
		var err error
		if payload, err = json.Marshal(req.Body); err != nil {
			return fmt.Errorf("%s: encode body: %w", c.name(req), err)
		}
	}
	attempts := max(1, c.Retry.Attempts)
	var last error
	unknown := false // the last attempt may have done the work
	for attempt := 1; ; attempt++ {
		if unknown {
			found, err := req.Lookup(ctx)
			if err != nil {
				return fmt.Errorf("%w (%w; looking for its effect failed: %w)", last, ErrUnknownOutcome, err)
			}
			if found {
				return nil
			}
			unknown = false
		}
		if c.Wait != nil {
			if err := c.Wait(ctx, req); err != nil {
				return c.stopped(req, last, err)
			}
		}
		err := c.once(ctx, req, payload, out)
		if err == nil {
			return nil
		}
		if se, ok := errors.AsType[*streamError](err); ok {
			return se.err
		}
		var f Failure
		failure := errors.As(err, &f)
		// A temporary failure that is not a refusal (a 5xx, no answer) leaves a create's outcome unknown.
		mayBeDone := !req.Idempotent && failure && f.Temporary() && !f.Refused()
		if ctx.Err() != nil {
			if mayBeDone {
				err = fmt.Errorf("%w (%w)", err, ErrUnknownOutcome)
			}
			return c.stopped(req, err, ctx.Err())
		}
		last = err
		if !failure || !f.Temporary() {
			return err
		}
		if mayBeDone {
			if req.Lookup == nil {
				return fmt.Errorf("%w (%w)", err, ErrUnknownOutcome)
			}
			unknown = true
		}
		giveUp := func(why error) error {
			if unknown {
				return fmt.Errorf("%w (%w; %w)", err, ErrUnknownOutcome, why)
			}
			return fmt.Errorf("%w (%w)", err, why)
		}
		if attempt >= attempts {
			return giveUp(fmt.Errorf("gave up after %d attempts", attempt))
		}
		wait, werr := c.Retry.Next(ctx, attempt, f.RetryHint())
		if werr != nil {
			return giveUp(werr)
		}
		if c.Retries != nil {
			var rl interface{ RateLimited() bool }
			c.Retries.Retry(c.Service, errors.As(err, &rl) && rl.RateLimited())
		}
		if serr := c.sleep(ctx, wait); serr != nil {
			return c.stopped(req, err, serr)
		}
	}
}

// stopped is the error of a Do ended by its context (or a Wait hook), with the last failure if any.
func (c *Client) stopped(req *Request, last, cause error) error {
	switch {
	case last == nil:
		return fmt.Errorf("%s: %w", c.name(req), cause)
	case errors.Is(last, cause):
		return last
	}
	return fmt.Errorf("%w; stopped: %w", last, cause)
}

func (c *Client) sleep(ctx context.Context, d time.Duration) error {
	if c.Sleep != nil {
		return c.Sleep(ctx, d)
	}
	return backoff.Sleep(ctx, d)
}

func (c *Client) name(req *Request) string {
	if req.Op != "" {
		return c.Service + " " + req.Op
	}
	return c.Service + " " + req.Method + " " + req.Path
}

// once is one attempt.
func (c *Client) once(ctx context.Context, req *Request, payload []byte, out any) error {
	u := c.BaseURL + req.Path
	if len(req.Query) > 0 {
		u += "?" + req.Query.Encode()
	}
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	hr, err := http.NewRequestWithContext(ctx, req.Method, u, body)
	if err != nil {
		return fmt.Errorf("%s: %w", c.name(req), err)
	}
	hr.Header.Set("Accept", "application/json")
	switch {
	case req.Raw != nil:
		hr.Header.Set("Content-Type", req.ContentType)
	case payload != nil:
		hr.Header.Set("Content-Type", "application/json")
	}
	if c.UserAgent != "" {
		hr.Header.Set("User-Agent", c.UserAgent)
	}
	if c.Authorize != nil {
		if err := c.Authorize(ctx, hr); err != nil {
			return fmt.Errorf("%s: %w", c.name(req), err)
		}
	}
	resp, err := c.HTTP.Do(hr)
	if err != nil {
		return &NetError{Service: c.Service, Method: req.Method, Path: req.Path, Err: redact(err), Sent: !neverSent(err)}
	}
	defer resp.Body.Close()
	if c.Observe != nil {
		c.Observe(resp)
	}
	if req.Stream != nil && resp.StatusCode >= 200 && resp.StatusCode <= 299 {
		if err := req.Stream(resp.Body); err != nil {
			return &streamError{err}
		}
		return nil
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswer))
	if err != nil {
		return &NetError{Service: c.Service, Method: req.Method, Path: req.Path, Err: fmt.Errorf("read answer: %w", redact(err)), Sent: true}
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return c.CheckResponse(req, resp, data)
	}
	if out == nil || len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s: decode answer: %w", c.name(req), err)
	}
	return nil
}

// streamError is a Stream function's own error: returned as it is, never retried.
type streamError struct{ err error }

func (e *streamError) Error() string { return e.err.Error() }
func (e *streamError) Unwrap() error { return e.err }

// NetError is an attempt that got no answer: a refused or dropped connection, a timeout. It is
// temporary, and its outcome unknown unless the connection was never made.
type NetError struct {
	Service, Method, Path string
	Err                   error
	// Sent is false only when the request certainly never left (the connection was not made).
	Sent bool
}

func (e *NetError) Error() string {
	return e.Service + " " + e.Method + " " + e.Path + ": " + e.Err.Error()
}

func (e *NetError) Unwrap() error { return e.Err }

// Temporary is true: a network failure may pass.
func (e *NetError) Temporary() bool { return true }

// Refused is true only when the request never left.
func (e *NetError) Refused() bool { return !e.Sent }

// RetryHint is 0: no server spoke.
func (e *NetError) RetryHint() time.Duration { return 0 }

// Credentials is false: nobody refused a credential.
func (e *NetError) Credentials() bool { return false }

// RateLimited is false.
func (e *NetError) RateLimited() bool { return false }

// Timeout says whether the attempt ran out of time.
func (e *NetError) Timeout() bool {
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout()
}

// redact drops the URL from a transport error: it holds no secret today, but a query string might.
func redact(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// neverSent says the connection itself failed, so the server cannot have seen the request.
func neverSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// RetryAfter reads a Retry-After header, in delay-seconds or as an HTTP-date (RFC 9110 section
// 10.2.3), relative to now; 0 when it is absent, unreadable or already past.
func RetryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n <= 0 {
			return 0
		}
		return time.Duration(min(n, int64(24*time.Hour/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0)
	}
	return 0
}
