package mailbox_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/backoff"
	"github.com/figurative/figsupport/internal/fakes/graphfake"
	"github.com/figurative/figsupport/internal/fakes/graphmailfake"
	"github.com/figurative/figsupport/internal/health"
	"github.com/figurative/figsupport/internal/mailbox"
	"github.com/figurative/figsupport/internal/oauth"
)

const support = "support@figurative.fr"

var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

// fastRetry is three attempts; the waits (Retry-After honoured whole) are not slept but skipped
// by noSleep.
var fastRetry = &backoff.Policy{Attempts: 3, Base: time.Millisecond, Max: 2 * time.Millisecond}

func noSleep(ctx context.Context, _ time.Duration) error { return ctx.Err() }

func graphConfig(f *graphmailfake.Server) mailbox.Config {
	return mailbox.Config{
		Source: mailbox.SourceGraph,
		Graph:  mailbox.GraphConfig{Mailbox: support, BaseURL: f.URL, PageSize: 2},
		OAuth:  oauth.Config{ClientID: graphfake.ClientID, ClientSecret: graphfake.ClientSecret, TokenURL: f.Tokens.TokenURL()},
		Retry:  fastRetry,
		Sleep:  noSleep,
	}
}

func TestGraphPoll(t *testing.T) {
	tests := []struct {
		name      string
		folder    string
		processed string
		wantRead  bool
		wantMoved int
	}{
		{name: "marked read", folder: "INBOX", wantRead: true},
		{name: "moved to a child folder", folder: "inbox", processed: "Support/Traités", wantMoved: 5},
		{name: "folder by display name", folder: "Support", processed: "Support/Traités", wantMoved: 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := graphmailfake.New(t, support, "Support", "Support/Traités")
			from := "inbox"
			if tt.folder == "Support" {
				from = "Support"
			}
			// Added out of order: the poller reads them by receivedDateTime, paging 2 at a time.
			for i := 5; i >= 1; i-- {
				f.Add(from, raw(fmt.Sprintf("m%d@example.com", i), fmt.Sprintf("Demande %d", i)), t0.Add(time.Duration(i)*time.Minute))
			}
			cfg := graphConfig(f)
			cfg.Folder, cfg.ProcessedFolder = tt.folder, tt.processed
			p := newPoller(t, cfg)
			j := newJournal()
			sum := poll(t, p, j, mailbox.PassOptions{})
			if got := strings.Join(j.Calls(), ","); got != "m1@example.com,m2@example.com,m3@example.com,m4@example.com,m5@example.com" {
				t.Fatalf("handed over %s", got)
			}
			if sum.Processed != 5 || sum.More || sum.Generation == "" {
				t.Fatalf("summary %+v", sum)
			}
			pages := 0
			for _, c := range f.Calls() {
				if strings.HasSuffix(c.Path, "/messages") && c.Method == http.MethodGet {
					pages++
					if c.Query.Get("$filter") != "receivedDateTime ge 1900-01-01T00:00:00Z and isRead eq false" || c.Query.Get("$orderby") != "receivedDateTime asc" {
						t.Fatalf("listing query %v", c.Query)
					}
				}
			}
			if pages != 3 {
				t.Fatalf("%d listing pages, want 3 (2+2+1 through @odata.nextLink)", pages)
			}
			left := f.Messages(from)
			if tt.wantRead {
				for _, m := range left {
					if !m.IsRead {
						t.Fatalf("%s left unread", m.MessageID)
					}
				}
			}
			if tt.wantMoved > 0 && (len(left) != 0 || len(f.Messages("Support/Traités")) != tt.wantMoved) {
				t.Fatalf("%d left in %s, %d moved", len(left), from, len(f.Messages("Support/Traités")))
			}
			if again := poll(t, p, j, mailbox.PassOptions{}); len(again.Messages) != 0 {
				t.Fatalf("second pass %s", statuses(again))
			}
		})
	}
}

