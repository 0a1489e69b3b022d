// Package server is the HTTP side of `figsupport serve`: POST /webhook/request runs the chain on
// what the web forms send (JSON or multipart/form-data), behind Standard Webhooks signatures and/or
// a bearer token, per-IP rate limits and size limits. See docs/server.md.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/payload"
)

// Intake takes a request in: Accept records it in the journal (durably: no 2xx is sent before),
// the queue has it processed. *chain.Chain accepts; *worker.Pool queues.
type Intake interface {
	Accept(ctx context.Context, req *payload.Request) (*chain.Run, error)
}

// Queue is the worker pool.
type Queue interface {
	Submit(req *payload.Request) (Job, error)
	// Full reports that the backlog is at its limit: new requests are refused with 503.
	Full() bool
}

// Job is a request in the queue.
type Job interface {
	Done() <-chan struct{}
	Result() (*payload.Response, error)
}

// Runs reads the journal, for GET /requests/{id}.
type Runs interface {
	Get(ctx context.Context, key string) (*chain.Run, error)
}

// Metrics is where the server reports its answers (internal/metrics).
type Metrics interface {
	HTTP(route string, code int)
	// Request counts a request answered from the journal without running (a replay); the runs
	// are counted by whoever runs them.
	Request(resp *payload.Response, err error)
	Handler() http.Handler
}

// Modes of answering.
const (
	// ModeSync waits for the chain up to SyncTimeout and answers with its result (202 past it).
	ModeSync = "sync"
	// ModeAsync answers 202 as soon as the request is in the journal.
	ModeAsync = "async"
)

// Defaults of Config.
const (
	DefaultSyncTimeout        = 25 * time.Second
	DefaultRatePerIP          = 2.0
	DefaultBurst              = 10
	DefaultMaxFileBytes int64 = 50 << 20

	// WebhookPath is the seed's path.
	WebhookPath = "/webhook/request"
)

// Config configures a Server. Zero values take the defaults.
type Config struct {
	// WebhookSecret is the Standard Webhooks secret, "whsec_<base64>"; empty = signatures not required.
	WebhookSecret string
	// BearerToken is a static token for "Authorization: Bearer"; empty = not required. When both
	// are set, either a valid token or a valid signature authenticates a request.
	BearerToken string
	// Limits bound the payload; zero fields take payload.DefaultLimits.
	Limits payload.Limits
	// MaxFileBytes caps each multipart file part; default 50 MiB.
	MaxFileBytes int64
	// Mode is ModeSync (default) or ModeAsync.
	Mode string
	// SyncTimeout is how long a request waits for the chain before the answer is 202 "queued" (the
	// run goes on); default 25s.
	SyncTimeout time.Duration
	// RatePerIP is the sustained requests per second per client IP (default 2) and Burst the
	// bucket size (default 10). A negative RatePerIP disables the limit.
	RatePerIP float64
	Burst     int
	// TrustedProxies are the reverse proxies in front of the daemon. Only a request whose peer
	// is one of them has its client IP read from ClientIPHeader ("X-Forwarded-For", "X-Real-IP",
	// "CF-Connecting-IP"): the rightmost address that is not a trusted proxy. Anyone else's
	// header is ignored, so a client cannot choose the address it is limited and logged by.
	TrustedProxies []netip.Prefix
	ClientIPHeader string
	// SpoolDir receives multipart file parts (one sub-directory per request); required. It must
	// survive restarts (a retried request reads its files there): put it under the data dir, and
	// give the same directory to objstore.Config.LocalRoot.
	SpoolDir string
	// Ready, when set, says whether the journal is writable, for GET /readyz.
	Ready func(ctx context.Context) error
	// Metrics, when set, is served on GET /metrics and told of every answer.
	Metrics Metrics
	Log     *slog.Logger
	Now     func() time.Time
}

// Server serves the webhook. Create it with New.
type Server struct {
	cfg      Config
	intake   Intake
	queue    Queue
	runs     Runs
	secret   []byte // decoded WebhookSecret; nil when not required
	limiter  *limiter
	log      *slog.Logger
	now      func() time.Time
	stopping atomic.Bool
}

