package hubspotfake

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
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
