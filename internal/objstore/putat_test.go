package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
)

// patternAt is pattern's bytes read in place, failing from failAt on when it is set.
type patternAt struct {
	n, failAt int64
}

func (p patternAt) ReadAt(b []byte, off int64) (int, error) {
	if p.failAt > 0 && off+int64(len(b)) > p.failAt {
		return 0, errors.New("disk read error")
	}
	if off >= p.n {
		return 0, io.EOF
	}
	src := &pattern{n: p.n, off: off}
	n, _ := io.ReadFull(src, b[:min(int64(len(b)), p.n-off)])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// PutAt stores a file in place: one PUT below a part, the multipart protocol above, the object
// whole whatever the part boundaries, progress up to the size.
func TestPutAt(t *testing.T) {
	for _, size := range []int64{0, 1000, MinPartSize - 1, MinPartSize, MinPartSize + 1, 2*MinPartSize + 3} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			fs3 := newFakeS3(t)
			b := fs3.backend(t)
			var mu sync.Mutex
			var last int64
			key := "requests/2026/01/k/scan.obj"
			u, err := b.PutAt(context.Background(), key, patternAt{n: size}, size, "model/obj", func(n int64) {
				mu.Lock()
				defer mu.Unlock()
				if n < last {
					t.Errorf("progress went back from %d to %d", last, n)
				}
				last = n
			})
			if err != nil {
				t.Fatal(err)
			}
			if u != testPublic+"/"+key {
				t.Errorf("url %s", u)
			}
			sum, n, ct := fs3.object(t, b, key)
			if sum != patternSum(size) || n != size || ct != "model/obj" {
				t.Errorf("object: size %d type %s sum %s, want %d model/obj %s", n, ct, sum, size, patternSum(size))
			}
			if last != size {
				t.Errorf("progress ended at %d, want %d", last, size)
			}
			fs3.mu.Lock()
			parts := 0
			for _, m := range fs3.methods {
				if strings.Contains(m, "partNumber=") {
					parts++
				}
			}
			fs3.mu.Unlock()
			if want := int((size + MinPartSize - 1) / MinPartSize); size >= MinPartSize && parts != want || size < MinPartSize && parts != 0 {
				t.Errorf("%d parts sent for %d bytes", parts, size)
			}
			if p := fs3.pendingUploads(t, b); p != 0 {
				t.Errorf("%d multipart uploads left pending", p)
			}
		})
	}
}

// A file that cannot be read to its end stores nothing and leaves no multipart upload open.
func TestPutAtFailureAborts(t *testing.T) {
	fs3 := newFakeS3(t)
	b := fs3.backend(t)
	size := 3 * MinPartSize
	_, err := b.PutAt(context.Background(), "k/broken.bin", patternAt{n: size, failAt: 2*MinPartSize + 10}, size, "", nil)
	if err == nil {
		t.Fatal("upload of an unreadable file succeeded")
	}
	if keys := fs3.keys(t); len(keys) != 0 {
		t.Errorf("objects stored: %v", keys)
	}
	if p := fs3.pendingUploads(t, b); p != 0 {
		t.Errorf("%d multipart uploads left pending", p)
	}
}
