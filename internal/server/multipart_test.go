package server

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/payload"
	"github.com/figurative/figsupport/internal/text"
)

var baseFields = []part{
	{field: "source", content: "modelisation"},
	{field: "objet", content: "Modélisation 3D"},
	{field: "description", content: "Voici les photos du produit"},
	{field: "user_email", content: "Studio@Example.com"},
	{field: "user_name", content: "Studio"},
}

func withParts(extra ...part) []part {
	return append(append([]part{}, baseFields...), extra...)
}

// recorder is a Processor that reads the spooled files while it runs, as the upload step does.
type recorder struct {
	mu      sync.Mutex
	req     *payload.Request
	content map[string]string // path → content
	err     error
}

func (rc *recorder) Process(_ context.Context, req *payload.Request, _ chain.RunOptions) (*payload.Response, error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.req = req
	rc.content = map[string]string{}
	for _, f := range req.Fichiers {
		if f.Path != "" {
			b, err := os.ReadFile(f.Path)
			if err != nil {
				return nil, err
			}
			rc.content[f.Path] = string(b)
		}
	}
	if rc.err != nil {
		return nil, rc.err
	}
	return &payload.Response{Status: payload.StatusCreated, RequestID: req.Key()}, nil
}

func TestMultipartTwoFiles(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		want      int
		wantSpool bool // the files stay for a retry
	}{
		{"success cleans the spool", nil, 200, false},
		{"failure keeps the files", &chain.StepError{Step: "upload", Err: errors.New("r2 down")}, 202, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &recorder{err: tt.err}
			e := newEnv(t, rc, nil)
			r, _ := postForm(t, withParts(
				part{field: "fichiers", content: `[{"name":"ref.jpg","url":"https://files.example.com/ref.jpg"}]`},
				part{field: "fichiers", filename: "photo été.jpg", content: "JPEG-1"},
				part{field: "files", filename: `C:\Users\x\..\modèle.glb`, content: "glTF-2"},
				part{field: "empty", filename: "", content: ""},
			)...)
			rec := e.do(r)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			e.drain(t)
			req := rc.req
			if req.UserEmail != "studio@example.com" || req.Source != "modelisation" || req.Objet != "Modélisation 3D" {
				t.Errorf("request %+v", req)
			}
			if len(req.Fichiers) != 3 || req.Fichiers[0].URL == "" || req.Fichiers[0].Path != "" {
				t.Fatalf("files %+v", req.Fichiers)
			}
			want := []struct{ name, content, spooled string }{
				{"photo été.jpg", "JPEG-1", "1-photo_été.jpg"},
				{"modèle.glb", "glTF-2", "2-modèle.glb"},
			}
			for i, w := range want {
				f := req.Fichiers[i+1]
				if f.Name != w.name || rc.content[f.Path] != w.content {
					t.Errorf("file %d: %+v with %q", i, f, rc.content[f.Path])
				}
				rel, err := filepath.Rel(e.spool, f.Path)
				if err != nil || strings.HasPrefix(rel, "..") || strings.Count(rel, string(filepath.Separator)) != 1 {
					t.Errorf("path %s not in a request directory of %s", f.Path, e.spool)
				}
				if filepath.Base(f.Path) != w.spooled {
					t.Errorf("spooled name %s", filepath.Base(f.Path))
				}
			}
			left := spoolEntries(t, e.spool)
			if tt.wantSpool != (len(left) == 1) || len(left) > 1 {
				t.Errorf("spool after the run: %v", left)
			}
			if tt.wantSpool {
				if err := RemoveSpool(e.spool, req); err != nil {
					t.Fatal(err)
				}
				if left := spoolEntries(t, e.spool); len(left) != 0 {
					t.Errorf("RemoveSpool left %v", left)
				}
			}
		})
	}
}

