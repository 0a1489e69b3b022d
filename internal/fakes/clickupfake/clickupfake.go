// Package clickupfake is an in-process ClickUp API v2 for tests and benchmarks: raw personal-token
// authentication, tasks and subtasks, rate-limit headers and 429s, injected faults and latency,
// a record of every call, and (when ClickUp's OpenAPI description is beside the repository)
// validation of every request against it.
package clickupfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/fakes/faults"
)

// Token is the personal token the fake accepts unless told otherwise.
const Token = "pk_12345_FAKEFAKEFAKEFAKEFAKEFAKEFAKE"

// UserID is the token owner's id.
const UserID = 183

// The parent task every fake starts with, and its list (ClickUp list ids are numeric; task ids are not).
const (
	ParentID = "parent1"
	ListID   = "900100200300"
)

// Call is one request as the fake received it.
type Call struct {
	Method string
	Path   string
	Query  string
	Auth   string
	Body   []byte
	Status int // what the fake answered; 0 when the connection was dropped
}

// Fault is an injected failure. Method and Path ("" for any; Path matches as a prefix) select the
// requests; Times says how many (default 1).
type Fault struct {
	Method string
	Path   string
	Times  int

	Status int         // the answer's status (with a ClickUp-style error body unless Body is set)
	Body   string      // raw answer body
	Header http.Header // extra answer headers
	Delay  time.Duration
	// After handles the request normally first: the work is done but its answer is replaced
	// (a lost answer, the case that tempts a client into a duplicate).
	After bool
	// Drop closes the connection instead of answering (also what After without Status does).
	Drop bool
}

// Task is a task in the fake.
type Task struct {
	ID          string
	Name        string
	Markdown    string
	ListID      string
	ListName    string
	Parent      string
	CreatorID   int64
	DateCreated time.Time
}

// Server is the fake.
type Server struct {
	*httptest.Server
	// Token is the accepted Authorization value (raw, no Bearer).
	Token string
	// Limit is the requests allowed per minute window (ClickUp: 100 for most plans).
	Limit int
	// Now is the fake's clock.
	Now func() time.Time

	t         testing.TB
	validator *Validator

	mu            sync.Mutex
	tasks         map[string]*Task
	order         []string
	next          int
	calls         []Call
	faults        []*Fault
	faults.Switch // SetFaults: fail a seeded fraction of the calls that pass authentication, limits and validation
	throttle      int
	throttleAt    time.Time
	windowStart   time.Time
	windowUsed    int
	violations    []string
	latency       time.Duration
	// ExpectViolations stops spec violations from failing the test (for tests of the validation itself).
	ExpectViolations bool
}

// New starts a fake with one parent task (ParentID in list ListID) and stops it with the test.
// It validates requests against ClickUp's OpenAPI description when the file is found and says
// loudly in the test log when it is not.
func New(t testing.TB) *Server {
	t.Helper()
	s := &Server{Token: Token, Limit: 100, Now: time.Now, t: t, tasks: map[string]*Task{}}
	v, err := LoadSpec()
	switch {
	case err != nil:
		t.Fatalf("clickupfake: %v", err)
	case v == nil:
		t.Logf("clickupfake: NOT VALIDATING requests against the ClickUp OpenAPI description: %s not found above %s (set %s to its path)", SpecRelPath, mustWd(), SpecEnv)
	default:
		s.validator = v
	}
	s.AddTask(Task{ID: ParentID, Name: "Demandes de modélisation", ListID: ListID, ListName: "Support"})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v2/user", s.getUser)
	mux.HandleFunc("GET /api/v2/task/{id}", s.getTask)
	mux.HandleFunc("PUT /api/v2/task/{id}", s.putTask)
	mux.HandleFunc("POST /api/v2/list/{id}/task", s.createTask)
	// The fault plan sits behind authentication, limits and validation, as a failing ClickUp
	// back end would: refusals are answered first, then a valid call may fail.
	s.Server = httptest.NewServer(s.middleware(faults.Wrap(mux, s.Plan, func(w http.ResponseWriter, status int) {
		writeErr(w, status, http.StatusText(status), "FAKE_INJECTED")
	})))
	t.Cleanup(s.Close)
	return s
}

// Validating reports whether requests are checked against the OpenAPI description.
func (s *Server) Validating() bool { return s.validator != nil }

func mustWd() string { wd, _ := os.Getwd(); return wd }

// AddTask stores a task as if it existed in ClickUp.
func (s *Server) AddTask(tk Task) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if tk.DateCreated.IsZero() {
		tk.DateCreated = s.now()
	}
	if tk.CreatorID == 0 {
		tk.CreatorID = UserID
	}
	c := tk
	s.tasks[tk.ID] = &c
	s.order = append(s.order, tk.ID)
}

// Task returns a copy of a stored task.
func (s *Server) Task(id string) (Task, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tk, ok := s.tasks[id]
	if !ok {
		return Task{}, false
	}
	return *tk, true
}

