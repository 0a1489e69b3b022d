// Package health is the shape of the checks `figsupport doctor` prints: every backend reports a
// list of them, and none carries a secret.
package health

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Status of one check.
const (
	OK   = "ok"
	Warn = "warn"
	Fail = "fail"
	// Skip: not run, because an earlier failure (the service's configuration, its host
	// unreachable) makes its answer meaningless; that failure is reported once, where it happened.
	Skip = "skip"
)

// Check is one line of the doctor's report.
type Check struct {
	Service string `json:"service"` // hubspot, clickup, r2, smtp, graph, llm, journal…
	Name    string `json:"name"`    // what was checked
	Status  string `json:"status"`  // ok, warn, fail or skip
	Detail  string `json:"detail"`  // what is wrong and how to fix it; never a secret
}

// Worst is the most severe status among checks: fail, then warn, then ok (skip counts as ok:
// the failure that caused it is in the list too).
func Worst(checks []Check) string {
	worst := OK
	for _, c := range checks {
		switch {
		case c.Status == Fail:
			return Fail
		case c.Status == Warn:
			worst = Warn
		}
	}
	return worst
}

// ReachTimeout bounds Reach when ctx has no earlier deadline.
const ReachTimeout = 10 * time.Second

// ErrUnreachable is wrapped by Reach's error when the host did not answer.
var ErrUnreachable = errors.New("host unreachable")

// Reach asks whether the host behind rawURL answers HTTP at all: any response, whatever its
// status, means it does. Doctor asks it once per host before a service's own checks, so that an
// unreachable host is one failure rather than one per check. client nil means a client with
// http.DefaultTransport (proxies from the environment, as the services' clients).
func Reach(ctx context.Context, client *http.Client, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return fmt.Errorf("not an absolute URL: %q", rawURL)
	}
	if client == nil {
		client = &http.Client{Transport: http.DefaultTransport}
	}
	ctx, cancel := context.WithTimeout(ctx, ReachTimeout)
	defer cancel()
	origin := (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/"}).String()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, origin, nil)
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrUnreachable, u.Host, err)
	}
	// Redirects are answers too: the host is up.
	c := *client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is said once, by the host below
		}
		return fmt.Errorf("%w: %s: %w", ErrUnreachable, u.Host, err)
	}
	resp.Body.Close()
	return nil
}
