package bench

import (
	"context"
	"flag"
	"fmt"
	"sync"
	"testing"
	"time"
)

var rssRequests = flag.Int("rss.requests", 50_000, "requests sent to the daemon whose memory is followed")

// BenchmarkDaemonRSS follows the resident memory of `serve --mode sync` (every backend embedded)
// while 50 connections send it new SUPPORT requests, sampled every 1,000: the figure is the
// growth from the sample after the first tenth of the requests (warm: pools, caches and the
// SQLite page cache filled) to the last, and the largest sample.
//
//	go test -run '^$' -bench DaemonRSS -benchtime 1x ./internal/bench
func BenchmarkDaemonRSS(b *testing.B) {
	bin := binary(b)
	seeded := dataDir(b, bin, 0)
	for b.Loop() {
		ctx := context.Background()
		d, err := StartDaemon(ctx, bin, daemonEnv(b, copyDir(b, seeded)), "--mode", "sync")
		if err != nil {
			b.Fatal(err)
		}
		var (
			mu      sync.Mutex
			samples []int64
		)
		sample := func(int) {
			m, err := ReadMemory(d.Pid())
			if err != nil {
				return
			}
			mu.Lock()
			samples = append(samples, m.RSS)
			mu.Unlock()
		}
		res := Run(ctx, Client(*conns), Load{Conns: *conns, Requests: *rssRequests, Step: 1000, Every: sample,
			New: jsonLoad(d.URL, fmt.Sprint("rss-", time.Now().UnixNano()))})
		sample(*rssRequests)
		if err := d.Stop(); err != nil {
			b.Errorf("serve: %v\n%s", err, d.Log())
		}
		if res.Failed > 0 || len(samples) < 10 {
			b.Fatalf("%d failed %v, %d samples", res.Failed, res.Statuses, len(samples))
		}
		warm, last, peak := samples[len(samples)/10], samples[len(samples)-1], int64(0)
		for _, s := range samples {
			peak = max(peak, s)
		}
		b.ReportMetric(MiB(warm), "RSS-warm-MiB")
		b.ReportMetric(MiB(last), "RSS-end-MiB")
		b.ReportMetric(MiB(peak), "RSS-max-MiB")
		b.ReportMetric((float64(last)/float64(warm)-1)*100, "growth-%")
		b.ReportMetric(res.Throughput(), "req/s")
		b.Logf("RSS every 1,000 requests (MiB): %.1f", mibs(samples))
	}
}

func mibs(s []int64) []float64 {
	out := make([]float64, len(s))
	for i, v := range s {
		out[i] = MiB(v)
	}
	return out
}
