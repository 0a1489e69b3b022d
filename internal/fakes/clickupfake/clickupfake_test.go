package clickupfake

import (
	"net/http"
	"testing"
	"time"
)

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
