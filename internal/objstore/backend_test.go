package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/figurative/figsupport/internal/health"
)

func TestLocalPut(t *testing.T) {
	ctx := context.Background()
	t.Run("file url", func(t *testing.T) {
		l := mustLocal(t, "")
		u, err := l.Put(ctx, "requests/2026/01/k/a b.txt", strings.NewReader("hello"), 5, "text/plain")
		if err != nil {
			t.Fatal(err)
		}
		want := "file://" + filepath.ToSlash(filepath.Join(l.Root(), "requests/2026/01/k")) + "/a%20b.txt"
		if u != want {
			t.Fatalf("url %s, want %s", u, want)
		}
		b, _ := os.ReadFile(filepath.Join(l.Root(), "requests/2026/01/k/a b.txt"))
		if string(b) != "hello" {
			t.Fatalf("content %q", b)
		}
	})
	t.Run("public base", func(t *testing.T) {
		l := mustLocal(t, "https://cdn.example.com/f/")
		u, err := l.Put(ctx, "x/é.png", strings.NewReader("p"), -1, "")
		if err != nil || u != "https://cdn.example.com/f/x/%C3%A9.png" {
			t.Fatalf("url %s, %v", u, err)
		}
	})
	t.Run("overwrites: a retry leaves one file", func(t *testing.T) {
		l := mustLocal(t, "")
		for _, s := range []string{"first", "second"} {
			if _, err := l.Put(ctx, "k/f.txt", strings.NewReader(s), -1, ""); err != nil {
				t.Fatal(err)
			}
		}
		entries, _ := os.ReadDir(filepath.Join(l.Root(), "k"))
		b, _ := os.ReadFile(filepath.Join(l.Root(), "k/f.txt"))
		if len(entries) != 1 || string(b) != "second" {
			t.Fatalf("%d entries, content %q", len(entries), b)
		}
	})
	t.Run("a failed stream leaves nothing, not even a temporary file", func(t *testing.T) {
		l := mustLocal(t, "")
		body := io.MultiReader(strings.NewReader("half"), errReader{errors.New("connection reset")})
		if _, err := l.Put(ctx, "k/f.bin", body, -1, ""); err == nil {
			t.Fatal("put succeeded")
		}
		if _, err := l.Put(ctx, "k/g.bin", strings.NewReader("short"), 10, ""); err == nil {
			t.Fatal("short body accepted")
		}
		entries, _ := os.ReadDir(filepath.Join(l.Root(), "k"))
		if len(entries) != 0 {
			t.Fatalf("left %v behind", entries)
		}
	})
	t.Run("keys that escape are refused", func(t *testing.T) {
		l := mustLocal(t, "")
		for _, k := range []string{"../x", "a/../../x", "/etc/x", `a\b`, "a//b", "", "a/./b", "a/"} {
			if _, err := l.Put(ctx, k, strings.NewReader("x"), -1, ""); err == nil {
				t.Errorf("key %q accepted", k)
			}
		}
	})
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestLocalCheck(t *testing.T) {
	l := mustLocal(t, "")
	cs := l.Check(context.Background())
	if len(cs) != 1 || cs[0].Status != health.Warn || !strings.Contains(cs[0].Detail, "file://") {
		t.Fatalf("checks %+v", cs)
	}
	l = mustLocal(t, "https://files.example.com")
	if cs := l.Check(context.Background()); cs[0].Status != health.OK {
		t.Fatalf("checks %+v", cs)
	}
	if os.Geteuid() != 0 { // root writes anywhere
		dir := t.TempDir()
		os.Chmod(dir, 0o500)
		defer os.Chmod(dir, 0o700)
		ro, _ := NewLocal(LocalConfig{DataDir: dir})
		if cs := ro.Check(context.Background()); cs[0].Status != health.Fail {
			t.Fatalf("read-only dir: %+v", cs)
		}
	}
}

func TestNewS3Config(t *testing.T) {
	ok := S3Config{Endpoint: "https://acc.r2.cloudflarestorage.com", AccessKeyID: "id", SecretAccessKey: testSecret, Bucket: "b"}
	tests := []struct {
		name   string
		mutate func(*S3Config)
		want   string
	}{
		{"missing keys", func(c *S3Config) { c.AccessKeyID, c.Bucket = "", "" }, "missing R2_ACCESS_KEY_ID, R2_BUCKET_NAME"},
		{"endpoint not a url", func(c *S3Config) { c.Endpoint = "acc.r2.cloudflarestorage.com" }, "R2_ENDPOINT_URL must be an http(s) URL"},
		{"endpoint with the bucket in the path", func(c *S3Config) { c.Endpoint += "/b" }, "must not include a path"},
		{"public url with a query", func(c *S3Config) { c.PublicURL = "https://pub.r2.dev?x=1" }, "R2_PUBLIC_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := ok
			tt.mutate(&c)
			_, err := NewS3(c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), testSecret) {
				t.Fatal("secret in error")
			}
		})
	}
	b, err := NewS3(ok)
	if err != nil {
		t.Fatal(err)
	}
	if u := b.URL("requests/2026/01/k/a b.jpg"); u != "https://acc.r2.cloudflarestorage.com/b/requests/2026/01/k/a%20b.jpg" {
		t.Fatalf("url without public base: %s", u)
	}
}

