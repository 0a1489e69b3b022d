package objstore

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/payload"
)

// discardS3 answers the S3 calls an upload makes (PutObject and the multipart protocol) and throws
// the bytes away, counting them. gofakes3 keeps every byte in memory in this same process, which
// would measure the server, not the uploader.
type discardS3 struct {
	srv      *httptest.Server
	received atomic.Int64
	parts    atomic.Int64
	ids      atomic.Int64
}

func newDiscardS3(b *testing.B) *discardS3 {
	d := &discardS3{}
	d.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		n, _ := io.Copy(io.Discard, r.Body)
		switch {
		case r.Method == http.MethodPost && q.Has("uploads"):
			id := d.ids.Add(1)
			w.Header().Set("Content-Type", "application/xml")
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>b</Bucket><Key>%s</Key><UploadId>up-%d</UploadId></InitiateMultipartUploadResult>`, strings.TrimPrefix(r.URL.Path, "/b/"), id)
		case r.Method == http.MethodPut && q.Has("partNumber"):
			d.received.Add(n)
			d.parts.Add(1)
			w.Header().Set("ETag", `"etag-`+q.Get("partNumber")+`"`)
		case r.Method == http.MethodPost && q.Has("uploadId"):
			w.Header().Set("Content-Type", "application/xml")
			fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult><Bucket>b</Bucket><Key>%s</Key><ETag>"done-2"</ETag></CompleteMultipartUploadResult>`, strings.TrimPrefix(r.URL.Path, "/b/"))
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNoContent)
		case r.Method == http.MethodPut:
			d.received.Add(n)
			w.Header().Set("ETag", `"single"`)
		default:
			http.Error(w, "unexpected "+r.Method, http.StatusBadRequest)
		}
	}))
	b.Cleanup(d.srv.Close)
	return d
}

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

const benchSize = 1 << 30

// BenchmarkUpload1GiB streams 1 GiB through the real path (source → sniffing → transfermanager →
// S3 client → HTTP) into a server that discards it, and reports the peak heap of the process.
//
//	go test -run '^$' -bench Upload1GiB -benchtime 1x ./internal/objstore
func BenchmarkUpload1GiB(b *testing.B) {
	// A sparse file: 1 GiB to read, almost nothing written to disk.
	sparse := filepath.Join(b.TempDir(), "huge.glb")
	f, err := os.Create(sparse)
	if err != nil {
		b.Fatal(err)
	}
	if err := f.Truncate(benchSize); err != nil {
		b.Fatal(err)
	}
	f.Close()
	// An HTTP source of unknown length, so the URL path (fetcher, chunked body) is measured too.
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		io.Copy(w, &pattern{n: n})
	}))
	b.Cleanup(src.Close)

	quarter := func(i int) payload.File {
		return payload.File{Name: fmt.Sprintf("part%d.obj", i), URL: fmt.Sprintf("%s/p%d.obj?n=%d", src.URL, i, benchSize/4)}
	}
	for _, tc := range []struct {
		name  string
		files []payload.File
	}{
		{"local-file", []payload.File{{Name: "huge.glb", Path: sparse}}},
		{"url-chunked", []payload.File{{Name: "huge.usdz", URL: fmt.Sprintf("%s/huge.usdz?n=%d", src.URL, benchSize)}}},
		// Four 256 MiB files at once: the worst case of parallel uploads.
		{"4-urls-parallel", []payload.File{quarter(1), quarter(2), quarter(3), quarter(4)}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			d := newDiscardS3(b)
			backend, err := NewS3(S3Config{Endpoint: d.srv.URL, AccessKeyID: "id", SecretAccessKey: "secret", Bucket: "b", PublicURL: testPublic})
			if err != nil {
				b.Fatal(err)
			}
			u := NewUploader(backend, loopbackFetcher(2*benchSize), Config{MaxFileBytes: 2 * benchSize, LocalPaths: true})
			b.SetBytes(benchSize)
			runtime.GC()
			var base runtime.MemStats
			runtime.ReadMemStats(&base)
			stop := heapPeak()
			b.ResetTimer()
			for b.Loop() {
				got, err := u.Upload(context.Background(), "bench", time.Now(), tc.files)
				if err != nil {
					b.Fatal(err)
				}
				var total int64
				for _, g := range got {
					total += g.Size
				}
				if total != benchSize {
					b.Fatalf("stored %d bytes", total)
				}
			}
			b.StopTimer()
			peak := stop()
			if d.received.Load() != int64(b.N)*benchSize {
				b.Fatalf("server received %d bytes", d.received.Load())
			}
			b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
			b.ReportMetric(float64(base.HeapAlloc)/(1<<20), "base-heap-MiB")
			b.ReportMetric(float64(d.parts.Load())/float64(b.N), "parts/op")
		})
	}
}
