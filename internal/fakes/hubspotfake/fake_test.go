package hubspotfake

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/fakes/faults"
)

func call(t *testing.T, s *Server, method, path, token, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return resp, m
}

func TestDocumentedAnswers(t *testing.T) {
	clock := NewClock(time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))
	s := New(Options{Clock: clock, EnforceLimits: true})
	defer s.Close()

	if resp, b := call(t, s, "GET", "/crm/v3/objects/tickets", "wrong", ""); resp.StatusCode != 401 || b["category"] != "INVALID_AUTHENTICATION" {
		t.Errorf("bad token: %d %v", resp.StatusCode, b)
	}
	resp, b := call(t, s, "POST", "/crm/v3/objects/contacts", "pat-test", `{"properties":{"email":"A@x.io"}}`)
	if resp.StatusCode != 201 || b["id"] == "" || b["createdAt"] == nil || b["archived"] != false {
		t.Errorf("create: %d %v", resp.StatusCode, b)
	}
	if resp, b := call(t, s, "POST", "/crm/v3/objects/contacts", "pat-test", `{"properties":{"email":"a@x.io"}}`); resp.StatusCode != 409 ||
		!strings.HasPrefix(b["message"].(string), "Contact already exists. Existing ID: ") {
		t.Errorf("duplicate: %d %v", resp.StatusCode, b)
	}
	if resp, b := call(t, s, "POST", "/crm/v3/objects/tickets", "pat-test", `{"properties":{"subject":"s","hs_pipeline_stage":"1","fichiers_urls":"x"}}`); resp.StatusCode != 400 ||
		b["category"] != "VALIDATION_ERROR" || !strings.Contains(b["message"].(string), "PROPERTY_DOESNT_EXIST") {
		t.Errorf("unknown property: %d %v", resp.StatusCode, b)
	}
	// Searches past 5 in one second: 429 SECONDLY with the rate-limit headers.
	var last *http.Response
	for range 6 {
		last, b = call(t, s, "POST", "/crm/v3/objects/tickets/search", "pat-test", `{"limit":1}`)
	}
	if last.StatusCode != 429 || b["policyName"] != "SECONDLY" || b["errorType"] != "RATE_LIMIT" || last.Header.Get("X-HubSpot-RateLimit-Remaining") != "0" {
		t.Errorf("search flood: %d %v %v", last.StatusCode, b, last.Header)
	}
	clock.Advance(2 * time.Second)
	if resp, _ := call(t, s, "POST", "/crm/v3/objects/tickets/search", "pat-test", `{"limit":1}`); resp.StatusCode != 200 {
		t.Errorf("search after a second: %d", resp.StatusCode)
	}
	if n := s.Count("POST", "/crm/v3/objects/tickets/search"); n != 7 {
		t.Errorf("recorded %d searches, want 7", n)
	}
}

func TestSearchLimits(t *testing.T) {
	s := New(Options{})
	defer s.Close()
	group := func(n int) string {
		var f []string
		for range n {
			f = append(f, `{"propertyName":"hs_pipeline","operator":"EQ","value":"0"}`)
		}
		return `{"filters":[` + strings.Join(f, ",") + `]}`
	}
	groups := func(sizes ...int) string {
		var g []string
		for _, n := range sizes {
			g = append(g, group(n))
		}
		return `{"filterGroups":[` + strings.Join(g, ",") + `],"limit":1}`
	}
	tests := []struct {
		name, body string
		want       int
	}{
		{"5 groups of 3", groups(3, 3, 3, 3, 3), 200},
		{"18 filters in all", groups(6, 6, 6), 200},
		{"6 groups", groups(1, 1, 1, 1, 1, 1), 400},
		{"7 filters in a group", groups(7), 400},
		{"19 filters in all", groups(6, 6, 6, 1), 400},
		{"body over 3000 characters", `{"query":"` + strings.Repeat("x", 3000) + `","limit":1}`, 400},
		{"unknown property", `{"filterGroups":[{"filters":[{"propertyName":"nope","operator":"GTE","value":"1"}]}]}`, 400},
		{"association filter", `{"filterGroups":[{"filters":[{"propertyName":"associations.contact","operator":"EQ","value":"1"}]}]}`, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, b := call(t, s, "POST", "/crm/v3/objects/tickets/search", "pat-test", tt.body)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d (%v), want %d", resp.StatusCode, b, tt.want)
			}
		})
	}
}

