package latency

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestWrap(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	tests := []struct {
		name     string
		delay    time.Duration
		deadline time.Duration // the client's; 0 for none
		wantBody string
		wantErr  bool
	}{
		{name: "no delay", wantBody: "ok"},
		{name: "delayed, then served", delay: 30 * time.Millisecond, wantBody: "ok"},
		{name: "client gives up first", delay: time.Minute, deadline: 20 * time.Millisecond, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := Wrap(ok, tt.delay)
			srv := httptest.NewServer(l)
			defer srv.Close()
			ctx := context.Background()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
			start := time.Now()
			resp, err := srv.Client().Do(req)
			if tt.wantErr {
				if err == nil {
					resp.Body.Close()
					t.Fatal("got an answer, want the client's deadline")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			// The delay is a lower bound whatever the machine's load.
			if got := time.Since(start); got < tt.delay {
				t.Errorf("answered after %v, want at least %v", got, tt.delay)
			}
			if string(body) != tt.wantBody || l.Calls() != 1 {
				t.Errorf("body %q, %d calls; want %q, 1", body, l.Calls(), tt.wantBody)
			}
		})
	}
}
