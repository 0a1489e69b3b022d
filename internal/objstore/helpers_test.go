package objstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/figurative/figsupport/internal/backoff"
	"github.com/figurative/figsupport/internal/fetch"
)

const (
	testBucket = "figsupport-files"
	testSecret = "s3cr3t-never-printed-0123456789"
	testPublic = "https://files.example.com"
)

// fakeS3 is gofakes3 (a real S3 protocol server, in memory) behind an httptest server, recording
// the headers of every request so tests can check what the SDK sent.
type fakeS3 struct {
	srv *httptest.Server
	mem *s3mem.Backend

	mu        sync.Mutex
	headers   []http.Header
	methods   []string
	mpuActive int // multipart uploads created and not yet completed or aborted
	mpuPeak   int
}

func newFakeS3(t testing.TB) *fakeS3 {
	t.Helper()
	f := &fakeS3{mem: s3mem.New()}
	if err := f.mem.CreateBucket(testBucket); err != nil {
		t.Fatal(err)
	}
	h := gofakes3.New(f.mem).Server()
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.headers = append(f.headers, r.Header.Clone())
		f.methods = append(f.methods, r.Method+" "+r.URL.RawQuery)
		q := r.URL.Query()
		if r.Method == http.MethodPost && q.Has("uploads") {
			f.mpuActive++
			f.mpuPeak = max(f.mpuPeak, f.mpuActive)
		}
		f.mu.Unlock()
		h.ServeHTTP(w, r)
		if (r.Method == http.MethodPost || r.Method == http.MethodDelete) && q.Has("uploadId") {
			f.mu.Lock()
			f.mpuActive--
			f.mu.Unlock()
		}
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeS3) config() S3Config {
	return S3Config{
		Endpoint:        f.srv.URL,
		AccessKeyID:     "AKIDFIGSUPPORTTEST",
		SecretAccessKey: testSecret,
		Bucket:          testBucket,
		PublicURL:       testPublic + "/",
		Retry:           backoff.Policy{Attempts: 2, Base: 0, Max: 0},
	}
}

func (f *fakeS3) backend(t testing.TB) *S3 {
	t.Helper()
	b, err := NewS3(f.config())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// keys lists every object in the bucket, sorted.
func (f *fakeS3) keys(t testing.TB) []string {
	t.Helper()
	list, err := f.mem.ListBucket(testBucket, &gofakes3.Prefix{}, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range list.Contents {
		out = append(out, c.Key)
	}
	sort.Strings(out)
	return out
}

// object reads one stored object: its SHA-256, size and content type.
func (f *fakeS3) object(t testing.TB, b *S3, key string) (sum string, size int64, ctype string) {
	t.Helper()
	out, err := b.client.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(testBucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	defer out.Body.Close()
	h := sha256.New()
	n, err := io.Copy(h, out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, aws.ToString(out.ContentType)
}

// pendingUploads counts multipart uploads neither completed nor aborted.
func (f *fakeS3) pendingUploads(t testing.TB, b *S3) int {
	t.Helper()
	out, err := b.client.ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(testBucket)})
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "NoSuchUpload" {
		return 0 // gofakes3's answer for a bucket that never had a multipart upload
	}
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Uploads)
}

// pattern is a deterministic byte stream of any length, for large files without large memory.
type pattern struct {
	n, off int64
}

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	if rest := p.n - p.off; int64(len(b)) > rest {
		b = b[:rest]
	}
	for i := range b {
		x := p.off + int64(i)
		b[i] = byte(x*31 + x>>13)
	}
	p.off += int64(len(b))
	return len(b), nil
}

func patternSum(n int64) string {
	h := sha256.New()
	io.Copy(h, &pattern{n: n})
	return hex.EncodeToString(h.Sum(nil))
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func loopbackFetcher(max int64) *fetch.Fetcher {
	return fetch.New(fetch.Config{AllowLoopback: true, MaxBytes: max})
}

var fakeNoRetry = backoff.Policy{Attempts: 1}
