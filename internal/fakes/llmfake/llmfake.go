// Package llmfake is an in-process OpenAI-compatible chat-completions server for tests and
// benchmarks: Bearer authentication with OpenAI's 401 body, OpenAI-shaped error bodies, a configurable
// answer, latency, status and malformed bodies, and a record of every call.
package llmfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/figurative/figsupport/internal/fakes/faults"
)

// Message is one chat message of a recorded call.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// Call is one request the server received.
type Call struct {
	Method              string
	Path                string
	Authorized          bool
	Model               string
	Messages            []Message
	MaxTokens           int
	MaxCompletionTokens int
	ResponseFormat      bool // the client sent response_format (Anthropic ignores it: nobody should rely on it)
	Status              int  // what the server answered (0 when the client gave up first)
}

// Behavior is how the server answers chat completions.
type Behavior struct {
	// Answer is the assistant message content (default "SUPPORT").
	Answer string
	// AnswerFunc, when set, computes the answer from the request's messages instead.
	AnswerFunc func(messages []Message) string
	// Latency delays every answer; the wait ends early when the client goes away.
	Latency time.Duration
	// Status, when not 0 or 200, is answered with an OpenAI-shaped error body of that status.
	Status int
	// Garbage answers 200 with a body that is not JSON.
	Garbage bool
}

// Server is the fake. Its zero value is not usable: call New.
type Server struct {
	*httptest.Server
	key string

	mu            sync.Mutex
	b             Behavior
	calls         []Call
	seq           int
	faults.Switch // SetFaults: fail a seeded fraction of the calls in every way
}

// New starts a server that accepts key as its Bearer token; an empty key accepts any request, like a
// local Ollama or llama.cpp server. Close it when done.
func New(key string) *Server {
	s := &Server{key: key, b: Behavior{Answer: "SUPPORT"}}
	mux := http.NewServeMux()
	mux.HandleFunc("/chat/completions", s.chat)
	mux.HandleFunc("/v1/chat/completions", s.chat)
	mux.HandleFunc("/models", s.models)
	mux.HandleFunc("/v1/models", s.models)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.record(Call{Method: r.Method, Path: r.URL.Path, Status: http.StatusNotFound})
		writeError(w, http.StatusNotFound, "invalid_request_error", "unknown_url",
			fmt.Sprintf("Invalid URL (%s %s)", r.Method, r.URL.Path))
	})
	s.Server = httptest.NewServer(faults.Wrap(mux, s.Plan, func(w http.ResponseWriter, status int) {
		writeError(w, status, "server_error", "", "The server had an error while processing your request. Sorry about that!")
	}))
	return s
}

// BaseURL is what a client sets as its API base (OpenAI style, ending in /v1).
func (s *Server) BaseURL() string { return s.URL + "/v1" }

// Set replaces the behaviour; an empty Answer means "SUPPORT".
func (s *Server) Set(b Behavior) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.Answer == "" && b.AnswerFunc == nil {
		b.Answer = "SUPPORT"
	}
	s.b = b
}

// Calls returns a copy of every call received so far, in order.
func (s *Server) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Call(nil), s.calls...)
}

func (s *Server) record(c Call) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
	return len(s.calls) - 1
}

func (s *Server) setStatus(i, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[i].Status = status
}

func (s *Server) authorized(r *http.Request) bool {
	if s.key == "" {
		return true
	}
	return r.Header.Get("Authorization") == "Bearer "+s.key
}

// writeError writes OpenAI's error envelope.
func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	var c any
	if code != "" {
		c = code
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"message": msg, "type": typ, "param": nil, "code": c,
	}})
}