// New checks cfg and returns a server that records requests through in and has q process them.
func New(cfg Config, in Intake, q Queue, runs Runs) (*Server, error) {
	if in == nil || q == nil || runs == nil {
		return nil, errors.New("server: intake, queue and runs are required")
	}
	switch cfg.Mode {
	case "":
		cfg.Mode = ModeSync
	case ModeSync, ModeAsync:
	default:
		return nil, &ConfigError{Field: "mode", Msg: fmt.Sprintf("want sync or async, got %q", cfg.Mode)}
	}
	cfg.Limits = withDefaultLimits(cfg.Limits)
	if cfg.MaxFileBytes <= 0 {
		cfg.MaxFileBytes = DefaultMaxFileBytes
	}
	if cfg.SyncTimeout <= 0 {
		cfg.SyncTimeout = DefaultSyncTimeout
	}
	if cfg.RatePerIP == 0 {
		cfg.RatePerIP = DefaultRatePerIP
	}
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SpoolDir == "" {
		return nil, &ConfigError{Field: "spool", Msg: "a spool directory is required (multipart files are spooled there)"}
	}
	abs, err := filepath.Abs(cfg.SpoolDir)
	if err != nil {
		return nil, &ConfigError{Field: "spool", Msg: err.Error()}
	}
	cfg.SpoolDir = abs
	if err := os.MkdirAll(cfg.SpoolDir, 0o700); err != nil {
		return nil, &ConfigError{Field: "spool", Msg: err.Error()}
	}
	pruneIncoming(cfg.SpoolDir, time.Now()) // the file system's clock, not cfg.Now
	s := &Server{cfg: cfg, intake: in, queue: q, runs: runs, log: cfg.Log, now: cfg.Now}
	if cfg.WebhookSecret != "" {
		if s.secret, err = parseSecret(cfg.WebhookSecret); err != nil {
			return nil, &ConfigError{Field: "secret", Msg: err.Error()}
		}
	}
	if cfg.RatePerIP > 0 {
		s.limiter = newLimiter(cfg.RatePerIP, cfg.Burst)
	}
	return s, nil
}

// ConfigError is a Config the server cannot work with; Field names which ("secret", "mode",
// "spool").
type ConfigError struct {
	Field string
	Msg   string
}

func (e *ConfigError) Error() string { return "server: " + e.Field + ": " + e.Msg }

// Stop makes the server refuse new requests (503) and /readyz answer 503, before the listener
// closes: a load balancer moves traffic elsewhere while runs in flight finish.
func (s *Server) Stop() { s.stopping.Store(true) }

func withDefaultLimits(l payload.Limits) payload.Limits {
	d := payload.DefaultLimits
	set := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	if l.MaxBodyBytes <= 0 {
		l.MaxBodyBytes = d.MaxBodyBytes
	}
	set(&l.MaxObjetChars, d.MaxObjetChars)
	set(&l.MaxDescriptionChar, d.MaxDescriptionChar)
	set(&l.MaxNameChars, d.MaxNameChars)
	set(&l.MaxFiles, d.MaxFiles)
	set(&l.MaxFileNameBytes, d.MaxFileNameBytes)
	set(&l.MaxURLBytes, d.MaxURLBytes)
	set(&l.MaxRequestIDBytes, d.MaxRequestIDBytes)
	return l
}

// Authenticated reports whether requests must authenticate (a secret or a token is configured).
// `serve` binds loopback only when they need not.
func (s *Server) Authenticated() bool { return s.secret != nil || s.cfg.BearerToken != "" }

// Handler is the server's routes, with one log line per request.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+WebhookPath, s.handleWebhook)
	mux.HandleFunc("POST "+EmailPath, s.handleEmail)
	mux.HandleFunc("GET /requests/{id}", s.handleRequest)
	ok := func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
	mux.HandleFunc("GET /healthz", ok)
	mux.HandleFunc("GET /livez", ok)
	mux.HandleFunc("GET /readyz", s.handleReady)
	if s.cfg.Metrics != nil {
		// No e-mail, id or secret is in the metrics: they are served without authentication,
		// for Prometheus; a reverse proxy keeps them off the public side (see the README).
		mux.Handle("GET /metrics", s.cfg.Metrics.Handler())
	}
	mux.HandleFunc(WebhookPath, methodNotAllowed("POST"))
	mux.HandleFunc(EmailPath, methodNotAllowed("POST"))
	mux.HandleFunc("/healthz", methodNotAllowed("GET, HEAD"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{Status: http.StatusNotFound, Msg: "not found"})
	})
	return s.logged(mux)
}

