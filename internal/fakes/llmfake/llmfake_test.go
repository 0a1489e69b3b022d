package llmfake_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/fakes/faults"
	"github.com/figurative/figsupport/internal/fakes/llmfake"
)

const key = "sk-fake-0123456789"

func post(t *testing.T, url, auth, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

const chatBody = `{"model":"m","messages":[{"role":"system","content":"s"},{"role":"user","content":"hello"}],"max_tokens":20}`

func TestServer(t *testing.T) {
	tests := []struct {
		name     string
		behavior llmfake.Behavior
		auth     string
		path     string
		body     string
		status   int
		contains string
	}{
		{name: "answer", behavior: llmfake.Behavior{Answer: "MODELISATION"}, auth: "Bearer " + key, status: 200, contains: `"content":"MODELISATION"`},
		{name: "without /v1", auth: "Bearer " + key, path: "/chat/completions", status: 200, contains: `"finish_reason":"stop"`},
		{name: "answer func", behavior: llmfake.Behavior{AnswerFunc: func(m []llmfake.Message) string { return strings.ToUpper(m[1].Content) }},
			auth: "Bearer " + key, status: 200, contains: `"content":"HELLO"`},
		{name: "truncated at the token budget", behavior: llmfake.Behavior{Answer: strings.Repeat("x", 200)}, auth: "Bearer " + key,
			status: 200, contains: `"finish_reason":"length"`},
		{name: "no key", status: 401, contains: "You didn't provide an API key"},
		{name: "bad key masked", auth: "Bearer sk-wrong-abcdefgh1234", status: 401, contains: `"code":"invalid_api_key"`},
		{name: "bad JSON", auth: "Bearer " + key, body: "{", status: 400, contains: "invalid_request_error"},
		{name: "no model", auth: "Bearer " + key, body: `{"messages":[{"role":"user","content":"x"}]}`, status: 400},
		{name: "500", behavior: llmfake.Behavior{Status: 500}, auth: "Bearer " + key, status: 500, contains: `"type":"server_error"`},
		{name: "429", behavior: llmfake.Behavior{Status: 429}, auth: "Bearer " + key, status: 429, contains: "rate_limit_exceeded"},
		{name: "garbage", behavior: llmfake.Behavior{Garbage: true}, auth: "Bearer " + key, status: 200, contains: "<html>"},
		{name: "unknown path", auth: "Bearer " + key, path: "/v1/completions/nope", status: 404, contains: "unknown_url"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := llmfake.New(key)
			defer s.Close()
			s.Set(tt.behavior)
			path, body := tt.path, tt.body
			if path == "" {
				path = "/v1/chat/completions"
			}
			if body == "" {
				body = chatBody
			}
			resp, got := post(t, s.URL+path, tt.auth, body)
			if resp.StatusCode != tt.status || !strings.Contains(got, tt.contains) {
				t.Errorf("status %d body %s; want %d containing %q", resp.StatusCode, got, tt.status, tt.contains)
			}
			if strings.Contains(got, "sk-wrong-abcdefgh1234") {
				t.Error("the 401 body shows the whole key; OpenAI masks it")
			}
			if resp.StatusCode >= 400 && resp.StatusCode != 404 {
				var env struct {
					Error struct {
						Message string `json:"message"`
						Type    string `json:"type"`
					} `json:"error"`
				}
				if err := json.Unmarshal([]byte(got), &env); err != nil || env.Error.Message == "" || env.Error.Type == "" {
					t.Errorf("error body is not OpenAI's envelope: %s", got)
				}
			}
			calls := s.Calls()
			if len(calls) != 1 || calls[0].Path != path || calls[0].Status != tt.status {
				t.Errorf("calls: %+v", calls)
			}
		})
	}
}

func TestServerRecordsRequest(t *testing.T) {
	s := llmfake.New(key)
	defer s.Close()
	post(t, s.BaseURL()+"/chat/completions", "Bearer "+key,
		`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":7,"response_format":{"type":"json_object"}}`)
	c := s.Calls()[0]
	if !c.Authorized || c.Model != "m" || c.MaxCompletionTokens != 7 || !c.ResponseFormat || len(c.Messages) != 1 || c.Messages[0].Content != "hi" {
		t.Errorf("call: %+v", c)
	}
}

func TestServerNoKeyAcceptsAnyone(t *testing.T) {
	s := llmfake.New("")
	defer s.Close()
	if resp, body := post(t, s.BaseURL()+"/chat/completions", "", chatBody); resp.StatusCode != 200 {
		t.Errorf("status %d: %s", resp.StatusCode, body)
	}
}

func TestServerLatencyEndsWithTheClient(t *testing.T) {
	s := llmfake.New(key)
	defer s.Close()
	s.Set(llmfake.Behavior{Latency: 30 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.BaseURL()+"/chat/completions", strings.NewReader(chatBody))
	req.Header.Set("Authorization", "Bearer "+key)
	start := time.Now()
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("answered despite the latency")
	}
	s.Close() // returns only once the handler has given up waiting
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the handler kept waiting %s after the client left", d)
	}
	if c := s.Calls(); len(c) != 1 || c[0].Status != 0 {
		t.Errorf("calls: %+v", c)
	}
}

func TestModels(t *testing.T) {
	s := llmfake.New(key)
	defer s.Close()
	req, _ := http.NewRequest(http.MethodGet, s.BaseURL()+"/models", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != 200 || list.Object != "list" || len(list.Data) == 0 {
		t.Errorf("status %d list %+v err %v", resp.StatusCode, list, err)
	}
}

// A fault plan fails chat completions in every way; a failing call is not answered by the model.
func TestFaultPlan(t *testing.T) {
	tests := []struct {
		kind     faults.Kind
		wantErr  bool
		wantCode int
	}{
		{faults.Status, false, 500},
		{faults.Reset, true, 0},
		{faults.Slow, false, 200},
		{faults.Lost, true, 0},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind), func(t *testing.T) {
			s := llmfake.New(key)
			defer s.Close()
			p := &faults.Plan{Seed: 1, Rate: 1, Kinds: []faults.Kind{tt.kind}, Statuses: []int{500}, Delay: 20 * time.Millisecond}
			s.SetFaults(p)
			req, _ := http.NewRequest(http.MethodPost, s.BaseURL()+"/chat/completions", strings.NewReader(chatBody))
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want an error: %v", err, tt.wantErr)
			}
			if err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tt.wantCode {
					t.Errorf("status %d, want %d: %s", resp.StatusCode, tt.wantCode, b)
				}
				if tt.kind == faults.Status && !strings.Contains(string(b), `"type":"server_error"`) {
					t.Errorf("error body %s", b)
				}
			}
			if p.Counts()[tt.kind] != 1 {
				t.Errorf("plan: %s", p)
			}
		})
	}
}
