// Package hubspotfake is an in-process HubSpot CRM v3 portal for tests and benchmarks: bearer
// authentication, the documented success and error bodies (401, 403 MISSING_SCOPES, 404, 409 in both
// contact shapes, 400 VALIDATION_ERROR, 429 with policyName and rate-limit headers), a settable clock
// that stamps hs_lastmodifieddate on every create and PATCH (and not when a note is associated with
// a ticket, as on a real portal), HubSpot's own activity dates defined but only set when a test says
// so, an agent changing a ticket's stage in the web app, search that lags writes by a configurable
// delay and refuses what HubSpot refuses (more than 5 filter groups, 6 filters a group, 18 in all,
// a body over 3,000 characters, a filter on a property the type lacks), and injected latency and
// failures. Every call is recorded so tests can count what a scenario cost.
package hubspotfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/figurative/figsupport/internal/fakes/faults"
)

// Conflict shapes of the 409 a contact create answers when the e-mail exists.
const (
	// ConflictMessage carries the id only in message ("Contact already exists. Existing ID: N").
	ConflictMessage = "message"
	// ConflictIdentityProfile also carries identityProfile.vid, as some portals answer.
	ConflictIdentityProfile = "identityProfile"
)

// Clock is the fake's notion of now; search lag, hs_lastmodifieddate and the rate limits follow it.
type Clock struct {
	mu sync.Mutex
	t  time.Time
	// real: the clock runs with the machine's, off ahead of it (NewRealClock).
	real bool
	off  time.Duration
}

// NewClock starts a settable clock at t; it moves only when told to.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// NewRealClock is a clock that runs with the machine's, for a test against a process that stamps
// its own records with the real time (the daemon's journal); Advance and Set still move it.
func NewRealClock() *Clock { return &Clock{real: true} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.real {
		return time.Now().UTC().Add(c.off)
	}
	return c.t
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.off += d
	c.mu.Unlock()
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.off = time.Until(t)
	c.mu.Unlock()
}

// Fault is an injected failure for one call.
type Fault struct {
	Status     int    // HTTP status to answer (429, 500, 502, 503, 504…); ignored when Drop
	Policy     string // 429 policyName: TEN_SECONDLY_ROLLING (default), SECONDLY, DAILY
	RetryAfter string // Retry-After header value, if any
	// Apply performs the request before failing, as when HubSpot did the work but the answer was
	// lost: the case a client must not turn into a duplicate.
	Apply bool
	// Drop closes the connection without an answer (a network error for the client).
	Drop bool
	// Delay waits this long before handling the call (a slow answer; a timeout for a client with
	// a shorter deadline, in which case nothing is done).
	Delay time.Duration
}

// Injector decides, for the n-th call (1-based) to method and path, whether it fails.
type Injector func(n int, method, path string) *Fault

// Options configure a fake portal. The zero value is a healthy portal with no lag.
type Options struct {
	Token         string        // accepted bearer token; default "pat-test"
	PortalID      string        // default "12345"
	SearchLag     time.Duration // writes appear in search this long after they happen
	ConflictShape string        // ConflictMessage (default) or ConflictIdentityProfile
	Clock         *Clock        // default: a clock fixed at 2026-01-05T09:00:00Z
	Latency       time.Duration // real delay added to every answer
	Inject        Injector      // failures; nil for none
	// Faults fails a seeded fraction of calls in every way (see package faults); it is consulted
	// when Inject does not fail the call.
	Faults *faults.Plan
	// Scopes granted to the token; nil grants every scope. A call needing a scope not granted gets
	// 403 MISSING_SCOPES naming it.
	Scopes []string
	// EnforceLimits answers 429 past 100 requests per 10 s and 5 searches per second (on Clock).
	EnforceLimits bool
	// DailyLimitReached answers every call with 429 policyName DAILY.
	DailyLimitReached bool
	// NoActivityDates leaves HubSpot's own activity dates (ActivityDates) out of the ticket
	// properties, as on portals that lack them.
	NoActivityDates bool
}

// Call is one recorded request.
type Call struct {
	Method string
	Path   string
	Query  string
	Body   []byte
	Status int
}

func (c Call) String() string { return c.Method + " " + c.Path }

// Object is a CRM record as the fake stores it.
type Object struct {
	Type       string
	ID         string
	Properties map[string]string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	// Assoc maps a target object type to associated ids with their association type ids.
	Assoc map[string]map[string][]int
	// history keeps every version for the lagging search index.
	history []snapshot
}

type snapshot struct {
	at    time.Time
	props map[string]string
	assoc map[string]map[string][]int
}

// Property is a property definition.
type Property struct {
	Name      string `json:"name"`
	Label     string `json:"label"`
	Type      string `json:"type"`
	FieldType string `json:"fieldType"`
	GroupName string `json:"groupName"`
	Custom    bool   `json:"-"`
}

// Server is a fake portal.
type Server struct {
	*httptest.Server
	opts Options

	mu       sync.Mutex
	calls    []Call
	nextID   int64
	objects  map[string]map[string]*Object // type -> id -> object
	props    map[string]map[string]Property
	pipeline pipeline
	reqTimes []time.Time
	search   []time.Time
	corr     int
}

type stage struct {
	ID          string `json:"id"`
	Label       string `json:"label"`
	TicketState string `json:"-"`
}

type pipeline struct {
	ID     string
	Label  string
	Stages []stage
}

