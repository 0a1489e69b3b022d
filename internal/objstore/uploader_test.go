package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/fetch"
	"github.com/figurative/figsupport/internal/health"
	"github.com/figurative/figsupport/internal/payload"
)

var at = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

var jpegHead = []byte("\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")

// fileServer serves generated files: /big/<n>/<name> streams n pattern bytes without a
// Content-Length (chunked, size unknown to the uploader).
func fileServer(t *testing.T, files map[string][]byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if rest, ok := strings.CutPrefix(r.URL.Path, "/big/"); ok {
			n, _ := strconv.ParseInt(strings.SplitN(rest, "/", 2)[0], 10, 64)
			io.Copy(w, &pattern{n: n})
			return
		}
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestUploadToS3(t *testing.T) {
	fs3 := newFakeS3(t)
	b := fs3.backend(t)
	photo := append(append([]byte{}, jpegHead...), bytes.Repeat([]byte{7}, 3000)...)
	glb := append([]byte("glTF\x02\x00\x00\x00"), bytes.Repeat([]byte{1}, 100)...)
	srv := fileServer(t, map[string][]byte{"/photo.jpg": photo, "/model.glb": glb, "/noext": photo})

	dir := t.TempDir()
	const big = 12 << 20
	bigPath := filepath.Join(dir, "scan.obj")
	fh, err := os.Create(bigPath)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(fh, &pattern{n: big}); err != nil {
		t.Fatal(err)
	}
	fh.Close()
	pdf := []byte("%PDF-1.7\n%...")
	pdfPath := filepath.Join(dir, "devis.pdf")
	os.WriteFile(pdfPath, pdf, 0o644)

	u := NewUploader(b, loopbackFetcher(64<<20), Config{LocalPaths: true})
	files := []payload.File{
		{Name: "photo.jpg", URL: srv.URL + "/photo.jpg"},
		{Name: "modèle final.glb", URL: srv.URL + "/model.glb"},
		{Name: "big.bin", URL: srv.URL + "/big/" + strconv.Itoa(big) + "/x"}, // multipart, unknown size
		{Name: "scan.obj", Path: bigPath},                                    // multipart, known size
		{Name: "devis.pdf", Path: pdfPath},
		{Name: "noext", URL: srv.URL + "/noext"},
	}
	got, err := u.Upload(context.Background(), "req-42", at, files)
	if err != nil {
		t.Fatal(err)
	}
	prefix := "requests/2026/01/req-42/"
	want := []struct {
		key, ctype, sum string
		size            int64
	}{
		{prefix + "photo.jpg", "image/jpeg", sum(photo), int64(len(photo))},
		{prefix + "modèle_final.glb", "model/gltf-binary", sum(glb), int64(len(glb))},
		{prefix + "big.bin", "application/octet-stream", patternSum(big), big},
		{prefix + "scan.obj", "model/obj", patternSum(big), big},
		{prefix + "devis.pdf", "application/pdf", sum(pdf), int64(len(pdf))},
		{prefix + "noext", "image/jpeg", sum(photo), int64(len(photo))},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d stored files, want %d", len(got), len(want))
	}
	for i, w := range want {
		t.Run(w.key, func(t *testing.T) {
			g := got[i]
			if g.Key != w.key || g.Size != w.size || g.ContentType != w.ctype {
				t.Fatalf("stored %+v, want key %s size %d type %s", g, w.key, w.size, w.ctype)
			}
			if wantURL := testPublic + "/" + escapeKey(w.key); g.URL != wantURL {
				t.Fatalf("url %s, want %s", g.URL, wantURL)
			}
			s, n, ct := fs3.object(t, b, w.key)
			if s != w.sum || n != w.size || ct != w.ctype {
				t.Fatalf("object: sha %s size %d type %s; want sha %s size %d type %s", s, n, ct, w.sum, w.size, w.ctype)
			}
		})
	}
	if !strings.Contains(got[1].URL, "mod%C3%A8le_final.glb") {
		t.Fatalf("url not escaped: %s", got[1].URL)
	}
	// Multipart really happened for the 12 MiB files, and no upload was left dangling.
	fs3.mu.Lock()
	var parts int
	for _, m := range fs3.methods {
		if strings.HasPrefix(m, "PUT ") && strings.Contains(m, "partNumber=") {
			parts++
		}
	}
	fs3.mu.Unlock()
	if parts < 6 {
		t.Fatalf("saw %d part uploads, want multipart for both 12 MiB files", parts)
	}
	if n := fs3.pendingUploads(t, b); n != 0 {
		t.Fatalf("%d multipart uploads left pending", n)
	}
}

// R2 rejects the SDK's default streaming checksums: none may be sent (DESIGN section 9).
func TestS3SendsNoDefaultChecksums(t *testing.T) {
	fs3 := newFakeS3(t)
	b := fs3.backend(t)
	if _, err := b.Put(context.Background(), "a/small.txt", strings.NewReader("hello"), 5, "text/plain"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(context.Background(), "a/big.bin", &pattern{n: 11 << 20}, -1, ""); err != nil {
		t.Fatal(err)
	}
	fs3.mu.Lock()
	defer fs3.mu.Unlock()
	for i, h := range fs3.headers {
		for name := range h {
			l := strings.ToLower(name)
			if strings.HasPrefix(l, "x-amz-checksum-") || l == "x-amz-sdk-checksum-algorithm" || l == "x-amz-trailer" {
				t.Errorf("request %s sent %s", fs3.methods[i], name)
			}
		}
		if strings.Contains(h.Get("Content-Encoding"), "aws-chunked") {
			t.Errorf("request %s used aws-chunked encoding", fs3.methods[i])
		}
		if strings.Contains(h.Get("Authorization"), testSecret) {
			t.Errorf("secret sent in clear")
		}
	}
}

func TestUploadDuplicateNamesAndRetry(t *testing.T) {
	fs3 := newFakeS3(t)
	b := fs3.backend(t)
	var failOnce atomic.Bool
	failOnce.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/flaky.jpg" && failOnce.CompareAndSwap(true, false) {
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		w.Write(append(jpegHead, r.URL.Path...))
	}))
	defer srv.Close()
	u := NewUploader(b, loopbackFetcher(1<<20), Config{Parallel: 2})
	files := []payload.File{
		{Name: "photo.jpg", URL: srv.URL + "/1"},
		{Name: "photo.jpg", URL: srv.URL + "/2"},
		{Name: "Photo.JPG", URL: srv.URL + "/3"},
		{Name: "photo-2.jpg", URL: srv.URL + "/4"},
		{Name: "flaky.jpg", URL: srv.URL + "/flaky.jpg"},
	}
	_, err := u.Upload(context.Background(), "req-dup", at, files)
	var fe *FileError
	if !errors.As(err, &fe) || fe.Name != "flaky.jpg" || !strings.Contains(err.Error(), `"flaky.jpg"`) {
		t.Fatalf("first attempt: err = %v, want a FileError naming flaky.jpg", err)
	}
	if !errors.Is(err, fetch.ErrStatus) {
		t.Fatalf("err = %v, want it to wrap fetch.ErrStatus", err)
	}
	got, err := u.Upload(context.Background(), "req-dup", at, files)
	if err != nil {
		t.Fatal(err)
	}
	p := "requests/2026/01/req-dup/"
	wantKeys := []string{p + "photo.jpg", p + "photo-2.jpg", p + "Photo-3.JPG", p + "photo-2-2.jpg", p + "flaky.jpg"}
	var keys []string
	for _, g := range got {
		keys = append(keys, g.Key)
	}
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Fatalf("keys %q, want %q", keys, wantKeys)
	}
	// A third run (a retry after success) still leaves exactly one object per file.
	if _, err := u.Upload(context.Background(), "req-dup", at, files); err != nil {
		t.Fatal(err)
	}
	stored := fs3.keys(t)
	if len(stored) != len(files) {
		t.Fatalf("bucket holds %q, want exactly the %d keys", stored, len(files))
	}
	for i, k := range wantKeys {
		s, _, _ := fs3.object(t, b, k)
		if s != sum(append(append([]byte{}, jpegHead...), files[i].URL[len(srv.URL):]...)) {
			t.Fatalf("%s holds another file's bytes", k)
		}
	}
}

