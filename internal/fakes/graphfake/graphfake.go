// Package graphfake is an in-process Microsoft identity platform token endpoint (client
// credentials) and Microsoft Graph sendMail, for tests: it checks what Microsoft checks, answers
// as Microsoft answers (AADSTS errors, 202 Accepted, 429 with Retry-After) and records every call.
package graphfake

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/fakes/faults"
)

// Credentials the fake accepts unless told otherwise.
const (
	Tenant       = "00000000-0000-0000-0000-00000000te57"
	ClientID     = "11111111-2222-3333-4444-555555555555"
	ClientSecret = "fake~secret~VALUE"
)

// Mail is one accepted sendMail.
type Mail struct {
	Sender          string
	Subject         string
	ContentType     string // HTML or Text (JSON form); MIME (MIME form)
	Content         string
	To              []string
	SaveToSentItems *bool
	// Header and Raw are the message's, for the MIME form.
	Header mail.Header
	Raw    []byte
}

// TokenRequest is one call to the token endpoint.
type TokenRequest struct {
	Scope     string
	GrantType string
	ClientID  string
	Status    int
}

// Server is the fake: TokenURL for the token endpoint, URL as the Graph base.
type Server struct {
	*httptest.Server
	ClientID     string
	ClientSecret string
	// ExpiresIn is the token lifetime announced, in seconds (Microsoft: about 3600).
	ExpiresIn int

	mu            sync.Mutex
	issued        map[string]string // access token → scope
	n             int
	tokenReqs     []TokenRequest
	mails         []Mail
	sends         int
	throttle      []int // statuses to answer the next sendMail calls with
	retryAft      int
	retryAt       time.Time // when set, Retry-After is this HTTP-date instead of retryAft seconds
	faults.Switch           // SetFaults: fail a seeded fraction of the calls in every way
}

// New starts the fake and stops it with the test.
func New(t testing.TB) *Server {
	s := &Server{ClientID: ClientID, ClientSecret: ClientSecret, ExpiresIn: 3599, issued: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.token)
	mux.HandleFunc("POST /v1.0/users/{sender}/sendMail", s.sendMail)
	s.Server = httptest.NewServer(faults.Wrap(mux, s.Plan, func(w http.ResponseWriter, status int) {
		graphError(w, status, "ServiceUnavailable", "The service is temporarily unavailable.")
	}))
	t.Cleanup(s.Close)
	return s
}

// TokenURL is the token endpoint for the fake's tenant.
func (s *Server) TokenURL() string { return s.URL + "/" + Tenant + "/oauth2/v2.0/token" }

// Throttle answers the next sendMail calls with these statuses (429, 503…) and Retry-After in seconds.
func (s *Server) Throttle(retryAfterSeconds int, statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle = append(s.throttle, statuses...)
	s.retryAft, s.retryAt = retryAfterSeconds, time.Time{}
}

// ThrottleUntil is Throttle with Retry-After given as an HTTP-date, as some Microsoft front ends do.
func (s *Server) ThrottleUntil(at time.Time, statuses ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle = append(s.throttle, statuses...)
	s.retryAt = at
}

// TokenRequests lists the calls to the token endpoint.
func (s *Server) TokenRequests() []TokenRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]TokenRequest(nil), s.tokenReqs...)
}

// Mails lists the accepted messages.
func (s *Server) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mails...)
}

// SendCalls is how many sendMail calls arrived, accepted or not.
func (s *Server) SendCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sends
}

// Scope of a token the fake issued; "" when it did not issue it.
func (s *Server) Scope(token string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued[token]
}

func aadError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{
		"error": code, "error_description": desc + "\r\nTrace ID: 0000\r\nCorrelation ID: 0000\r\nTimestamp: 2026-01-05 09:00:00Z",
		"error_codes": []int{7000215}, "trace_id": "0000", "correlation_id": "0000",
	})
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		aadError(w, 400, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'.")
		return
	}
	f := r.PostForm
	id, secret := f.Get("client_id"), f.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok { // Entra also accepts HTTP Basic
		id, _ = url.QueryUnescape(u)
		secret, _ = url.QueryUnescape(p)
	}
	req := TokenRequest{Scope: f.Get("scope"), GrantType: f.Get("grant_type"), ClientID: id}
	status := s.checkToken(w, r.PathValue("tenant"), req, secret)
	req.Status = status
	s.mu.Lock()
	s.tokenReqs = append(s.tokenReqs, req)
	s.mu.Unlock()
}

