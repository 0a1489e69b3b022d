package clickupfake

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/fakes/faults"
)

// A fault plan fails valid calls the way ClickUp and the network do: an error body, a reset before
// anything is done, a slow answer, a write carried out whose answer is lost.
func TestFaultPlan(t *testing.T) {
	tests := []struct {
		kind      faults.Kind
		wantErr   bool
		wantCode  int
		wantSaved bool
	}{
		{faults.Status, false, 503, false},
		{faults.Reset, true, 0, false},
		{faults.Slow, false, 200, true},
		{faults.Lost, true, 0, true},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			s := New(t)
			p := &faults.Plan{Seed: 1, Rate: 1, Kinds: []faults.Kind{tt.kind}, Statuses: []int{503}, Delay: 50 * time.Millisecond}
			s.SetFaults(p)
			req, _ := http.NewRequest("POST", s.URL+"/api/v2/list/"+ListID+"/task", strings.NewReader(`{"name":"Sous-tâche","parent":"`+ParentID+`"}`))
			req.Header.Set("Authorization", Token)
			req.Header.Set("Content-Type", "application/json")
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
				if tt.kind == faults.Status && b["ECODE"] != "FAKE_INJECTED" {
					t.Errorf("error body %v", b)
				}
			}
			if saved := len(s.Subtasks(ParentID)) == 1; saved != tt.wantSaved {
				t.Errorf("subtask saved: %v, want %v", saved, tt.wantSaved)
			}
			if tt.kind == faults.Slow && time.Since(start) < 50*time.Millisecond {
				t.Errorf("slow answer came after %v", time.Since(start))
			}
			if p.Counts()[tt.kind] != 1 {
				t.Errorf("plan: %s", p)
			}
			// Refusals come before the plan: a bad token is 401 whatever the plan says.
			req, _ = http.NewRequest("GET", s.URL+"/api/v2/user", nil)
			req.Header.Set("Authorization", "pk_wrong")
			if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 401 {
				t.Errorf("bad token: %v %v", resp, err)
			} else {
				resp.Body.Close()
			}
		})
	}
}

func TestLatency(t *testing.T) {
	for _, d := range []time.Duration{0, 40 * time.Millisecond} {
		t.Run(d.String(), func(t *testing.T) {
			s := New(t)
			s.SetLatency(d)
			req, _ := http.NewRequest(http.MethodGet, s.URL+"/api/v2/task/"+ParentID, nil)
			req.Header.Set("Authorization", Token)
			start := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			// The latency is a lower bound whatever the machine's load.
			if got := time.Since(start); got < d || resp.StatusCode != http.StatusOK {
				t.Errorf("status %d after %v, want 200 after at least %v", resp.StatusCode, got, d)
			}
			if n := s.Count(http.MethodGet, "/api/v2/task/"); n != 1 {
				t.Errorf("%d calls recorded, want 1", n)
			}
		})
	}
}
