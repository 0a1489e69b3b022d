package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/figurative/figsupport/internal/payload"
	filespool "github.com/figurative/figsupport/internal/spool"
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
	sp := newSpool(s.cfg.SpoolDir)
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
	if sp.b.Len() == 0 {
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
			if sp.b.Len() >= lim.MaxFiles {
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
	for _, f := range sp.b.Files() {
		files = append(files, payload.File{Name: f.Name, Path: f.Path})
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

// spool is one request's uploaded files (package spool streams, hashes and names them).
type spool struct{ b *filespool.Batch }

func newSpool(root string) *spool { return &spool{b: filespool.New(root)} }

func (sp *spool) add(part io.Reader, name string, max, limit int64) *apiError {
	_, err := sp.b.Add(part, name, max)
	var re *filespool.ReadError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, filespool.ErrTooLarge):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Field: "fichiers",
			Msg: fmt.Sprintf("file %q exceeds %d bytes", name, max)}
	case errors.As(err, &re):
		return partError(re.Err, limit)
	}
	return &apiError{Status: http.StatusServiceUnavailable, Msg: "could not store the uploaded files; send the request again", retryAfter: "30"}
}

// finalize moves the files to their request's directory and points req's file paths there.
func (sp *spool) finalize(req *payload.Request) error {
	if sp == nil {
		return nil
	}
	if err := sp.b.Commit(req.RequestID, req.SpoolIdentity(sp.b.Sum)); err != nil {
		return err
	}
	for i := range req.Fichiers {
		req.Fichiers[i].Path = sp.b.Relocate(req.Fichiers[i].Path)
	}
	return nil
}

// remove deletes the request's spooled files; it is safe on a nil or empty spool.
func (sp *spool) remove() error {
	if sp == nil {
		return nil
	}
	return sp.b.Remove()
}

// RemoveSpool deletes the spooled files of req (its file paths that lie in a request directory
// of spoolDir). The retry worker calls it once it completed a request that came as multipart;
// the server does so itself for the runs it completes.
func RemoveSpool(spoolDir string, req *payload.Request) error {
	paths := make([]string, 0, len(req.Fichiers))
	for _, f := range req.Fichiers {
		paths = append(paths, f.Path)
	}
	return filespool.RemoveRequest(spoolDir, paths...)
}

// pruneIncoming removes temporary upload directories left by a crash (older than an hour).
func pruneIncoming(root string, now time.Time) {
	filespool.Prune(root, now.Add(-time.Hour))
}
