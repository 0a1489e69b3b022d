package main

import (
	"strings"
	"testing"
)

func TestParseMedians(t *testing.T) {
	out := `goos: linux
BenchmarkStartup-2   	      60	  51649737 ns/op	        38.40 classify-ms	        11.14 hello-world-ms
BenchmarkStartup-2   	      60	  51649737 ns/op	        30.00 classify-ms	        9.00 hello-world-ms
BenchmarkStartup-2   	      60	  51649737 ns/op	        34.00 classify-ms	        10.00 hello-world-ms
BenchmarkIntake/tickets=0-2 1 12522905820 ns/op 37.52 async-%-of-yardstick
--- BENCH: BenchmarkStartup-2
PASS
`
	r := results{}
	if err := parse(strings.NewReader(out), r); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		bench, metric string
		want          float64
		ok            bool
	}{
		{"BenchmarkStartup", "classify-ms", 34, true},
		{"BenchmarkStartup", "hello-world-ms", 10, true},
		{"BenchmarkIntake/tickets=0", "async-%-of-yardstick", 37.52, true},
		{"BenchmarkStartup", "absent", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.bench+" "+tt.metric, func(t *testing.T) {
			got, ok := r.get(tt.bench, tt.metric)
			if got != tt.want || ok != tt.ok {
				t.Errorf("got %v %v, want %v %v", got, ok, tt.want, tt.ok)
			}
		})
	}
	m := metrics{r: r}
	if fig, met := rows[len(rows)-1].show(&m); len(m.missing) > 0 || met || !strings.Contains(fig, "34.0 ms") {
		t.Errorf("start-up row: %q met=%v missing=%v", fig, met, m.missing)
	}
}
