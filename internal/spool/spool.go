// Package spool keeps the files a request brings (an e-mail's attachments, a form's file parts)
// on disk until the request is done: streamed and hashed while they are received, into a private
// directory, then moved to the request's own directory once its key is known.
//
// Layout, under the spool root (directories 0700, files 0600):
//
//	.incoming-<random>/        while the request is read (removed on error, pruned after a crash)
//	<key>-<digest>/<n>-<name>  once committed; <key> is the request key as a directory name,
//	                           <digest> derives from the request and its files' contents, so the
//	                           same request received again lands on the same paths
package spool

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/figurative/figsupport/internal/text"
)

const (
	// IncomingPrefix names the private directories files stream to before their request's key is
	// known; Prune removes those a crash left behind.
	IncomingPrefix = ".incoming-"
	// keyBytes and nameBytes bound the directory's <key> (text.KeySegment) and a file's <name>
	// (text.FileName).
	keyBytes  = 48
	nameBytes = 100
)

// ErrTooLarge is returned by Add when a file exceeds its size limit.
var ErrTooLarge = errors.New("file exceeds its size limit")

// ReadError is a failure to read a file's content: the sender's fault (a body cut short, an
// encoding that does not decode), as opposed to a failure to store it (any other error of Add).
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "read file: " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// File is one received file.
type File struct {
	Name string // as sent
	Path string // where it is now
	Sum  string // hex SHA-256 of the content
	Size int64
}

// Batch is the files of one request. Nothing is created on disk before the first Add. A Batch is
// used by one goroutine.
type Batch struct {
	root  string
	tmp   string // the private directory, while receiving
	dir   string // the request's directory, once committed
	files []File
	moved map[string]string // the paths given out before Commit → where they are now
}

// New starts an empty batch under root (made absolute when the first file comes).
func New(root string) *Batch { return &Batch{root: root} }

// Files are the batch's files, in the order they were added.
func (b *Batch) Files() []File { return b.files }

// Len is the number of files.
func (b *Batch) Len() int { return len(b.files) }

// Add streams r to a new file of the batch, hashing it on the way, and fails with ErrTooLarge past
// max bytes. Errors reading r are *ReadError; other errors are the disk's. A file that fails is
// removed (the batch keeps the others).
func (b *Batch) Add(r io.Reader, name string, max int64) (File, error) {
	if b.dir != "" {
		return File{}, errors.New("spool: add after commit")
	}
	if err := b.ensureDir(); err != nil {
		return File{}, err
	}
	path := filepath.Join(b.tmp, fmt.Sprintf("%d-%s", len(b.files)+1, text.FileName(name, nameBytes)))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return File{}, fmt.Errorf("spool: %w", err)
	}
	h := sha256.New()
	w := &hashWriter{w: f, h: h}
	n, rerr := io.Copy(w, &readSide{r: io.LimitReader(r, max+1)})
	if cerr := f.Close(); w.err == nil && cerr != nil {
		w.err = cerr
	}
	switch {
	case w.err != nil:
		err = fmt.Errorf("spool: %w", w.err)
	case rerr != nil:
		err = rerr // a *ReadError: io.Copy returns the reader's errors as they are
	case n > max:
		err = ErrTooLarge
	}
	if err != nil {
		os.Remove(path)
		return File{}, err
	}
	sf := File{Name: name, Path: path, Sum: hex.EncodeToString(h.Sum(nil)), Size: n}
	b.files = append(b.files, sf)
	return sf, nil
}

func (b *Batch) ensureDir() error {
	if b.tmp != "" {
		return nil
	}
	if b.root == "" {
		return errors.New("spool: files were received and no spool directory was given")
	}
	root, err := filepath.Abs(b.root)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	dir, err := os.MkdirTemp(root, IncomingPrefix)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	b.root, b.tmp = root, dir
	return nil
}

// hashWriter writes to w and hashes what was written; it keeps the first write error, so that a
// full disk is told from a read error.
type hashWriter struct {
	w   io.Writer
	h   io.Writer
	err error
}

func (hw *hashWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	if err != nil && hw.err == nil {
		hw.err = err
	}
	return n, err
}

// readSide marks the reader's errors as *ReadError.
type readSide struct{ r io.Reader }

func (rs *readSide) Read(p []byte) (int, error) {
	n, err := rs.r.Read(p)
	if err != nil && err != io.EOF {
		err = &ReadError{Err: err}
	}
	return n, err
}

// Sum is the content reference ("sha256:<hex>") of the batch file at path, which a request's
// identity uses in place of the path (see Commit).
func (b *Batch) Sum(path string) (string, bool) {
	for _, f := range b.files {
		if f.Path == path {
			return "sha256:" + f.Sum, true
		}
	}
	return "", false
}

// Commit moves the files to their request's directory, <root>/<key>-<digest>, the digest being
// that of identity (the request as it stands with its files' contents: see payload's
// Request.SpoolIdentity). When that directory exists already, the same request was received
// before with the same files: they are used and this batch's copies removed. Commit on an empty
// batch does nothing.
func (b *Batch) Commit(key, identity string) error {
	if b.tmp == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(identity))
	dir := filepath.Join(b.root, text.KeySegment(key, keyBytes)+"-"+hex.EncodeToString(sum[:12]))
	if err := os.Rename(b.tmp, dir); err != nil {
		st, serr := os.Stat(dir)
		if serr != nil || !st.IsDir() {
			return fmt.Errorf("spool: %w", err)
		}
		if err := os.RemoveAll(b.tmp); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	}
	b.moved = make(map[string]string, len(b.files))
	for i := range b.files {
		to := filepath.Join(dir, filepath.Base(b.files[i].Path))
		b.moved[b.files[i].Path] = to
		b.files[i].Path = to
	}
	b.tmp, b.dir = "", dir
	return nil
}

// Dir is the request's directory once committed, else "".
func (b *Batch) Dir() string { return b.dir }

// Relocate is where the file given out at path (before Commit) is now; any other path is
// returned as it is.
func (b *Batch) Relocate(path string) string {
	if to, ok := b.moved[path]; ok {
		return to
	}
	return path
}

// Remove deletes the batch's files, committed or not; it is safe on a nil or empty batch.
func (b *Batch) Remove() error {
	if b == nil {
		return nil
	}
	var errs []error
	for _, d := range []string{b.tmp, b.dir} {
		if d != "" {
			errs = append(errs, os.RemoveAll(d))
		}
	}
	b.tmp, b.dir, b.files, b.moved = "", "", nil, nil
	return errors.Join(errs...)
}

// RemoveRequest deletes the request directories of root that hold any of paths (paths elsewhere,
// and private directories, are left alone): what a finished request calls on its files.
func RemoveRequest(root string, paths ...string) error {
	abs, err := filepath.Abs(root)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	seen := map[string]bool{}
	var errs []error
	for _, p := range paths {
		if p == "" {
			continue
		}
		dir := filepath.Dir(filepath.Clean(p))
		if filepath.Dir(dir) != abs || strings.HasPrefix(filepath.Base(dir), ".") || seen[dir] {
			continue
		}
		seen[dir] = true
		errs = append(errs, os.RemoveAll(dir))
	}
	return errors.Join(errs...)
}

// Prune removes the private directories of root last changed before cutoff: what a crash while
// receiving left behind. A receiver still at work changes its directory with every file, so a
// cutoff well in the past (an hour) spares it.
func Prune(root string, cutoff time.Time) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), IncomingPrefix) {
			continue
		}
		if st, err := e.Info(); err == nil && st.ModTime().Before(cutoff) {
			os.RemoveAll(filepath.Join(root, e.Name()))
		}
	}
}