// TestMultipartChain: the real chain on a multipart request; the same form sent again is a replay
// (its files land on the same paths, so its payload hash is the same).
func TestMultipartChain(t *testing.T) {
	e := newEnv(t, nil, nil)
	parts := withParts(part{field: "fichiers", filename: "a.glb", content: "glTF"})
	for i, wantReplay := range []bool{false, true} {
		r, _ := postForm(t, parts...)
		rec := e.do(r)
		if rec.Code != 200 {
			t.Fatalf("request %d: status %d: %s", i, rec.Code, rec.Body)
		}
		resp := decode[payload.Response](t, rec)
		if resp.Status != payload.StatusCreated || resp.Replayed != wantReplay || resp.FilesUploaded != 1 ||
			resp.Classification != payload.Modelisation {
			t.Fatalf("request %d: %+v", i, resp)
		}
		if left := spoolEntries(t, e.spool); len(left) != 0 {
			t.Errorf("request %d: spool not cleaned: %v", i, left)
		}
	}
	// Same fields, another file content: a new request.
	r, _ := postForm(t, withParts(part{field: "fichiers", filename: "a.glb", content: "glTF v2"})...)
	if resp := decode[payload.Response](t, e.do(r)); resp.Replayed || resp.Status != payload.StatusUpdated {
		t.Fatalf("other content: %+v", resp)
	}
	// Same request_id, another file content: a conflict, and its files go.
	for i, content := range []string{"one", "two"} {
		r, _ := postForm(t, withParts(part{field: "request_id", content: "form-7"}, part{field: "fichiers", filename: "b.stl", content: content})...)
		rec := e.do(r)
		if want := []int{200, 409}[i]; rec.Code != want {
			t.Fatalf("request_id reuse %d: status %d, want %d: %s", i, rec.Code, want, rec.Body)
		}
	}
	e.drain(t)
	if left := spoolEntries(t, e.spool); len(left) != 0 {
		t.Errorf("spool after the conflict: %v", left)
	}
}

func TestMultipartErrors(t *testing.T) {
	tests := []struct {
		name      string
		parts     []part
		want      int
		wantField string
		wantInMsg string
	}{
		{"file too large", withParts(part{field: "fichiers", filename: "ok.jpg", content: "small"}, part{field: "fichiers", filename: "huge.glb", content: strings.Repeat("x", 65)}),
			413, "fichiers", `"huge.glb" exceeds 64 bytes`},
		{"too many files", withParts(part{field: "f", filename: "1.jpg", content: "1"}, part{field: "f", filename: "2.jpg", content: "2"}, part{field: "f", filename: "3.jpg", content: "3"}),
			422, "fichiers", "too many files"},
		{"URLs and parts over the count", withParts(part{field: "fichiers", content: `[{"url":"https://x.example.com/a"},{"url":"https://x.example.com/b"}]`}, part{field: "f", filename: "1.jpg", content: "1"}),
			422, "fichiers", "too many files"},
		{"fichiers not JSON", withParts(part{field: "fichiers", content: "https://x.example.com/a"}), 422, "fichiers", "JSON array"},
		{"path in fichiers", withParts(part{field: "fichiers", content: `[{"url":"https://x.example.com/a"},{"path":"/etc/passwd"}]`}), 422, "fichiers[1].path", "local paths"},
		{"field twice", withParts(part{field: "objet", content: "again"}), 422, "objet", "more than once"},
		{"bad e-mail", []part{{field: "objet", content: "x"}, {field: "user_email", content: "nobody"}}, 422, "user_email", ""},
		{"bad received_at", withParts(part{field: "received_at", content: "yesterday"}), 422, "received_at", ""},
		{"form values too large", withParts(part{field: "unknown", content: strings.Repeat("z", 2000)}), 413, "", "form values exceed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &recorder{}
			e := newEnv(t, rc, func(c *Config) {
				c.MaxFileBytes = 64
				c.Limits.MaxFiles = 2
				c.Limits.MaxBodyBytes = 1024
			})
			r, _ := postForm(t, tt.parts...)
			rec := e.do(r)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			b := decode[errBody](t, rec)
			if b.Field != tt.wantField || !strings.Contains(b.Error, tt.wantInMsg) {
				t.Errorf("body %+v", b)
			}
			if rc.req != nil {
				t.Error("the chain ran")
			}
			if left := spoolEntries(t, e.spool); len(left) != 0 {
				t.Errorf("spool not cleaned: %v", left)
			}
		})
	}
}

