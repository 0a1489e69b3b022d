package faults

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

type call struct{ method, path, body string }

func calls(n int) []call {
	out := make([]call, 0, n)
	for i := range n {
		// Repeats of one call as well as distinct calls: the n-th repeat gets its own draw.
		out = append(out, call{"POST", "/objects", fmt.Sprintf(`{"n":%d}`, i%(n/3))})
	}
	return out
}

func TestDecideIsReproducibleWhateverTheOrder(t *testing.T) {
	cs := calls(600)
	fates := func(seed uint64, order []int) map[string][]Decision {
		p := &Plan{Seed: seed, Rate: 1.0 / 3}
		out := map[string][]Decision{}
		for _, i := range order {
			c := cs[i]
			out[c.body] = append(out[c.body], p.Decide(c.method, c.path, []byte(c.body)))
		}
		return out
	}
	inOrder := make([]int, len(cs))
	for i := range inOrder {
		inOrder[i] = i
	}
	shuffled := append([]int(nil), inOrder...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })

	a, b := fates(7, inOrder), fates(7, shuffled)
	for k := range a {
		if fmt.Sprint(a[k]) != fmt.Sprint(b[k]) {
			t.Fatalf("call %s: %v in order, %v shuffled", k, a[k], b[k])
		}
	}
	if c := fates(8, inOrder); fmt.Sprint(c) == fmt.Sprint(a) {
		t.Errorf("seeds 7 and 8 decide alike")
	}
}

func TestDecideRateAndKinds(t *testing.T) {
	tests := []struct {
		name  string
		plan  *Plan
		want  float64 // failing fraction
		kinds []Kind
	}{
		{"nil plan fails nothing", nil, 0, nil},
		{"zero rate fails nothing", &Plan{Seed: 1}, 0, nil},
		{"a third, every kind", &Plan{Seed: 1, Rate: 1.0 / 3}, 1.0 / 3, All},
		{"all calls, only lost", &Plan{Seed: 2, Rate: 1, Kinds: []Kind{Lost}}, 1, []Kind{Lost}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const n = 3000
			failed := 0
			seen := map[Kind]int{}
			for _, c := range calls(n) {
				d := tt.plan.Decide(c.method, c.path, []byte(c.body))
				if d.Failed() {
					failed++
					seen[d.Kind]++
				}
				if d.Kind == Status && (d.Status < 500 || d.Status > 599) {
					t.Fatalf("status %d", d.Status)
				}
				if d.Kind == Slow && d.Delay != DefaultDelay {
					t.Fatalf("delay %v", d.Delay)
				}
			}
			if got := float64(failed) / n; got < tt.want-0.03 || got > tt.want+0.03 {
				t.Errorf("failed %.3f of calls, want about %.3f", got, tt.want)
			}
			for _, k := range tt.kinds {
				if seen[k] < failed/len(tt.kinds)/2 {
					t.Errorf("kind %s drawn %d times of %d failures", k, seen[k], failed)
				}
			}
			if tt.plan != nil && tt.plan.Failed() != failed {
				t.Errorf("plan counted %d failures, saw %d (%s)", tt.plan.Failed(), failed, tt.plan)
			}
		})
	}
}

func TestWrap(t *testing.T) {
	tests := []struct {
		name      string
		kind      Kind
		wantErr   bool // the client sees a transport error
		wantCode  int
		wantWrite bool // the handler ran
		minTime   time.Duration
	}{
		{"status", Status, false, 503, false, 0},
		{"reset", Reset, true, 0, false, 0},
		{"slow", Slow, false, 200, true, 100 * time.Millisecond},
		{"lost", Lost, true, 0, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var writes atomic.Int32
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				b, _ := io.ReadAll(r.Body)
				if string(b) != "payload" {
					t.Errorf("handler read %q", b)
				}
				writes.Add(1)
				io.WriteString(w, "ok")
			})
			p := &Plan{Seed: 3, Rate: 1, Kinds: []Kind{tt.kind}, Statuses: []int{503}, Delay: 100 * time.Millisecond}
			srv := httptest.NewServer(Wrap(h, func() *Plan { return p }, nil))
			defer srv.Close()
			start := time.Now()
			resp, err := http.Post(srv.URL+"/x", "text/plain", strings.NewReader("payload"))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want an error: %v", err, tt.wantErr)
			}
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode != tt.wantCode {
					t.Errorf("status %d, want %d", resp.StatusCode, tt.wantCode)
				}
			}
			if got := writes.Load() == 1; got != tt.wantWrite {
				t.Errorf("handler ran: %v, want %v", got, tt.wantWrite)
			}
			if d := time.Since(start); d < tt.minTime {
				t.Errorf("answered after %v, want at least %v", d, tt.minTime)
			}
			if c := p.Counts(); c[tt.kind] != 1 {
				t.Errorf("counts %v", c)
			}
		})
	}
}

// Latency holds every answer back, after the handler ran.
func TestWrapLatency(t *testing.T) {
	var ran atomic.Bool
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ran.Store(true)
		w.Header().Set("X-Test", "1")
		w.WriteHeader(201)
	})
	p := &Plan{Latency: 100 * time.Millisecond}
	srv := httptest.NewServer(Wrap(h, func() *Plan { return p }, nil))
	defer srv.Close()
	start := time.Now()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 || resp.Header.Get("X-Test") != "1" || !ran.Load() || time.Since(start) < p.Latency {
		t.Errorf("status %d header %q ran %v after %v", resp.StatusCode, resp.Header.Get("X-Test"), ran.Load(), time.Since(start))
	}
}
