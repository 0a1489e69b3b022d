package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/figurative/figsupport/internal/health"
)

// Backend stores one object under a key and says where the public can read it.
type Backend interface {
	// Put streams body to key, replacing any object there (so a retry never makes a second one).
	// size is the body's length, or -1 when unknown. A failed Put leaves no object behind.
	Put(ctx context.Context, key string, body io.Reader, size int64, contentType string) (publicURL string, err error)
	// Check reports whether the store is usable, for `doctor`.
	Check(ctx context.Context) []health.Check
	// Kind names the backend for the "which backends are in use" line: "r2" or "local".
	Kind() string
}

// LocalConfig configures the embedded file store.
type LocalConfig struct {
	// DataDir is figsupport's data directory; files go under DataDir/files/<key>.
	DataDir string
	// PublicBaseURL, when set, is where a web server publishes DataDir/files: URLs become
	// PublicBaseURL/<key>. Empty means file:// URLs.
	PublicBaseURL string
}

// Local keeps files on the local disk: the embedded default, needing no account.
type Local struct {
	root string
	base string
}

// NewLocal prepares the files directory.
func NewLocal(cfg LocalConfig) (*Local, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("local file store: no data directory")
	}
	root, err := filepath.Abs(filepath.Join(cfg.DataDir, "files"))
	if err != nil {
		return nil, fmt.Errorf("local file store: %w", err)
	}
	base, err := publicBase(cfg.PublicBaseURL)
	if err != nil {
		return nil, fmt.Errorf("local file store: public base url: %w", err)
	}
	return &Local{root: root, base: base}, nil
}

// Kind implements Backend.
func (l *Local) Kind() string { return "local" }

// Root is the directory holding the files.
func (l *Local) Root() string { return l.root }

func (l *Local) path(key string) (string, error) {
	if err := checkKey(key); err != nil {
		return "", err
	}
	return filepath.Join(l.root, filepath.FromSlash(key)), nil
}

// checkKey refuses keys that could leave the store's directory; the Uploader never builds one,
// this guards other callers.
func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, `\`) || strings.ContainsRune(key, 0) {
		return fmt.Errorf("invalid object key %q", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("invalid object key %q", key)
		}
	}
	return nil
}

// Put writes to a temporary file beside the target and renames it into place, so a reader never
// sees half a file and a failure leaves nothing.
func (l *Local) Put(ctx context.Context, key string, body io.Reader, size int64, contentType string) (string, error) {
	dst, err := l.path(key)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("create directory: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".partial-*")
	if err != nil {
		return "", fmt.Errorf("create temporary file: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	n, err := io.Copy(tmp, ctxReader{ctx, body})
	if err != nil {
		return "", err
	}
	if size >= 0 && n != size {
		return "", fmt.Errorf("short body: %d bytes of %d", n, size)
	}
	if err := tmp.Sync(); err != nil {
		return "", fmt.Errorf("write %s: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write %s: %w", key, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return "", fmt.Errorf("write %s: %w", key, err)
	}
	ok = true
	return l.URL(key), nil
}

// URL is where key is read: under the public base when configured, else a file:// URL.
func (l *Local) URL(key string) string {
	if l.base != "" {
		return l.base + "/" + escapeKey(key)
	}
	return (&url.URL{Scheme: "file", Path: filepath.ToSlash(filepath.Join(l.root, filepath.FromSlash(key)))}).String()
}

// Check verifies the directory is writable with a probe file.
func (l *Local) Check(ctx context.Context) []health.Check {
	c := health.Check{Service: "files", Name: "local directory writable"}
	dir := filepath.Join(l.root, "_doctor")
	err := os.MkdirAll(dir, 0o755)
	var f *os.File
	if err == nil {
		f, err = os.CreateTemp(dir, "probe-*")
	}
	if err == nil {
		f.Close()
		err = os.Remove(f.Name())
	}
	if err != nil {
		c.Status, c.Detail = health.Fail, fmt.Sprintf("cannot write under %s: %v (set FIGSUPPORT_DATA_DIR to a writable directory)", l.root, err)
		return []health.Check{c}
	}
	c.Status = health.OK
	c.Detail = "files are stored under " + l.root
	if l.base == "" {
		c.Detail += "; their URLs are file:// links, readable on this machine only (set FILES_PUBLIC_BASE_URL, or configure R2)"
		c.Status = health.Warn
	}
	return []health.Check{c}
}

// CheckReadOnly is Check without the probe file (`doctor --dry-run` writes nothing): the files
// directory is looked at, not written to.
func (l *Local) CheckReadOnly(ctx context.Context) []health.Check {
	c := health.Check{Service: "files", Name: "local directory"}
	st, err := os.Stat(l.root)
	switch {
	case errors.Is(err, os.ErrNotExist):
		c.Status, c.Detail = health.OK, l.root+" does not exist yet: the first upload creates it (write not probed: --dry-run)"
	case err != nil:
		c.Status, c.Detail = health.Fail, fmt.Sprintf("cannot look at %s: %v", l.root, err)
		return []health.Check{c}
	case !st.IsDir():
		c.Status, c.Detail = health.Fail, l.root+" is not a directory (set FIGSUPPORT_DATA_DIR to a writable directory)"
		return []health.Check{c}
	default:
		c.Status, c.Detail = health.OK, "files are stored under "+l.root+" (write not probed: --dry-run)"
	}
	if l.base == "" {
		c.Detail += "; their URLs are file:// links, readable on this machine only (set FILES_PUBLIC_BASE_URL, or configure R2)"
		c.Status = health.Warn
	}
	return []health.Check{c}
}

// ctxReader stops a long copy when the context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// escapeKey escapes each segment of a key for a URL path, keeping the slashes.
func escapeKey(key string) string {
	segs := strings.Split(key, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

func publicBase(raw string) (string, error) {
	raw = strings.TrimRight(strings.TrimSpace(raw), "/")
	if raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("%q is not an http(s) URL", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%q must not have a query or fragment", raw)
	}
	return raw, nil
}
