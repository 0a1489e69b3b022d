package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/fakes/hubspotfake"
)

const backlogSize = 60

// makeBacklog leaves n failed requests in each data dir: `serve --mode async` takes them while
// HubSpot refuses refused calls (429, daily limit reached: not retried within the run), then
// stops. The customers are contacts HubSpot knows, the dearest case (contact, search, create).
func makeBacklog(b *testing.B, bin string, svc *Services, data string, n int, prefix string, refused func(method, path string) bool) {
	b.Helper()
	ctx := context.Background()
	svc.HubSpot.SetInjector(func(_ int, method, path string) *hubspotfake.Fault {
		if refused(method, path) {
			return &hubspotfake.Fault{Status: http.StatusTooManyRequests, Policy: "DAILY"}
		}
		return nil
	})
	defer svc.HubSpot.SetInjector(nil)
	env := append(BaseEnv(b.TempDir(), data), svc.Env()...)
	env = append(env, "FIGSUPPORT_RATE_PER_MINUTE=1000000", "FIGSUPPORT_RATE_BURST=1000000")
	d, err := StartDaemon(ctx, bin, env, "--mode", "async")
	if err != nil {
		b.Fatal(err)
	}
	c := Client(4)
	for i := range n {
		email := fmt.Sprintf("%s%d@example.com", prefix, i)
		svc.HubSpot.SeedContact(email)
		body := fmt.Sprintf(`{"objet":"Facture %d","description":"Ma facture est fausse.","user_email":%q,"request_id":"%s-%d"}`, i, email, prefix, i)
		resp, err := c.Post(d.URL+"/webhook/request", "application/json", strings.NewReader(body))
		if err != nil || resp.StatusCode != http.StatusAccepted {
			b.Fatalf("post: %v %v\n%s", err, resp, d.Log())
		}
		resp.Body.Close()
	}
	// Wait until every request has had its attempt.
	deadline := time.Now().Add(time.Minute)
	for failed := 0; failed < n; {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d requests failed after a minute\n%s", failed, n, d.Log())
		}
		time.Sleep(100 * time.Millisecond)
		failed = strings.Count(d.Log(), `"msg":"run failed"`)
	}
	if err := d.Stop(); err != nil {
		b.Fatalf("serve: %v\n%s", err, d.Log())
	}
}

// retried is `requests retry --failed -o json`.
type retried struct {
	Retried []struct {
		Response *struct {
			Status string `json:"status"`
		} `json:"response"`
		Error string `json:"error"`
	} `json:"retried"`
	Failed int `json:"failed"`
}

// retryBacklog runs `requests retry --failed` in each data dir at once (one process each) and
// reports what they cost HubSpot.
func retryBacklog(b *testing.B, bin string, svc *Services, dirs []string, n int) {
	b.Helper()
	ctx := context.Background()
	calls := len(svc.HubSpot.Calls())
	start := time.Now()
	var wg sync.WaitGroup
	outs := make([]retried, len(dirs))
	for i, data := range dirs {
		wg.Go(func() {
			env := append(BaseEnv(b.TempDir(), data), svc.Env()...)
			e, err := Exec(ctx, bin, env, "", "requests", "retry", "--failed", "-o", "json")
			if err == nil {
				err = json.Unmarshal([]byte(e.Stdout), &outs[i])
			}
			if err != nil {
				b.Errorf("requests retry: exit %d %v\n%s", e.Code, err, e.Stderr)
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	made := svc.HubSpot.Calls()[calls:]
	throttled, failed, done := 0, 0, 0
	for _, c := range made {
		if c.Status == http.StatusTooManyRequests {
			throttled++
		}
	}
	for _, o := range outs {
		failed += o.Failed
		for _, r := range o.Retried {
			if r.Error == "" && r.Response != nil && r.Response.Status == "created" {
				done++
			} else {
				b.Logf("not created: %+v %s", r.Response, r.Error)
			}
		}
	}
	// HubSpot allows 100 calls in any 10 s: the most a backlog could use in elapsed. A 429 is a
	// call the limit did not let through.
	limit := elapsed.Seconds() / 10 * 100
	b.ReportMetric(float64(len(made)-throttled)/limit*100, "%-of-limit")
	b.ReportMetric(float64(len(made)-throttled)/float64(n), "calls/request")
	b.ReportMetric(float64(throttled), "429s")
	b.ReportMetric(float64(failed), "failed")
	b.ReportMetric(elapsed.Seconds(), "s")
	if done != n {
		b.Errorf("%d of %d requests created their ticket", done, n)
	}
}

// BenchmarkBacklog clears a backlog of 60 failed SUPPORT requests with `requests retry --failed`
// while the HubSpot fake enforces its limit (100 calls in any 10 s, on the wall clock) and
// answers in 120 ms: the share of the limit used (the pool runs several requests at once under
// one limiter per process), the calls per request, 429s and failures. Cases: the requests were
// refused at their first call (HubSpot unavailable: contact, search and create remain), or at
// the ticket's create; and two processes clearing half the backlog each (two limiters: the
// 429s' headers pace them).
//
//	go test -run '^$' -bench Backlog -benchtime 1x ./internal/bench
func BenchmarkBacklog(b *testing.B) {
	bin := binary(b)
	objects := func(_, path string) bool { return strings.HasPrefix(path, "/crm/v3/objects/") }
	creates := func(method, path string) bool { return method == http.MethodPost && path == "/crm/v3/objects/tickets" }
	for _, tc := range []struct {
		name      string
		refused   func(method, path string) bool
		processes int
	}{
		{"refused-at-first-call", objects, 1},
		{"refused-at-create", creates, 1},
		{"refused-at-first-call/2-processes", objects, 2},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				svc := StartServices(b, Injected, ServiceOptions{EnforceLimits: true})
				var dirs []string
				for p := range tc.processes {
					data := filepath.Join(b.TempDir(), "data")
					makeBacklog(b, bin, svc, data, backlogSize/tc.processes, fmt.Sprintf("p%d-", p), tc.refused)
					dirs = append(dirs, data)
				}
				// Let the 10 s window of the backlog's own calls pass.
				svc.HubSpot.Options().Clock.Advance(11 * time.Second)
				b.StartTimer()
				retryBacklog(b, bin, svc, dirs, backlogSize)
			}
		})
	}
}