// Throttling is waited out (Retry-After, within the policy); a failure leaves the message unread;
// a crash between processing and marking is replayed, not processed twice.
func TestGraphThrottlingFailureAndCrash(t *testing.T) {
	f := graphmailfake.New(t, support)
	f.Add("inbox", raw("a@example.com", "A"), t0)
	f.Add("inbox", raw("b@example.com", "B"), t0.Add(time.Minute))
	f.Throttle("list", 1, http.StatusTooManyRequests)
	f.Throttle("value", 1, http.StatusServiceUnavailable, http.StatusTooManyRequests)
	p := newPoller(t, graphConfig(f))
	j := newJournal()
	j.fail["b@example.com"] = 1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	j.after = func(key string) {
		if key == "a@example.com" {
			cancel()
		}
	}
	sum, err := p.Poll(ctx, j.handle, mailbox.PassOptions{})
	if !errors.Is(err, context.Canceled) || sum.Failed != 1 || len(sum.Messages) != 1 {
		t.Fatalf("first pass: %v, %s", err, statuses(sum))
	}
	throttled := 0
	for _, c := range f.Calls() {
		if c.Status == 429 || c.Status == 503 {
			throttled++
		}
	}
	if throttled != 3 {
		t.Fatalf("%d throttled answers, want 3 (all retried)", throttled)
	}
	j.after = nil
	sum = poll(t, p, j, mailbox.PassOptions{})
	// b@ is new to the poller, a@ failed before: b@ goes first.
	if got := statuses(sum); got != "b@example.com=failed a@example.com=processed" {
		t.Fatalf("second pass: %s", got)
	}
	if !sum.Messages[1].Replayed || sum.Messages[1].Attempts != 2 {
		t.Fatalf("a@ was not a replay: %+v", sum.Messages[1])
	}
	sum = poll(t, p, j, mailbox.PassOptions{})
	if sum.Processed != 1 || sum.Messages[0].Attempts != 2 {
		t.Fatalf("third pass: %s %+v", statuses(sum), sum.Messages)
	}
	for _, key := range []string{"a@example.com", "b@example.com"} {
		if n := j.Runs(key); n != 1 {
			t.Fatalf("%s processed %d times", key, n)
		}
	}
}

func TestGraphRejected(t *testing.T) {
	f := graphmailfake.New(t, support, "Rejetés")
	f.Add("inbox", raw("bad@example.com", "Illisible"), t0)
	f.Add("inbox", raw("worse@example.com", "Illisible aussi"), t0.Add(time.Minute))
	p := newPoller(t, graphConfig(f))
	j := newJournal()
	j.reject["bad@example.com"], j.reject["worse@example.com"] = true, true
	sum := poll(t, p, j, mailbox.PassOptions{Limit: 1})
	if sum.Rejected != 1 || sum.Messages[0].Action != "flagged" || !sum.More {
		t.Fatalf("summary %+v", sum)
	}
	if m := f.Messages("inbox")[0]; !m.IsRead || !m.Flagged {
		t.Fatalf("rejected message %+v", m)
	}
	cfg := graphConfig(f)
	cfg.RejectedFolder = "Rejetés"
	sum = poll(t, newPoller(t, cfg), j, mailbox.PassOptions{})
	if sum.Rejected != 1 || sum.Messages[0].Action != "moved to Rejetés" || len(f.Messages("Rejetés")) != 1 {
		t.Fatalf("summary %+v", sum)
	}
}