// Subtasks lists the children of parent, oldest first.
func (s *Server) Subtasks(parent string) []Task {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Task
	for _, id := range s.order {
		if tk := s.tasks[id]; tk.Parent == parent {
			out = append(out, *tk)
		}
	}
	return out
}

// SetLatency adds a real delay before every answer (ClickUp's own round trip, for benchmarks).
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// Inject queues a fault.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Times <= 0 {
		f.Times = 1
	}
	s.faults = append(s.faults, &f)
}

// SetLimit changes the requests allowed per minute window while the fake serves.
func (s *Server) SetLimit(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.Limit = n
}

// Throttle answers the next n requests with 429, announcing reset as the window's end.
func (s *Server) Throttle(n int, reset time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle, s.throttleAt = n, reset
}

// Calls returns every request received so far.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// Count is how many calls matched method and path prefix.
func (s *Server) Count(method, pathPrefix string) int {
	n := 0
	for _, c := range s.Calls() {
		if (method == "" || c.Method == method) && strings.HasPrefix(c.Path, pathPrefix) {
			n++
		}
	}
	return n
}

// Violations lists the requests that did not match the OpenAPI description.
func (s *Server) Violations() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.violations...)
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		call := Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization"), Body: body}
		idx := s.record(call)
		rec := &recorder{ResponseWriter: w}
		s.mu.Lock()
		latency := s.latency
		s.mu.Unlock()
		if latency > 0 {
			select {
			case <-time.After(latency):
			case <-r.Context().Done():
				return
			}
		}
		defer func() { s.setStatus(idx, rec.status) }()

		s.rateHeaders(rec)
		if auth := r.Header.Get("Authorization"); auth == "" {
			writeErr(rec, http.StatusUnauthorized, "Authorization header required", "OAUTH_017")
			return
		} else if auth != s.Token {
			writeErr(rec, http.StatusUnauthorized, "Token invalid", "OAUTH_025")
			return
		}
		if s.limited(rec) {
			return
		}
		if s.validator != nil {
			if err := s.validator.Check(r, body); err != nil {
				s.violation(err.Error())
				writeErr(rec, http.StatusBadRequest, "request does not match the ClickUp OpenAPI description: "+err.Error(), "FAKE_SPEC_001")
				return
			}
		}
		f := s.fault(r)
		if f == nil {
			next.ServeHTTP(rec, r)
			return
		}
		if f.After {
			next.ServeHTTP(&discard{h: http.Header{}}, r)
		}
		if f.Delay > 0 {
			select {
			case <-time.After(f.Delay):
			case <-r.Context().Done():
				return
			}
		}
		if f.Drop || (f.After && f.Status == 0) {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			panic(http.ErrAbortHandler)
		}
		if f.Status == 0 {
			next.ServeHTTP(rec, r)
			return
		}
		for k, vs := range f.Header {
			rec.Header()[k] = vs
		}
		if f.Body != "" {
			rec.Header().Set("Content-Type", "application/json")
			rec.WriteHeader(f.Status)
			io.WriteString(rec, f.Body)
			return
		}
		writeErr(rec, f.Status, http.StatusText(f.Status), "FAKE_INJECTED")
	})
}

// discard swallows the answer of a request whose answer is to be lost.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(b []byte) (int, error) { return len(b), nil }
func (d *discard) WriteHeader(int)             {}

func (s *Server) record(c Call) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
	return len(s.calls) - 1
}

func (s *Server) setStatus(i, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[i].Status = status
}

func (s *Server) violation(msg string) {
	s.mu.Lock()
	s.violations = append(s.violations, msg)
	expect := s.ExpectViolations
	s.mu.Unlock()
	if !expect {
		s.t.Errorf("clickupfake: %s", msg)
	}
}

func (s *Server) fault(r *http.Request) *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if (f.Method == "" || f.Method == r.Method) && strings.HasPrefix(r.URL.Path, f.Path) {
			f.Times--
			if f.Times <= 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
			return f
		}
	}
	return nil
}

// rateHeaders sets ClickUp's rate-limit headers and counts the request in its minute window.
func (s *Server) rateHeaders(w http.ResponseWriter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if now.Sub(s.windowStart) >= time.Minute {
		s.windowStart, s.windowUsed = now, 0
	}
	s.windowUsed++
	reset := s.windowStart.Add(time.Minute)
	if s.throttle > 0 {
		reset = s.throttleAt
	}
	w.Header().Set("X-RateLimit-Limit", strconv.Itoa(s.Limit))
	w.Header().Set("X-RateLimit-Remaining", strconv.Itoa(max(0, s.Limit-s.windowUsed)))
	w.Header().Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
}

func (s *Server) limited(w http.ResponseWriter) bool {
	s.mu.Lock()
	over := s.windowUsed > s.Limit
	if s.throttle > 0 {
		s.throttle--
		over = true
		w.Header().Set("X-RateLimit-Remaining", "0")
	}
	s.mu.Unlock()
	if over {
		writeErr(w, http.StatusTooManyRequests, "Rate limit reached", "APP_002")
	}
	return over
}

