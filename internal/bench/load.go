package bench

import (
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Load is a closed-loop load: Conns goroutines, each on its own kept-alive connection, sending
// the next request as soon as the last one is answered, until Requests were sent or Duration
// has passed.
type Load struct {
	Conns    int
	Requests int           // total; 0: until Duration
	Duration time.Duration // used when Requests is 0
	// New builds the i-th request (0-based), its body fully in memory.
	New func(ctx context.Context, i int) (*http.Request, error)
	// OK says which statuses count as served; nil: 2xx.
	OK func(status int) bool
	// Every, when set, is called with the number of requests sent so far each time another Step
	// were sent (RSS sampling); Step defaults to 1000.
	Every func(sent int)
	Step  int
}

// Result is what a load measured.
type Result struct {
	OK       int
	Failed   int         // transport errors and statuses OK refused
	Statuses map[int]int // every status seen; 0 for transport errors
	Elapsed  time.Duration
	lat      []time.Duration // of the OK requests, sorted
}

// Throughput is the OK requests per second.
func (r Result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

// Percentile is the latency under which p (0–100) percent of the OK requests were answered.
func (r Result) Percentile(p float64) time.Duration { return percentile(r.lat, p) }

// percentile of sorted values, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Client is a keep-alive client with room for conns idle connections to one host, so that no
// connection is opened after the first round.
func Client(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     time.Minute,
	}, Timeout: time.Minute}
}

// Run applies l with c until it is done or ctx ends.
func Run(ctx context.Context, c *http.Client, l Load) Result {
	if l.OK == nil {
		l.OK = func(s int) bool { return s >= 200 && s < 300 }
	}
	if l.Step <= 0 {
		l.Step = 1000
	}
	var deadline time.Time
	if l.Requests == 0 {
		deadline = time.Now().Add(l.Duration)
	}
	var (
		next atomic.Int64
		mu   sync.Mutex
		res  = Result{Statuses: map[int]int{}}
		wg   sync.WaitGroup
	)
	start := time.Now()
	for range l.Conns {
		wg.Go(func() {
			var lat []time.Duration
			statuses := map[int]int{}
			failed := 0
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if l.Requests > 0 && i >= l.Requests || l.Requests == 0 && time.Now().After(deadline) {
					break
				}
				if l.Every != nil && i > 0 && i%l.Step == 0 {
					l.Every(i)
				}
				req, err := l.New(ctx, i)
				if err != nil {
					failed++
					statuses[0]++
					continue
				}
				t := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					failed++
					statuses[0]++
					continue
				}
				// Read to the end, so that the connection is reused.
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				d := time.Since(t)
				statuses[resp.StatusCode]++
				if l.OK(resp.StatusCode) {
					lat = append(lat, d)
				} else {
					failed++
				}
			}
			mu.Lock()
			defer mu.Unlock()
			res.lat = append(res.lat, lat...)
			res.OK += len(lat)
			res.Failed += failed
			for s, n := range statuses {
				res.Statuses[s] += n
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(res.lat)
	return res
}