func TestGraphErrors(t *testing.T) {
	f := graphmailfake.New(t, support)
	f.Add("inbox", raw("a@example.com", "A"), t0)
	tests := []struct {
		name   string
		mutate func(*mailbox.Config)
		check  func(t *testing.T, err error)
	}{
		{"token for another audience (401)", func(c *mailbox.Config) {
			// A token for Exchange's resource is not a Graph token: Graph answers 401.
			c.OAuth.TokenURL = f.Tokens.TokenURL()
			c.Graph.HTTPClient = &http.Client{Transport: audienceSwap{t: f.Tokens}}
		}, func(t *testing.T, err error) {
			var ge *mailbox.GraphError
			if !errors.As(err, &ge) || ge.Status != 401 || !ge.Credentials() || !strings.Contains(err.Error(), "Mail.ReadWrite") {
				t.Fatalf("err = %v", err)
			}
		}},
		{"wrong client secret", func(c *mailbox.Config) { c.OAuth.ClientSecret = "wrong-SECRET" }, func(t *testing.T, err error) {
			var oe *oauth.Error
			if !errors.As(err, &oe) || !oe.Credentials() || strings.Contains(err.Error(), "wrong-SECRET") {
				t.Fatalf("err = %v", err)
			}
		}},
		{"unknown mailbox", func(c *mailbox.Config) { c.Graph.Mailbox = "nobody@figurative.fr" }, func(t *testing.T, err error) {
			var ge *mailbox.GraphError
			if !errors.As(err, &ge) || ge.Code != "ErrorInvalidUser" || errors.Is(err, mailbox.ErrFolder) {
				t.Fatalf("err = %v", err)
			}
		}},
		{"unknown folder", func(c *mailbox.Config) { c.ProcessedFolder = "Archives 2026" }, func(t *testing.T, err error) {
			if !errors.Is(err, mailbox.ErrFolder) || !strings.Contains(err.Error(), "MAIL_PROCESSED_FOLDER") {
				t.Fatalf("err = %v", err)
			}
		}},
		{"throttled past the policy", func(c *mailbox.Config) { f.Throttle("list", 30, 429, 429, 429) }, func(t *testing.T, err error) {
			var ge *mailbox.GraphError
			if !errors.As(err, &ge) || ge.Status != 429 || ge.RetryAfter != 30*time.Second || !strings.Contains(err.Error(), "gave up after 3 attempts") {
				t.Fatalf("err = %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := graphConfig(f)
			tt.mutate(&cfg)
			j := newJournal()
			_, err := newPoller(t, cfg).Poll(context.Background(), j.handle, mailbox.PassOptions{})
			tt.check(t, err)
			if len(j.Calls()) != 0 {
				t.Fatal("a message was handed over")
			}
		})
	}
	if m := f.Messages("inbox")[0]; m.IsRead {
		t.Fatal("the message was marked read")
	}
}

// audienceSwap replaces the Graph token by an Exchange one, as a misconfigured scope would.
type audienceSwap struct{ t *graphfake.Server }

func (a audienceSwap) RoundTrip(r *http.Request) (*http.Response, error) {
	ts, err := oauth.New(oauth.Config{ClientID: graphfake.ClientID, ClientSecret: graphfake.ClientSecret, TokenURL: a.t.TokenURL()}, oauth.ScopeOutlook)
	if err != nil {
		return nil, err
	}
	tok, err := ts.Token(r.Context())
	if err != nil {
		return nil, err
	}
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+tok)
	return http.DefaultTransport.RoundTrip(r)
}

func TestGraphDryRunAndCheck(t *testing.T) {
	f := graphmailfake.New(t, support, "Traités")
	f.Add("inbox", raw("a@example.com", "Première"), t0)
	f.Add("inbox", raw("b@example.com", "Seconde"), t0.Add(time.Minute))
	cfg := graphConfig(f)
	cfg.ProcessedFolder, cfg.RejectedFolder = "Traités", "Nulle part"
	p := newPoller(t, cfg)
	sum, err := p.Poll(context.Background(), nil, mailbox.PassOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Pending != 2 || sum.Messages[0].Subject != "Première" || sum.Messages[0].From != "client@example.com" {
		t.Fatalf("dry run %+v", sum)
	}
	checks := p.Check(context.Background())
	want := []string{health.OK, health.OK, health.OK, health.Fail}
	if len(checks) != len(want) {
		t.Fatalf("checks %+v", checks)
	}
	for i, c := range checks {
		if c.Status != want[i] {
			t.Fatalf("check %d %+v, want %s", i, c, want[i])
		}
	}
	if !strings.Contains(checks[1].Detail, "2 message(s), 2 unread") {
		t.Fatalf("folder check %+v", checks[1])
	}
	for _, c := range f.Calls() {
		if c.Method != http.MethodGet {
			t.Fatalf("dry run and check sent %s %s", c.Method, c.Path)
		}
	}
	for _, m := range f.Messages("inbox") {
		if m.IsRead {
			t.Fatal("a message was marked read")
		}
	}
}