func TestUploadParallelBounded(t *testing.T) {
	const limit, n = 3, 9
	var inFlight, peak atomic.Int32
	arrived := make(chan struct{}, n)
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cur := inFlight.Add(1)
		for {
			p := peak.Load()
			if cur <= p || peak.CompareAndSwap(p, cur) {
				break
			}
		}
		arrived <- struct{}{}
		<-release
		inFlight.Add(-1)
		w.Write([]byte("data " + r.URL.Path))
	}))
	defer srv.Close()
	u := NewUploader(mustLocal(t, ""), loopbackFetcher(1<<20), Config{Parallel: limit})
	var files []payload.File
	for i := range n {
		files = append(files, payload.File{Name: fmt.Sprintf("f%d.txt", i), URL: fmt.Sprintf("%s/%d", srv.URL, i)})
	}
	done := make(chan error, 1)
	go func() {
		_, err := u.Upload(context.Background(), "req-par", at, files)
		done <- err
	}()
	// The first `limit` fetches must all be in flight together: the upload is parallel.
	for range limit {
		<-arrived
	}
	if got := inFlight.Load(); got != limit {
		t.Fatalf("%d fetches in flight, want %d", got, limit)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if p := peak.Load(); p > limit {
		t.Fatalf("peak of %d fetches in flight, limit %d", p, limit)
	}
}

