package classify_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/classify"
	"github.com/figurative/figsupport/internal/fakes/llmfake"
	"github.com/figurative/figsupport/internal/health"
	"github.com/figurative/figsupport/internal/payload"
)

const testKey = "sk-test-0123456789abcdef"

// ambiguousReq is a close call for the rules (modelling 3, support 2), so it goes to the LLM.
var ambiguousReq = &payload.Request{Objet: "Mon modèle 3D", Description: "Il ne s'affiche plus, erreur au chargement."}

func newLLM(t *testing.T, srv *llmfake.Server, mut func(*classify.Config)) *classify.Classifier {
	t.Helper()
	cfg := classify.Config{BaseURL: srv.BaseURL(), Model: "fake-model", APIKey: testKey}
	if mut != nil {
		mut(&cfg)
	}
	c, err := classify.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClassifyLLM(t *testing.T) {
	tests := []struct {
		name      string
		behavior  llmfake.Behavior
		mut       func(*classify.Config)
		want      string
		method    string
		reason    string
		maxTime   time.Duration // generous bound: the point is "not the fake's latency"
		wantCalls int
	}{
		{name: "good answer", behavior: llmfake.Behavior{Answer: "MODELISATION"}, want: mod, method: classify.MethodLLM,
			reason: "llm fake-model answered MODELISATION", wantCalls: 1},
		{name: "answer in lower case with a full stop", behavior: llmfake.Behavior{Answer: " modelisation.\n"}, want: mod, method: classify.MethodLLM, wantCalls: 1},
		{name: "answer as JSON", behavior: llmfake.Behavior{Answer: `{"classification": "SUPPORT"}`}, want: sup, method: classify.MethodLLM, wantCalls: 1},
		{name: "garbage answer", behavior: llmfake.Behavior{Answer: "It is probably MODELISATION, but it might be SUPPORT"},
			want: sup, method: classify.MethodFallback, reason: "answer is not a label", wantCalls: 1},
		{name: "garbage with MODELISATION fallback", behavior: llmfake.Behavior{Answer: "¯\\_(ツ)_/¯"},
			mut: func(c *classify.Config) { c.Fallback = "modelisation" }, want: mod, method: classify.MethodFallback, reason: "fell back to MODELISATION", wantCalls: 1},
		{name: "garbage body", behavior: llmfake.Behavior{Garbage: true}, want: sup, method: classify.MethodFallback,
			reason: "unreadable answer", wantCalls: 1},
		{name: "server error 500", behavior: llmfake.Behavior{Status: http.StatusInternalServerError}, want: sup, method: classify.MethodFallback,
			reason: "HTTP 500 (server_error)", wantCalls: 1},
		{name: "503", behavior: llmfake.Behavior{Status: http.StatusServiceUnavailable}, want: sup, method: classify.MethodFallback,
			reason: "HTTP 503", wantCalls: 1},
		{name: "rate limited, no retry", behavior: llmfake.Behavior{Status: http.StatusTooManyRequests}, want: sup, method: classify.MethodFallback,
			reason: "HTTP 429", wantCalls: 1},
		{name: "timeout", behavior: llmfake.Behavior{Latency: 30 * time.Second, Answer: "MODELISATION"},
			mut: func(c *classify.Config) { c.Timeout = 50 * time.Millisecond }, want: sup, method: classify.MethodFallback,
			reason: "timed out after 50ms", maxTime: 5 * time.Second, wantCalls: 1},
		{name: "bad key", behavior: llmfake.Behavior{Answer: "MODELISATION"},
			mut: func(c *classify.Config) { c.APIKey = "sk-wrong-key-9876543210" }, want: sup, method: classify.MethodFallback,
			reason: "HTTP 401 (invalid_request_error invalid_api_key)", wantCalls: 1},
		{name: "network error", mut: func(c *classify.Config) { c.BaseURL = "http://127.0.0.1:1/v1" }, want: sup,
			method: classify.MethodFallback, reason: "network error", wantCalls: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := llmfake.New(testKey)
			defer srv.Close()
			srv.Set(tt.behavior)
			c := newLLM(t, srv, tt.mut)
			start := time.Now()
			got := c.Classify(context.Background(), ambiguousReq)
			if tt.maxTime > 0 && time.Since(start) > tt.maxTime {
				t.Errorf("took %s: the timeout did not cut the call", time.Since(start))
			}
			if got.Classification != tt.want || got.Method != tt.method || !got.Ambiguous {
				t.Errorf("got %s method=%s ambiguous=%v, want %s method=%s ambiguous=true\n%q",
					got.Classification, got.Method, got.Ambiguous, tt.want, tt.method, got.Reasons)
			}
			all := strings.Join(got.Reasons, "\n")
			if tt.reason != "" && !strings.Contains(all, tt.reason) {
				t.Errorf("no reason contains %q:\n%s", tt.reason, all)
			}
			for _, secret := range []string{testKey, "sk-wrong-key-9876543210", "3210", "cdef", "Incorrect API key"} {
				if strings.Contains(all, secret) {
					t.Errorf("a reason leaks %q:\n%s", secret, all)
				}
			}
			if n := len(srv.Calls()); n != tt.wantCalls {
				t.Errorf("%d calls, want %d", n, tt.wantCalls)
			}
		})
	}
}

