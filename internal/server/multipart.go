package server

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/figurative/figsupport/internal/payload"
	"github.com/figurative/figsupport/internal/text"
)

// multipartSlack is room for the boundaries and part headers around the fields and the files.
const multipartSlack = 64 << 10

// formFields are the payload's fields as multipart form values; "fichiers" (a JSON array of
// {name, url}) is handled apart.
var formFields = []string{"source", "objet", "description", "user_email", "user_name", "received_at", "request_id"}

// readMultipart streams a multipart/form-data body: form values in memory (bounded by
// MaxBodyBytes together), file parts to the spool (each bounded by MaxFileBytes while it streams),
// the raw body through the signature MAC when one is pending.
func (s *Server) readMultipart(w http.ResponseWriter, r *http.Request, boundary string, au *auth) (*payload.Request, *spool, *apiError) {
	lim := s.cfg.Limits
	if boundary == "" {
		return nil, nil, &apiError{Status: http.StatusBadRequest, Msg: "multipart/form-data without a boundary"}
	}
	limit := lim.MaxBodyBytes + int64(lim.MaxFiles)*s.cfg.MaxFileBytes + multipartSlack
	var body io.Reader = http.MaxBytesReader(w, r.Body, limit)
	if au.pending() {
		body = io.TeeReader(body, au.mac)
	}
	sp := &spool{root: s.cfg.SpoolDir}
	fields, ae := s.readParts(multipart.NewReader(body, boundary), sp, limit)
	if au.pending() {
		// The signature covers the raw body: read what the parser left (the epilogue, or the
		// rest after an early error) before judging it. An unauthenticated sender learns nothing
		// but "unauthorized", except for a body over the limit, which cannot be read to its end.
		if _, err := io.Copy(io.Discard, body); err != nil {
			sp.remove()
			if ae == nil {
				ae = bodyError(err, limit)
			}
			return nil, nil, ae
		}
		if !au.verify() {
			sp.remove()
			return nil, nil, errUnauthorized
		}
	}
	if ae != nil {
		sp.remove()
		return nil, nil, ae
	}
	req, ae := s.buildRequest(fields, sp)
	if ae != nil {
		sp.remove()
		return nil, nil, ae
	}
	if len(sp.files) == 0 {
		sp = nil
	}
	return req, sp, nil
}

func (s *Server) readParts(mr *multipart.Reader, sp *spool, limit int64) (map[string]string, *apiError) {
	lim := s.cfg.Limits
	fields := map[string]string{}
	budget := lim.MaxBodyBytes // every form value together
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return fields, nil
		}
		if err != nil {
			return nil, partError(err, limit)
		}
		_, params, err := mime.ParseMediaType(part.Header.Get("Content-Disposition"))
		if err != nil {
			return nil, &apiError{Status: http.StatusBadRequest, Msg: "malformed multipart body: a part has no valid Content-Disposition"}
		}
		name := params["name"]
		if filename, isFile := params["filename"]; isFile {
			filename = baseName(filename)
			if filename == "" {
				continue // an empty file input: browsers send it with filename=""
			}
			if len(sp.files) >= lim.MaxFiles {
				return nil, &apiError{Status: http.StatusUnprocessableEntity, Field: "fichiers",
					Msg: fmt.Sprintf("too many files: more than %d", lim.MaxFiles)}
			}
			if ae := sp.add(part, filename, s.cfg.MaxFileBytes, limit); ae != nil {
				return nil, ae
			}
			continue
		}
		v, err := io.ReadAll(io.LimitReader(part, budget+1))
		if err != nil {
			return nil, partError(err, limit)
		}
		if int64(len(v)) > budget {
			return nil, &apiError{Status: http.StatusRequestEntityTooLarge,
				Msg: fmt.Sprintf("form values exceed %d bytes together", lim.MaxBodyBytes)}
		}
		budget -= int64(len(v))
		if name != "fichiers" && !slices.Contains(formFields, name) || strings.TrimSpace(string(v)) == "" {
			continue // unknown fields are tolerated, as in JSON; empty ones are absent
		}
		if _, dup := fields[name]; dup {
			return nil, &apiError{Status: http.StatusUnprocessableEntity, Field: name, Msg: "given more than once"}
		}
		fields[name] = string(v)
	}
}

func partError(err error, limit int64) *apiError {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return bodyError(err, limit)
	}
	return &apiError{Status: http.StatusBadRequest, Msg: "malformed multipart body"}
}

