package mailbox_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/mailbox"
	"github.com/figurative/figsupport/internal/payload"
	"github.com/figurative/figsupport/internal/testsrv/dovecot"
)

// heapPeak samples the heap until stopped and returns the largest HeapAlloc seen, in bytes.
func heapPeak() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapAlloc > peak.Load() {
				peak.Store(ms.HeapAlloc)
			}
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak.Load()
	}
}

// BenchmarkPoll20MiB reads a message with a 20 MiB attachment from Dovecot (another process, so
// the server's memory is not counted) through the daemon's path: the IMAP literal streamed into
// payload.ParseEmail, the attachment decoded to the spool on disk. It reports the process's peak
// heap: the message is never held whole.
//
//	go test -run '^$' -bench Poll20MiB -benchtime 3x ./internal/mailbox
func BenchmarkPoll20MiB(b *testing.B) {
	d := dovecot.Start(b, dovecot.Options{})
	msg, _ := bigMessage(b, "big@example.com", 20<<20)
	cfg := dovecotConfig(d, true)
	p, err := mailbox.New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	lim := payload.DefaultLimits
	spool := b.TempDir()
	h := func(ctx context.Context, r io.Reader) (mailbox.Outcome, error) {
		req, err := payload.ParseEmail(r, lim, time.Now(), spool, 200<<20)
		if err != nil {
			return mailbox.Outcome{}, err
		}
		for _, f := range req.Fichiers {
			if st, err := os.Stat(f.Path); err != nil || st.Size() != 20<<20 {
				return mailbox.Outcome{}, fmt.Errorf("attachment %s: %v %v", f.Name, st, err)
			}
		}
		return mailbox.Outcome{RequestID: req.Key()}, nil
	}
	var base runtime.MemStats
	var peakMax uint64
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		// Appended through a connection closed before measuring: its buffers are not counted.
		a := dovecotAdmin(b, d)
		a.Append("INBOX", msg)
		a.Close()
		if err := os.RemoveAll(spool); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&base)
		stop := heapPeak()
		b.StartTimer()
		sum, err := p.Poll(context.Background(), h, mailbox.PassOptions{})
		b.StopTimer()
		peak := stop()
		if err != nil || sum.Processed != 1 {
			b.Fatalf("%v %+v", err, sum)
		}
		peakMax = max(peakMax, peak-min(peak, base.HeapAlloc))
	}
	b.SetBytes(int64(len(msg)))
	b.ReportMetric(float64(peakMax)/(1<<20), "peak-heap-growth-MiB")
	b.ReportMetric(float64(base.HeapAlloc)/(1<<20), "base-heap-MiB")
}
