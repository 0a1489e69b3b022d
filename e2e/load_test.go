package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/figurative/figsupport/internal/server"
)

// loadEnv is the daemon on the embedded backends, async, with the one test client unlimited.
func loadEnv(data string, extra ...string) []string {
	return append([]string{
		"FIGSUPPORT_DATA_DIR=" + data, "FIGSUPPORT_WEBHOOK_TOKEN=" + faultToken, "FIGSUPPORT_MODE=async",
		"FIGSUPPORT_RATE_PER_MINUTE=100000000", "FIGSUPPORT_RATE_BURST=1000000",
	}, extra...)
}

// load is what concurrent clients got from the daemon.
type load struct {
	mu           sync.Mutex
	acked        []string       // keys answered 2xx
	codes        map[int]int    // status → count; 0 for no answer
	noRetryAfter int            // 503s without Retry-After
	errs         map[string]int // transport errors, by text
	sent         int
}

// hammer has clients clients post new requests (one of contacts addresses each) back to back
// for d, each keeping its connection. A refused request is not sent again: what is checked
// afterwards is what was acknowledged.
func hammer(base string, clients, contacts int, d time.Duration) *load {
	l := &load{codes: map[int]int{}, errs: map[string]int{}}
	tr := &http.Transport{MaxIdleConnsPerHost: clients}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := 0; time.Now().Before(stop); i++ {
				key := fmt.Sprintf("load-c%02d-%05d", c, i)
				body, _ := json.Marshal(map[string]string{"source": "support", "objet": "Question sur ma commande",
					"description": "Message " + key, "user_email": fmt.Sprintf("load%03d@example.com", (c*31+i)%contacts),
					"request_id": key})
				req, _ := http.NewRequest("POST", base+server.WebhookPath, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+faultToken)
				resp, err := client.Do(req)
				code := 0
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					code = resp.StatusCode
				}
				l.mu.Lock()
				l.sent++
				l.codes[code]++
				switch {
				case err != nil:
					l.errs[err.Error()]++
				case code >= 200 && code < 300:
					l.acked = append(l.acked, key)
				case code == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "":
					l.noRetryAfter++
				}
				l.mu.Unlock()
			}
		})
	}
	wg.Wait()
	return l
}

func (l *load) summary(d time.Duration) string {
	codes := slices.Sorted(maps.Keys(l.codes))
	var b strings.Builder
	fmt.Fprintf(&b, "%d requests in %v (%.0f/s), %d acknowledged:", l.sent, d.Round(time.Millisecond), float64(l.sent)/d.Seconds(), len(l.acked))
	for _, c := range codes {
		fmt.Fprintf(&b, " %d×%d", l.codes[c], c)
	}
	return b.String()
}