func methodNotAllowed(allow string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		writeError(w, &apiError{Status: http.StatusMethodNotAllowed, Msg: "method not allowed; use " + allow})
	}
}

// Timeouts of the http.Server built by NewHTTPServer.
const (
	ReadHeaderTimeout = 10 * time.Second
	ReadTimeout       = 2 * time.Minute // the whole request, body included (uploads)
	IdleTimeout       = 60 * time.Second
	MaxHeaderBytes    = 64 << 10
)

// NewHTTPServer is an http.Server for h with the timeouts a public webhook needs; syncTimeout is the
// Server's SyncTimeout (zero: the default). Go's WriteTimeout runs from the end of the request
// headers, so it covers reading the body too: it is ReadTimeout + syncTimeout + 30s, so that a slow
// upload followed by a full SyncTimeout still gets its answer.
func NewHTTPServer(addr string, h http.Handler, syncTimeout time.Duration) *http.Server {
	if syncTimeout <= 0 {
		syncTimeout = DefaultSyncTimeout
	}
	return &http.Server{
		Addr:              addr,
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      ReadTimeout + syncTimeout + 30*time.Second,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}

// apiError is an answer other than 2xx: {"error": Msg, "field": Field}.
type apiError struct {
	Status     int
	Msg        string
	Field      string
	retryAfter string // seconds, for a 503
}

func (e *apiError) Error() string { return e.Msg }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	if e.retryAfter != "" {
		w.Header().Set("Retry-After", e.retryAfter)
	}
	body := struct {
		Error string `json:"error"`
		Field string `json:"field,omitempty"`
	}{e.Msg, e.Field}
	writeJSON(w, e.Status, body)
}

// reqInfo is filled by the handlers for the request's log line.
type reqInfo struct {
	requestID string
	ip        string
	note      string // why a request was refused, when it says more than the status (never a secret)
}

type infoKey struct{}

func info(r *http.Request) *reqInfo {
	if i, ok := r.Context().Value(infoKey{}).(*reqInfo); ok {
		return i
	}
	return &reqInfo{}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logged writes one line per request: method, path, status, duration, request_id, IP. Never the
// body, never a header value that could carry a secret.
func (s *Server) logged(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := s.now()
		in := &reqInfo{ip: s.clientIP(r)}
		sw := &statusWriter{ResponseWriter: w}
		rr := r.WithContext(context.WithValue(r.Context(), infoKey{}, in))
		next.ServeHTTP(sw, rr)
		status := sw.status
		if status == 0 {
			status = 499 // the client went away before an answer
		}
		if s.cfg.Metrics != nil {
			route := rr.Pattern // the mux's pattern: a fixed set, never the id in the path
			if route == "" {
				route = "other"
			}
			s.cfg.Metrics.HTTP(route, status)
		}
		attrs := []any{"method", r.Method, "path", r.URL.Path, "status", status,
			"duration", s.now().Sub(start), "request_id", in.requestID, "ip", in.ip}
		if in.note != "" {
			attrs = append(attrs, "note", in.note)
		}
		// A 503 is back-pressure (a full backlog, a stop) the sender retries; other 5xx are faults.
		level := slog.LevelInfo
		switch {
		case status >= 500 && status != http.StatusServiceUnavailable:
			level = slog.LevelError
		case status >= 400:
			level = slog.LevelWarn
		}
		s.log.Log(r.Context(), level, "http request", attrs...)
	})
}

func retryAfter(d time.Duration) string {
	secs := int64((d + time.Second - 1) / time.Second)
	if secs < 1 {
		secs = 1
	}
	return strconv.FormatInt(secs, 10)
}
