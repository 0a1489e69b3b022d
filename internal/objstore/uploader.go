// Package objstore stores request attachments: in an S3-compatible bucket (Cloudflare R2) or, by
// default, under the data directory. Files stream from their source (a URL fetched through
// internal/fetch, or a local path) straight into the store, never whole in memory.
package objstore

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/figurative/figsupport/internal/fetch"
	"github.com/figurative/figsupport/internal/health"
	"github.com/figurative/figsupport/internal/payload"
	"github.com/figurative/figsupport/internal/text"
)

// ErrTooLarge is returned (wrapped) when a file is over the per-file cap, whatever its source.
var ErrTooLarge = fetch.ErrTooLarge

// ErrLocalPath is returned when a request names a local path and the Uploader does not allow them.
var ErrLocalPath = errors.New("local file paths are not accepted here")

// Defaults of Config.
const (
	DefaultMaxFileBytes int64 = 200 << 20
	DefaultParallel           = 4
)

// Fetcher is what the Uploader needs from internal/fetch.
type Fetcher interface {
	Fetch(ctx context.Context, rawURL string) (*fetch.Result, error)
}

// Config bounds the Uploader. Zero values take the defaults.
type Config struct {
	MaxFileBytes int64 // per file, URLs and local files alike; default 200 MiB
	Parallel     int   // files in flight at once; default 4
	// LocalPaths allows sources given as local paths. The CLI sets it; `serve` must not, or a
	// webhook could publish any file the daemon can read — unless LocalRoot confines them.
	LocalPaths bool
	// LocalRoot, when set, confines local paths to this directory (after resolving symbolic
	// links): `serve` sets it to its spool of uploaded multipart files.
	LocalRoot string
	// OnProgress, when set, is told how far each file's upload is: once when the file is opened
	// (Read 0), as its bytes are read from the source, and once more with Done when it is stored
	// or has failed. Files upload in parallel, so it is called from several goroutines at once; it
	// must be quick (the CLI's progress bar).
	OnProgress func(Progress)
}

// Progress is one report of a file's upload.
type Progress struct {
	Key  string // the object key: unique among the files of one call
	Name string // the stored file's name
	Size int64  // the file's length when known in advance, else -1
	Read int64  // bytes read from the source so far
	Done bool   // the file is stored, or failed
}

// Uploader stores a request's files. It implements chain.Files.
type Uploader struct {
	backend Backend
	fetcher Fetcher
	cfg     Config
}

// NewUploader combines a backend and a fetcher; a nil fetcher means fetch.New with the same size cap.
func NewUploader(b Backend, f Fetcher, cfg Config) *Uploader {
	if cfg.MaxFileBytes <= 0 {
		cfg.MaxFileBytes = DefaultMaxFileBytes
	}
	if cfg.Parallel <= 0 {
		cfg.Parallel = DefaultParallel
	}
	if f == nil {
		f = fetch.New(fetch.Config{MaxBytes: cfg.MaxFileBytes})
	}
	return &Uploader{backend: b, fetcher: f, cfg: cfg}
}

// Backend is the store in use.
func (u *Uploader) Backend() Backend { return u.backend }

// Check reports on the backend, for `doctor`.
func (u *Uploader) Check(ctx context.Context) []health.Check { return u.backend.Check(ctx) }

// FileError is a failure of one file; its message names the file.
type FileError struct {
	Name string // as the request gave it
	Err  error
}

func (e *FileError) Error() string { return fmt.Sprintf("file %q: %v", e.Name, e.Err) }
func (e *FileError) Unwrap() error { return e.Err }

// InputError reports a failure that is the request's own, so that trying again cannot help: a URL
// the fetcher refuses (scheme, address, redirects), a file over the size cap, a local path not
// allowed or missing, an answer such as 404 or 403 from the file's server. A server error, a
// timeout or a storage failure is not.
func (e *FileError) InputError() bool {
	var se *fetch.StatusError
	switch {
	case errors.As(e.Err, &se):
		return !se.Temporary()
	case errors.Is(e.Err, fetch.ErrForbiddenAddress), errors.Is(e.Err, fetch.ErrScheme), errors.Is(e.Err, fetch.ErrTooLarge),
		errors.Is(e.Err, fetch.ErrTooManyRedirects), errors.Is(e.Err, ErrLocalPath), errors.Is(e.Err, os.ErrNotExist):
		return true
	}
	return false
}

