package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	p := Policy{Attempts: 5, Base: 100 * time.Millisecond, Max: time.Second}
	tests := []struct {
		name     string
		n        int
		hint     time.Duration
		min, max time.Duration
	}{
		{"first retry within base", 1, 0, 0, 100 * time.Millisecond},
		{"third retry within 4x base", 3, 0, 0, 400 * time.Millisecond},
		{"late retry capped", 20, 0, 0, time.Second},
		{"hint honoured", 1, 700 * time.Millisecond, 700 * time.Millisecond, 700 * time.Millisecond},
		{"hint capped", 1, time.Hour, time.Second, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 200 {
				d := p.Delay(tt.n, tt.hint)
				if d < tt.min || d > tt.max {
					t.Fatalf("Delay(%d, %v) = %v, want in [%v, %v]", tt.n, tt.hint, d, tt.min, tt.max)
				}
			}
		})
	}
}

func TestSleepCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Sleep(ctx, time.Hour); err != context.Canceled {
		t.Fatalf("Sleep on a cancelled context = %v, want context.Canceled", err)
	}
	if err := Sleep(context.Background(), time.Millisecond); err != nil {
		t.Fatalf("Sleep = %v", err)
	}
}
