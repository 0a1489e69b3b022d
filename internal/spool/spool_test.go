package spool

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// entries lists root's entries (names, sorted).
func entries(t *testing.T, root string) []string {
	t.Helper()
	es, err := os.ReadDir(root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func TestBatchAddCommit(t *testing.T) {
	root := filepath.Join(t.TempDir(), "spool") // created with the first file
	b := New(root)
	if err := b.Commit("k", "id"); err != nil || len(entries(t, root)) != 0 {
		t.Fatalf("empty commit: %v, %v", err, entries(t, root))
	}
	f1, err := b.Add(strings.NewReader("glTF"), "../../modèle 3D.glb", 10)
	if err != nil {
		t.Fatal(err)
	}
	f2, err := b.Add(strings.NewReader("exactly10b"), "photo.jpg", 10)
	if err != nil {
		t.Fatal(err)
	}
	if f1.Sum != sum("glTF") || f1.Size != 4 || f1.Name != "../../modèle 3D.glb" || filepath.Base(f1.Path) != "1-modèle_3D.glb" {
		t.Errorf("file 1 %+v", f1)
	}
	if !strings.HasPrefix(filepath.Base(filepath.Dir(f2.Path)), IncomingPrefix) {
		t.Errorf("before commit the files are in a private directory: %s", f2.Path)
	}
	if ref, ok := b.Sum(f2.Path); !ok || ref != "sha256:"+sum("exactly10b") {
		t.Errorf("Sum = %q %v", ref, ok)
	}
	if _, ok := b.Sum("/elsewhere"); ok {
		t.Error("Sum of a path outside the batch")
	}

	if err := b.Commit("CAF/12@mail.example", "identity"); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte("identity"))
	wantDir := filepath.Join(root, "CAF_12_mail.example-"+hex.EncodeToString(h[:12]))
	if b.Dir() != wantDir || !slices.Equal(entries(t, root), []string{filepath.Base(wantDir)}) {
		t.Fatalf("dir %s, root holds %v; want %s", b.Dir(), entries(t, root), wantDir)
	}
	for _, f := range []File{f1, f2} {
		moved := b.Relocate(f.Path)
		if filepath.Dir(moved) != wantDir {
			t.Errorf("%s relocated to %s", f.Path, moved)
		}
		st, err := os.Stat(moved)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", moved, st.Mode(), err)
		}
	}
	if st, err := os.Stat(wantDir); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("dir mode %v %v", st.Mode(), err)
	}
	if b.Relocate("/other/path") != "/other/path" {
		t.Error("a path outside the batch moved")
	}
	if got := b.Files(); got[0].Path != filepath.Join(wantDir, "1-modèle_3D.glb") || got[1].Size != 10 {
		t.Errorf("files %+v", got)
	}

	// The same request again, with the same files: the first copy is kept, the second goes.
	b2 := New(root)
	if _, err := b2.Add(strings.NewReader("glTF"), "x", 10); err != nil {
		t.Fatal(err)
	}
	if err := b2.Commit("CAF/12@mail.example", "identity"); err != nil || b2.Dir() != wantDir {
		t.Fatalf("second commit: %v, %s", err, b2.Dir())
	}
	if got := entries(t, root); len(got) != 1 {
		t.Errorf("root holds %v", got)
	}

	if err := b.Remove(); err != nil || len(entries(t, root)) != 0 {
		t.Errorf("remove: %v, left %v", err, entries(t, root))
	}
	if err := b.Remove(); err != nil {
		t.Errorf("second remove: %v", err)
	}
	var nilBatch *Batch
	if err := nilBatch.Remove(); err != nil {
		t.Errorf("nil remove: %v", err)
	}
}

func TestBatchAddErrors(t *testing.T) {
	broken := errors.New("connection reset")
	tests := []struct {
		name    string
		root    string // "" for none
		r       io.Reader
		is      error
		read    bool // a *ReadError
		wantErr string
	}{
		{name: "too large", r: strings.NewReader("12345678901"), is: ErrTooLarge},
		{name: "read error", r: iotest.ErrReader(broken), is: broken, read: true},
		{name: "truncated", r: io.MultiReader(strings.NewReader("abc"), iotest.ErrReader(io.ErrUnexpectedEOF)), is: io.ErrUnexpectedEOF, read: true},
		{name: "no spool directory", root: "-", r: strings.NewReader("x"), wantErr: "no spool directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			if tt.root == "-" {
				root = ""
			}
			b := New(root)
			if _, err := b.Add(strings.NewReader("kept"), "a.txt", 10); err != nil && root != "" {
				t.Fatal(err)
			}
			_, err := b.Add(tt.r, "b.bin", 10)
			if err == nil {
				t.Fatal("no error")
			}
			var re *ReadError
			if tt.is != nil && !errors.Is(err, tt.is) || errors.As(err, &re) != tt.read || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v (read error %v)", err, errors.As(err, &re))
			}
			if root == "" {
				return
			}
			// The failed file is gone, the batch keeps the others.
			if b.Len() != 1 {
				t.Errorf("%d files", b.Len())
			}
			files, _ := filepath.Glob(filepath.Join(root, IncomingPrefix+"*", "*"))
			if len(files) != 1 || filepath.Base(files[0]) != "1-a.txt" {
				t.Errorf("on disk: %v", files)
			}
			if err := b.Remove(); err != nil || len(entries(t, root)) != 0 {
				t.Errorf("remove: %v, left %v", err, entries(t, root))
			}
		})
	}
}

func TestRemoveRequest(t *testing.T) {
	root := t.TempDir()
	mk := func(rel string) string {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a1, a2 := mk("req-a/1-x.jpg"), mk("req-a/2-y.jpg")
	b1 := mk("req-b/1-z.jpg")
	inc := mk(IncomingPrefix + "123/1-w.jpg")
	outside := filepath.Join(t.TempDir(), "req-c", "1-v.jpg")
	if err := RemoveRequest(root, a1, a2, "", inc, outside, filepath.Join(root, "req-a", "..", "req-b", "..", "..", "etc", "passwd")); err != nil {
		t.Fatal(err)
	}
	if got := entries(t, root); !slices.Equal(got, []string{IncomingPrefix + "123", "req-b"}) {
		t.Errorf("left %v", got)
	}
	if _, err := os.Stat(b1); err != nil {
		t.Error(err)
	}
}

func TestPrune(t *testing.T) {
	root := t.TempDir()
	now := time.Now()
	for name, age := range map[string]time.Duration{
		IncomingPrefix + "old": 2 * time.Hour, IncomingPrefix + "fresh": time.Minute, "req-old": 2 * time.Hour,
	} {
		dir := filepath.Join(root, name)
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(dir, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	Prune(root, now.Add(-time.Hour))
	if got := entries(t, root); !slices.Equal(got, []string{IncomingPrefix + "fresh", "req-old"}) {
		t.Errorf("left %v", got)
	}
	Prune(filepath.Join(root, "missing"), now) // nothing to do, nothing to fail
}