func mustLocal(t testing.TB, base string) *Local {
	t.Helper()
	l, err := NewLocal(LocalConfig{DataDir: t.TempDir(), PublicBaseURL: base})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Every refused source leaves the bucket empty: nothing is stored before the check passes, and a
// stream cut short by the cap is aborted.
func TestUploadRefusedStoresNothing(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/to-private":
			http.Redirect(w, r, "http://10.1.2.3/secret", http.StatusFound)
		case "/to-metadata":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/iam/", http.StatusFound)
		case "/announced-big":
			w.Header().Set("Content-Length", strconv.Itoa(8<<20))
			io.Copy(w, &pattern{n: 8 << 20})
		case "/streamed-big":
			io.Copy(w, &pattern{n: 12 << 20}) // chunked: past the 7 MiB cap after one part went up
		default:
			w.Write([]byte("fine"))
		}
	}))
	defer srv.Close()
	port := srv.URL[strings.LastIndexByte(srv.URL, ':'):]
	lookup := func(_ context.Context, host string) ([]netip.Addr, error) {
		if host == "files.customer.test" {
			return []netip.Addr{netip.MustParseAddr("192.168.1.20")}, nil
		}
		return nil, errors.New("no such host")
	}
	bigLocal := filepath.Join(t.TempDir(), "huge.stl")
	if f, err := os.Create(bigLocal); err == nil {
		f.Truncate(8 << 20) // sparse
		f.Close()
	}
	const maxBytes = 7 << 20

	tests := []struct {
		name    string
		fetcher fetch.Config
		file    payload.File
		want    error
	}{
		{"loopback with the test switch off", fetch.Config{}, payload.File{Name: "a.jpg", URL: srv.URL + "/a.jpg"}, fetch.ErrForbiddenAddress},
		{"localhost by name", fetch.Config{}, payload.File{Name: "a.jpg", URL: "http://localhost" + port + "/a.jpg"}, fetch.ErrForbiddenAddress},
		{"metadata address", fetch.Config{AllowLoopback: true}, payload.File{Name: "m", URL: "http://169.254.169.254/latest/meta-data/"}, fetch.ErrForbiddenAddress},
		{"redirect to a private address", fetch.Config{AllowLoopback: true}, payload.File{Name: "r.jpg", URL: srv.URL + "/to-private"}, fetch.ErrForbiddenAddress},
		{"redirect to the metadata service", fetch.Config{AllowLoopback: true}, payload.File{Name: "r.jpg", URL: srv.URL + "/to-metadata"}, fetch.ErrForbiddenAddress},
		{"name resolving to a private address", fetch.Config{AllowLoopback: true, LookupNetIP: lookup}, payload.File{Name: "p.jpg", URL: "http://files.customer.test" + port + "/p.jpg"}, fetch.ErrForbiddenAddress},
		{"non-http scheme", fetch.Config{AllowLoopback: true}, payload.File{Name: "passwd", URL: "file:///etc/passwd"}, fetch.ErrScheme},
		{"announced oversize body", fetch.Config{AllowLoopback: true, MaxBytes: maxBytes}, payload.File{Name: "big.glb", URL: srv.URL + "/announced-big"}, ErrTooLarge},
		{"streamed oversize body", fetch.Config{AllowLoopback: true, MaxBytes: maxBytes}, payload.File{Name: "big.glb", URL: srv.URL + "/streamed-big"}, ErrTooLarge},
		{"oversize body, fetcher cap larger than the uploader's", fetch.Config{AllowLoopback: true, MaxBytes: 1 << 30}, payload.File{Name: "big.glb", URL: srv.URL + "/streamed-big"}, ErrTooLarge},
		{"oversize local file", fetch.Config{}, payload.File{Name: "huge.stl", Path: bigLocal}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs3 := newFakeS3(t)
			b := fs3.backend(t)
			u := NewUploader(b, fetch.New(tt.fetcher), Config{MaxFileBytes: maxBytes, LocalPaths: true})
			files := []payload.File{tt.file}
			_, err := u.Upload(context.Background(), "req-bad", at, files)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.file.Name) {
				t.Fatalf("error %q does not name the file", err)
			}
			if keys := fs3.keys(t); len(keys) != 0 {
				t.Fatalf("bucket holds %q after a refusal", keys)
			}
			if n := fs3.pendingUploads(t, b); n != 0 {
				t.Fatalf("%d multipart uploads left pending", n)
			}
		})
	}
}