// journalKeys lists every request the journal of data holds, read with `requests list`.
func journalKeys(t *testing.T, data string) map[string]string {
	t.Helper()
	r := run(t, data, "", "requests", "list", "--limit", "1000000", "-o", "json")
	if r.code != 0 {
		t.Fatalf("requests list: exit %d: %s", r.code, r.stderr)
	}
	var list struct {
		Requests []struct {
			RequestID string `json:"request_id"`
			Status    string `json:"status"`
		} `json:"requests"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, x := range list.Requests {
		out[x.RequestID] = x.Status
	}
	return out
}

// Issue 12: 50 concurrent clients for 10 s against `serve --mode async` on the embedded backends:
// every request answered 2xx is in the journal afterwards, though the daemon was stopped with
// work still waiting.
func TestServeLoadAsync(t *testing.T) {
	clients, dur := 50, 10*time.Second
	if testing.Short() {
		dur = 3 * time.Second
	}
	data := filepath.Join(t.TempDir(), "data")
	d := startDaemon(t, loadEnv(data))
	l := hammer(d.url, clients, 500, dur)
	d.stop(t)
	t.Logf("%s", l.summary(dur))
	for code, n := range l.codes {
		if code != http.StatusAccepted && code != http.StatusServiceUnavailable {
			t.Errorf("%d answers %d (transport errors: %v)", n, code, l.errs)
		}
	}
	if l.noRetryAfter > 0 {
		t.Errorf("%d answers 503 without Retry-After", l.noRetryAfter)
	}
	if len(l.acked) == 0 {
		t.Fatal("nothing acknowledged")
	}
	in := journalKeys(t, data)
	missing := 0
	for _, k := range l.acked {
		if _, ok := in[k]; !ok {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged requests are not in the journal", missing, len(l.acked))
	}
	byStatus := map[string]int{}
	for _, st := range in {
		byStatus[st]++
	}
	t.Logf("journal after the stop: %v", byStatus)
}

// procStats reads a process's resident memory (KiB) and open file descriptors.
func procStats(pid int) (rssKiB, fds int, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			rssKiB, _ = strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
		}
	}
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return rssKiB, len(ents), err
}

// span is the range of a sampled figure.
type span struct {
	first, min, max, last int
	all                   []int
}

func (s *span) add(v int) {
	if s.first == 0 {
		s.first, s.min = v, v
	}
	s.min, s.max, s.last = min(s.min, v), max(s.max, v), v
	s.all = append(s.all, v)
}

// halves are the highest values of the first and the second half of the samples: a figure that
// keeps growing has a second half well above its first.
func (s *span) halves() (int, int) {
	h := len(s.all) / 2
	return slices.Max(s.all[:max(h, 1)]), slices.Max(s.all[h:])
}

// Issue 13: far more requests than the backlog takes (50 clients, FIGSUPPORT_MAX_BACKLOG=20, two
// workers): the excess gets 503 with Retry-After, memory and open files stay flat, every accepted
// request is processed, and no lock file is left in <data dir>/locks but the daemon's own and the
// contacts' one.
func TestServeBacklogLimit(t *testing.T) {
	clients, dur := 50, 6*time.Second
	if testing.Short() {
		dur = 3 * time.Second
	}
	data := filepath.Join(t.TempDir(), "data")
	d := startDaemon(t, loadEnv(data, "FIGSUPPORT_MAX_BACKLOG=20", "FIGSUPPORT_WORKERS=2"))
	pid := d.cmd.Process.Pid
	var rss, fds span
	sampled := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			if r, f, err := procStats(pid); err == nil {
				rss.add(r)
				fds.add(f)
			}
			select {
			case <-stopSampling:
				return
			case <-tick.C:
			}
		}
	}()
	l := hammer(d.url, clients, 200, dur)
	close(stopSampling)
	<-sampled
	t.Logf("%s", l.summary(dur))
	rss1, rss2 := rss.halves()
	fds1, fds2 := fds.halves()
	t.Logf("RSS %d–%d MiB (first %d, last %d; highest %d in the first half of the load, %d in the second), "+
		"open files %d–%d (first %d, last %d; highest %d, then %d)",
		rss.min>>10, rss.max>>10, rss.first>>10, rss.last>>10, rss1>>10, rss2>>10, fds.min, fds.max, fds.first, fds.last, fds1, fds2)

	if l.codes[http.StatusServiceUnavailable] == 0 {
		t.Errorf("no 503 past the backlog limit")
	}
	if l.noRetryAfter > 0 {
		t.Errorf("%d answers 503 without Retry-After", l.noRetryAfter)
	}
	for code, n := range l.codes {
		if code != http.StatusAccepted && code != http.StatusServiceUnavailable {
			t.Errorf("%d answers %d (transport errors: %v)", n, code, l.errs)
		}
	}
	// Flat: whatever the number of requests sent, memory grows by less than a generous margin
	// over its first reading and levels off (the second half of the load adds less than a third,
	// or 32 MiB, to the first half's peak), and the process holds about one file per client
	// connection.
	if grew := (rss.max - rss.first) >> 10; grew > 150 {
		t.Errorf("RSS grew by %d MiB under load (from %d to %d MiB)", grew, rss.first>>10, rss.max>>10)
	}
	if rss2 > rss1+max(rss1/3, 32<<10) {
		t.Errorf("RSS still growing: highest %d MiB in the first half of the load, %d MiB in the second", rss1>>10, rss2>>10)
	}
	if fds.max > clients+100 || fds2 > fds1+20 {
		t.Errorf("open files up to %d (first half %d, second %d) for %d clients", fds.max, fds1, fds2, clients)
	}

	start := time.Now()
	states := waitDone(t, d.url, l.acked, 120*time.Second)
	t.Logf("the %d accepted requests all done %v after the load stopped", len(states), time.Since(start).Round(time.Millisecond))
	locks, err := os.ReadDir(filepath.Join(data, "locks"))
	if err != nil {
		t.Fatal(err)
	}
	// The daemon's owner file, and the one file of the contacts' byte-range locks: none per contact.
	var owners int
	for _, e := range locks {
		switch {
		case strings.HasPrefix(e.Name(), "owner-"):
			owners++
		case e.Name() != "contacts.lock":
			t.Errorf("lock file left: %s", e.Name())
		}
	}
	if owners != 1 {
		t.Errorf("locks dir holds %d owner files, want the daemon's", owners)
	}
	d.stop(t)
	left, _ := os.ReadDir(filepath.Join(data, "locks"))
	for _, e := range left {
		if e.Name() != "contacts.lock" {
			t.Errorf("after the stop, lock file left: %s", e.Name())
		}
	}
}

// Issue 13: /metrics after a scripted run over HTTP counts what happened: requests by outcome and
// classification (a replay included), answers by route and code, steps by service, an empty
// backlog and nothing pending.
func TestServeMetrics(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	d := startDaemon(t, []string{"FIGSUPPORT_DATA_DIR=" + data, "FIGSUPPORT_WEBHOOK_TOKEN=" + faultToken})
	send := func(body, token string) int {
		req, _ := http.NewRequest("POST", d.url+server.WebhookPath, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	at := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	first := `{"source":"support","objet":"Paiement refusé","description":"Ma carte est refusée","user_email":"m@example.com","request_id":"m-1","received_at":"` + at + `"}`
	script := []struct {
		body, token string
		want        int
	}{
		{first, faultToken, 200}, // created, SUPPORT
		{`{"source":"support","objet":"Toujours refusé","description":"Encore","user_email":"m@example.com","request_id":"m-2","received_at":"` + at + `"}`, faultToken, 200}, // updated
		{first, faultToken, 200}, // replayed
		{`{"source":"modelisation","objet":"Modèle 3D de la chaise","user_email":"n@example.com","request_id":"m-3"}`, faultToken, 200}, // created, MODELISATION
		{`{"user_email":"pas-une-adresse","objet":"x"}`, faultToken, 422},
		{first, "wrong-token", 401},
	}
	for i, s := range script {
		if got := send(s.body, s.token); got != s.want {
			t.Fatalf("step %d: %d, want %d", i+1, got, s.want)
		}
	}
	if _, err := state(http.DefaultClient, d.url, "m-1"); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP figsupport_requests_total Requests processed, by outcome (created, updated, incomplete, skipped, replayed, failed) and classification.
# TYPE figsupport_requests_total counter
figsupport_requests_total{classification="MODELISATION",outcome="created"} 1
figsupport_requests_total{classification="SUPPORT",outcome="created"} 1
figsupport_requests_total{classification="SUPPORT",outcome="replayed"} 1
figsupport_requests_total{classification="SUPPORT",outcome="updated"} 1
# HELP figsupport_http_responses_total HTTP answers of the daemon, by route and status code.
# TYPE figsupport_http_responses_total counter
figsupport_http_responses_total{code="200",route="GET /requests/{id}"} 1
figsupport_http_responses_total{code="200",route="POST /webhook/request"} 4
figsupport_http_responses_total{code="401",route="POST /webhook/request"} 1
figsupport_http_responses_total{code="422",route="POST /webhook/request"} 1
# HELP figsupport_backlog Requests waiting or running in this process.
# TYPE figsupport_backlog gauge
figsupport_backlog 0
# HELP figsupport_oldest_pending_seconds Age of the oldest unfinished request in the journal (0 when none).
# TYPE figsupport_oldest_pending_seconds gauge
figsupport_oldest_pending_seconds 0
`
	if err := testutil.ScrapeAndCompare(d.url+"/metrics", strings.NewReader(want),
		"figsupport_requests_total", "figsupport_http_responses_total", "figsupport_backlog", "figsupport_oldest_pending_seconds"); err != nil {
		t.Error(err)
	}
	resp, err := http.Get(d.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Three runs made two tickets and one note; no e-mail address or id is a label value.
	for _, line := range []string{
		`figsupport_step_duration_seconds_count{service="crm",step="ticket"} 2`,
		`figsupport_step_duration_seconds_count{service="crm",step="note"} 1`,
		`figsupport_step_duration_seconds_count{service="mail",step="notify"} 3`,
		`figsupport_http_responses_total{code="200",route="GET /metrics"} 1`,
		"process_open_fds ",
	} {
		if !strings.Contains(string(b), line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	for _, leak := range []string{"example.com", "m-1", "m-2", "m-3"} {
		if strings.Contains(string(b), leak) {
			t.Errorf("/metrics shows %q", leak)
		}
	}
	d.stop(t)
}