// baseName is the file name a browser sent, without any directory (old browsers send a full path).
func baseName(s string) string {
	if i := strings.LastIndexAny(s, `/\`); i >= 0 {
		s = s[i+1:]
	}
	return strings.TrimSpace(s)
}

// buildRequest makes the form values and spooled files one JSON document and parses it as such,
// so that multipart is validated exactly like JSON.
func (s *Server) buildRequest(fields map[string]string, sp *spool) (*payload.Request, *apiError) {
	doc := map[string]any{}
	for _, k := range formFields {
		if v, ok := fields[k]; ok {
			doc[k] = v
		}
	}
	var files []payload.File
	if v := strings.TrimSpace(fields["fichiers"]); v != "" {
		if err := json.Unmarshal([]byte(v), &files); err != nil {
			return nil, &apiError{Status: http.StatusUnprocessableEntity, Field: "fichiers",
				Msg: `as a form value, fichiers must be a JSON array of {"name": …, "url": …} objects`}
		}
		for i, f := range files {
			if strings.TrimSpace(f.Path) != "" {
				return nil, &apiError{Status: http.StatusUnprocessableEntity, Field: fmt.Sprintf("fichiers[%d].path", i),
					Msg: "local paths are not accepted over HTTP: upload the file as a file part"}
			}
		}
	}
	for _, f := range sp.files {
		files = append(files, payload.File{Name: f.name, Path: f.path})
	}
	if len(files) > 0 {
		doc["fichiers"] = files
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return nil, &apiError{Status: http.StatusBadRequest, Msg: "could not read the form"}
	}
	req, err := payload.ParseBytes(b, s.cfg.Limits, s.now())
	if err != nil {
		return nil, validationError(err)
	}
	return req, nil
}

// spool holds one request's uploaded files: first in a private temporary directory, then, once
// the request's key is known, in SpoolDir/<key>-<digest>/<n>-<name>. The digest covers the key,
// the form values and every file's content, so the same request sent again lands on the same
// paths (its payload hash, hence its idempotency, is the same) and a different one never does.
type spool struct {
	root  string
	tmp   string // the temporary directory while reading
	dir   string // the final directory
	files []spooled
}

type spooled struct {
	name string // as sent
	path string
	sum  string // SHA-256 of the content
}

const incomingPrefix = ".incoming-"

// Bounds of the spool's names: <key> (text.KeySegment) and <name> (text.FileName).
const (
	spoolKeyBytes  = 48
	spoolNameBytes = 100
)

func (sp *spool) add(part io.Reader, name string, max, limit int64) *apiError {
	storeErr := &apiError{Status: http.StatusServiceUnavailable, Msg: "could not store the uploaded files; send the request again", retryAfter: "30"}
	if sp.tmp == "" {
		dir, err := os.MkdirTemp(sp.root, incomingPrefix)
		if err != nil {
			return storeErr
		}
		sp.tmp = dir
	}
	path := filepath.Join(sp.tmp, fmt.Sprintf("%d-%s", len(sp.files)+1, text.FileName(name, spoolNameBytes)))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return storeErr
	}
	h := sha256.New()
	fw := &errWriter{w: f}
	n, err := io.Copy(io.MultiWriter(fw, h), io.LimitReader(part, max+1))
	if cerr := f.Close(); fw.err == nil && cerr != nil {
		fw.err = cerr
	}
	switch {
	case fw.err != nil:
		return storeErr
	case err != nil:
		return partError(err, limit)
	case n > max:
		return &apiError{Status: http.StatusRequestEntityTooLarge, Field: "fichiers",
			Msg: fmt.Sprintf("file %q exceeds %d bytes", name, max)}
	}
	sp.files = append(sp.files, spooled{name: name, path: path, sum: hex.EncodeToString(h.Sum(nil))})
	return nil
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// finalize moves the files to their final directory and points req's file paths there.
func (sp *spool) finalize(req *payload.Request) error {
	if sp == nil || sp.tmp == "" {
		return nil
	}
	byPath := map[string]spooled{}
	for _, f := range sp.files {
		byPath[f.path] = f
	}
	c := *req
	c.Fichiers = slices.Clone(req.Fichiers)
	for i, f := range c.Fichiers {
		if sf, ok := byPath[f.Path]; ok {
			c.Fichiers[i].Path = "sha256:" + sf.sum
		}
	}
	sum := sha256.Sum256([]byte(req.RequestID + "\x00" + c.Hash()))
	dir := filepath.Join(sp.root, text.KeySegment(req.RequestID, spoolKeyBytes)+"-"+hex.EncodeToString(sum[:12]))
	if err := os.Rename(sp.tmp, dir); err != nil {
		st, serr := os.Stat(dir)
		if serr != nil || !st.IsDir() {
			return fmt.Errorf("spool: %w", err)
		}
		// The same request, sent before, has its (identical) files there: use them.
		if err := os.RemoveAll(sp.tmp); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	}
	sp.tmp, sp.dir = "", dir
	for i, f := range req.Fichiers {
		if sf, ok := byPath[f.Path]; ok {
			req.Fichiers[i].Path = filepath.Join(dir, filepath.Base(sf.path))
		}
	}
	return nil
}

// remove deletes the request's spooled files; it is safe on a nil or empty spool.
func (sp *spool) remove() error {
	if sp == nil {
		return nil
	}
	var errs []error
	for _, d := range []string{sp.tmp, sp.dir} {
		if d != "" {
			errs = append(errs, os.RemoveAll(d))
		}
	}
	return errors.Join(errs...)
}

// RemoveSpool deletes the spooled files of req (its file paths that lie in a request directory
// of spoolDir). The retry worker calls it once it completed a request that came as multipart;
// the server does so itself for the runs it completes.
func RemoveSpool(spoolDir string, req *payload.Request) error {
	root, err := filepath.Abs(spoolDir)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	seen := map[string]bool{}
	var errs []error
	for _, f := range req.Fichiers {
		if f.Path == "" {
			continue
		}
		dir := filepath.Dir(filepath.Clean(f.Path))
		if filepath.Dir(dir) != root || strings.HasPrefix(filepath.Base(dir), ".") || seen[dir] {
			continue
		}
		seen[dir] = true
		errs = append(errs, os.RemoveAll(dir))
	}
	return errors.Join(errs...)
}

// pruneIncoming removes temporary upload directories left by a crash (older than an hour).
func pruneIncoming(root string, now time.Time) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), incomingPrefix) {
			continue
		}
		if st, err := e.Info(); err == nil && now.Sub(st.ModTime()) > time.Hour {
			os.RemoveAll(filepath.Join(root, e.Name()))
		}
	}
}
