package bench

import (
	"testing"
	"time"
)

func TestGraph(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name       string
		g          Graph
		floor, seq time.Duration
		calls      Calls
		wantErr    bool
	}{
		{name: "new MODELISATION request", g: NewModelisation, floor: 510 * ms, seq: 830 * ms, calls: Calls{HubSpot: 4, ClickUp: 1, S3: 2}},
		{name: "follow-up", g: FollowUp, floor: 540 * ms, seq: 880 * ms, calls: Calls{HubSpot: 4, ClickUp: 2, S3: 1}},
		{name: "side by side", g: Graph{{Name: "a", Service: HubSpot}, {Name: "b", Service: ClickUp}}, floor: 150 * ms, seq: 270 * ms,
			calls: Calls{HubSpot: 1, ClickUp: 1}},
		{name: "unknown dependency", g: Graph{{Name: "a", Service: HubSpot, After: []string{"b"}}}, wantErr: true},
		{name: "cycle", g: Graph{{Name: "a", Service: HubSpot, After: []string{"b"}}, {Name: "b", Service: S3, After: []string{"a"}}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			floor, err := tt.g.Floor(Injected)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Floor: %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if floor != tt.floor || tt.g.Sequential(Injected) != tt.seq || tt.g.Calls() != tt.calls {
				t.Errorf("floor %v sequential %v calls %+v; want %v %v %+v", floor, tt.g.Sequential(Injected), tt.g.Calls(), tt.floor, tt.seq, tt.calls)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	var sorted []time.Duration
	for i := 1; i <= 100; i++ {
		sorted = append(sorted, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		p    float64
		in   []time.Duration
		want time.Duration
	}{
		{50, sorted, 50 * time.Millisecond},
		{99, sorted, 99 * time.Millisecond},
		{100, sorted, 100 * time.Millisecond},
		{0, sorted, time.Millisecond},
		{99, sorted[:1], time.Millisecond},
		{50, nil, 0},
	}
	for _, tt := range tests {
		if got := percentile(tt.in, tt.p); got != tt.want {
			t.Errorf("p%v of %d values = %v, want %v", tt.p, len(tt.in), got, tt.want)
		}
	}
}