func TestS3Check(t *testing.T) {
	ctx := context.Background()
	checks := func(cs []health.Check) map[string]health.Check {
		m := map[string]health.Check{}
		for _, c := range cs {
			if strings.Contains(c.Detail, testSecret) {
				t.Fatalf("secret in doctor output: %+v", c)
			}
			m[c.Name] = c
		}
		return m
	}
	t.Run("healthy", func(t *testing.T) {
		fs3 := newFakeS3(t)
		m := checks(fs3.backend(t).Check(ctx))
		for _, n := range []string{"bucket reachable", "bucket writable", "public URL"} {
			if m[n].Status != health.OK {
				t.Fatalf("%s: %+v", n, m[n])
			}
		}
		if keys := fs3.keys(t); len(keys) != 0 {
			t.Fatalf("probe left behind: %q", keys)
		}
	})
	t.Run("read-only writes nothing", func(t *testing.T) {
		fs3 := newFakeS3(t)
		m := checks(fs3.backend(t).CheckReadOnly(ctx))
		if m["bucket reachable"].Status != health.OK || m["public URL"].Status != health.OK {
			t.Fatalf("%+v", m)
		}
		if _, probed := m["bucket writable"]; probed {
			t.Fatal("read-only check probed a write")
		}
		for _, meth := range fs3.methods {
			if strings.HasPrefix(meth, "PUT") || strings.HasPrefix(meth, "DELETE") {
				t.Fatalf("read-only check sent %s", meth)
			}
		}
	})
	t.Run("missing bucket", func(t *testing.T) {
		fs3 := newFakeS3(t)
		c := fs3.config()
		c.Bucket = "nope"
		b, _ := NewS3(c)
		m := checks(b.Check(ctx))
		if m["bucket reachable"].Status != health.Fail || !strings.Contains(m["bucket reachable"].Detail, `bucket "nope" does not exist`) {
			t.Fatalf("%+v", m["bucket reachable"])
		}
		if m["bucket writable"].Status != health.Fail {
			t.Fatalf("%+v", m["bucket writable"])
		}
	})
	t.Run("no public url", func(t *testing.T) {
		fs3 := newFakeS3(t)
		c := fs3.config()
		c.PublicURL = ""
		b, _ := NewS3(c)
		if m := checks(b.Check(ctx)); m["public URL"].Status != health.Warn {
			t.Fatalf("%+v", m["public URL"])
		}
	})
	t.Run("credentials rejected", func(t *testing.T) {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusForbidden)
			if r.Method != http.MethodHead {
				fmt.Fprint(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>`)
			}
		}))
		defer srv.Close()
		c := S3Config{Endpoint: srv.URL, AccessKeyID: "bad", SecretAccessKey: testSecret, Bucket: "b", PublicURL: testPublic}
		b, _ := NewS3(c)
		m := checks(b.Check(ctx))
		if w := m["bucket writable"]; w.Status != health.Fail || !strings.Contains(w.Detail, "R2_ACCESS_KEY_ID and R2_SECRET_ACCESS_KEY") {
			t.Fatalf("%+v", w)
		}
		if r := m["bucket reachable"]; r.Status != health.Fail || !strings.Contains(r.Detail, "access denied") {
			t.Fatalf("%+v", r)
		}
	})
	t.Run("unreachable endpoint", func(t *testing.T) {
		srv := httptest.NewServer(http.NotFoundHandler())
		url := srv.URL
		srv.Close()
		b, _ := NewS3(S3Config{Endpoint: url, AccessKeyID: "id", SecretAccessKey: testSecret, Bucket: "b", Retry: fakeNoRetry})
		m := checks(b.Check(ctx))
		if r := m["bucket reachable"]; r.Status != health.Fail || !strings.Contains(r.Detail, "cannot reach the endpoint") {
			t.Fatalf("%+v", r)
		}
		// Links into a bucket nobody reaches are not "ok".
		if p := m["public URL"]; p.Status != health.Skip {
			t.Fatalf("public URL while the bucket is unreachable: %+v", p)
		}
		if p := checks(b.CheckReadOnly(ctx))["public URL"]; p.Status != health.Skip {
			t.Fatalf("public URL (read-only) while the bucket is unreachable: %+v", p)
		}
	})
}

func TestLocalCheckReadOnlyWritesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	l, err := NewLocal(LocalConfig{DataDir: dir, PublicBaseURL: "https://files.example.com"})
	if err != nil {
		t.Fatal(err)
	}
	if c := l.CheckReadOnly(ctx); len(c) != 1 || c[0].Status != health.OK || !strings.Contains(c[0].Detail, "does not exist yet") {
		t.Fatalf("before any upload: %+v", c)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("read-only check wrote %v", entries)
	}
	if c := l.Check(ctx); c[0].Status != health.OK {
		t.Fatalf("check: %+v", c)
	}
	if c := l.CheckReadOnly(ctx); c[0].Status != health.OK || !strings.Contains(c[0].Detail, "files are stored under") {
		t.Fatalf("after the probe: %+v", c)
	}
}