func (s *Server) checkToken(w http.ResponseWriter, tenant string, req TokenRequest, secret string) int {
	switch {
	case tenant != Tenant:
		aadError(w, 400, "invalid_request", "AADSTS90002: Tenant '"+tenant+"' not found.")
		return 400
	case req.GrantType != "client_credentials":
		aadError(w, 400, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.")
		return 400
	case req.ClientID != s.ClientID:
		aadError(w, 400, "unauthorized_client", "AADSTS700016: Application with identifier '"+req.ClientID+"' was not found in the directory.")
		return 400
	case secret != s.ClientSecret:
		aadError(w, 401, "invalid_client", "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.")
		return 401
	case req.Scope != "https://graph.microsoft.com/.default" && req.Scope != "https://outlook.office365.com/.default":
		aadError(w, 400, "invalid_scope", "AADSTS1002012: The provided value for scope "+req.Scope+" is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")
		return 400
	}
	s.mu.Lock()
	s.n++
	// A JWT-shaped opaque token naming its audience, like Entra's.
	tok := "eyJ0eXAiOiJKV1QifQ." + base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"aud":%q,"n":%d}`, req.Scope, s.n))) + ".sig"
	s.issued[tok] = req.Scope
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	json.NewEncoder(w).Encode(map[string]any{"token_type": "Bearer", "expires_in": s.ExpiresIn, "ext_expires_in": s.ExpiresIn, "access_token": tok})
	return 200
}

func graphError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("request-id", "fake-"+strconv.FormatInt(time.Now().UnixNano(), 36))
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func (s *Server) sendMail(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.sends++
	var throttle int
	if len(s.throttle) > 0 {
		throttle, s.throttle = s.throttle[0], s.throttle[1:]
	}
	retry, retryAt := s.retryAft, s.retryAt
	s.mu.Unlock()

	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || tok == "" {
		graphError(w, 401, "InvalidAuthenticationToken", "Access token is empty.")
		return
	}
	if s.Scope(tok) != "https://graph.microsoft.com/.default" {
		graphError(w, 401, "InvalidAuthenticationToken", "Access token validation failure. Invalid audience.")
		return
	}
	if throttle != 0 {
		if retryAt.IsZero() {
			w.Header().Set("Retry-After", strconv.Itoa(retry))
		} else {
			w.Header().Set("Retry-After", retryAt.UTC().Format(http.TimeFormat))
		}
		graphError(w, throttle, "ApplicationThrottled", "Application is over its MailboxConcurrency limit.")
		return
	}
	ct := r.Header.Get("Content-Type")
	if strings.HasPrefix(ct, "text/plain") {
		s.sendMIME(w, r)
		return
	}
	if !strings.HasPrefix(ct, "application/json") {
		graphError(w, 400, "RequestBodyRead", "Content-Type must be application/json for a JSON message, or text/plain for a MIME one.")
		return
	}
	var body struct {
		Message *struct {
			Subject string `json:"subject"`
			Body    struct {
				ContentType string `json:"contentType"`
				Content     string `json:"content"`
			} `json:"body"`
			ToRecipients []struct {
				EmailAddress struct {
					Address string `json:"address"`
				} `json:"emailAddress"`
			} `json:"toRecipients"`
		} `json:"message"`
		SaveToSentItems *bool `json:"saveToSentItems"`
	}
	data, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(data, &body); err != nil || body.Message == nil {
		graphError(w, 400, "ErrorInvalidRequest", "Cannot read the request body.")
		return
	}
	m := Mail{Sender: r.PathValue("sender"), Subject: body.Message.Subject, ContentType: body.Message.Body.ContentType,
		Content: body.Message.Body.Content, SaveToSentItems: body.SaveToSentItems}
	if ct := strings.ToLower(m.ContentType); ct != "html" && ct != "text" {
		graphError(w, 400, "ErrorInvalidRequest", "body.contentType must be Text or HTML.")
		return
	}
	for _, to := range body.Message.ToRecipients {
		if !strings.Contains(to.EmailAddress.Address, "@") {
			graphError(w, 400, "ErrorInvalidRecipients", "At least one recipient isn't valid.")
			return
		}
		m.To = append(m.To, to.EmailAddress.Address)
	}
	if len(m.To) == 0 {
		graphError(w, 400, "ErrorInvalidRecipients", "At least one recipient is required, but none were found.")
		return
	}
	if !strings.Contains(m.Sender, "@") {
		graphError(w, 404, "ErrorInvalidUser", "The requested user '"+m.Sender+"' is invalid.")
		return
	}
	s.accept(w, m)
}

func (s *Server) accept(w http.ResponseWriter, m Mail) {
	s.mu.Lock()
	s.mails = append(s.mails, m)
	s.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// sendMIME is sendMail's MIME form: the base64 of a whole RFC 5322 message; the recipients are
// its To, Cc and Bcc. Graph refuses a request over about 4 MB.
func (s *Server) sendMIME(w http.ResponseWriter, r *http.Request) {
	data, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20+1))
	if len(data) > 4<<20 {
		graphError(w, 413, "ErrorRequestEntityTooLarge", "The request is too large.")
		return
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(data)))
	if err != nil {
		graphError(w, 400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.")
		return
	}
	msg, err := mail.ReadMessage(strings.NewReader(string(raw)))
	if err != nil {
		graphError(w, 400, "ErrorMimeContentInvalid", "The MIME content is invalid.")
		return
	}
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(msg.Header.Get("Subject"))
	if err != nil {
		subject = msg.Header.Get("Subject")
	}
	m := Mail{Sender: r.PathValue("sender"), Subject: subject, ContentType: "MIME", Header: msg.Header, Raw: raw}
	for _, h := range []string{"To", "Cc", "Bcc"} {
		if list, err := msg.Header.AddressList(h); err == nil {
			for _, a := range list {
				m.To = append(m.To, a.Address)
			}
		}
	}
	if len(m.To) == 0 {
		graphError(w, 400, "ErrorInvalidRecipients", "At least one recipient is required, but none were found.")
		return
	}
	if !strings.Contains(m.Sender, "@") {
		graphError(w, 404, "ErrorInvalidUser", "The requested user '"+m.Sender+"' is invalid.")
		return
	}
	s.accept(w, m)
}
