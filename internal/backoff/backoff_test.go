package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	p := Policy{Attempts: 5, Base: 100 * time.Millisecond, Max: time.Second, MaxHint: time.Minute}
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
		// A server's hint is not cut to the backoff's Max: a reset 40 s away means 40 s.
		{"hint beyond Max honoured", 1, 40 * time.Second, 40 * time.Second, 40 * time.Second},
		{"hint capped at MaxHint", 1, time.Hour, time.Minute, time.Minute},
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
	if d := (Policy{Max: time.Second}).Delay(1, time.Hour); d != DefaultMaxHint {
		t.Errorf("zero MaxHint: Delay = %v, want DefaultMaxHint %v", d, DefaultMaxHint)
	}
}

func TestNext(t *testing.T) {
	p := Policy{Attempts: 5, Base: 100 * time.Millisecond, Max: time.Second, MaxHint: time.Minute}
	deadline := func(d time.Duration) context.Context {
		ctx, cancel := context.WithTimeout(context.Background(), d)
		t.Cleanup(cancel)
		return ctx
	}
	tests := []struct {
		name    string
		ctx     context.Context
		hint    time.Duration
		want    time.Duration // exact when > 0
		wantErr bool
	}{
		{"hint without deadline", context.Background(), 40 * time.Second, 40 * time.Second, false},
		{"hint inside the deadline", deadline(time.Hour), 40 * time.Second, 40 * time.Second, false},
		{"hint past the deadline fails at once", deadline(10 * time.Second), 40 * time.Second, 0, true},
		{"hint beyond MaxHint fails at once", context.Background(), 2 * time.Minute, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := p.Next(tt.ctx, 1, tt.hint)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Next = %v, %v; want error %v", d, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrWaitTooLong) {
				t.Fatalf("err = %v, want ErrWaitTooLong", err)
			}
			if tt.want > 0 && d != tt.want {
				t.Fatalf("Next = %v, want %v", d, tt.want)
			}
		})
	}
}

func TestFits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := Fits(ctx, time.Second); err != nil {
		t.Errorf("1 s in a minute: %v", err)
	}
	if err := Fits(ctx, time.Hour); !errors.Is(err, ErrWaitTooLong) {
		t.Errorf("an hour in a minute: %v, want ErrWaitTooLong", err)
	}
	if err := Fits(context.Background(), time.Hour); err != nil {
		t.Errorf("no deadline: %v", err)
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