// TestActivity: a note associated with a ticket leaves its hs_lastmodifieddate alone (as HubSpot
// does); an agent's change of stage moves it; HubSpot's own activity dates are set only when told.
func TestActivity(t *testing.T) {
	clock := NewClock(time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC))
	s := New(Options{Clock: clock})
	defer s.Close()
	c := s.SeedContact("a@x.io")
	tk := s.SeedTicket(c, "s", "1", clock.Now())
	modified := func() string { o, _ := s.Object("tickets", tk); return o.Properties["hs_lastmodifieddate"] }
	before := modified()
	clock.Advance(time.Hour)
	if resp, b := call(t, s, "POST", "/crm/v3/objects/notes", "pat-test",
		`{"properties":{"hs_note_body":"x","hs_timestamp":"1767603600000"},"associations":[{"to":{"id":"`+tk+`"},"types":[{"associationCategory":"HUBSPOT_DEFINED","associationTypeId":228}]}]}`); resp.StatusCode != 201 {
		t.Fatalf("note: %d %v", resp.StatusCode, b)
	}
	if got := modified(); got != before {
		t.Errorf("hs_lastmodifieddate after a note = %s, want %s unchanged", got, before)
	}
	clock.Advance(time.Hour)
	if !s.AgentSetStage(tk, "2") {
		t.Fatal("AgentSetStage failed")
	}
	if o, _ := s.Object("tickets", tk); o.Properties["hs_pipeline_stage"] != "2" || o.Properties["hs_lastmodifieddate"] != iso(clock.Now()) {
		t.Errorf("after the agent's change: %v", o.Properties)
	}
	if o, _ := s.Object("tickets", tk); o.Properties["hs_lastactivitydate"] != "" {
		t.Errorf("hs_lastactivitydate set on its own: %v", o.Properties)
	}
	if !s.SetActivityDate(tk, "hs_lastactivitydate", clock.Now()) {
		t.Error("SetActivityDate failed")
	}
	none := New(Options{NoActivityDates: true})
	defer none.Close()
	if none.SetActivityDate(none.SeedTicket(none.SeedContact("b@x.io"), "s", "1", clock.Now()), "hs_lastactivitydate", clock.Now()) {
		t.Error("SetActivityDate on a portal without the property")
	}
	// A datetime takes epoch ms or ISO 8601, nothing else.
	call(t, s, "POST", "/crm/v3/properties/tickets", "pat-test", `{"name":"d","label":"d","type":"datetime","fieldType":"date","groupName":"ticketinformation"}`)
	for value, want := range map[string]int{`"1767603600000"`: 200, `"2026-01-05T09:00:00Z"`: 200, `"demain"`: 400} {
		if resp, b := call(t, s, "PATCH", "/crm/v3/objects/tickets/"+tk, "pat-test", `{"properties":{"d":`+value+`}}`); resp.StatusCode != want {
			t.Errorf("datetime %s: %d %v, want %d", value, resp.StatusCode, b, want)
		}
	}
}

// A fault plan fails calls the way HubSpot and the network do: an error body, a reset before
// anything is done, a slow answer, a create carried out whose answer is lost.
func TestFaultPlan(t *testing.T) {
	tests := []struct {
		kind      faults.Kind
		wantErr   bool
		wantCode  int
		wantSaved bool
	}{
		{faults.Status, false, 502, false},
		{faults.Reset, true, 0, false},
		{faults.Slow, false, 201, true},
		{faults.Lost, true, 0, true},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			p := &faults.Plan{Seed: 1, Rate: 1, Kinds: []faults.Kind{tt.kind}, Statuses: []int{502}, Delay: 50 * time.Millisecond}
			s := New(Options{Faults: p})
			defer s.Close()
			req, _ := http.NewRequest("POST", s.URL+"/crm/v3/objects/contacts", strings.NewReader(`{"properties":{"email":"a@x.io"}}`))
			req.Header.Set("Authorization", "Bearer pat-test")
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want an error: %v", err, tt.wantErr)
			}
			if err == nil {
				var b map[string]any
				_ = json.NewDecoder(resp.Body).Decode(&b)
				resp.Body.Close()
				if resp.StatusCode != tt.wantCode {
					t.Errorf("status %d, want %d", resp.StatusCode, tt.wantCode)
				}
				if tt.kind == faults.Status && b["category"] != "INTERNAL_ERROR" {
					t.Errorf("error body %v", b)
				}
			}
			if saved := len(s.Objects("contacts")) == 1; saved != tt.wantSaved {
				t.Errorf("contact saved: %v, want %v", saved, tt.wantSaved)
			}
			if tt.kind == faults.Slow && time.Since(start) < 50*time.Millisecond {
				t.Errorf("slow answer came after %v", time.Since(start))
			}
			if p.Counts()[tt.kind] != 1 {
				t.Errorf("plan: %s", p)
			}
		})
	}
}

func TestRealClock(t *testing.T) {
	c := NewRealClock()
	if d := time.Since(c.Now()); d < -time.Second || d > time.Second {
		t.Fatalf("real clock is %v away from the machine's", d)
	}
	c.Advance(time.Hour)
	if d := time.Until(c.Now()); d < 59*time.Minute {
		t.Errorf("advanced clock is %v ahead, want an hour", d)
	}
	at := time.Now().Add(-48 * time.Hour)
	c.Set(at)
	if d := c.Now().Sub(at); d < 0 || d > time.Second {
		t.Errorf("set clock is %v from %v", d, at)
	}
}

// TestRealClockLimits: on a clock that runs with real time, the 10 s window of EnforceLimits
// passes (Advance shifts the clock, so the test does not wait ten seconds).
func TestRealClockLimits(t *testing.T) {
	clock := NewRealClock()
	if d := time.Until(clock.Now()); d < -time.Minute || d > time.Minute {
		t.Fatalf("wall clock is %v away from the time", d)
	}
	s := New(Options{Clock: clock, EnforceLimits: true})
	defer s.Close()
	for i := range 100 {
		if resp, _ := call(t, s, "GET", "/crm/v3/objects/tickets", "pat-test", ""); resp.StatusCode != 200 {
			t.Fatalf("call %d: %d, want 200", i+1, resp.StatusCode)
		}
	}
	if resp, b := call(t, s, "GET", "/crm/v3/objects/tickets", "pat-test", ""); resp.StatusCode != 429 || b["policyName"] != "TEN_SECONDLY_ROLLING" {
		t.Fatalf("call 101: %d %v, want 429 TEN_SECONDLY_ROLLING", resp.StatusCode, b)
	}
	clock.Advance(10 * time.Second)
	if resp, _ := call(t, s, "GET", "/crm/v3/objects/tickets", "pat-test", ""); resp.StatusCode != 200 {
		t.Fatalf("after the window: %d, want 200", resp.StatusCode)
	}
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock.Set(at)
	if got := clock.Now(); got.Before(at) || got.After(at.Add(time.Minute)) {
		t.Errorf("after Set(%v): %v", at, got)
	}
}