// unauthorized answers like OpenAI: the key shown masked, which is why clients must not echo bodies.
func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request) {
	got := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	if got == "" {
		writeError(w, http.StatusUnauthorized, "invalid_request_error", "",
			"You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
		return
	}
	writeError(w, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
		fmt.Sprintf("Incorrect API key provided: %s. You can find your API key at https://platform.openai.com/account/api-keys.", mask(got)))
}

func mask(k string) string {
	if len(k) <= 8 {
		return strings.Repeat("*", len(k))
	}
	return k[:3] + strings.Repeat("*", len(k)-7) + k[len(k)-4:]
}

type chatRequest struct {
	Model               string          `json:"model"`
	Messages            []Message       `json:"messages"`
	MaxTokens           int             `json:"max_tokens"`
	MaxCompletionTokens int             `json:"max_completion_tokens"`
	ResponseFormat      json.RawMessage `json:"response_format"`
	Stream              bool            `json:"stream"`
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request) {
	call := Call{Method: r.Method, Path: r.URL.Path, Authorized: s.authorized(r)}
	if r.Method != http.MethodPost {
		call.Status = http.StatusMethodNotAllowed
		s.record(call)
		writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "",
			fmt.Sprintf("Invalid method for URL (%s %s)", r.Method, r.URL.Path))
		return
	}
	var req chatRequest
	decErr := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req)
	call.Model, call.Messages = req.Model, req.Messages
	call.MaxTokens, call.MaxCompletionTokens = req.MaxTokens, req.MaxCompletionTokens
	call.ResponseFormat = len(req.ResponseFormat) > 0 && string(req.ResponseFormat) != "null"
	idx := s.record(call)

	if !call.Authorized {
		s.setStatus(idx, http.StatusUnauthorized)
		s.unauthorized(w, r)
		return
	}
	if decErr != nil {
		s.setStatus(idx, http.StatusBadRequest)
		writeError(w, http.StatusBadRequest, "invalid_request_error", "",
			"We could not parse the JSON body of your request.")
		return
	}
	if req.Model == "" || len(req.Messages) == 0 {
		s.setStatus(idx, http.StatusBadRequest)
		writeError(w, http.StatusBadRequest, "invalid_request_error", "",
			"you must provide a model parameter and at least one message")
		return
	}
	if req.Stream {
		s.setStatus(idx, http.StatusBadRequest)
		writeError(w, http.StatusBadRequest, "invalid_request_error", "", "the fake does not stream")
		return
	}

	s.mu.Lock()
	b := s.b
	s.seq++
	id := s.seq
	s.mu.Unlock()

	if b.Latency > 0 {
		t := time.NewTimer(b.Latency)
		select {
		case <-r.Context().Done():
			t.Stop()
			return // the client gave up: Status stays 0
		case <-t.C:
		}
	}
	w.Header().Set("x-request-id", fmt.Sprintf("req_fake_%d", id))
	switch {
	case b.Status != 0 && b.Status != http.StatusOK:
		s.setStatus(idx, b.Status)
		switch {
		case b.Status == http.StatusTooManyRequests:
			w.Header().Set("Retry-After", "1")
			w.Header().Set("x-ratelimit-limit-requests", "500")
			w.Header().Set("x-ratelimit-remaining-requests", "0")
			w.Header().Set("x-ratelimit-reset-requests", "1s")
			writeError(w, b.Status, "requests", "rate_limit_exceeded", "Rate limit reached for requests.")
		case b.Status >= 500:
			writeError(w, b.Status, "server_error", "",
				"The server had an error while processing your request. Sorry about that!")
		default:
			writeError(w, b.Status, "invalid_request_error", "", http.StatusText(b.Status))
		}
		return
	case b.Garbage:
		s.setStatus(idx, http.StatusOK)
		w.Header().Set("Content-Type", "text/html")
		_, _ = w.Write([]byte("<html><body>502 Bad Gateway? no: 200 OK and not JSON</body></html>"))
		return
	}

	answer := b.Answer
	if b.AnswerFunc != nil {
		answer = b.AnswerFunc(req.Messages)
	}
	// A real model stops at the token budget; about four characters a token.
	finish := "stop"
	limit := req.MaxTokens
	if req.MaxCompletionTokens > 0 {
		limit = req.MaxCompletionTokens
	}
	if limit > 0 && len(answer) > 4*limit {
		answer, finish = answer[:4*limit], "length"
	}
	prompt := 0
	for _, m := range req.Messages {
		prompt += len(m.Content)/4 + 1
	}
	completion := len(answer)/4 + 1
	s.setStatus(idx, http.StatusOK)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id":      fmt.Sprintf("chatcmpl-fake%d", id),
		"object":  "chat.completion",
		"created": time.Now().Unix(),
		"model":   req.Model,
		"choices": []map[string]any{{
			"index":         0,
			"message":       map[string]any{"role": "assistant", "content": answer},
			"finish_reason": finish,
		}},
		"usage": map[string]int{"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
	})
}

func (s *Server) models(w http.ResponseWriter, r *http.Request) {
	call := Call{Method: r.Method, Path: r.URL.Path, Authorized: s.authorized(r)}
	idx := s.record(call)
	if !call.Authorized {
		s.setStatus(idx, http.StatusUnauthorized)
		s.unauthorized(w, r)
		return
	}
	s.setStatus(idx, http.StatusOK)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": []map[string]any{
		{"id": "fake-model", "object": "model", "created": 1700000000, "owned_by": "llmfake"},
	}})
}
