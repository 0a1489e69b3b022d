package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// reFinished finds a run's end in the daemon's log (JSON, since its stderr is not a terminal).
// reResuming finds the sweep's first line: how many unfinished requests it took.
var reResuming = regexp.MustCompile(`"msg":"resuming unfinished requests","count":([0-9]+)`)

var reFinished = regexp.MustCompile(`"msg":"run finished","request_id":"([^"]+)"`)

// finished lists the requests whose run ended according to the daemon's log, with the status its
// last run ended with (created, updated, incomplete, skipped).
func finished(log string) map[string]string {
	out := map[string]string{}
	for _, line := range strings.Split(log, "\n") {
		if m := reFinished.FindStringSubmatch(line); m != nil {
			status := ""
			if i := strings.Index(line, `"status":"`); i >= 0 {
				status, _, _ = strings.Cut(line[i+len(`"status":"`):], `"`)
			}
			out[m[1]] = status
		}
	}
	return out
}

// Issue 12: SIGKILL the daemon (async mode, services slowed down and failing a tenth of their calls)
// while about half the requests are acknowledged and unfinished and others are still being sent,
// then start it again on the same data dir. Every request acknowledged before the kill is in the
// journal; the unfinished ones resume at start by themselves; the sender sends again what got no
// answer; in the end the figures are those of a run without a crash — one ticket per
// conversation, one note per follow-up, each modelling message once in its subtask — and an admin
// e-mail is repeated only where its answer was lost or the kill interrupted its request.
func TestServeCrashResume(t *testing.T) {
	const seed = 7
	n, contacts, bursty, inFlight := 200, 50, 10, 100
	if testing.Short() {
		n, contacts, bursty, inFlight = 80, 20, 4, 40
	}
	start := time.Now()
	sv := startServices(t, seed, 0.1, 100*time.Millisecond)
	data := filepath.Join(t.TempDir(), "data")
	// Two workers before the crash, so that work piles up while the sender is still sending: with
	// the pool's four, the daemon keeps up with the sender (about 18 requests a second here). The
	// restarted daemon has the default four.
	env := faultEnv(data, sv, "async")
	d := startDaemon(t, append(env, "FIGSUPPORT_WORKERS=2"))
	var url atomic.Value
	url.Store(d.url)
	w := newWorkload(seed, n, contacts, bursty, 8, time.Now().Add(-time.Hour).Truncate(time.Second))
	s := newSender(func() string { return url.Load().(string) })
	s.client.Timeout = 5 * time.Second
	// Requests come in faster than one worker processes them.
	pace := time.NewTicker(50 * time.Millisecond)
	defer pace.Stop()
	s.pace = pace.C

	sent := make(chan struct{})
	go func() {
		defer close(sent)
		s.sendWorkload(t, w, nil)
	}()
	// Kill once enough acknowledged requests are unfinished, with work well under way.
	var acked, done map[string]string
	deadline := time.Now().Add(60 * time.Second)
	for {
		done = finished(d.stderr.String())
		acked = map[string]string{}
		s.mu.Lock()
		for k := range s.acked {
			acked[k] = ""
		}
		s.mu.Unlock()
		unfinished := 0
		for k := range acked {
			if _, ok := done[k]; !ok {
				unfinished++
			}
		}
		if unfinished >= inFlight && len(done) >= n/10 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never %d unfinished requests at once (%d acknowledged, %d finished)", inFlight, len(acked), len(done))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d.exited
	killedAt := time.Since(start)
	// What was acknowledged before the kill, and what of it had not finished: the journal must
	// hold all of it; the unfinished may repeat an admin e-mail the kill cut off before it was
	// recorded.
	log1 := d.stderr.String()
	done = finished(log1)
	s.mu.Lock()
	ackedBefore := map[string]bool{}
	for k := range s.acked {
		ackedBefore[k] = true
	}
	s.mu.Unlock()
	interrupted := map[string]bool{}
	for k := range ackedBefore {
		if st, ok := done[k]; !ok || st != "created" && st != "updated" {
			interrupted[k] = true
		}
	}
	httpInFlight := 0
	for _, r := range w.reqs {
		if !ackedBefore[r.key] {
			httpInFlight++
		}
	}

	restart := time.Now()
	d = startDaemon(t, env)
	url.Store(d.url)
	up := time.Since(restart)
	// Every request acknowledged before the kill is in the journal, whatever it got to.
	client := &http.Client{Timeout: 10 * time.Second}
	for k := range ackedBefore {
		if _, err := state(client, d.url, k); err != nil {
			t.Errorf("acknowledged before the kill, not in the journal: %v", err)
		}
	}
	var keysBefore []string
	for k := range interrupted {
		keysBefore = append(keysBefore, k)
	}
	// The unfinished resume by themselves: nothing is sent again for them.
	waitDone(t, d.url, keysBefore, 120*time.Second)
	resumed := time.Since(restart)
	<-sent // the sender got an answer for everything else from the new process
	keys := make([]string, len(w.reqs))
	for i, r := range w.reqs {
		keys[i] = r.key
	}
	states := waitDone(t, d.url, keys, 120*time.Second)
	drained := time.Since(restart)
	log2 := d.stderr.String()
	d.stop(t)

	atStart := reResuming.FindStringSubmatch(log2)
	if atStart == nil {
		t.Fatalf("the restarted daemon did not say it resumed unfinished requests")
	}
	fig := checkServices(t, sv, w, states, interrupted)
	entries, _ := os.ReadDir(filepath.Join(data, "spool"))
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".incoming-") { // an upload the kill cut short: pruned after an hour
			t.Errorf("spool entry left: %s", e.Name())
		}
	}
	t.Logf("killed after %v with %d acknowledged, %d of them unfinished, %d requests not yet acknowledged; "+
		"restarted in %v, its first sweep resuming %s at once; the %d unfinished all done %v after the restart; everything done %v after it; %s",
		killedAt.Round(time.Millisecond), len(ackedBefore), len(interrupted), httpInFlight, up.Round(time.Millisecond), atStart[1],
		len(interrupted), resumed.Round(time.Millisecond), drained.Round(time.Millisecond), s.summary())
	t.Logf("admin e-mails repeated %d times: %d where the SMTP answer was lost, %d more for requests the kill interrupted; faults:%s",
		fig.repeats, fig.lostAnswers, fig.crashRepeats, sv.faultLog())
}