func TestUploadRefusesLocalPathsUnlessAllowed(t *testing.T) {
	p := filepath.Join(t.TempDir(), "secret.txt")
	os.WriteFile(p, []byte("x"), 0o600)
	l := mustLocal(t, "")
	_, err := NewUploader(l, nil, Config{}).Upload(context.Background(), "k", at, []payload.File{{Name: "secret.txt", Path: p}})
	if !errors.Is(err, ErrLocalPath) {
		t.Fatalf("err = %v, want ErrLocalPath", err)
	}
	if _, err := os.Stat(filepath.Join(l.Root(), "requests")); !os.IsNotExist(err) {
		t.Fatal("something was stored")
	}
}

func TestUploadConfinesLocalPathsToLocalRoot(t *testing.T) {
	spool := t.TempDir()
	inside := filepath.Join(spool, "req", "1-photo.jpg")
	os.MkdirAll(filepath.Dir(inside), 0o700)
	os.WriteFile(inside, []byte("\xff\xd8\xffjpeg"), 0o600)
	outside := filepath.Join(t.TempDir(), "secret.txt")
	os.WriteFile(outside, []byte("x"), 0o600)
	link := filepath.Join(spool, "req", "link.txt")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	cfg := Config{LocalPaths: true, LocalRoot: spool}
	tests := []struct {
		name string
		path string
		ok   bool
	}{
		{"inside the root", inside, true},
		{"outside the root", outside, false},
		{"dot-dot out of the root", filepath.Join(spool, "req", "..", "..", filepath.Base(filepath.Dir(outside)), "secret.txt"), false},
		{"a link inside pointing outside", link, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := mustLocal(t, "")
			_, err := NewUploader(l, nil, cfg).Upload(context.Background(), "k", at, []payload.File{{Name: "f", Path: tt.path}})
			if tt.ok && err != nil {
				t.Fatalf("err = %v", err)
			}
			if !tt.ok && !errors.Is(err, ErrLocalPath) {
				t.Fatalf("err = %v, want ErrLocalPath", err)
			}
		})
	}
}

