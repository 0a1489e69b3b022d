package server

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/payload"
)

// HeaderIdempotencyKey is the header that gives the key when the payload has no request_id.
const HeaderIdempotencyKey = "Idempotency-Key"

// handleWebhook is POST /webhook/request: limit, authenticate, read, validate, then run the chain
// in the background and wait for it up to SyncTimeout.
func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request) {
	in := info(r)
	// The rate limit comes first: it is the cheapest check, and it also bounds how often a
	// stranger may try credentials.
	if s.limiter != nil {
		if ok, wait := s.limiter.allow(limitKey(in.ip), s.now()); !ok {
			w.Header().Set("Retry-After", retryAfter(wait))
			writeError(w, &apiError{Status: http.StatusTooManyRequests, Msg: "too many requests; retry later"})
			return
		}
	}
	au, reason := s.authenticate(r)
	if au == nil {
		s.unauthorized(w, in, reason)
		return
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	var (
		req *payload.Request
		sp  *spool
		ae  *apiError
	)
	switch {
	case err == nil && mt == "application/json":
		req, ae = s.readJSON(w, r, au)
	case err == nil && mt == "multipart/form-data":
		req, sp, ae = s.readMultipart(w, r, params["boundary"], au)
	default:
		ae = &apiError{Status: http.StatusUnsupportedMediaType, Msg: "Content-Type must be application/json or multipart/form-data"}
	}
	if ae != nil {
		if ae == errUnauthorized {
			s.unauthorized(w, in, "bad webhook signature")
			return
		}
		writeError(w, ae)
		return
	}
	if ae := s.applyKey(r, req); ae != nil {
		sp.remove()
		writeError(w, ae)
		return
	}
	if sp != nil {
		if err := sp.finalize(req); err != nil {
			sp.remove()
			s.log.Error("spool", "err", err)
			writeError(w, &apiError{Status: http.StatusServiceUnavailable, Msg: "could not store the uploaded files; send the request again", retryAfter: "30"})
			return
		}
	}
	in.requestID = req.Key()
	s.run(w, r, req, sp)
}

func (s *Server) unauthorized(w http.ResponseWriter, in *reqInfo, reason string) {
	in.note = reason
	if s.cfg.BearerToken != "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="figsupport"`)
	}
	writeError(w, errUnauthorized)
}

// readJSON reads the whole (bounded) body, checks its signature, then parses it.
func (s *Server) readJSON(w http.ResponseWriter, r *http.Request, au *auth) (*payload.Request, *apiError) {
	lim := s.cfg.Limits
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, lim.MaxBodyBytes))
	if err != nil {
		return nil, bodyError(err, lim.MaxBodyBytes)
	}
	if au.pending() {
		au.mac.Write(body)
		if !au.verify() {
			return nil, errUnauthorized
		}
	}
	req, err := payload.ParseBytes(body, lim, s.now())
	if err != nil {
		return nil, validationError(err)
	}
	for i, f := range req.Fichiers {
		if f.Path != "" {
			return nil, &apiError{Status: http.StatusUnprocessableEntity, Field: fmt.Sprintf("fichiers[%d].path", i),
				Msg: "local paths are not accepted over HTTP: give a url, or upload the file as multipart/form-data"}
		}
	}
	return req, nil
}

// bodyError maps an error reading the body: over the limit is 413, anything else 400.
func bodyError(err error, limit int64) *apiError {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return &apiError{Status: http.StatusRequestEntityTooLarge, Msg: fmt.Sprintf("request body exceeds %d bytes", limit)}
	}
	return &apiError{Status: http.StatusBadRequest, Msg: "could not read the request body"}
}

// validationError maps payload errors: too large 413, malformed (no field) 400, a field 422.
func validationError(err error) *apiError {
	var ve *payload.ValidationError
	switch {
	case errors.Is(err, payload.ErrTooLarge):
		return &apiError{Status: http.StatusRequestEntityTooLarge, Msg: err.Error()}
	case errors.As(err, &ve) && ve.Field != "":
		return &apiError{Status: http.StatusUnprocessableEntity, Msg: ve.Msg, Field: ve.Field}
	case errors.As(err, &ve):
		return &apiError{Status: http.StatusBadRequest, Msg: ve.Msg}
	case errors.Is(err, payload.ErrInvalid):
		return &apiError{Status: http.StatusUnprocessableEntity, Msg: err.Error()}
	}
	return &apiError{Status: http.StatusBadRequest, Msg: err.Error()}
}

// applyKey sets the idempotency key when the payload has none: the Idempotency-Key header, else
// webhook-id; the key is then checked like a request_id. Without either, the chain hashes the payload.
func (s *Server) applyKey(r *http.Request, req *payload.Request) *apiError {
	if req.RequestID != "" {
		return nil
	}
	from := HeaderIdempotencyKey
	key := unquote(strings.TrimSpace(r.Header.Get(HeaderIdempotencyKey)))
	if key == "" {
		from, key = HeaderWebhookID, strings.TrimSpace(r.Header.Get(HeaderWebhookID))
	}
	if key == "" {
		return nil
	}
	req.RequestID = key
	if err := req.Normalize(s.cfg.Limits, s.now()); err != nil {
		ae := validationError(err)
		if ae.Field == "request_id" {
			ae.Msg = "from the " + from + " header: " + ae.Msg
		}
		return ae
	}
	return nil
}