// New starts a fake portal; Close it when done.
func New(opts Options) *Server {
	if opts.Token == "" {
		opts.Token = "pat-test"
	}
	if opts.PortalID == "" {
		opts.PortalID = "12345"
	}
	if opts.ConflictShape == "" {
		opts.ConflictShape = ConflictMessage
	}
	if opts.Clock == nil {
		opts.Clock = NewClock(time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))
	}
	s := &Server{
		opts:    opts,
		nextID:  1000,
		objects: map[string]map[string]*Object{"contacts": {}, "tickets": {}, "notes": {}},
		props:   map[string]map[string]Property{},
		pipeline: pipeline{ID: "0", Label: "Support Pipeline", Stages: []stage{
			{"1", "New", "OPEN"}, {"2", "Waiting on contact", "OPEN"}, {"3", "Waiting on us", "OPEN"}, {"4", "Closed", "CLOSED"},
		}},
	}
	defaults := map[string][]string{
		"contacts": {"email", "firstname", "lastname", "phone", "company", "createdate", "lastmodifieddate", "hs_object_id"},
		"tickets": {"subject", "content", "hs_pipeline", "hs_pipeline_stage", "hs_ticket_priority", "hs_ticket_category",
			"hubspot_owner_id", "createdate", "hs_lastmodifieddate", "hs_object_id", "source_type"},
		"notes": {"hs_note_body", "hs_timestamp", "hubspot_owner_id", "hs_attachment_ids", "hs_createdate", "hs_lastmodifieddate", "hs_object_id"},
	}
	if !opts.NoActivityDates {
		defaults["tickets"] = append(defaults["tickets"], ActivityDates...)
	}
	for typ, names := range defaults {
		s.props[typ] = map[string]Property{}
		for _, n := range names {
			p := Property{Name: n, Label: n, Type: "string", FieldType: "text", GroupName: strings.TrimSuffix(typ, "s") + "information"}
			if defaultDates[n] {
				p.Type, p.FieldType = "datetime", "date"
			}
			s.props[typ][n] = p
		}
	}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Options returns the options the server runs with (defaults filled in).
func (s *Server) Options() Options { return s.opts }

// SetInjector replaces the failure injector (nil for none) between phases of a test.
func (s *Server) SetInjector(in Injector) {
	s.mu.Lock()
	s.opts.Inject = in
	s.mu.Unlock()
}

// SetFaults replaces the fault plan (nil for none) between phases of a test.
func (s *Server) SetFaults(p *faults.Plan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.opts.Faults = p
}

// SetScopes replaces the granted scopes (nil grants all).
func (s *Server) SetScopes(scopes []string) {
	s.mu.Lock()
	s.opts.Scopes = scopes
	s.mu.Unlock()
}

// Calls returns a copy of every recorded call.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

// ResetCalls forgets recorded calls (objects stay).
func (s *Server) ResetCalls() {
	s.mu.Lock()
	s.calls = nil
	s.mu.Unlock()
}

// Count is how many recorded calls match method (empty for any) and whose path has prefix.
func (s *Server) Count(method, prefix string) int {
	n := 0
	for _, c := range s.Calls() {
		if (method == "" || c.Method == method) && strings.HasPrefix(c.Path, prefix) {
			n++
		}
	}
	return n
}

// Objects returns copies of every stored object of a type ("contacts", "tickets", "notes"), by id.
func (s *Server) Objects(typ string) []Object {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Object
	for _, o := range s.objects[typ] {
		c := *o
		c.Properties = cloneProps(o.Properties)
		c.Assoc = cloneAssoc(o.Assoc)
		c.history = nil
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return idLess(out[i].ID, out[j].ID) })
	return out
}

// Object returns one object's current state.
func (s *Server) Object(typ, id string) (Object, bool) {
	for _, o := range s.Objects(typ) {
		if o.ID == id {
			return o, true
		}
	}
	return Object{}, false
}

// HasProperty says whether a property exists on an object type.
func (s *Server) HasProperty(typ, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.props[typ][name]
	return ok
}

// RemoveStage removes a stage from the pipeline (to test doctor).
func (s *Server) RemoveStage(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st []stage
	for _, x := range s.pipeline.Stages {
		if x.ID != id {
			st = append(st, x)
		}
	}
	s.pipeline.Stages = st
}

// SeedContact stores a contact directly (no call recorded) and returns its id.
func (s *Server) SeedContact(email string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.create("contacts", map[string]string{"email": strings.ToLower(email)}, nil)
	return o.ID
}

// SeedTicket stores a ticket associated with a contact, last modified at modified, fully indexed.
func (s *Server) SeedTicket(contactID, subject, stageID string, modified time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.create("tickets", map[string]string{"subject": subject, "hs_pipeline": "0", "hs_pipeline_stage": stageID}, nil)
	o.Assoc["contacts"] = map[string][]int{contactID: {16}}
	o.Properties["hs_lastmodifieddate"] = iso(modified)
	o.UpdatedAt = modified
	o.history = []snapshot{{at: modified.Add(-s.opts.SearchLag - time.Hour), props: cloneProps(o.Properties), assoc: cloneAssoc(o.Assoc)}}
	if c := s.objects["contacts"][contactID]; c != nil {
		addAssoc(c, "tickets", o.ID, 15)
	}
	return o.ID
}

// SeedModified sets an object's last modification time directly (no call recorded), as seeding
// does: for a test that needs a ticket written long ago.
func (s *Server) SeedModified(id string, at time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, objs := range s.objects {
		if o := objs[id]; o != nil {
			mod := "hs_lastmodifieddate"
			if o.Type == "contacts" {
				mod = "lastmodifieddate"
			}
			o.Properties[mod] = iso(at)
			o.UpdatedAt = at
			o.history = append(o.history, snapshot{at: s.opts.Clock.Now(), props: cloneProps(o.Properties), assoc: cloneAssoc(o.Assoc)})
			return true
		}
	}
	return false
}

// AgentSetStage moves a ticket to another stage as an agent does in the web app: a property
// change, so hs_lastmodifieddate takes the fake clock's time. No call is recorded.
func (s *Server) AgentSetStage(ticketID, stageID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.objects["tickets"][ticketID]
	if o == nil || !s.hasStage(stageID) {
		return false
	}
	s.touch(o, s.opts.Clock.Now(), map[string]string{"hs_pipeline_stage": stageID})
	return true
}

// SetActivityDate sets one of HubSpot's own activity dates on a ticket, as the portal does when it
// computes them (asynchronously, after an e-mail or a call is logged). It fails when the portal
// does not have the property (Options.NoActivityDates).
func (s *Server) SetActivityDate(ticketID, prop string, at time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.objects["tickets"][ticketID]
	if _, ok := s.props["tickets"][prop]; o == nil || !ok {
		return false
	}
	o.Properties[prop] = iso(at)
	o.history = append(o.history, snapshot{at: s.opts.Clock.Now(), props: cloneProps(o.Properties), assoc: cloneAssoc(o.Assoc)})
	return true
}

// ---------------------------------------------------------------------------------------------