func TestMultipartMalformed(t *testing.T) {
	tests := []struct {
		name string
		ct   string
		body string
		want int
	}{
		{"no boundary", "multipart/form-data", "", 400},
		{"truncated", "multipart/form-data; boundary=XX", "--XX\r\nContent-Disposition: form-data; name=\"objet\"\r\n\r\nabc", 400},
		// Each part is within its own cap; the preamble makes the whole over MaxBodyBytes + MaxFiles×MaxFileBytes + slack.
		{"whole body over the limit", "multipart/form-data; boundary=XX", strings.Repeat(strings.Repeat("a", 98)+"\r\n", 2000) + "--XX\r\nContent-Disposition: form-data; name=\"objet\"\r\n\r\nabc\r\n--XX--\r\n", 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, &recorder{}, func(c *Config) {
				c.MaxFileBytes = 1024
				c.Limits.MaxFiles = 1
				c.Limits.MaxBodyBytes = 1024
			})
			r := post(tt.body, "Content-Type", tt.ct)
			rec := e.do(r)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			decode[errBody](t, rec)
		})
	}
}

func TestMultipartSigned(t *testing.T) {
	tests := []struct {
		name   string
		tamper bool
		want   int
	}{
		{"valid signature", false, 200},
		{"body changed", true, 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := &recorder{}
			e := newEnv(t, rc, func(c *Config) { c.WebhookSecret = testSecret })
			r, body := postForm(t, withParts(part{field: "fichiers", filename: "a.jpg", content: "JPEG"})...)
			if err := SignRequest(r, testSecret, "msg_mp", t0, body); err != nil {
				t.Fatal(err)
			}
			if tt.tamper {
				r.Body = nopCloser(bytes.Replace(body, []byte("JPEG"), []byte("EVIL"), 1))
			}
			rec := e.do(r)
			if rec.Code != tt.want {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.want, rec.Body)
			}
			if tt.want == 200 && (rc.req == nil || rc.req.Key() != "msg_mp") {
				t.Errorf("request %+v", rc.req)
			}
			if tt.want == 401 && rc.req != nil {
				t.Error("the chain ran")
			}
			e.drain(t)
			if left := spoolEntries(t, e.spool); len(left) != 0 {
				t.Errorf("spool: %v", left)
			}
		})
	}
}

func TestSanitize(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		head bool
		want string
	}{
		{"photo.jpg", 100, false, "photo.jpg"},
		{"../../etc/passwd", 100, false, "passwd"},
		{".htaccess", 100, false, "htaccess"},
		{"a\x00b\nc", 100, false, "abc"},
		{"", 100, false, "file"},
		{"...", 100, false, "file"},
		{"très-long-nom.glb", 8, false, "trè.glb"},
		{"key/with/slashes", 8, true, "key_with"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			// head: a spool directory from a request key; else a spooled file's name
			got := text.FileName(tt.in, tt.max)
			if tt.head {
				got = text.KeySegment(tt.in, tt.max)
			}
			if got != tt.want {
				t.Errorf("sanitize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

func nopCloser(b []byte) readCloser { return readCloser{bytes.NewReader(b)} }

func TestPruneIncoming(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{".incoming-old", ".incoming-new", "req-abc"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	for _, d := range []string{".incoming-old", "req-abc"} {
		if err := os.Chtimes(filepath.Join(dir, d), old, old); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := build(Config{SpoolDir: dir}); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(spoolEntries(t, dir), " "); got != ".incoming-new req-abc" {
		t.Errorf("spool after start: %s", got)
	}
}
