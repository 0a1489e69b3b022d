package metrics_test

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/chain/chaintest"
	"github.com/figurative/figsupport/internal/metrics"
	"github.com/figurative/figsupport/internal/payload"
)

var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// A scripted run — a new ticket, a follow-up, an automatic reply, a failure, a replay — shows
// in /metrics as those counts, with step durations by service and no e-mail or id anywhere.
func TestScriptedRun(t *testing.T) {
	ctx := context.Background()
	backlog := 3
	oldest := t0
	m := metrics.New(metrics.Gauges{
		Backlog:       func() int { return backlog },
		OldestPending: func(context.Context) (time.Time, error) { return oldest, nil },
	})
	h := chaintest.New(t, chaintest.Options{Observer: m})
	run := func(r *payload.Request) {
		resp, err := h.Chain.Process(ctx, r, chain.RunOptions{})
		m.Request(resp, err)
	}
	first := chaintest.Request(t, "secret.customer@example.com", "Problème de paiement", t0)
	run(first)
	run(chaintest.Request(t, "secret.customer@example.com", "Toujours bloqué", t0.Add(time.Hour)))
	auto := chaintest.Request(t, "secret.customer@example.com", "Absent", t0.Add(2*time.Hour))
	auto.Mail = &payload.Mail{MessageID: "ooo@example.com", Automatic: "Auto-Submitted: auto-replied"}
	run(auto)
	h.Files.Fail = errors.New("r2: 503")
	run(chaintest.Request(t, "other@example.com", "Modéliser", t0, "a.glb"))
	run(first) // replayed
	m.Resumed()
	m.Retry("hubspot", true)
	m.Retry("hubspot", false)
	m.HTTP("POST /webhook/request", 202)

	out := scrape(t, m)
	for _, want := range []string{
		`figsupport_requests_total{classification="SUPPORT",outcome="created"} 1`,
		`figsupport_requests_total{classification="SUPPORT",outcome="updated"} 1`,
		`figsupport_requests_total{classification="",outcome="skipped"} 1`,
		`figsupport_requests_total{classification="",outcome="failed"} 1`,
		`figsupport_requests_total{classification="SUPPORT",outcome="replayed"} 1`,
		`figsupport_step_duration_seconds_count{service="crm",step="ticket"} 1`,
		`figsupport_step_duration_seconds_count{service="mail",step="notify"} 2`,
		`figsupport_step_failures_total{failure="unavailable",service="files",step="upload"} 1`,
		`figsupport_retries_total{service="hubspot"} 2`,
		`figsupport_retries_total{service="journal"} 1`,
		`figsupport_rate_limited_total{service="hubspot"} 1`,
		`figsupport_http_responses_total{code="202",route="POST /webhook/request"} 1`,
		`figsupport_backlog 3`,
	} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("missing %s", want)
		}
	}
	if !strings.Contains(out, "figsupport_oldest_pending_seconds ") || strings.Contains(out, "figsupport_oldest_pending_seconds 0\n") {
		t.Error("the oldest pending request's age is not reported")
	}
	for _, leak := range []string{"secret.customer", "example.com", first.Key()} {
		if strings.Contains(out, leak) {
			t.Errorf("/metrics shows %q", leak)
		}
	}
	oldest = time.Time{}
	if !strings.Contains(scrape(t, m), "figsupport_oldest_pending_seconds 0\n") {
		t.Error("nothing pending should read 0")
	}
}
