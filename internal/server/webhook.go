package server

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"encoding/json"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/payload"
)

// HeaderIdempotencyKey is the header that gives the key when the payload has no request_id.
const HeaderIdempotencyKey = "Idempotency-Key"

// handleWebhook is POST /webhook/request: limit, authenticate, read, validate, then run the chain
// in the background and wait for it up to SyncTimeout.
func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request) {
	in := info(r)
	if !s.admit(w, r, in) {
		return
	}
	au, reason := s.authenticate(r)
	if au == nil {
		s.unauthorized(w, in, reason)
		return
	}
	if ae := s.unavailable(in); ae != nil {
		writeError(w, ae)
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
	if ae := s.applyKey(r, req, au); ae != nil {
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
	s.run(w, r, req, func() { sp.remove() })
}

// admit applies the per-client rate limit. It comes first: it is the cheapest check, and it also
// bounds how often a stranger may try credentials.
func (s *Server) admit(w http.ResponseWriter, r *http.Request, in *reqInfo) bool {
	if s.limiter == nil {
		return true
	}
	ok, wait := s.limiter.allow(limitKey(in.ip), s.now())
	if !ok {
		w.Header().Set("Retry-After", retryAfter(wait))
		writeError(w, &apiError{Status: http.StatusTooManyRequests, Msg: "too many requests; retry later"})
	}
	return ok
}

// unavailable is the 503 of a daemon that is stopping or whose backlog is full, or nil. It is
// asked before the body is read (a multipart upload refused at its end would have been spooled
// for nothing) and again before the request is recorded.
func (s *Server) unavailable(in *reqInfo) *apiError {
	switch {
	case s.stopping.Load():
		return &apiError{Status: http.StatusServiceUnavailable, Msg: "shutting down; send the request again", retryAfter: "5"}
	case s.queue.Full():
		in.note = "backlog full"
		return &apiError{Status: http.StatusServiceUnavailable, Msg: "too much work in progress; send the request again later", retryAfter: "30"}
	}
	return nil
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

// applyKey sets the idempotency key when the payload has none. For a request authenticated by
// its Standard Webhooks signature that is the signed webhook-id, and nothing else: a header the
// signature does not cover could turn a captured request into new work. For a request
// authenticated by the bearer token (or on loopback without authentication) it is the
// Idempotency-Key header, else webhook-id. The key is then checked like a request_id. Without
// one, the chain hashes the payload.
func (s *Server) applyKey(r *http.Request, req *payload.Request, au *auth) *apiError {
	if req.RequestID != "" {
		return nil
	}
	var from, key string
	switch {
	case au.signedID != "":
		from, key = HeaderWebhookID, au.signedID
	default:
		from, key = HeaderIdempotencyKey, unquote(strings.TrimSpace(r.Header.Get(HeaderIdempotencyKey)))
		if key == "" {
			from, key = HeaderWebhookID, strings.TrimSpace(r.Header.Get(HeaderWebhookID))
		}
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

// run records the request in the journal, then has the pool process it: in async mode the answer
// is 202 at once; in sync mode the chain's result, or 202 after SyncTimeout. Nothing answers 2xx
// before the request is recorded; past the backlog limit the answer is 503 before anything is.
// drop removes what the request left on disk (its spooled files) when it is refused.
func (s *Server) run(w http.ResponseWriter, r *http.Request, req *payload.Request, drop func()) {
	key := req.Key()
	if ae := s.unavailable(info(r)); ae != nil {
		drop()
		writeError(w, ae)
		return
	}
	run, err := s.intake.Accept(r.Context(), req)
	switch {
	case errors.Is(err, chain.ErrConflict):
		drop()
		writeError(w, conflict(key))
		return
	case err != nil:
		drop()
		s.log.Error("could not record the request", "request_id", key, "err", err)
		writeError(w, &apiError{Status: http.StatusServiceUnavailable, Msg: "the request could not be recorded; send it again", retryAfter: "30"})
		return
	case chain.Finished(run.Status):
		drop()
		resp, err := chain.Replay(run)
		if err != nil {
			s.log.Error("stored answer", "request_id", key, "err", err)
			writeJSON(w, http.StatusAccepted, queued(key, "accepted", nil))
			return
		}
		if s.cfg.Metrics != nil {
			s.cfg.Metrics.Request(resp, nil)
		}
		writeJSON(w, http.StatusOK, resp)
		return
	}
	job, err := s.queue.Submit(req)
	if err != nil {
		// Recorded already: the journal's sweep takes it when there is room (or another process does).
		s.log.Info("recorded; not queued at once", "request_id", key, "reason", err)
		writeJSON(w, http.StatusAccepted, queued(key, "accepted; processing will start shortly", nil))
		return
	}
	if s.cfg.Mode == ModeAsync {
		writeJSON(w, http.StatusAccepted, queued(key, "accepted", nil))
		return
	}
	timer := time.NewTimer(s.cfg.SyncTimeout)
	defer timer.Stop()
	select {
	case <-job.Done():
		resp, err := job.Result()
		s.answer(w, key, resp, err)
	case <-timer.C:
		writeJSON(w, http.StatusAccepted, queued(key, "accepted; processing continues in the background", nil))
	case <-r.Context().Done():
		info(r).note = "client went away; the run goes on"
	}
}

// CleanSpool deletes a request's spooled files once nothing will read them again: after a
// complete run (created, updated, skipped, or replayed), or when the request was refused
// (conflict, invalid). A failed or incomplete run keeps them for its retry.
func CleanSpool(spoolDir string, req *payload.Request, resp *payload.Response, err error) error {
	switch {
	case req == nil:
		return nil
	case err == nil && resp != nil && resp.Status != payload.StatusIncomplete:
	case errors.Is(err, chain.ErrConflict), errors.Is(err, payload.ErrInvalid):
	default:
		return nil
	}
	return RemoveSpool(spoolDir, req)
}

func conflict(key string) *apiError {
	return &apiError{Status: http.StatusConflict, Field: "request_id",
		Msg: fmt.Sprintf("request_id %q was already used for a different request", key)}
}

// answer maps the chain's result. The request is in the journal whatever happened: a failure
// that will pass is retried by the daemon (202); one that needs the request changed is 422; one
// that needs an operator (credentials, a service refusing the call) is 202 with its reason — the
// sender must not resend either way.
func (s *Server) answer(w http.ResponseWriter, key string, resp *payload.Response, err error) {
	var ve *payload.ValidationError
	switch {
	case err == nil:
		writeJSON(w, http.StatusOK, resp)
	case errors.Is(err, chain.ErrConflict):
		writeError(w, conflict(key))
	case errors.As(err, &ve) && ve.Field != "":
		writeError(w, &apiError{Status: http.StatusUnprocessableEntity, Msg: ve.Msg, Field: ve.Field})
	case errors.Is(err, chain.ErrInFlight):
		writeJSON(w, http.StatusAccepted, queued(key, "accepted; another process is working on it", nil))
	default:
		switch f := chain.Classify(err); {
		case f == chain.FailureInput:
			writeError(w, &apiError{Status: http.StatusUnprocessableEntity, Msg: err.Error(), Field: inputField(err)})
		case f.Permanent():
			s.log.Error("run failed; it needs an operator", "request_id", key, "failure", f, "err", err)
			writeJSON(w, http.StatusAccepted, queued(key, "accepted; processing failed and waits for an operator", []string{err.Error()}))
		default:
			s.log.Warn("run failed; queued for retry", "request_id", key, "err", err)
			writeJSON(w, http.StatusAccepted, queued(key, "accepted; processing failed and will be retried", []string{err.Error()}))
		}
	}
}

// inputField names the payload field an input failure is about, when it is a file.
func inputField(err error) string {
	var se *chain.StepError
	if errors.As(err, &se) && se.Step == chain.StepUpload {
		return "fichiers"
	}
	return ""
}

func queued(key, msg string, warnings []string) *payload.Response {
	if warnings == nil {
		warnings = []string{}
	}
	return &payload.Response{Status: payload.StatusQueued, RequestID: key, Message: msg,
		Files: []payload.StoredFile{}, Warnings: warnings}
}

// handleRequest is GET /requests/{id}: one request's state in the journal, for a sender that got
// 202 and wants to know how it ended. It is authenticated like the webhook.
func (s *Server) handleRequest(w http.ResponseWriter, r *http.Request) {
	in := info(r)
	if !s.admit(w, r, in) {
		return
	}
	au, reason := s.authenticate(r)
	if au != nil && au.pending() {
		au.mac.Write(nil) // a GET signs an empty body
		if !au.verify() {
			au, reason = nil, "bad webhook signature"
		}
	}
	if au == nil {
		s.unauthorized(w, in, reason)
		return
	}
	key := r.PathValue("id")
	in.requestID = key
	run, err := s.runs.Get(r.Context(), key)
	switch {
	case errors.Is(err, chain.ErrRunNotFound):
		writeError(w, &apiError{Status: http.StatusNotFound, Msg: "no such request"})
		return
	case err != nil:
		s.log.Error("read the journal", "request_id", key, "err", err)
		writeError(w, &apiError{Status: http.StatusServiceUnavailable, Msg: "the journal could not be read", retryAfter: "5"})
		return
	}
	st := RequestState{RequestID: run.Key, Status: run.Status, Attempts: run.Attempts, TicketID: run.TicketID,
		LastError: run.LastError, Failure: string(run.Failure), CreatedAt: run.CreatedAt, UpdatedAt: run.UpdatedAt}
	if len(run.Response) > 0 {
		var resp payload.Response
		if err := json.Unmarshal(run.Response, &resp); err == nil {
			st.Response = &resp
		}
	}
	writeJSON(w, http.StatusOK, st)
}

// RequestState is GET /requests/{id}'s answer.
type RequestState struct {
	RequestID string            `json:"request_id"`
	Status    string            `json:"status"` // queued, running, done, incomplete, failed, skipped
	Attempts  int               `json:"attempts"`
	TicketID  string            `json:"ticket_id"`
	LastError string            `json:"last_error"`
	Failure   string            `json:"failure"` // input, credentials, rejected, rate_limited, unavailable, or ""
	Response  *payload.Response `json:"response"`
	CreatedAt time.Time         `json:"created_at"`
	UpdatedAt time.Time         `json:"updated_at"`
}

// handleReady is GET /readyz: 200 while the server takes requests and the journal answers; 503
// while it stops, so that a load balancer sends traffic elsewhere.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if s.stopping.Load() {
		writeError(w, &apiError{Status: http.StatusServiceUnavailable, Msg: "stopping"})
		return
	}
	if s.cfg.Ready != nil {
		if err := s.cfg.Ready(r.Context()); err != nil {
			s.log.Warn("not ready", "err", err)
			writeError(w, &apiError{Status: http.StatusServiceUnavailable, Msg: "not ready: " + err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}