func TestUploadLocalBackend(t *testing.T) {
	srv := fileServer(t, map[string][]byte{"/p.png": []byte("\x89PNG\r\n\x1a\n0000")})
	l := mustLocal(t, "https://files.example.org/figs")
	u := NewUploader(l, loopbackFetcher(1<<20), Config{})
	got, err := u.Upload(context.Background(), "a/b", at, []payload.File{{Name: "../../etc/p.png", URL: srv.URL + "/p.png"}})
	if err != nil {
		t.Fatal(err)
	}
	key := "requests/2026/01/" + keySegment("a/b") + "/p.png"
	if got[0].Key != key || got[0].ContentType != "image/png" || got[0].Size != 12 {
		t.Fatalf("stored %+v", got[0])
	}
	if got[0].URL != "https://files.example.org/figs/"+key {
		t.Fatalf("url %s", got[0].URL)
	}
	b, err := os.ReadFile(filepath.Join(l.Root(), filepath.FromSlash(key)))
	if err != nil || !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatalf("stored file: %q, %v", b, err)
	}
}

func TestUploadAdhoc(t *testing.T) {
	srv := fileServer(t, map[string][]byte{"/dir/remote.jpg": jpegHead})
	p := filepath.Join(t.TempDir(), "local note.txt")
	os.WriteFile(p, []byte("hello"), 0o644)
	l := mustLocal(t, "")
	u := NewUploader(l, loopbackFetcher(1<<20), Config{}) // LocalPaths off: the command is local anyway
	got, err := u.UploadAdhoc(context.Background(), at, []string{srv.URL + "/dir/remote.jpg?x=1", p})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Name != "remote.jpg" || got[1].Name != "local_note.txt" {
		t.Fatalf("got %+v", got)
	}
	if !strings.HasPrefix(got[0].Key, "manual/2026/01/") || path2(got[0].Key) != path2(got[1].Key) {
		t.Fatalf("keys %s %s", got[0].Key, got[1].Key)
	}
	if !strings.HasPrefix(got[1].URL, "file:///") {
		t.Fatalf("url %s", got[1].URL)
	}
}

func path2(key string) string { return key[:strings.LastIndexByte(key, '/')] }

// A failing backend makes the whole call fail, naming the file, and cancels the other files.
func TestUploadBackendFailureNamesFile(t *testing.T) {
	u := NewUploader(failingBackend{fail: "b.txt"}, loopbackFetcher(1<<20), Config{LocalPaths: true})
	dir := t.TempDir()
	var files []payload.File
	for _, n := range []string{"a.txt", "b.txt", "c.txt"} {
		p := filepath.Join(dir, n)
		os.WriteFile(p, []byte(n), 0o644)
		files = append(files, payload.File{Name: n, Path: p})
	}
	_, err := u.Upload(context.Background(), "k", at, files)
	if err == nil || !strings.Contains(err.Error(), `"b.txt"`) || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("err = %v", err)
	}
}

type failingBackend struct{ fail string }