func TestClassifyLLMRequest(t *testing.T) {
	srv := llmfake.New(testKey)
	defer srv.Close()
	srv.Set(llmfake.Behavior{Answer: "SUPPORT"})
	c := newLLM(t, srv, func(c *classify.Config) { c.MaxInputChars = 500 })
	long := &payload.Request{
		Source: "contact", Objet: "Mon modèle 3D", Description: "erreur " + strings.Repeat("blabla ", 2000),
		Fichiers: []payload.File{{Name: "capture.png", URL: "https://x.test/capture.png"}},
	}
	if got := c.Classify(context.Background(), long); got.Method != classify.MethodLLM {
		t.Fatalf("method %s: %q", got.Method, got.Reasons)
	}
	calls := srv.Calls()
	if len(calls) != 1 {
		t.Fatalf("%d calls", len(calls))
	}
	call := calls[0]
	if !call.Authorized || call.Path != "/v1/chat/completions" || call.Model != "fake-model" {
		t.Errorf("call: %+v", call)
	}
	if call.MaxTokens == 0 || call.MaxTokens > 50 {
		t.Errorf("max_tokens = %d, want a small bound", call.MaxTokens)
	}
	if call.ResponseFormat {
		t.Error("response_format sent: Anthropic ignores it, do not rely on it")
	}
	if len(call.Messages) != 2 || call.Messages[0].Role != "system" || call.Messages[1].Role != "user" {
		t.Fatalf("messages: %+v", call.Messages)
	}
	if sys := call.Messages[0].Content; !strings.Contains(sys, "SUPPORT") || !strings.Contains(sys, "MODELISATION") {
		t.Errorf("system prompt does not name both labels: %q", sys)
	}
	user := call.Messages[1].Content
	for _, want := range []string{"Form: contact", "capture.png", "Subject: Mon modèle 3D", "erreur blabla"} {
		if !strings.Contains(user, want) {
			t.Errorf("user message lacks %q:\n%s", want, user)
		}
	}
	if n := len([]rune(user)); n > 700 {
		t.Errorf("user message has %d characters, want it bounded near MaxInputChars=500", n)
	}
}

func TestClassifyClearCaseSkipsLLM(t *testing.T) {
	srv := llmfake.New(testKey)
	defer srv.Close()
	srv.Set(llmfake.Behavior{Answer: "SUPPORT"})
	c := newLLM(t, srv, nil)
	got := c.Classify(context.Background(), &payload.Request{Source: "modelisation", Objet: "Modéliser ma chaise", Fichiers: []payload.File{{Name: "chaise.glb"}}})
	if got.Classification != mod || got.Method != classify.MethodRules || got.Ambiguous {
		t.Errorf("got %+v", got)
	}
	if n := len(srv.Calls()); n != 0 {
		t.Errorf("the LLM was called %d times for a clear case", n)
	}
}

func TestClassifyCallerCancelled(t *testing.T) {
	srv := llmfake.New(testKey)
	defer srv.Close()
	srv.Set(llmfake.Behavior{Latency: 30 * time.Second})
	c := newLLM(t, srv, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	got := c.Classify(ctx, ambiguousReq)
	if got.Method != classify.MethodFallback || got.Classification != sup {
		t.Errorf("got %+v", got)
	}
	if all := strings.Join(got.Reasons, "\n"); !strings.Contains(all, "cancelled") {
		t.Errorf("reasons: %s", all)
	}
}

func TestClassifyWithoutLLM(t *testing.T) {
	srv := llmfake.New(testKey)
	defer srv.Close()
	tests := []struct {
		name   string
		cfg    classify.Config
		want   string
		reason string
	}{
		{name: "nothing configured", cfg: classify.Config{}, want: sup, reason: "no LLM configured: fell back to SUPPORT"},
		{name: "fallback MODELISATION", cfg: classify.Config{Fallback: "MODELISATION"}, want: mod, reason: "fell back to MODELISATION"},
		{name: "disabled though configured", cfg: classify.Config{BaseURL: srv.BaseURL(), Model: "m", APIKey: testKey, DisableLLM: true},
			want: sup, reason: "LLM disabled: fell back to SUPPORT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := classify.New(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			if c.LLMEnabled() {
				t.Error("LLMEnabled")
			}
			got := c.Classify(context.Background(), ambiguousReq)
			if got.Classification != tt.want || got.Method != classify.MethodFallback || !got.Ambiguous {
				t.Errorf("got %+v", got)
			}
			if all := strings.Join(got.Reasons, "\n"); !strings.Contains(all, tt.reason) {
				t.Errorf("no reason contains %q:\n%s", tt.reason, all)
			}
		})
	}
	if n := len(srv.Calls()); n != 0 {
		t.Errorf("%d LLM calls with the LLM off", n)
	}
}

