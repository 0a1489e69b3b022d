package bench

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var (
	loadFor = flag.Duration("load.duration", 5*time.Second, "how long each intake load runs")
	conns   = flag.Int("load.conns", 50, "concurrent connections of the intake load")
)

// supportRequest is a new SUPPORT request from its own customer, as JSON.
func supportRequest(run string, i int) []byte {
	return fmt.Appendf(nil, `{"objet":"Paiement refusé %d","description":"Mon paiement par carte a été refusé, pouvez-vous vérifier ma facture ?","user_email":"client%d-%s@example.com","user_name":"Client %d","request_id":"%s-%d"}`,
		i, i, run, i, run, i)
}

func jsonLoad(url, run string) func(ctx context.Context, i int) (*http.Request, error) {
	return func(ctx context.Context, i int) (*http.Request, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/webhook/request", bytes.NewReader(supportRequest(run, i)))
		if err == nil {
			req.Header.Set("Content-Type", "application/json")
		}
		return req, err
	}
}

// dataDir makes a data dir whose database holds tickets seeded tickets: the binary creates and
// migrates it (one request through the embedded backends), Seed fills it.
func dataDir(b *testing.B, bin string, tickets int) string {
	b.Helper()
	ctx := context.Background()
	data := filepath.Join(b.TempDir(), "data")
	body := supportRequest("init", 0)
	e, err := Exec(ctx, bin, BaseEnv(b.TempDir(), data), string(body), "process", "-")
	if err != nil || e.Code != 0 {
		b.Fatalf("process: exit %d %v\n%s", e.Code, err, e.Stderr)
	}
	if tickets > 0 {
		if err := Seed(ctx, filepath.Join(data, "figsupport.db"), tickets, time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	return data
}

// copyDir copies a data dir's database (and nothing else: locks, outbox and spool start empty).
func copyDir(b *testing.B, from string) string {
	b.Helper()
	to := filepath.Join(b.TempDir(), "data")
	if err := os.MkdirAll(to, 0o700); err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"figsupport.db", "figsupport.db-wal"} {
		src, err := os.Open(filepath.Join(from, name))
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			b.Fatal(err)
		}
		dst, err := os.Create(filepath.Join(to, name))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			b.Fatal(err)
		}
		src.Close()
		if err := dst.Close(); err != nil {
			b.Fatal(err)
		}
	}
	return to
}

// daemonEnv is serve's environment for the load: every backend embedded, no per-IP limit (the
// load comes from one address), and a backlog that does not refuse what the pool has not yet run
// (in async mode the intake outruns the chain: what is measured is the intake).
func daemonEnv(b *testing.B, data string) []string {
	return append(BaseEnv(b.TempDir(), data), "FIGSUPPORT_RATE_PER_MINUTE=1000000000", "FIGSUPPORT_RATE_BURST=1000000000",
		"FIGSUPPORT_MAX_BACKLOG=10000000")
}

type intakeResult struct {
	name string
	res  Result
}

func (r intakeResult) report(b *testing.B) {
	b.ReportMetric(r.res.Throughput(), r.name+"-req/s")
	b.ReportMetric(ms(r.res.Percentile(99)), r.name+"-p99-ms")
	b.ReportMetric(ms(r.res.Percentile(50)), r.name+"-p50-ms")
	if r.res.Failed > 0 {
		b.ReportMetric(float64(r.res.Failed), r.name+"-failed")
		b.Logf("%s: %d failed: %v", r.name, r.res.Failed, r.res.Statuses)
	}
}

func loadDaemon(b *testing.B, bin, data, mode, run string) Result {
	b.Helper()
	ctx := context.Background()
	d, err := StartDaemon(ctx, bin, daemonEnv(b, data), "--mode", mode)
	if err != nil {
		b.Fatal(err)
	}
	res := Run(ctx, Client(*conns), Load{Conns: *conns, Duration: *loadFor, New: jsonLoad(d.URL, run)})
	if err := d.Stop(); err != nil {
		b.Errorf("serve --mode %s: %v\n%s", mode, err, d.Log())
	}
	return res
}

// BenchmarkIntake loads `serve` (every backend embedded) with 50 connections sending new SUPPORT
// requests, in async mode (answered once recorded) and sync mode (answered with the chain's
// result), beside the bare yardstick in the same round, on an empty database and on one that
// holds 100,000 tickets and their journal. Each round runs each server in turn on a fresh copy of
// the data dir; with -benchtime Nx the metrics are the last round's.
//
//	go test -run '^$' -bench Intake -benchtime 1x ./internal/bench
func BenchmarkIntake(b *testing.B) {
	bin := binary(b)
	for _, tickets := range []int{0, 100_000} {
		b.Run(fmt.Sprintf("tickets=%d", tickets), func(b *testing.B) {
			seeded := dataDir(b, bin, tickets)
			var results []intakeResult
			round := 0
			for b.Loop() {
				run := fmt.Sprintf("r%d-%d", round, time.Now().UnixNano())
				y := startYardstick(b, filepath.Join(b.TempDir(), "yardstick.db"))
				results = []intakeResult{{name: "yardstick", res: Run(context.Background(), Client(*conns),
					Load{Conns: *conns, Duration: *loadFor, New: jsonLoad(y.URL, run)})}}
				results = append(results,
					intakeResult{name: "async", res: loadDaemon(b, bin, copyDir(b, seeded), "async", run)},
					intakeResult{name: "sync", res: loadDaemon(b, bin, copyDir(b, seeded), "sync", run)})
				round++
			}
			for _, r := range results {
				r.report(b)
			}
			b.ReportMetric(results[1].res.Throughput()/results[0].res.Throughput()*100, "async-%-of-yardstick")
		})
	}
}
