package health

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWorst(t *testing.T) {
	tests := []struct {
		name   string
		checks []Check
		want   string
	}{
		{"none", nil, OK},
		{"all ok", []Check{{Status: OK}, {Status: OK}}, OK},
		{"skip counts as ok", []Check{{Status: OK}, {Status: Skip}}, OK},
		{"warn beats ok", []Check{{Status: OK}, {Status: Warn}}, Warn},
		{"fail beats warn", []Check{{Status: Warn}, {Status: Fail}, {Status: Skip}}, Fail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Worst(tt.checks); got != tt.want {
				t.Fatalf("Worst = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestReach(t *testing.T) {
	status := func(code int) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method != http.MethodHead || r.URL.Path != "/" {
				t.Errorf("%s %s, want HEAD /", r.Method, r.URL.Path)
			}
			w.WriteHeader(code)
		}))
		t.Cleanup(srv.Close)
		return srv.URL + "/crm/v3"
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	tests := []struct {
		name    string
		url     string
		reached bool
	}{
		{"200", status(http.StatusOK), true},
		{"401 is an answer", status(http.StatusUnauthorized), true},
		{"500 is an answer", status(http.StatusInternalServerError), true},
		{"redirect is an answer", status(http.StatusFound), true},
		{"nobody listening", closed, false},
		{"not a URL", "not a url", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Reach(context.Background(), nil, tt.url)
			if (err == nil) != tt.reached {
				t.Fatalf("Reach(%s) = %v, want reached %v", tt.url, err, tt.reached)
			}
			if tt.name == "nobody listening" && !errors.Is(err, ErrUnreachable) {
				t.Fatalf("err = %v, want ErrUnreachable", err)
			}
		})
	}
}
