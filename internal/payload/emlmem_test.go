package payload

import (
	"encoding/base64"
	"io"
	"os"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"
)

// largeAttachment is an e-mail of about size bytes of attachment, generated as it is read, so
// that the input costs no memory either: what the heap holds is the parser's.
func largeAttachment(size int64) io.Reader {
	head := "From: a@example.com\nSubject: gros fichier\nMessage-ID: <big@example.com>\n" +
		"Content-Type: multipart/mixed; boundary=b\n\n--b\n\nLe modèle.\n--b\n" +
		"Content-Type: model/gltf-binary\nContent-Disposition: attachment; filename=modele.glb\nContent-Transfer-Encoding: base64\n\n"
	chunk := make([]byte, 57) // one 76-character base64 line
	for i := range chunk {
		chunk[i] = byte(i * 7)
	}
	line := base64.StdEncoding.EncodeToString(chunk) + "\n"
	lines := (size + 56) / 57
	return io.MultiReader(strings.NewReader(head), &repeatReader{s: line, n: lines}, strings.NewReader("--b--\n"))
}

type repeatReader struct {
	s   string
	n   int64 // repetitions left
	off int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	w := 0
	for w < len(p) && r.n > 0 {
		c := copy(p[w:], r.s[r.off:])
		w += c
		r.off += c
		if r.off == len(r.s) {
			r.off, r.n = 0, r.n-1
		}
	}
	return w, nil
}

const largeSize = 20 << 20

// TestParseEmailStreamsAttachments reads a 20 MiB attachment: the parser allocates a small part
// of that in all (so its heap cannot have held the file), and the file is whole on disk.
func TestParseEmailStreamsAttachments(t *testing.T) {
	spool := t.TempDir()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r, err := ParseEmail(largeAttachment(largeSize), DefaultLimits, emlNow, spool, 32<<20)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Fichiers) != 1 {
		t.Fatalf("files %+v", r.Fichiers)
	}
	st, err := os.Stat(r.Fichiers[0].Path)
	if err != nil || st.Size() < largeSize {
		t.Fatalf("spooled file: %v %v", st, err)
	}
	// Allocations, not timing: deterministic, and an upper bound of what was live at once.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > largeSize/8 {
		t.Errorf("parsing allocated %d bytes for a %d-byte attachment: it is not streamed", alloc, largeSize)
	}
}

// BenchmarkParseEmailLargeAttachment reports, for a 20 MiB attachment, the peak heap above the
// heap before the parse (peak-heap-MiB, sampled every millisecond) and the bytes allocated (B/op).
func BenchmarkParseEmailLargeAttachment(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(largeSize)
	var peak uint64
	for b.Loop() {
		b.StopTimer()
		spool := b.TempDir()
		runtime.GC()
		base := heapBytes()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var max uint64
		wg.Go(func() {
			tick := time.NewTicker(time.Millisecond)
			defer tick.Stop()
			for {
				if h := heapBytes(); h > max {
					max = h
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		})
		b.StartTimer()
		_, err := ParseEmail(largeAttachment(largeSize), DefaultLimits, emlNow, spool, 32<<20)
		b.StopTimer()
		close(stop)
		wg.Wait()
		if err != nil {
			b.Fatal(err)
		}
		if max > base && max-base > peak {
			peak = max - base
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
}

// heapBytes is the memory of live and not yet swept heap objects.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