func TestNew(t *testing.T) {
	tests := []struct {
		name      string
		cfg       classify.Config
		anthropic string
		wantErr   bool
		llm       bool
		baseURL   string
		model     string
		key       string
		fallback  string
	}{
		{name: "empty: rules only", fallback: sup},
		{name: "openai by key", cfg: classify.Config{APIKey: "sk-x"}, llm: true, baseURL: classify.OpenAIBaseURL, model: classify.DefaultOpenAIModel, key: "sk-x", fallback: sup},
		{name: "anthropic key only", anthropic: "sk-ant-x", llm: true, baseURL: classify.AnthropicBaseURL, model: classify.DefaultAnthropicModel, key: "sk-ant-x", fallback: sup},
		{name: "anthropic key, model chosen", cfg: classify.Config{Model: "claude-sonnet-4-5"}, anthropic: "sk-ant-x", llm: true,
			baseURL: classify.AnthropicBaseURL, model: "claude-sonnet-4-5", key: "sk-ant-x", fallback: sup},
		{name: "LLM key wins over anthropic key", cfg: classify.Config{APIKey: "sk-x"}, anthropic: "sk-ant-x", llm: true,
			baseURL: classify.OpenAIBaseURL, model: classify.DefaultOpenAIModel, key: "sk-x", fallback: sup},
		{name: "anthropic key never goes elsewhere", cfg: classify.Config{BaseURL: "http://localhost:11434/v1", Model: "llama3.2"}, anthropic: "sk-ant-x",
			llm: true, baseURL: "http://localhost:11434/v1", model: "llama3.2", fallback: sup},
		{name: "anthropic key with Anthropic's URL given", cfg: classify.Config{BaseURL: "https://api.anthropic.com/v1"}, anthropic: "sk-ant-x",
			llm: true, baseURL: "https://api.anthropic.com/v1", model: classify.DefaultAnthropicModel, key: "sk-ant-x", fallback: sup},
		{name: "ollama without key", cfg: classify.Config{BaseURL: "http://localhost:11434/v1", Model: "llama3.2"}, llm: true,
			baseURL: "http://localhost:11434/v1", model: "llama3.2", fallback: sup},
		{name: "custom endpoint needs a model", cfg: classify.Config{BaseURL: "http://localhost:11434/v1"}, wantErr: true},
		{name: "not a URL", cfg: classify.Config{BaseURL: "localhost:11434", Model: "m"}, wantErr: true},
		{name: "credentials in URL", cfg: classify.Config{BaseURL: "https://u:p@llm.test/v1", Model: "m"}, wantErr: true},
		{name: "bad fallback", cfg: classify.Config{Fallback: "OTHER"}, wantErr: true},
		{name: "fallback any case and accents", cfg: classify.Config{Fallback: "Modélisation"}, fallback: mod},
		{name: "negative timeout", cfg: classify.Config{Timeout: -time.Second}, wantErr: true},
		{name: "disabled", cfg: classify.Config{APIKey: "sk-x", DisableLLM: true}, fallback: sup},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := classify.New(tt.cfg.WithAnthropicKey(tt.anthropic))
			if tt.wantErr {
				if !errors.Is(err, classify.ErrConfig) {
					t.Fatalf("err = %v, want ErrConfig", err)
				}
				if err != nil && strings.Contains(err.Error(), ":p@") {
					t.Errorf("error leaks URL credentials: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := c.Config()
			if c.LLMEnabled() != tt.llm || got.Fallback != tt.fallback || got.Timeout != classify.DefaultTimeout {
				t.Errorf("llm=%v fallback=%q timeout=%s", c.LLMEnabled(), got.Fallback, got.Timeout)
			}
			if tt.llm && (got.BaseURL != tt.baseURL || got.Model != tt.model || got.APIKey != tt.key) {
				t.Errorf("endpoint %q model %q key %q", got.BaseURL, got.Model, got.APIKey)
			}
			if b := c.Backend(); tt.key != "" && strings.Contains(b, tt.key) {
				t.Errorf("Backend() leaks the key: %s", b)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	srv := llmfake.New(testKey)
	defer srv.Close()
	tests := []struct {
		name     string
		cfg      func() classify.Config
		behavior llmfake.Behavior
		status   string
		detail   string
	}{
		{name: "rules only", cfg: func() classify.Config { return classify.Config{} }, status: health.OK, detail: "rules only"},
		{name: "disabled", cfg: func() classify.Config {
			return classify.Config{BaseURL: srv.BaseURL(), Model: "m", DisableLLM: true}
		}, status: health.OK, detail: "LLM disabled"},
		{name: "reachable", cfg: func() classify.Config {
			return classify.Config{BaseURL: srv.BaseURL(), Model: "fake-model", APIKey: testKey}
		}, behavior: llmfake.Behavior{Answer: "OK"}, status: health.OK, detail: "answered in"},
		{name: "bad key", cfg: func() classify.Config {
			return classify.Config{BaseURL: srv.BaseURL(), Model: "fake-model", APIKey: "sk-wrong-key-9876543210"}
		}, status: health.Fail, detail: "key rejected"},
		{name: "wrong path", cfg: func() classify.Config {
			return classify.Config{BaseURL: srv.URL + "/nope", Model: "fake-model", APIKey: testKey}
		}, status: health.Fail, detail: "not found"},
		{name: "server down for now", cfg: func() classify.Config {
			return classify.Config{BaseURL: srv.BaseURL(), Model: "fake-model", APIKey: testKey}
		}, behavior: llmfake.Behavior{Status: 502}, status: health.Warn, detail: "HTTP 502"},
		{name: "not OpenAI-compatible", cfg: func() classify.Config {
			return classify.Config{BaseURL: srv.BaseURL(), Model: "fake-model", APIKey: testKey}
		}, behavior: llmfake.Behavior{Garbage: true}, status: health.Fail, detail: "not an OpenAI-compatible endpoint"},
		{name: "slow", cfg: func() classify.Config {
			return classify.Config{BaseURL: srv.BaseURL(), Model: "fake-model", APIKey: testKey, Timeout: 50 * time.Millisecond}
		}, behavior: llmfake.Behavior{Latency: 30 * time.Second}, status: health.Warn, detail: "timed out"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.Set(tt.behavior)
			c, err := classify.New(tt.cfg())
			if err != nil {
				t.Fatal(err)
			}
			checks := c.Check(context.Background())
			if len(checks) != 1 {
				t.Fatalf("%d checks", len(checks))
			}
			ch := checks[0]
			if ch.Service != "llm" || ch.Status != tt.status || !strings.Contains(ch.Detail, tt.detail) {
				t.Errorf("got %+v, want status %s detail containing %q", ch, tt.status, tt.detail)
			}
			for _, secret := range []string{testKey, "sk-wrong-key-9876543210", "3210"} {
				if strings.Contains(ch.Detail+ch.Name, secret) {
					t.Errorf("check leaks %q: %+v", secret, ch)
				}
			}
		})
	}
	for _, call := range srv.Calls() {
		if call.Path == "/v1/chat/completions" && call.MaxTokens > 1 {
			t.Errorf("doctor ping asked for %d tokens", call.MaxTokens)
		}
	}
}

func TestParseAnswer(t *testing.T) {
	tests := []struct {
		in   string
		want string
	}{
		{"SUPPORT", sup},
		{"MODELISATION", mod},
		{"  MODELISATION\n", mod},
		{"modelisation", mod},
		{"Modélisation.", mod},
		{`"SUPPORT"`, sup},
		{"**SUPPORT**", sup},
		{"`MODELISATION`", mod},
		{`{"classification":"MODELISATION"}`, mod},
		{` {"classification": "support"} `, sup},
		{"```json\n{\"classification\": \"SUPPORT\"}\n```", sup},
		{"", ""},
		{"SUPPORT MODELISATION", ""},
		{"The answer is SUPPORT", ""},
		{"SUPPORT.\nBecause the customer mentions a payment.", ""},
		{"MODELLING", ""},
		{"3D", ""},
		{`{"classification":"SUPPORT","confidence":0.9}`, ""},
		{`{"label":"SUPPORT"}`, ""},
		{`{"classification":null}`, ""},
		{`{"classification":"SUPPORT"}{"classification":"SUPPORT"}`, ""},
		{`{"classification":"MAYBE"}`, ""},
		{"```SUPPORT", ""},
		{strings.Repeat("SUPPORT ", 100), ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := classify.ParseAnswer(tt.in)
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("ParseAnswer(%q) = %q, %v; want %q", tt.in, got, ok, tt.want)
			}
		})
	}
}