// Upload stores files under RequestPrefix(requestKey, at), in parallel (bounded) and streamed. Keys
// depend only on the request, so a retry overwrites the objects of an earlier attempt instead of
// adding new ones. The first failure cancels the others and is returned as a *FileError.
func (u *Uploader) Upload(ctx context.Context, requestKey string, at time.Time, files []payload.File) ([]payload.StoredFile, error) {
	if strings.TrimSpace(requestKey) == "" {
		return nil, errors.New("upload: empty request key")
	}
	for _, f := range files {
		if f.Path == "" {
			continue
		}
		if !u.cfg.LocalPaths {
			return nil, &FileError{Name: displayName(f), Err: ErrLocalPath}
		}
		if u.cfg.LocalRoot != "" && !within(u.cfg.LocalRoot, f.Path) {
			return nil, &FileError{Name: displayName(f), Err: fmt.Errorf("%w: outside %s", ErrLocalPath, u.cfg.LocalRoot)}
		}
	}
	return u.upload(ctx, RequestPrefix(requestKey, at), files)
}

// within reports whether path, its links resolved, lies inside root.
func within(root, path string) bool {
	root, err := filepath.Abs(root)
	if err != nil {
		return false
	}
	if path, err = filepath.Abs(path); err != nil {
		return false
	}
	r, err := filepath.EvalSymlinks(root)
	if err != nil {
		return false
	}
	p, err := filepath.EvalSymlinks(path)
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(r, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// UploadAdhoc stores files for the `upload FILE|URL…` command under a fresh prefix
// manual/<yyyy>/<mm>/<random>/; each source is an http(s) URL or a local path.
func (u *Uploader) UploadAdhoc(ctx context.Context, at time.Time, sources []string) ([]payload.StoredFile, error) {
	files := make([]payload.File, len(sources))
	for i, s := range sources {
		if uu, err := url.Parse(s); err == nil && (uu.Scheme == "http" || uu.Scheme == "https") {
			files[i] = payload.File{URL: s, Name: path.Base(uu.Path)}
		} else {
			files[i] = payload.File{Path: s, Name: filepath.Base(s)}
		}
	}
	return u.upload(ctx, AdhocPrefix(at), files)
}

// AdhocPrefix is a fresh prefix for files stored outside a request.
func AdhocPrefix(at time.Time) string {
	at = at.UTC()
	return fmt.Sprintf("manual/%04d/%02d/%s/", at.Year(), int(at.Month()), randomHex(8))
}

func displayName(f payload.File) string {
	switch {
	case f.Name != "":
		return f.Name
	case f.URL != "":
		return fetch.Redact(f.URL)
	}
	return f.Path
}

func (u *Uploader) upload(ctx context.Context, prefix string, files []payload.File) ([]payload.StoredFile, error) {
	out := make([]payload.StoredFile, len(files))
	if len(files) == 0 {
		return out, nil
	}
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.Name
		if names[i] == "" && f.Path != "" {
			names[i] = filepath.Base(f.Path)
		}
	}
	keys := Keys(prefix, names)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(u.cfg.Parallel)
	for i, f := range files {
		g.Go(func() error {
			sf, err := u.one(gctx, f, keys[i])
			if err != nil {
				return &FileError{Name: displayName(f), Err: err}
			}
			out[i] = sf
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// source is an open file to store.
type source struct {
	body io.ReadCloser
	size int64  // -1 when unknown
	hint string // the server's content type
	// file is body when it is a file on disk, whose size is known: a backend that can read it in
	// place (atBackend) needs no copy of it in memory.
	file *os.File
}

// atBackend is a backend that stores a file read in place, section by section (S3.PutAt).
type atBackend interface {
	PutAt(ctx context.Context, key string, r io.ReaderAt, size int64, contentType string, progress func(int64)) (string, error)
}

func (u *Uploader) open(ctx context.Context, f payload.File) (*source, error) {
	if f.URL != "" {
		res, err := u.fetcher.Fetch(ctx, f.URL)
		if err != nil {
			return nil, err
		}
		if res.Size > u.cfg.MaxFileBytes {
			res.Body.Close()
			return nil, tooLarge(res.Size, u.cfg.MaxFileBytes)
		}
		return &source{body: res.Body, size: res.Size, hint: res.ContentType}, nil
	}
	if f.Path == "" {
		return nil, errors.New("no url or path")
	}
	fh, err := os.Open(f.Path)
	if err != nil {
		return nil, err
	}
	st, err := fh.Stat()
	if err != nil {
		fh.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		fh.Close()
		return nil, fmt.Errorf("%s is not a regular file", f.Path)
	}
	if st.Size() > u.cfg.MaxFileBytes {
		fh.Close()
		return nil, tooLarge(st.Size(), u.cfg.MaxFileBytes)
	}
	return &source{body: fh, size: st.Size(), file: fh}, nil
}

func (u *Uploader) one(ctx context.Context, f payload.File, key string) (payload.StoredFile, error) {
	name := path.Base(key)
	src, err := u.open(ctx, f)
	if err != nil {
		u.report(Progress{Key: key, Name: name, Size: -1, Done: true})
		return payload.StoredFile{}, err
	}
	defer src.body.Close()

	if ab, ok := u.backend.(atBackend); ok && src.file != nil {
		return u.oneAt(ctx, ab, src, key, name)
	}
	// The cap is enforced here as well as in the fetcher: a local file may grow while it is read.
	counted := &capCounter{r: src.body, max: u.cfg.MaxFileBytes}
	if u.cfg.OnProgress != nil {
		counted.read = func(n int64) { u.report(Progress{Key: key, Name: name, Size: src.size, Read: n}) }
	}
	u.report(Progress{Key: key, Name: name, Size: src.size})
	defer func() { u.report(Progress{Key: key, Name: name, Size: src.size, Read: counted.n, Done: true}) }()
	br := bufio.NewReaderSize(counted, 4096)
	head, err := br.Peek(512)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		return payload.StoredFile{}, err
	}
	ctype := DetectContentType(name, head, src.hint)

	loc, err := u.backend.Put(ctx, key, br, src.size, ctype)
	if err != nil {
		return payload.StoredFile{}, err
	}
	return payload.StoredFile{Name: name, URL: loc, Size: counted.n, ContentType: ctype, Key: key}, nil
}

// oneAt stores a file on disk in place: its size was read and checked against the cap when it was
// opened, and that many bytes are stored even if it grows meanwhile.
func (u *Uploader) oneAt(ctx context.Context, ab atBackend, src *source, key, name string) (payload.StoredFile, error) {
	var read int64
	u.report(Progress{Key: key, Name: name, Size: src.size})
	defer func() { u.report(Progress{Key: key, Name: name, Size: src.size, Read: read, Done: true}) }()
	head := make([]byte, 512)
	n, err := src.file.ReadAt(head, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return payload.StoredFile{}, err
	}
	ctype := DetectContentType(name, head[:n], src.hint)
	loc, err := ab.PutAt(ctx, key, src.file, src.size, ctype, func(done int64) {
		read = done
		u.report(Progress{Key: key, Name: name, Size: src.size, Read: done})
	})
	if err != nil {
		return payload.StoredFile{}, err
	}
	read = src.size
	return payload.StoredFile{Name: name, URL: loc, Size: src.size, ContentType: ctype, Key: key}, nil
}

func (u *Uploader) report(p Progress) {
	if u.cfg.OnProgress != nil {
		u.cfg.OnProgress(p)
	}
}

// tooLarge says how large, in the tool's (English) units: this is an error message.
func tooLarge(size, max int64) error {
	return fmt.Errorf("%w: %s, over the %s cap", ErrTooLarge, text.Bytes(size), text.Bytes(max))
}

// capCounter counts bytes and fails once more than max have been read; read, when set, is told
// the count after each read.
type capCounter struct {
	r    io.Reader
	n    int64
	max  int64
	read func(n int64)
}

func (c *capCounter) Read(p []byte) (int, error) {
	if rest := c.max - c.n + 1; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.read != nil && n > 0 {
		c.read(c.n)
	}
	if c.n > c.max {
		return n, fmt.Errorf("%w: more than %s", ErrTooLarge, text.Bytes(c.max))
	}
	return n, err
}