// unquote removes the quotes of a structured-field string ("Idempotency-Key: \"abc\"", the IETF draft's form).
func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		if u, err := strconv.Unquote(s); err == nil {
			return u
		}
		return s[1 : len(s)-1]
	}
	return s
}

type result struct {
	resp *payload.Response
	err  error
}

// run starts the chain on a context of the server's lifetime (a client hanging up does not stop
// it) and answers with its result, or 202 "queued" after SyncTimeout.
func (s *Server) run(w http.ResponseWriter, r *http.Request, req *payload.Request, sp *spool) {
	key := req.Key()
	done := make(chan result, 1)
	var detached atomic.Bool
	s.active.Add(1)
	s.wg.Go(func() {
		defer s.active.Add(-1)
		resp, err := s.process(req)
		s.cleanup(sp, resp, err)
		if detached.Load() {
			if err != nil {
				s.log.Warn("background run failed", "request_id", key, "err", err)
			} else {
				s.log.Info("background run finished", "request_id", key, "status", resp.Status, "ticket_id", resp.TicketID)
			}
		}
		done <- result{resp, err}
	})
	timer := time.NewTimer(s.cfg.SyncTimeout)
	defer timer.Stop()
	select {
	case res := <-done:
		s.answer(w, key, res)
	case <-timer.C:
		detached.Store(true)
		writeJSON(w, http.StatusAccepted, queued(key, "accepted; processing continues in the background", nil))
	case <-r.Context().Done():
		detached.Store(true)
		info(r).note = "client went away; the run goes on"
	}
}

// process runs the chain; a panic in it becomes an error (and a log line with the stack) instead of
// taking the daemon down from a goroutine no http.Server protects. The journal then shows the run
// unfinished, and the retry worker resumes it.
func (s *Server) process(req *payload.Request) (resp *payload.Response, err error) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("chain panicked", "request_id", req.Key(), "panic", v, "stack", string(debug.Stack()))
			resp, err = nil, fmt.Errorf("server: chain panicked: %v", v)
		}
	}()
	return s.p.Process(s.ctx, req, chain.RunOptions{})
}

// cleanup deletes the request's spooled files once nothing will read them again: after a
// complete run (created, updated, or replayed), or when the request was refused (conflict,
// invalid). A failed or incomplete run keeps them for its retry.
func (s *Server) cleanup(sp *spool, resp *payload.Response, err error) {
	if sp == nil {
		return
	}
	switch {
	case err == nil && (resp.Replayed || resp.Status == payload.StatusCreated || resp.Status == payload.StatusUpdated):
	case errors.Is(err, chain.ErrConflict), errors.Is(err, payload.ErrInvalid):
	default:
		return
	}
	if err := sp.remove(); err != nil {
		s.log.Warn("spool cleanup", "err", err)
	}
}

func (s *Server) answer(w http.ResponseWriter, key string, res result) {
	var (
		ve *payload.ValidationError
		se *chain.StepError
	)
	switch err := res.err; {
	case err == nil:
		resp := *res.resp
		if resp.Files == nil {
			resp.Files = []payload.StoredFile{}
		}
		if resp.Warnings == nil {
			resp.Warnings = []string{}
		}
		writeJSON(w, http.StatusOK, resp)
	case errors.Is(err, chain.ErrConflict):
		writeError(w, &apiError{Status: http.StatusConflict, Field: "request_id",
			Msg: fmt.Sprintf("request_id %q was already used for a different request", key)})
	case errors.As(err, &ve) && ve.Field != "":
		writeError(w, &apiError{Status: http.StatusUnprocessableEntity, Msg: ve.Msg, Field: ve.Field})
	case errors.Is(err, payload.ErrInvalid):
		writeError(w, &apiError{Status: http.StatusUnprocessableEntity, Msg: err.Error()})
	case errors.As(err, &se):
		// A step failed after the journal recorded the request: it is kept, and the retry
		// worker finishes it. The sender must not resend anything.
		s.log.Warn("run failed; queued for retry", "request_id", key, "err", err)
		writeJSON(w, http.StatusAccepted, queued(key, "accepted; processing failed and will be retried", []string{err.Error()}))
	default:
		// Before or outside the journal (the lock, the journal itself): the request may not be
		// recorded, so the sender is told to send it again (Standard Webhooks senders retry).
		s.log.Error("run failed before it was recorded", "request_id", key, "err", err)
		writeError(w, &apiError{Status: http.StatusServiceUnavailable, Msg: "the request could not be recorded; send it again", retryAfter: "30"})
	}
}

func queued(key, msg string, warnings []string) *payload.Response {
	if warnings == nil {
		warnings = []string{}
	}
	return &payload.Response{Status: payload.StatusQueued, RequestID: key, Message: msg,
		Files: []payload.StoredFile{}, Warnings: warnings}
}
