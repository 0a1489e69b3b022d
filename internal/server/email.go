package server

import (
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"slices"
	"strings"

	"github.com/figurative/figsupport/internal/payload"
)

// EmailPath takes raw e-mails, as inbound-mail services and mail servers post them.
const EmailPath = "/webhook/email"

// emailFields name the multipart field that carries the whole raw message in the common inbound
// services: SendGrid Inbound Parse with "POST the raw, full MIME message" ("email"), Mailgun routes
// forwarding MIME ("body-mime"), and generic forms ("message", "mime", "raw").
var emailFields = []string{"email", "body-mime", "message", "mime", "raw"}

// handleEmail is POST /webhook/email: one raw RFC 5322 message, as the body (message/rfc822, or
// application/octet-stream) or as a multipart/form-data field (emailFields, or any part typed
// message/rfc822). It is read exactly as `process --eml` reads one (attachments streamed to the
// spool, the Message-ID as the idempotency key), then recorded and processed like a form's
// request: same authentication, limits, answers and idempotency.
func (s *Server) handleEmail(w http.ResponseWriter, r *http.Request) {
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
	limit := s.emailLimit()
	var body io.Reader = http.MaxBytesReader(w, r.Body, limit)
	if au.pending() {
		body = io.TeeReader(body, au.mac)
	}
	req, ae := s.readEmail(r, body, limit)
	if au.pending() {
		// The signature covers the raw body: read what the parser left before judging it.
		_, err := io.Copy(io.Discard, body)
		switch {
		case err != nil && ae == nil:
			ae = bodyError(err, limit)
		case err == nil && !au.verify():
			ae = errUnauthorized
		}
	}
	if ae != nil {
		if req != nil {
			_ = RemoveSpool(s.cfg.SpoolDir, req)
		}
		if ae == errUnauthorized {
			s.unauthorized(w, in, "bad webhook signature")
			return
		}
		writeError(w, ae)
		return
	}
	drop := func() { _ = RemoveSpool(s.cfg.SpoolDir, req) }
	if ae := s.applyKey(r, req, au); ae != nil {
		drop()
		writeError(w, ae)
		return
	}
	in.requestID = req.Key()
	s.run(w, r, req, drop)
}

// emailLimit bounds a raw message: its text and headers, and every file base64-encoded (4/3, line
// ends) with room for part headers.
func (s *Server) emailLimit() int64 {
	lim := s.cfg.Limits
	perFile := s.cfg.MaxFileBytes + s.cfg.MaxFileBytes/3 + s.cfg.MaxFileBytes/16 + 64<<10
	return lim.MaxBodyBytes + 2<<20 + int64(lim.MaxFiles)*perFile + multipartSlack
}

// readEmail finds the raw message in the body and reads it into a request.
func (s *Server) readEmail(r *http.Request, body io.Reader, limit int64) (*payload.Request, *apiError) {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch {
	case err == nil && (mt == "message/rfc822" || mt == "application/octet-stream"):
		return s.parseEmail(body, limit)
	case err == nil && mt == "multipart/form-data":
		if params["boundary"] == "" {
			return nil, &apiError{Status: http.StatusBadRequest, Msg: "multipart/form-data without a boundary"}
		}
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return nil, &apiError{Status: http.StatusUnprocessableEntity, Field: "email",
					Msg: "no raw message: send it in a part named " + strings.Join(emailFields, ", ") + " or typed message/rfc822"}
			}
			if err != nil {
				return nil, partError(err, limit)
			}
			ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
			if slices.Contains(emailFields, p.FormName()) || ct == "message/rfc822" {
				req, ae := s.parseEmail(p, limit)
				p.Close()
				return req, ae
			}
			// Other fields (the services' parsed copies, envelopes, spam scores) are not needed.
			if _, err := io.Copy(io.Discard, p); err != nil {
				return nil, partError(err, limit)
			}
		}
	}
	return nil, &apiError{Status: http.StatusUnsupportedMediaType,
		Msg: "Content-Type must be message/rfc822 (the raw message as the body) or multipart/form-data with the raw message in a field"}
}

func (s *Server) parseEmail(raw io.Reader, limit int64) (*payload.Request, *apiError) {
	req, err := payload.ParseEmail(raw, s.cfg.Limits, s.now(), s.cfg.SpoolDir, s.cfg.MaxFileBytes)
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return req, nil
	case errors.As(err, &mbe):
		return nil, bodyError(err, limit)
	case errors.Is(err, payload.ErrInvalid):
		ae := validationError(err)
		if ae.Field == "" {
			ae.Field = "email"
		}
		return nil, ae
	}
	s.log.Error("spool", "err", err)
	return nil, &apiError{Status: http.StatusServiceUnavailable, Msg: "could not store the message's attachments; send it again", retryAfter: "30"}
}