type reply struct {
	status int
	body   any
	header http.Header
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if s.opts.Latency > 0 {
		select {
		case <-time.After(s.opts.Latency):
		case <-r.Context().Done():
			return
		}
	}
	s.mu.Lock()
	call := Call{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: body}
	s.calls = append(s.calls, call)
	idx := len(s.calls) - 1
	n := len(s.calls)
	inject, plan := s.opts.Inject, s.opts.Faults
	s.mu.Unlock()

	var f *Fault
	if inject != nil {
		f = inject(n, r.Method, r.URL.Path)
	}
	if f == nil {
		f = fromPlan(plan.Decide(r.Method, r.URL.Path, body))
	}
	if f != nil && f.Delay > 0 && !faults.Wait(r, f.Delay) {
		s.mu.Lock()
		s.calls[idx].Status = 0 // the client gave up first: nothing was done
		s.mu.Unlock()
		return
	}

	s.mu.Lock()
	var rep reply
	switch {
	case !s.authorised(r):
		rep = s.errReply(401, "INVALID_AUTHENTICATION", "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview", nil)
	case s.opts.DailyLimitReached:
		rep = s.rateLimited("DAILY", "")
	case f != nil && !f.Apply && !f.slowOnly():
		rep = s.faultReply(f)
	default:
		if lim, ok := s.overLimit(r); ok {
			rep = lim
			break
		}
		if scopes := s.missingScopes(r); scopes != nil {
			rep = s.errReply(403, "MISSING_SCOPES", "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.", map[string]any{
				"errors": []any{map[string]any{
					"message": "One or more of the following scopes are required.",
					"context": map[string]any{"requiredGranularScopes": scopes, "requiredScopes": scopes},
				}},
				"links": map[string]string{"scopes": "https://developers.hubspot.com/scopes"},
			})
			break
		}
		rep = s.route(r, body)
		if f != nil && f.Apply { // applied, then the answer is lost
			rep = s.faultReply(f)
		}
	}
	s.calls[idx].Status = rep.status
	if f != nil && f.Drop {
		s.calls[idx].Status = 0
	}
	remaining := 100 - len(s.reqTimes)
	s.mu.Unlock()

	if !faults.Wait(r, plan.Lag()) {
		return
	}
	if f != nil && f.Drop {
		faults.Abort(w)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json;charset=utf-8")
	h.Set("X-HubSpot-RateLimit-Max", "100")
	h.Set("X-HubSpot-RateLimit-Interval-Milliseconds", "10000")
	if h.Get("X-HubSpot-RateLimit-Remaining") == "" {
		h.Set("X-HubSpot-RateLimit-Remaining", strconv.Itoa(max(remaining, 0)))
	}
	for k, v := range rep.header {
		h[k] = v
	}
	h.Set("X-HubSpot-Correlation-Id", s.correlation())
	w.WriteHeader(rep.status)
	if rep.body != nil {
		_ = json.NewEncoder(w).Encode(rep.body)
	}
}

func (s *Server) authorised(r *http.Request) bool {
	return r.Header.Get("Authorization") == "Bearer "+s.opts.Token
}

func (s *Server) correlation() string {
	s.mu.Lock()
	s.corr++
	n := s.corr
	s.mu.Unlock()
	return fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
}

func (s *Server) errReply(status int, category, msg string, extra map[string]any) reply {
	s.corr++
	b := map[string]any{"status": "error", "message": msg, "correlationId": fmt.Sprintf("00000000-0000-4000-9000-%012d", s.corr), "category": category}
	for k, v := range extra {
		b[k] = v
	}
	return reply{status: status, body: b}
}

func (s *Server) faultReply(f *Fault) reply {
	if f.Status == 429 {
		return s.rateLimited(f.Policy, f.RetryAfter)
	}
	st := f.Status
	if st == 0 {
		st = 500
	}
	rep := reply{status: st, body: map[string]any{"status": "error", "message": "internal error", "correlationId": "00000000-0000-4000-a000-000000000000", "category": "INTERNAL_ERROR"}}
	if f.RetryAfter != "" {
		rep.header = http.Header{"Retry-After": {f.RetryAfter}}
	}
	return rep
}

// rateLimited is HubSpot's documented 429 body and headers.
func (s *Server) rateLimited(policy, retryAfter string) reply {
	if policy == "" {
		policy = "TEN_SECONDLY_ROLLING"
	}
	h := http.Header{"X-Hubspot-Ratelimit-Remaining": {"0"}}
	msg := "You have reached your ten_secondly_rolling limit."
	switch policy {
	case "DAILY":
		msg = "You have reached your daily limit."
		h.Set("X-HubSpot-RateLimit-Daily", "250000")
		h.Set("X-HubSpot-RateLimit-Daily-Remaining", "0")
	case "SECONDLY":
		msg = "You have reached your secondly limit."
		h.Set("X-HubSpot-RateLimit-Secondly", "5")
		h.Set("X-HubSpot-RateLimit-Secondly-Remaining", "0")
	}
	if retryAfter != "" {
		h.Set("Retry-After", retryAfter)
	}
	s.corr++
	return reply{status: 429, header: h, body: map[string]any{
		"status": "error", "message": msg, "errorType": "RATE_LIMIT",
		"correlationId": fmt.Sprintf("00000000-0000-4000-b000-%012d", s.corr), "policyName": policy,
		"requestId": fmt.Sprintf("req-%d", s.corr),
	}}
}

func (s *Server) overLimit(r *http.Request) (reply, bool) {
	if !s.opts.EnforceLimits {
		return reply{}, false
	}
	now := s.opts.Clock.Now()
	s.reqTimes = trim(s.reqTimes, now.Add(-10*time.Second))
	if len(s.reqTimes) >= 100 {
		return s.rateLimited("TEN_SECONDLY_ROLLING", ""), true
	}
	if strings.HasSuffix(r.URL.Path, "/search") {
		s.search = trim(s.search, now.Add(-time.Second))
		if len(s.search) >= 5 {
			return s.rateLimited("SECONDLY", ""), true
		}
		s.search = append(s.search, now)
	}
	s.reqTimes = append(s.reqTimes, now)
	return reply{}, false
}

func trim(ts []time.Time, after time.Time) []time.Time {
	i := 0
	for i < len(ts) && !ts[i].After(after) {
		i++
	}
	return ts[i:]
}

// requiredScopes is one granular scope per kind of call, as the reference pages list them.
func requiredScopes(r *http.Request) []string {
	p := r.URL.Path
	write := r.Method != http.MethodGet && !strings.HasSuffix(p, "/search") && !strings.HasSuffix(p, "/batch/read")
	switch {
	case strings.HasPrefix(p, "/crm/v3/properties/tickets"):
		if write {
			return []string{"crm.schemas.tickets.write"}
		}
		return []string{"crm.schemas.tickets.read"}
	case strings.HasPrefix(p, "/crm/v3/pipelines/tickets"):
		return []string{"tickets"}
	case strings.Contains(p, "/objects/contacts"):
		if write {
			return []string{"crm.objects.contacts.write"}
		}
		return []string{"crm.objects.contacts.read"}
	case strings.Contains(p, "/objects/tickets"):
		return []string{"tickets"}
	case strings.Contains(p, "/objects/notes"):
		if write {
			return []string{"crm.objects.contacts.write"}
		}
		return []string{"crm.objects.contacts.read"}
	}
	return nil
}

func (s *Server) missingScopes(r *http.Request) []string {
	if s.opts.Scopes == nil {
		return nil
	}
	need := requiredScopes(r)
	for _, n := range need {
		for _, g := range s.opts.Scopes {
			if g == n {
				return nil
			}
		}
	}
	return need
}

// ---------------------------------------------------------------------------------------------
// routing

func (s *Server) route(r *http.Request, body []byte) reply {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	q := r.URL.Query()
	switch {
	case len(parts) >= 4 && parts[0] == "crm" && parts[1] == "v3" && parts[2] == "objects":
		typ := parts[3]
		if _, ok := s.objects[typ]; !ok {
			return s.errReply(400, "VALIDATION_ERROR", "Unable to infer object type from: "+typ, nil)
		}
		switch {
		case len(parts) == 4 && r.Method == http.MethodPost:
			return s.createObject(typ, body)
		case len(parts) == 4 && r.Method == http.MethodGet:
			return s.listObjects(typ, q)
		case len(parts) == 5 && parts[4] == "search" && r.Method == http.MethodPost:
			return s.searchObjects(typ, body)
		case len(parts) == 6 && parts[4] == "batch" && parts[5] == "read" && r.Method == http.MethodPost:
			return s.batchRead(typ, body)
		case len(parts) == 5 && r.Method == http.MethodGet:
			return s.getObject(typ, parts[4], q)
		case len(parts) == 5 && r.Method == http.MethodPatch:
			return s.patchObject(typ, parts[4], body)
		}
	case len(parts) == 7 && parts[0] == "crm" && parts[1] == "v4" && parts[2] == "objects" && parts[5] == "associations" && r.Method == http.MethodGet:
		return s.listAssociations(parts[3], parts[4], parts[6])
	case len(parts) >= 4 && parts[0] == "crm" && parts[1] == "v3" && parts[2] == "properties":
		typ := parts[3]
		if _, ok := s.props[typ]; !ok {
			return s.errReply(400, "VALIDATION_ERROR", "Unable to infer object type from: "+typ, nil)
		}
		switch {
		case len(parts) == 4 && r.Method == http.MethodGet:
			var res []Property
			for _, p := range s.props[typ] {
				res = append(res, p)
			}
			sort.Slice(res, func(i, j int) bool { return res[i].Name < res[j].Name })
			return reply{status: 200, body: map[string]any{"results": res}}
		case len(parts) == 4 && r.Method == http.MethodPost:
			return s.createProperty(typ, body)
		case len(parts) == 5 && r.Method == http.MethodGet:
			p, ok := s.props[typ][parts[4]]
			if !ok {
				return s.errReply(404, "OBJECT_NOT_FOUND", "Unable to find property "+parts[4], nil)
			}
			return reply{status: 200, body: p}
		}
	case len(parts) == 5 && parts[0] == "crm" && parts[1] == "v3" && parts[2] == "pipelines" && parts[3] == "tickets" && r.Method == http.MethodGet:
		if parts[4] != s.pipeline.ID {
			return s.errReply(404, "OBJECT_NOT_FOUND", "Unable to find pipeline "+parts[4], nil)
		}
		return reply{status: 200, body: s.pipelineJSON()}
	}
	return s.errReply(404, "OBJECT_NOT_FOUND", "Unknown endpoint "+r.Method+" "+r.URL.Path, nil)
}

func (s *Server) pipelineJSON() map[string]any {
	var st []map[string]any
	for i, x := range s.pipeline.Stages {
		st = append(st, map[string]any{"id": x.ID, "label": x.Label, "displayOrder": i, "archived": false,
			"metadata": map[string]string{"ticketState": x.TicketState}, "createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": "2024-01-01T00:00:00.000Z"})
	}
	return map[string]any{"id": s.pipeline.ID, "label": s.pipeline.Label, "displayOrder": 0, "archived": false, "stages": st,
		"createdAt": "2024-01-01T00:00:00.000Z", "updatedAt": "2024-01-01T00:00:00.000Z"}
}

type assocInput struct {
	To struct {
		ID string `json:"id"`
	} `json:"to"`
	Types []struct {
		Category string `json:"associationCategory"`
		TypeID   int    `json:"associationTypeId"`
	} `json:"types"`
}

type objectInput struct {
	Properties   map[string]any `json:"properties"`
	Associations []assocInput   `json:"associations"`
}

// association type ids (HUBSPOT_DEFINED) this fake knows: from type -> type id -> to type.
var assocTypes = map[string]map[int]string{
	"tickets":  {16: "contacts"},
	"notes":    {202: "contacts", 228: "tickets"},
	"contacts": {15: "tickets", 201: "notes"},
}

var inverse = map[int]int{16: 15, 15: 16, 202: 201, 201: 202, 228: 227, 227: 228}

func (s *Server) createObject(typ string, body []byte) reply {
	var in objectInput
	if err := json.Unmarshal(body, &in); err != nil {
		return s.errReply(400, "VALIDATION_ERROR", "Invalid input JSON on line 1: "+err.Error(), nil)
	}
	props, rep, ok := s.validateProps(typ, in.Properties)
	if !ok {
		return rep
	}
	// Association targets must exist.
	type link struct {
		toType, id string
		typeID     int
	}
	var links []link
	for _, a := range in.Associations {
		for _, t := range a.Types {
			toType, known := assocTypes[typ][t.TypeID]
			if !known || t.Category != "HUBSPOT_DEFINED" {
				return s.errReply(400, "VALIDATION_ERROR", fmt.Sprintf("association type id %d doesn't exist between %s and the target", t.TypeID, typ), nil)
			}
			if _, exists := s.objects[toType][a.To.ID]; !exists {
				return s.errReply(400, "VALIDATION_ERROR", fmt.Sprintf("One or more associations are invalid: %s %s does not exist", toType, a.To.ID), nil)
			}
			links = append(links, link{toType, a.To.ID, t.TypeID})
		}
	}
	switch typ {
	case "contacts":
		email := strings.ToLower(strings.TrimSpace(props["email"]))
		if email != "" {
			props["email"] = email
			for _, c := range s.objects["contacts"] {
				if c.Properties["email"] == email {
					return s.conflict(c)
				}
			}
		}
	case "notes":
		if props["hs_timestamp"] == "" {
			return s.validation("hs_timestamp", "REQUIRED", "hs_timestamp is required")
		}
		if n := len(utf16Len(props["hs_note_body"])); n > 65536 {
			return s.validation("hs_note_body", "INVALID_LENGTH", fmt.Sprintf("hs_note_body is %d characters, more than 65536", n))
		}
	case "tickets":
		if props["hs_pipeline"] == "" {
			props["hs_pipeline"] = s.pipeline.ID
		}
		if props["hs_pipeline"] != s.pipeline.ID || !s.hasStage(props["hs_pipeline_stage"]) {
			return s.validation("hs_pipeline_stage", "INVALID_OPTION", fmt.Sprintf("%q was not one of the allowed options", props["hs_pipeline_stage"]))
		}
	}
	o := s.create(typ, props, nil)
	now := s.opts.Clock.Now()
	for _, l := range links {
		addAssoc(o, l.toType, l.id, l.typeID)
		if t := s.objects[l.toType][l.id]; t != nil {
			addAssoc(t, typ, o.ID, inverse[l.typeID])
			// An association is not a property change: hs_lastmodifieddate stays (a note is not
			// activity for it, as on a real portal); only the search index learns the link.
			t.history = append(t.history, snapshot{at: now, props: cloneProps(t.Properties), assoc: cloneAssoc(t.Assoc)})
		}
	}
	o.history = []snapshot{{at: now, props: cloneProps(o.Properties), assoc: cloneAssoc(o.Assoc)}}
	return reply{status: 201, body: s.objectJSON(o, nil, false)}
}

// utf16Len returns s as UTF-16 units: HubSpot counts characters the Java way.
func utf16Len(s string) []uint16 {
	var out []uint16
	for _, r := range s {
		if r >= 0x10000 {
			out = append(out, 0, 0)
		} else {
			out = append(out, 0)
		}
	}
	return out
}

func (s *Server) hasStage(id string) bool {
	for _, st := range s.pipeline.Stages {
		if st.ID == id {
			return true
		}
	}
	return false
}

func (s *Server) conflict(c *Object) reply {
	vid, _ := strconv.ParseInt(c.ID, 10, 64)
	extra := map[string]any{}
	if s.opts.ConflictShape == ConflictIdentityProfile {
		extra["identityProfile"] = map[string]any{
			"vid": vid, "isDeleted": false, "isContact": true,
			"identity": []any{map[string]any{"value": c.Properties["email"], "type": "EMAIL", "timestamp": c.CreatedAt.UnixMilli(), "isPrimary": true}},
		}
	}
	return s.errReply(409, "CONFLICT", "Contact already exists. Existing ID: "+c.ID, extra)
}

func (s *Server) validation(name, code, msg string) reply {
	detail, _ := json.Marshal([]map[string]any{{"isValid": false, "message": msg, "error": code, "name": name, "localizedErrorMessage": msg}})
	return s.errReply(400, "VALIDATION_ERROR", "Property values were not valid: "+string(detail), map[string]any{
		"errors": []any{map[string]any{"message": msg, "code": code, "context": map[string]any{"propertyName": []string{name}}}},
	})
}

// validateProps turns input values into strings and refuses properties that do not exist.
func (s *Server) validateProps(typ string, in map[string]any) (map[string]string, reply, bool) {
	out := map[string]string{}
	names := make([]string, 0, len(in))
	for k := range in {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if _, ok := s.props[typ][k]; !ok {
			return nil, s.validation(k, "PROPERTY_DOESNT_EXIST", fmt.Sprintf("Property \"%s\" does not exist", k)), false
		}
		switch v := in[k].(type) {
		case nil:
			out[k] = ""
		case string:
			out[k] = v
		case float64:
			out[k] = strconv.FormatFloat(v, 'f', -1, 64)
		case bool:
			out[k] = strconv.FormatBool(v)
		default:
			return nil, s.validation(k, "INVALID_VALUE", fmt.Sprintf("Property \"%s\" has an invalid value", k)), false
		}
		// A datetime takes epoch milliseconds or ISO 8601.
		if p := s.props[typ][k]; p.Type == "datetime" && out[k] != "" && mustTime(out[k], time.Time{}).IsZero() {
			return nil, s.validation(k, "INVALID_DATE", fmt.Sprintf("%q is not a valid datetime for %s", out[k], k)), false
		}
	}
	return out, reply{}, true
}

func (s *Server) create(typ string, props map[string]string, _ any) *Object {
	s.nextID++
	id := strconv.FormatInt(s.nextID, 10)
	now := s.opts.Clock.Now()
	o := &Object{Type: typ, ID: id, Properties: props, CreatedAt: now, UpdatedAt: now, Assoc: map[string]map[string][]int{}}
	props["hs_object_id"] = id
	props["createdate"] = iso(now)
	mod := "hs_lastmodifieddate"
	if typ == "contacts" {
		mod = "lastmodifieddate"
	}
	if typ == "notes" {
		props["hs_createdate"] = iso(now)
	}
	props[mod] = iso(now)
	s.objects[typ][id] = o
	return o
}

// touch records a modification: new values, a new hs_lastmodifieddate and a new search version.
func (s *Server) touch(o *Object, now time.Time, set map[string]string) {
	for k, v := range set {
		o.Properties[k] = v
	}
	o.UpdatedAt = now
	if o.Type == "contacts" {
		o.Properties["lastmodifieddate"] = iso(now)
	} else {
		o.Properties["hs_lastmodifieddate"] = iso(now)
	}
	o.history = append(o.history, snapshot{at: now, props: cloneProps(o.Properties), assoc: cloneAssoc(o.Assoc)})
}

func addAssoc(o *Object, toType, id string, typeID int) {
	if o.Assoc[toType] == nil {
		o.Assoc[toType] = map[string][]int{}
	}
	for _, t := range o.Assoc[toType][id] {
		if t == typeID {
			return
		}
	}
	o.Assoc[toType][id] = append(o.Assoc[toType][id], typeID)
}

func (s *Server) lookup(typ, id string, q map[string][]string) *Object {
	if idp := first(q["idProperty"]); idp != "" && idp != "hs_object_id" {
		for _, o := range s.objects[typ] {
			if strings.EqualFold(o.Properties[idp], id) {
				return o
			}
		}
		return nil
	}
	return s.objects[typ][id]
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func (s *Server) notFound(id string) reply {
	return s.errReply(404, "OBJECT_NOT_FOUND", "Object not found.  objectId are usually numeric.", map[string]any{"context": map[string][]string{"id": {id}}})
}

func (s *Server) getObject(typ, id string, q map[string][]string) reply {
	o := s.lookup(typ, id, q)
	if o == nil {
		return s.notFound(id)
	}
	return reply{status: 200, body: s.objectJSON(o, splitList(q["properties"]), false, splitList(q["associations"])...)}
}

func splitList(v []string) []string {
	var out []string
	for _, x := range v {
		for _, p := range strings.Split(x, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
	}
	return out
}

func (s *Server) listObjects(typ string, q map[string][]string) reply {
	limit, _ := strconv.Atoi(first(q["limit"]))
	if limit <= 0 || limit > 100 {
		limit = 10
	}
	var all []*Object
	for _, o := range s.objects[typ] {
		all = append(all, o)
	}
	sort.Slice(all, func(i, j int) bool { return idLess(all[i].ID, all[j].ID) })
	var res []any
	for i, o := range all {
		if i >= limit {
			break
		}
		res = append(res, s.objectJSON(o, splitList(q["properties"]), false))
	}
	return reply{status: 200, body: map[string]any{"results": nonNil(res)}}
}

func nonNil(v []any) []any {
	if v == nil {
		return []any{}
	}
	return v
}

func (s *Server) patchObject(typ, id string, body []byte) reply {
	o := s.objects[typ][id]
	if o == nil {
		return s.notFound(id)
	}
	var in objectInput
	if err := json.Unmarshal(body, &in); err != nil {
		return s.errReply(400, "VALIDATION_ERROR", "Invalid input JSON on line 1: "+err.Error(), nil)
	}
	props, rep, ok := s.validateProps(typ, in.Properties)
	if !ok {
		return rep
	}
	if st, ok := props["hs_pipeline_stage"]; ok && typ == "tickets" && !s.hasStage(st) {
		return s.validation("hs_pipeline_stage", "INVALID_OPTION", fmt.Sprintf("%q was not one of the allowed options", st))
	}
	s.touch(o, s.opts.Clock.Now(), props)
	return reply{status: 200, body: s.objectJSON(o, nil, false)}
}

func (s *Server) batchRead(typ string, body []byte) reply {
	var in struct {
		Properties []string `json:"properties"`
		Inputs     []struct {
			ID string `json:"id"`
		} `json:"inputs"`
	}
	if err := json.Unmarshal(body, &in); err != nil {
		return s.errReply(400, "VALIDATION_ERROR", "Invalid input JSON on line 1: "+err.Error(), nil)
	}
	var res []any
	for _, x := range in.Inputs {
		if o := s.objects[typ][x.ID]; o != nil {
			res = append(res, s.objectJSON(o, in.Properties, false))
		}
	}
	return reply{status: 200, body: map[string]any{"status": "COMPLETE", "results": nonNil(res),
		"startedAt": iso(s.opts.Clock.Now()), "completedAt": iso(s.opts.Clock.Now())}}
}

func (s *Server) listAssociations(fromType, id, toType string) reply {
	o := s.objects[fromType][id]
	if o == nil {
		return s.notFound(id)
	}
	ids := make([]string, 0, len(o.Assoc[toType]))
	for to := range o.Assoc[toType] {
		ids = append(ids, to)
	}
	sort.Slice(ids, func(i, j int) bool { return idLess(ids[i], ids[j]) })
	var res []any
	for _, to := range ids {
		var types []any
		for _, t := range o.Assoc[toType][to] {
			types = append(types, map[string]any{"category": "HUBSPOT_DEFINED", "typeId": t, "label": nil})
		}
		n, _ := strconv.ParseInt(to, 10, 64)
		res = append(res, map[string]any{"toObjectId": n, "associationTypes": types})
	}
	return reply{status: 200, body: map[string]any{"results": nonNil(res)}}
}

func (s *Server) createProperty(typ string, body []byte) reply {
	var p Property
	if err := json.Unmarshal(body, &p); err != nil || p.Name == "" || p.Label == "" || p.Type == "" || p.FieldType == "" || p.GroupName == "" {
		return s.errReply(400, "VALIDATION_ERROR", "name, label, type, fieldType and groupName are required", nil)
	}
	if _, ok := s.props[typ][p.Name]; ok {
		return s.errReply(409, "CONFLICT", fmt.Sprintf("Property named '%s' already exists.", p.Name), nil)
	}
	p.Custom = true
	s.props[typ][p.Name] = p
	return reply{status: 201, body: p}
}

// objectJSON renders an object as the API does; props are the requested properties.
func (s *Server) objectJSON(o *Object, props []string, _ bool, assoc ...string) map[string]any {
	return renderObject(o.ID, o.Type, o.Properties, o.CreatedAt, o.UpdatedAt, props, o.Assoc, assoc)
}

func renderObject(id, typ string, all map[string]string, created, updated time.Time, props []string, assocs map[string]map[string][]int, want []string) map[string]any {
	out := map[string]any{}
	base := []string{"createdate", "hs_object_id"}
	switch typ {
	case "contacts":
		base = append(base, "email", "firstname", "lastname", "lastmodifieddate")
	case "tickets":
		base = append(base, "subject", "content", "hs_pipeline", "hs_pipeline_stage", "hs_lastmodifieddate")
	case "notes":
		base = append(base, "hs_lastmodifieddate")
	}
	for _, k := range append(base, props...) {
		if v, ok := all[k]; ok && v != "" {
			out[k] = v
		} else {
			out[k] = nil
		}
	}
	obj := map[string]any{"id": id, "properties": out, "createdAt": iso(created), "updatedAt": iso(updated), "archived": false}
	if len(want) > 0 {
		as := map[string]any{}
		for _, w := range want {
			ids := make([]string, 0)
			for to := range assocs[w] {
				ids = append(ids, to)
			}
			if len(ids) == 0 {
				continue
			}
			sort.Slice(ids, func(i, j int) bool { return idLess(ids[i], ids[j]) })
			var res []any
			for _, to := range ids {
				res = append(res, map[string]string{"id": to, "type": strings.TrimSuffix(typ, "s") + "_to_" + strings.TrimSuffix(w, "s")})
			}
			as[w] = map[string]any{"results": res}
		}
		if len(as) > 0 {
			obj["associations"] = as
		}
	}
	return obj
}

// ---------------------------------------------------------------------------------------------
// search

type filter struct {
	PropertyName string `json:"propertyName"`
	Operator     string `json:"operator"`
	Value        any    `json:"value"`
	Values       []any  `json:"values"`
	HighValue    any    `json:"highValue"`
}

type searchInput struct {
	FilterGroups []struct {
		Filters []filter `json:"filters"`
	} `json:"filterGroups"`
	Sorts []struct {
		PropertyName string `json:"propertyName"`
		Direction    string `json:"direction"`
	} `json:"sorts"`
	Properties []string `json:"properties"`
	Limit      int      `json:"limit"`
	After      string   `json:"after"`
	Query      string   `json:"query"`
}

// defaultDates are the built-in datetime properties; custom ones are datetime by their definition.
var defaultDates = map[string]bool{"createdate": true, "hs_lastmodifieddate": true, "lastmodifieddate": true, "hs_timestamp": true,
	"hs_createdate": true, "hs_last_message_received_at": true, "hs_lastactivitydate": true, "notes_last_updated": true}

// ActivityDates are HubSpot's own activity dates on tickets. A real portal computes them
// asynchronously, and not every portal has them; the fake defines them (unless
// Options.NoActivityDates) and never sets them on its own: SetActivityDate does.
var ActivityDates = []string{"hs_last_message_received_at", "hs_lastactivitydate", "notes_last_updated"}

// dateProps is the set of a type's datetime properties.
func (s *Server) dateProps(typ string) map[string]bool {
	out := map[string]bool{}
	for n, p := range s.props[typ] {
		if p.Type == "datetime" || p.Type == "date" {
			out[n] = true
		}
	}
	return out
}

func (s *Server) searchObjects(typ string, body []byte) reply {
	var in searchInput
	if err := json.Unmarshal(body, &in); err != nil {
		return s.errReply(400, "VALIDATION_ERROR", "Invalid input JSON on line 1: "+err.Error(), nil)
	}
	if in.Limit > 200 {
		return s.errReply(400, "VALIDATION_ERROR", "limit must be at most 200", nil)
	}
	if in.Limit <= 0 {
		in.Limit = 10
	}
	if rep, bad := s.checkSearch(typ, body, in); bad {
		return rep
	}
	dates := s.dateProps(typ)
	now := s.opts.Clock.Now()
	type hit struct {
		id      string
		snap    snapshot
		o       *Object
		created time.Time
	}
	var hits []hit
	for _, o := range s.objects[typ] {
		snap, ok := indexed(o, now.Add(-s.opts.SearchLag))
		if !ok {
			continue
		}
		if !matches(snap, in, dates) {
			continue
		}
		hits = append(hits, hit{o.ID, snap, o, o.CreatedAt})
	}
	sort.Slice(hits, func(i, j int) bool {
		for _, so := range in.Sorts {
			a, b := hits[i].snap.props[so.PropertyName], hits[j].snap.props[so.PropertyName]
			c := compare(dates, so.PropertyName, a, b)
			if c == 0 {
				continue
			}
			if strings.EqualFold(so.Direction, "DESCENDING") {
				return c > 0
			}
			return c < 0
		}
		return idLess(hits[i].id, hits[j].id)
	})
	start, _ := strconv.Atoi(in.After)
	var res []any
	for i := start; i < len(hits) && i < start+in.Limit; i++ {
		h := hits[i]
		res = append(res, renderObject(h.id, typ, h.snap.props, h.created, mustTime(h.snap.props["hs_lastmodifieddate"], h.o.UpdatedAt), in.Properties, nil, nil))
	}
	out := map[string]any{"total": len(hits), "results": nonNil(res)}
	if start+in.Limit < len(hits) {
		out["paging"] = map[string]any{"next": map[string]string{"after": strconv.Itoa(start + in.Limit)}}
	}
	return reply{status: 200, body: out}
}

// Search limits HubSpot documents (DESIGN section 9); the fake refuses what the portal would.
const (
	maxFilterGroups     = 5
	maxFiltersPerGroup  = 6
	maxFiltersInAll     = 18
	maxSearchBodyLength = 3000
)

// checkSearch refuses a search past HubSpot's limits or filtering on a property the type lacks.
func (s *Server) checkSearch(typ string, body []byte, in searchInput) (reply, bool) {
	if len(body) > maxSearchBodyLength {
		return s.errReply(400, "VALIDATION_ERROR", fmt.Sprintf("search request body is %d characters, more than %d", len(body), maxSearchBodyLength), nil), true
	}
	if len(in.FilterGroups) > maxFilterGroups {
		return s.errReply(400, "VALIDATION_ERROR", fmt.Sprintf("at most %d filterGroups", maxFilterGroups), nil), true
	}
	total := 0
	for _, g := range in.FilterGroups {
		if len(g.Filters) > maxFiltersPerGroup {
			return s.errReply(400, "VALIDATION_ERROR", fmt.Sprintf("at most %d filters in a filterGroup", maxFiltersPerGroup), nil), true
		}
		total += len(g.Filters)
		for _, f := range g.Filters {
			if strings.HasPrefix(f.PropertyName, "associations.") {
				continue
			}
			if _, ok := s.props[typ][f.PropertyName]; !ok {
				return s.errReply(400, "VALIDATION_ERROR", fmt.Sprintf("Property %q does not exist on %s", f.PropertyName, typ), nil), true
			}
		}
	}
	if total > maxFiltersInAll {
		return s.errReply(400, "VALIDATION_ERROR", fmt.Sprintf("at most %d filters in all", maxFiltersInAll), nil), true
	}
	return reply{}, false
}

// indexed is the latest version of o the search index holds at time cut.
func indexed(o *Object, cut time.Time) (snapshot, bool) {
	var best snapshot
	ok := false
	for _, h := range o.history {
		if !h.at.After(cut) {
			best, ok = h, true
		}
	}
	return best, ok
}

func matches(snap snapshot, in searchInput, dates map[string]bool) bool {
	if len(in.FilterGroups) == 0 {
		return true
	}
	for _, g := range in.FilterGroups {
		all := true
		for _, f := range g.Filters {
			if !matchFilter(snap, f, dates) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

func str(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func matchFilter(snap snapshot, f filter, dates map[string]bool) bool {
	if toType, ok := strings.CutPrefix(f.PropertyName, "associations."); ok {
		ids := snap.assoc[toType+"s"]
		switch f.Operator {
		case "EQ":
			_, has := ids[str(f.Value)]
			return has
		case "IN":
			for _, v := range f.Values {
				if _, has := ids[str(v)]; has {
					return true
				}
			}
			return false
		}
		return false
	}
	v, has := snap.props[f.PropertyName]
	has = has && v != ""
	switch f.Operator {
	case "HAS_PROPERTY":
		return has
	case "NOT_HAS_PROPERTY":
		return !has
	case "EQ":
		return has && compare(dates, f.PropertyName, v, str(f.Value)) == 0
	case "NEQ":
		return !has || compare(dates, f.PropertyName, v, str(f.Value)) != 0
	case "IN", "NOT_IN":
		in := false
		for _, x := range f.Values {
			if has && compare(dates, f.PropertyName, v, str(x)) == 0 {
				in = true
			}
		}
		return in == (f.Operator == "IN")
	case "GT":
		return has && compare(dates, f.PropertyName, v, str(f.Value)) > 0
	case "GTE":
		return has && compare(dates, f.PropertyName, v, str(f.Value)) >= 0
	case "LT":
		return has && compare(dates, f.PropertyName, v, str(f.Value)) < 0
	case "LTE":
		return has && compare(dates, f.PropertyName, v, str(f.Value)) <= 0
	case "BETWEEN":
		return has && compare(dates, f.PropertyName, v, str(f.Value)) >= 0 && compare(dates, f.PropertyName, v, str(f.HighValue)) <= 0
	case "CONTAINS_TOKEN":
		return has && strings.Contains(strings.ToLower(v), strings.ToLower(strings.Trim(str(f.Value), "*")))
	}
	return false
}

// compare orders two values of a property: datetimes by instant (epoch ms or ISO 8601), numbers
// numerically, strings case-insensitively (HubSpot's EQ on strings ignores case).
func compare(dates map[string]bool, prop, a, b string) int {
	if dates[prop] {
		ta, tb := mustTime(a, time.Time{}), mustTime(b, time.Time{})
		return ta.Compare(tb)
	}
	fa, ea := strconv.ParseFloat(a, 64)
	fb, eb := strconv.ParseFloat(b, 64)
	if ea == nil && eb == nil {
		switch {
		case fa < fb:
			return -1
		case fa > fb:
			return 1
		}
		return 0
	}
	return strings.Compare(strings.ToLower(a), strings.ToLower(b))
}

func mustTime(v string, def time.Time) time.Time {
	if v == "" {
		return def
	}
	if ms, err := strconv.ParseInt(v, 10, 64); err == nil {
		return time.UnixMilli(ms).UTC()
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t
	}
	return def
}

func iso(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func idLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

func cloneProps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func cloneAssoc(m map[string]map[string][]int) map[string]map[string][]int {
	out := make(map[string]map[string][]int, len(m))
	for k, v := range m {
		out[k] = map[string][]int{}
		for id, t := range v {
			out[k][id] = append([]int(nil), t...)
		}
	}
	return out
}

// ---------------------------------------------------------------------------------------------
// failure injectors

// Script fails the calls matching method and path prefix, in order, with the given faults; later
// matching calls succeed.
func Script(method, pathPrefix string, faults ...Fault) Injector {
	var mu sync.Mutex
	i := 0
	return func(_ int, m, p string) *Fault {
		if (method != "" && m != method) || !strings.HasPrefix(p, pathPrefix) {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		if i >= len(faults) {
			return nil
		}
		f := faults[i]
		i++
		return &f
	}
}

// Random fails each call with probability rate, picking one of faults, from a seeded source so
// that a test run is reproducible (given the same order of calls).
func Random(seed uint64, rate float64, faults ...Fault) Injector {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	return func(int, string, string) *Fault {
		mu.Lock()
		defer mu.Unlock()
		if rng.Float64() >= rate || len(faults) == 0 {
			return nil
		}
		f := faults[rng.IntN(len(faults))]
		return &f
	}
}

// slowOnly says the fault only delays the call, which is then handled normally.
func (f *Fault) slowOnly() bool { return f.Delay > 0 && f.Status == 0 && !f.Drop && !f.Apply }

// fromPlan is a plan's decision as a Fault; nil for a call that succeeds.
func fromPlan(d faults.Decision) *Fault {
	switch d.Kind {
	case faults.Status:
		return &Fault{Status: d.Status}
	case faults.Reset:
		return &Fault{Drop: true}
	case faults.Slow:
		return &Fault{Delay: d.Delay}
	case faults.Lost:
		return &Fault{Apply: true, Drop: true}
	}
	return nil
}

// Bodies returns the JSON bodies of recorded calls matching method and path prefix, decoded.
func (s *Server) Bodies(method, prefix string) []map[string]any {
	var out []map[string]any
	for _, c := range s.Calls() {
		if c.Method == method && strings.HasPrefix(c.Path, prefix) {
			var m map[string]any
			_ = json.NewDecoder(bytes.NewReader(c.Body)).Decode(&m)
			out = append(out, m)
		}
	}
	return out
}
