// Package metrics is what the daemon tells Prometheus: requests by outcome and classification,
// step durations and failures by service, retries and 429s received from the services, the
// backlog and the age of the oldest pending request. Labels never carry an e-mail address or an
// id: their values come from small fixed sets.
//
// It uses github.com/prometheus/client_golang, the reference client: the exposition format,
// histograms and the /metrics handler are its job, not ours.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/payload"
)

// Metrics holds the collectors, on a registry of their own (no global state).
type Metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	http      *prometheus.CounterVec
	steps     *prometheus.HistogramVec
	failures  *prometheus.CounterVec
	retries   *prometheus.CounterVec
	throttled *prometheus.CounterVec
}

// Gauges are read at each scrape.
type Gauges struct {
	Backlog       func() int                                   // requests waiting or running in this process
	OldestPending func(ctx context.Context) (time.Time, error) // the oldest unfinished request in the journal; zero when none
}

// New registers the collectors, the Go runtime's and the process's.
func New(g Gauges) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "figsupport_requests_total",
		Help: "Requests processed, by outcome (created, updated, incomplete, skipped, replayed, failed) and classification.",
	}, []string{"outcome", "classification"})
	m.http = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "figsupport_http_responses_total",
		Help: "HTTP answers of the daemon, by route and status code.",
	}, []string{"route", "code"})
	m.steps = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "figsupport_step_duration_seconds",
		Help:    "Duration of each chain step, by step and the service it calls.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"step", "service"})
	m.failures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "figsupport_step_failures_total",
		Help: "Failed chain steps, by step, service and kind of failure (input, credentials, rejected, rate_limited, unavailable).",
	}, []string{"step", "service", "failure"})
	m.retries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "figsupport_retries_total",
		Help: "Attempts repeated: HTTP calls to a service (by service), and requests resumed from the journal (service \"journal\").",
	}, []string{"service"})
	m.throttled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "figsupport_rate_limited_total",
		Help: "429 answers received from a service.",
	}, []string{"service"})
	m.reg.MustRegister(m.requests, m.http, m.steps, m.failures, m.retries, m.throttled,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if g.Backlog != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "figsupport_backlog",
			Help: "Requests waiting or running in this process.",
		}, func() float64 { return float64(g.Backlog()) }))
	}
	if g.OldestPending != nil {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "figsupport_oldest_pending_seconds",
			Help: "Age of the oldest unfinished request in the journal (0 when none).",
		}, func() float64 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			t, err := g.OldestPending(ctx)
			if err != nil || t.IsZero() {
				return 0
			}
			return time.Since(t).Seconds()
		}))
	}
	return m
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Registry is the registry, for tests and extra collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Request counts a finished request.
func (m *Metrics) Request(resp *payload.Response, err error) {
	switch {
	case errors.Is(err, chain.ErrInFlight):
		return // another process finishes it and counts it
	case err != nil:
		m.requests.WithLabelValues("failed", "").Inc()
	case resp.Replayed:
		m.requests.WithLabelValues("replayed", label(resp.Classification)).Inc()
	default:
		m.requests.WithLabelValues(resp.Status, label(resp.Classification)).Inc()
	}
}

// Resumed counts a request taken again from the journal.
func (m *Metrics) Resumed() { m.retries.WithLabelValues("journal").Inc() }

// HTTP counts an answer of the daemon.
func (m *Metrics) HTTP(route string, code int) {
	m.http.WithLabelValues(route, codeLabel(code)).Inc()
}

// StepDone records a chain step (chain.Observer).
func (m *Metrics) StepDone(step string, d time.Duration, err error) {
	svc := Service(step)
	m.steps.WithLabelValues(step, svc).Observe(d.Seconds())
	if err != nil {
		m.failures.WithLabelValues(step, svc, string(chain.Classify(err))).Inc()
	}
}

// Retry counts an HTTP call to service repeated, and whether it was because of a 429.
func (m *Metrics) Retry(service string, rateLimited bool) {
	m.retries.WithLabelValues(service).Inc()
	if rateLimited {
		m.throttled.WithLabelValues(service).Inc()
	}
}

// Service is the outside service a chain step calls.
func Service(step string) string {
	switch step {
	case chain.StepClassify:
		return "llm"
	case chain.StepUpload:
		return "files"
	case chain.StepSubtask, chain.StepFollowUps:
		return "tasks"
	case chain.StepNotify, chain.StepAck:
		return "mail"
	}
	return "crm"
}

// label keeps label values in a fixed set.
func label(classification string) string {
	switch classification {
	case payload.Support, payload.Modelisation:
		return classification
	}
	return ""
}

func codeLabel(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return strconv.Itoa(code)
}