func writeErr(w http.ResponseWriter, status int, msg, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"err": msg, "ECODE": code})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	json.NewEncoder(w).Encode(v)
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, map[string]any{"user": map[string]any{
		"id": UserID, "username": "Support Bot", "email": "bot@example.com", "color": "#827718",
		"profilePicture": nil, "initials": "SB", "week_start_day": 1, "global_font_support": true, "timezone": "Europe/Paris",
	}})
}

func (s *Server) getTask(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	tk, ok := s.tasks[r.PathValue("id")]
	if !ok {
		writeErr(w, http.StatusNotFound, "Task not found, deleted", "ITEM_013")
		return
	}
	q := r.URL.Query()
	out := s.taskJSON(tk, q.Get("include_markdown_description") == "true")
	if q.Get("include_subtasks") == "true" {
		subs := []map[string]any{}
		for _, id := range s.order {
			if c := s.tasks[id]; c.Parent == tk.ID {
				m := s.taskJSON(c, false)
				delete(m, "description")
				delete(m, "text_content")
				subs = append(subs, m)
			}
		}
		out["subtasks"] = subs
	}
	writeJSON(w, out)
}

func (s *Server) taskJSON(tk *Task, markdown bool) map[string]any {
	var parent any
	if tk.Parent != "" {
		parent = tk.Parent
	}
	m := map[string]any{
		"id": tk.ID, "custom_id": nil, "name": tk.Name,
		"text_content": plain(tk.Markdown), "description": plain(tk.Markdown),
		"status":       map[string]any{"status": "to do", "color": "#d3d3d3", "orderindex": 0, "type": "open"},
		"date_created": strconv.FormatInt(tk.DateCreated.UnixMilli(), 10),
		"date_updated": strconv.FormatInt(tk.DateCreated.UnixMilli(), 10),
		"creator":      map[string]any{"id": tk.CreatorID, "username": "Support Bot", "color": "#827718", "email": "bot@example.com"},
		"parent":       parent, "top_level_parent": parent,
		"url":    "https://app.clickup.com/t/" + tk.ID,
		"list":   map[string]any{"id": tk.ListID, "name": tk.ListName, "access": true},
		"folder": map[string]any{"id": "folder1", "name": "hidden", "hidden": true, "access": true},
		"space":  map[string]any{"id": "space1"},
	}
	if markdown {
		m["markdown_description"] = tk.Markdown
	}
	return m
}

// plain approximates ClickUp's plain-text rendering of a Markdown description.
func plain(md string) string {
	return strings.NewReplacer("**", "", "`", "", "> ", "").Replace(md)
}

func (s *Server) createTask(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name            string  `json:"name"`
		Description     string  `json:"description"`
		MarkdownContent string  `json:"markdown_content"`
		Parent          *string `json:"parent"`
	}
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeErr(w, http.StatusBadRequest, "Invalid JSON body", "INPUT_001")
		return
	}
	if strings.TrimSpace(in.Name) == "" {
		writeErr(w, http.StatusBadRequest, "Task name invalid", "INPUT_002")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	listID := r.PathValue("id")
	var listName string
	found := false
	for _, tk := range s.tasks {
		if tk.ListID == listID {
			found = true
			if tk.ListName != "" {
				listName = tk.ListName
			}
		}
	}
	if !found {
		writeErr(w, http.StatusNotFound, "List not found", "ITEM_013")
		return
	}
	tk := &Task{Name: in.Name, Markdown: in.Description, ListID: listID, ListName: listName, CreatorID: UserID, DateCreated: s.now()}
	if in.MarkdownContent != "" {
		tk.Markdown = in.MarkdownContent
	}
	if in.Parent != nil && *in.Parent != "" {
		p, ok := s.tasks[*in.Parent]
		if !ok || p.ListID != listID {
			writeErr(w, http.StatusBadRequest, "Parent task must be in the same list", "ITEM_137")
			return
		}
		tk.Parent = p.ID
	}
	s.next++
	tk.ID = fmt.Sprintf("86c%04d", s.next)
	s.tasks[tk.ID] = tk
	s.order = append(s.order, tk.ID)
	writeJSON(w, s.taskJSON(tk, false))
}

func (s *Server) putTask(w http.ResponseWriter, r *http.Request) {
	var in map[string]json.RawMessage
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		writeErr(w, http.StatusBadRequest, "Invalid JSON body", "INPUT_001")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	tk, ok := s.tasks[r.PathValue("id")]
	if !ok {
		writeErr(w, http.StatusNotFound, "Task not found, deleted", "ITEM_013")
		return
	}
	var str string
	if raw, ok := in["name"]; ok && json.Unmarshal(raw, &str) == nil {
		tk.Name = str
	}
	// markdown_content wins over description when both are given, as ClickUp documents.
	if raw, ok := in["description"]; ok && json.Unmarshal(raw, &str) == nil {
		tk.Markdown = str
	}
	if raw, ok := in["markdown_content"]; ok && json.Unmarshal(raw, &str) == nil {
		tk.Markdown = str
	}
	writeJSON(w, s.taskJSON(tk, false))
}