func (f failingBackend) Put(ctx context.Context, key string, body io.Reader, size int64, ct string) (string, error) {
	if strings.HasSuffix(key, "/"+f.fail) {
		return "", errors.New("disk on fire")
	}
	_, err := io.Copy(io.Discard, body)
	return "mem://" + key, err
}
func (failingBackend) Check(context.Context) []health.Check { return nil }
func (failingBackend) Kind() string                         { return "failing" }

// Large files share a process-wide budget of multipart uploads, so memory stays flat however
// many arrive together; small ones do not wait for it.
func TestLargeUploadsBounded(t *testing.T) {
	fs3 := newFakeS3(t)
	cfg := fs3.config()
	cfg.MaxLargeUploads = 1
	b, err := NewS3(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, &pattern{n: 6 << 20})
	}))
	defer srv.Close()
	u := NewUploader(b, loopbackFetcher(64<<20), Config{Parallel: 4})
	var files []payload.File
	for i := range 4 {
		files = append(files, payload.File{Name: fmt.Sprintf("big%d.bin", i), URL: fmt.Sprintf("%s/%d", srv.URL, i)})
	}
	if _, err := u.Upload(context.Background(), "req-large", at, files); err != nil {
		t.Fatal(err)
	}
	fs3.mu.Lock()
	peak := fs3.mpuPeak
	fs3.mu.Unlock()
	if peak != 1 {
		t.Fatalf("%d multipart uploads at once, want 1", peak)
	}
	if n := len(fs3.keys(t)); n != 4 {
		t.Fatalf("%d objects stored", n)
	}
}

// OnProgress hears of every file: opened (size known or -1), its bytes as they are read, and done
// with the whole count; reports for one file never go backwards.
func TestUploadReportsProgress(t *testing.T) {
	srv := fileServer(t, nil)
	p := filepath.Join(t.TempDir(), "plan.stl")
	if err := os.WriteFile(p, bytes.Repeat([]byte("x"), 100_000), 0o644); err != nil {
		t.Fatal(err)
	}
	type state struct {
		size, read int64
		reports    int
		done       bool
	}
	var mu sync.Mutex
	seen := map[string]*state{}
	u := NewUploader(mustLocal(t, ""), loopbackFetcher(1<<20), Config{LocalPaths: true, OnProgress: func(pr Progress) {
		mu.Lock()
		defer mu.Unlock()
		s := seen[pr.Key]
		if s == nil {
			s = &state{}
			seen[pr.Key] = s
		}
		if s.done {
			t.Errorf("%s: report after done: %+v", pr.Name, pr)
		}
		if pr.Read < s.read {
			t.Errorf("%s: went back from %d to %d", pr.Name, s.read, pr.Read)
		}
		s.size, s.read, s.done = pr.Size, pr.Read, pr.Done
		s.reports++
	}})
	got, err := u.Upload(context.Background(), "k", at, []payload.File{{Path: p}, {URL: srv.URL + "/big/300000/stream.bin"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range got {
		s := seen[f.Key]
		if s == nil || !s.done || s.read != f.Size || s.reports < 3 {
			t.Fatalf("%s: progress %+v, stored %d bytes", f.Name, s, f.Size)
		}
	}
	if s := seen[got[0].Key]; s.size != 100_000 {
		t.Errorf("local file announced size %d, want 100000", s.size)
	}
	if s := seen[got[1].Key]; s.size != -1 {
		t.Errorf("chunked download announced size %d, want -1 (unknown)", s.size)
	}
}

// A file over the cap says how large in the tool's English units.
func TestUploadTooLargeMessage(t *testing.T) {
	p := filepath.Join(t.TempDir(), "big.bin")
	if err := os.WriteFile(p, make([]byte, 3<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	u := NewUploader(mustLocal(t, ""), nil, Config{LocalPaths: true, MaxFileBytes: 2 << 10})
	_, err := u.Upload(context.Background(), "k", at, []payload.File{{Path: p}})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "3 KiB, over the 2 KiB cap") {
		t.Fatalf("err = %v", err)
	}
}
