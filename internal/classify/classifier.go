package classify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/figurative/figsupport/internal/health"
	"github.com/figurative/figsupport/internal/payload"
)

// Endpoints and models used when the configuration names a key but no endpoint or model.
const (
	// AnthropicBaseURL is Anthropic's OpenAI-compatible endpoint; it takes the key as a Bearer token
	// like OpenAI does (go-openai's DefaultAnthropicConfig sends no key at all, hence not used).
	AnthropicBaseURL = "https://api.anthropic.com/v1/"
	// DefaultAnthropicModel is small, fast and cheap: one word out of a few hundred tokens in.
	DefaultAnthropicModel = "claude-haiku-4-5"
	OpenAIBaseURL         = "https://api.openai.com/v1"
	DefaultOpenAIModel    = "gpt-4o-mini"

	DefaultTimeout       = 10 * time.Second
	DefaultMaxInputChars = 4000
)

// ErrConfig marks every configuration error New returns (the CLI's exit code 4).
var ErrConfig = errors.New("invalid classifier configuration")

// Config is the classifier's configuration as plain values (cmd/ reads them from LLM_* keys).
type Config struct {
	// BaseURL is the root of an OpenAI-compatible API (OpenAI, Anthropic, Ollama, llama.cpp…).
	// Empty with an APIKey: OpenAI. An LLM is used when BaseURL or APIKey is set.
	BaseURL string
	// Model is required unless BaseURL is OpenAI's or Anthropic's, which have defaults.
	Model string
	// APIKey is sent as "Authorization: Bearer"; local servers need none.
	APIKey string
	// Timeout bounds one LLM call, connection included (default 10s).
	Timeout time.Duration
	// Fallback is the label of an ambiguous request the LLM could not decide (default SUPPORT).
	Fallback string
	// DisableLLM keeps the rules only whatever else is configured (--no-llm).
	DisableLLM bool
	// MaxInputChars bounds the customer text sent to the LLM, in characters (default 4000).
	MaxInputChars int
	// HTTPClient is the transport for the LLM (nil: a client of our own). Its Timeout, if any, adds
	// to the per-call Timeout above.
	HTTPClient *http.Client
}

// WithAnthropicKey returns c completed for ANTHROPIC_API_KEY, the seed's only LLM setting: when no
// LLM_API_KEY is set and the endpoint is unset or Anthropic's, it becomes the key, the endpoint
// defaults to AnthropicBaseURL and (in New) the model to DefaultAnthropicModel. An Anthropic key is
// never sent to another endpoint.
func (c Config) WithAnthropicKey(key string) Config {
	key = strings.TrimSpace(key)
	if c.APIKey != "" || key == "" {
		return c
	}
	if b := strings.TrimSpace(c.BaseURL); b != "" {
		if u, err := url.Parse(b); err != nil || u.Hostname() != "api.anthropic.com" {
			return c
		}
	}
	c.APIKey = key
	if strings.TrimSpace(c.BaseURL) == "" {
		c.BaseURL = AnthropicBaseURL
	}
	return c
}

// Classifier classifies requests: rules first, the LLM for ambiguous ones, the fallback label when
// the LLM is absent or fails. It is safe for concurrent use.
type Classifier struct {
	cfg      Config
	client   *openai.Client // nil: rules only
	endpoint string         // BaseURL without credentials or query, for reasons and doctor
}

// New checks cfg, applies the defaults and builds the classifier.
func New(cfg Config) (*Classifier, error) {
	cfg.BaseURL = strings.TrimSpace(cfg.BaseURL)
	cfg.Model = strings.TrimSpace(cfg.Model)
	cfg.APIKey = strings.TrimSpace(cfg.APIKey)
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("%w: LLM timeout must not be negative", ErrConfig)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxInputChars <= 0 {
		cfg.MaxInputChars = DefaultMaxInputChars
	}
	switch l := strings.ToUpper(normalize(strings.TrimSpace(cfg.Fallback))); l {
	case "":
		cfg.Fallback = payload.Support
	case payload.Support, payload.Modelisation:
		cfg.Fallback = l
	default:
		return nil, fmt.Errorf("%w: fallback label %q is neither %s nor %s", ErrConfig, cfg.Fallback, payload.Support, payload.Modelisation)
	}
	c := &Classifier{cfg: cfg}
	if cfg.DisableLLM || (cfg.BaseURL == "" && cfg.APIKey == "") {
		return c, nil
	}
	if cfg.BaseURL == "" {
		cfg.BaseURL = OpenAIBaseURL
	}
	u, err := url.Parse(cfg.BaseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%w: LLM base URL %q is not an http(s) URL", ErrConfig, redactURL(cfg.BaseURL))
	}
	if u.User != nil {
		return nil, fmt.Errorf("%w: LLM base URL must not carry credentials: give the key as the API key", ErrConfig)
	}
	if cfg.Model == "" {
		switch u.Hostname() {
		case "api.anthropic.com":
			cfg.Model = DefaultAnthropicModel
		case "api.openai.com":
			cfg.Model = DefaultOpenAIModel
		default:
			return nil, fmt.Errorf("%w: an LLM model is required for %s", ErrConfig, u.Host)
		}
	}
	oc := openai.DefaultConfig(cfg.APIKey)
	oc.BaseURL = cfg.BaseURL
	base := cfg.HTTPClient
	if base == nil {
		base = &http.Client{}
	}
	hc := *base
	rt := hc.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	hc.Transport = limitBody{rt}
	oc.HTTPClient = &hc
	c.cfg = cfg
	c.client = openai.NewClientWithConfig(oc)
	c.endpoint = redactURL(cfg.BaseURL)
	return c, nil
}

// Config returns the configuration in use, defaults applied. It holds the API key: do not print it.
func (c *Classifier) Config() Config { return c.cfg }

// LLMEnabled reports whether ambiguous requests go to an LLM.
func (c *Classifier) LLMEnabled() bool { return c.client != nil }

// Backend describes what classifies, for logs and `process`'s stderr; it carries no secret.
func (c *Classifier) Backend() string {
	switch {
	case c.client != nil:
		return fmt.Sprintf("rules + llm %s at %s (fallback %s)", c.cfg.Model, c.endpoint, c.cfg.Fallback)
	case c.cfg.DisableLLM:
		return fmt.Sprintf("rules only, llm disabled (fallback %s)", c.cfg.Fallback)
	}
	return fmt.Sprintf("rules only (fallback %s)", c.cfg.Fallback)
}

// Classify never fails: the rules decide clear cases, the LLM ambiguous ones, and the fallback label
// whatever the LLM could not decide. Ambiguous stays true whenever the rules were not sure.
func (c *Classifier) Classify(ctx context.Context, r *payload.Request) Result {
	res := c.classify(ctx, r)
	if res.Reasons == nil {
		res.Reasons = []string{} // the JSON contract has an array, never null
	}
	return res
}

func (c *Classifier) classify(ctx context.Context, r *payload.Request) Result {
	res := Rules(r)
	if !res.Ambiguous {
		return res
	}
	if c.client == nil {
		why := "no LLM configured"
		if c.cfg.DisableLLM {
			why = "LLM disabled"
		}
		return c.fallback(res, why)
	}
	label, err := c.ask(ctx, r)
	if err != nil {
		return c.fallback(res, fmt.Sprintf("llm %s: %v", c.cfg.Model, err))
	}
	res.Classification = label
	res.Method = MethodLLM
	res.Reasons = append(res.Reasons, fmt.Sprintf("llm %s answered %s", c.cfg.Model, label))
	return res
}

func (c *Classifier) fallback(res Result, why string) Result {
	res.Classification = c.cfg.Fallback
	res.Method = MethodFallback
	res.Reasons = append(res.Reasons, fmt.Sprintf("%s: fell back to %s", why, c.cfg.Fallback))
	return res
}

// ask sends one chat completion and parses its answer strictly. No retry: a second try would double
// the time the chain waits, and the fallback is an acceptable answer.
func (c *Classifier) ask(ctx context.Context, r *payload.Request) (string, error) {
	callCtx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req := openai.ChatCompletionRequest{
		Model: c.cfg.Model,
		Messages: []openai.ChatCompletionMessage{
			{Role: openai.ChatMessageRoleSystem, Content: systemPrompt},
			{Role: openai.ChatMessageRoleUser, Content: userPrompt(r, c.cfg.MaxInputChars)},
		},
	}
	setMaxTokens(&req, answerTokens)
	resp, err := c.client.CreateChatCompletion(callCtx, req)
	if err != nil {
		return "", c.describe(ctx, callCtx, err)
	}
	if len(resp.Choices) == 0 {
		return "", errors.New("empty answer (no choices)")
	}
	answer := resp.Choices[0].Message.Content
	label, ok := ParseAnswer(answer)
	if !ok {
		return "", fmt.Errorf("answer is not a label: %s", quoteShort(strings.TrimSpace(answer)))
	}
	return label, nil
}

// Answer budgets. A label is a handful of tokens, a one-key JSON object about ten; reasoning models
// count their hidden thinking in the same budget, so they get more room (better: use a non-reasoning
// model, it answers faster).
const (
	answerTokens          = 20
	pingTokens            = 1
	reasoningAnswerTokens = 512
)

// setMaxTokens uses max_tokens, which every OpenAI-compatible server knows, except for OpenAI's
// reasoning models, which reject it in favour of max_completion_tokens.
func setMaxTokens(req *openai.ChatCompletionRequest, n int) {
	if reasoningModel(req.Model) {
		req.MaxCompletionTokens = reasoningAnswerTokens
		return
	}
	//lint:ignore SA1019 max_tokens is what Anthropic's, Ollama's and llama.cpp's compatible endpoints read.
	req.MaxTokens = n
}

func reasoningModel(m string) bool {
	for _, p := range []string{"o1", "o3", "o4", "gpt-5", "gpt-6"} {
		if strings.HasPrefix(m, p) {
			return true
		}
	}
	return false
}

// describe turns an LLM call error into a short reason with no URL, key or response body: a body
// may echo part of the key (OpenAI's 401 does).
func (c *Classifier) describe(parent, call context.Context, err error) error {
	switch {
	case parent.Err() != nil:
		return fmt.Errorf("cancelled by the caller (%v)", parent.Err())
	case errors.Is(call.Err(), context.DeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("timed out after %s", c.cfg.Timeout)
	}
	var apiErr *openai.APIError
	if errors.As(err, &apiErr) {
		detail := apiErr.Type
		if code, ok := apiErr.Code.(string); ok && code != "" {
			detail = strings.Trim(detail+" "+code, " ")
		}
		if detail != "" {
			return fmt.Errorf("HTTP %d (%s)", apiErr.HTTPStatusCode, c.redact(truncateRunes(detail, 60)))
		}
		return fmt.Errorf("HTTP %d", apiErr.HTTPStatusCode)
	}
	var reqErr *openai.RequestError
	if errors.As(err, &reqErr) {
		return fmt.Errorf("HTTP %d", reqErr.HTTPStatusCode)
	}
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return fmt.Errorf("network error: %s", c.redact(urlErr.Err.Error()))
	}
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	if errors.As(err, &syn) || errors.As(err, &typ) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("unreadable answer (not an OpenAI chat completion)")
	}
	return errors.New(c.redact(truncateRunes(err.Error(), 120)))
}

func (c *Classifier) redact(s string) string {
	if c.cfg.APIKey != "" {
		s = strings.ReplaceAll(s, c.cfg.APIKey, "[redacted]")
	}
	return s
}

// redactURL keeps scheme, host and path: no user info, query or fragment.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return "(unparseable URL)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// Check is the doctor's view of the classifier: rules only, or whether the LLM answers a one-token
// completion (which proves endpoint, key and model at once, where a models list would not prove the
// model). Key and model problems fail; transient ones (timeouts, 429, 5xx) warn, since the chain then
// falls back rather than fails.
func (c *Classifier) Check(ctx context.Context) []health.Check {
	if c.client == nil {
		detail := "rules only: no LLM configured (set LLM_BASE_URL/LLM_MODEL/LLM_API_KEY or ANTHROPIC_API_KEY); ambiguous requests get " + c.cfg.Fallback
		if c.cfg.DisableLLM {
			detail = "rules only: LLM disabled; ambiguous requests get " + c.cfg.Fallback
		}
		return []health.Check{{Service: "llm", Name: "classifier", Status: health.OK, Detail: detail}}
	}
	callCtx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req := openai.ChatCompletionRequest{
		Model:    c.cfg.Model,
		Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "Reply with the word OK."}},
	}
	setMaxTokens(&req, pingTokens)
	start := time.Now()
	_, err := c.client.CreateChatCompletion(callCtx, req)
	elapsed := time.Since(start)
	chk := health.Check{Service: "llm", Name: "chat completion " + c.cfg.Model}
	if err == nil {
		chk.Status = health.OK
		chk.Detail = fmt.Sprintf("%s answered in %dms; ambiguous requests it cannot decide get %s", c.endpoint, elapsed.Milliseconds(), c.cfg.Fallback)
		return []health.Check{chk}
	}
	reason := c.describe(ctx, callCtx, err).Error()
	chk.Status = health.Warn
	status := 0
	var apiErr *openai.APIError
	var reqErr *openai.RequestError
	switch {
	case errors.As(err, &apiErr):
		status = apiErr.HTTPStatusCode
	case errors.As(err, &reqErr):
		status = reqErr.HTTPStatusCode
	}
	hint := "transient: the chain falls back to " + c.cfg.Fallback + " meanwhile"
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case status == 0 && (errors.As(err, &syn) || errors.As(err, &typ)):
		chk.Status = health.Fail
		hint = "not an OpenAI-compatible endpoint: check LLM_BASE_URL (it usually ends in /v1)"
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		chk.Status = health.Fail
		hint = "key rejected: check LLM_API_KEY (or ANTHROPIC_API_KEY)"
	case status == http.StatusNotFound:
		chk.Status = health.Fail
		hint = "endpoint or model not found: check LLM_BASE_URL and LLM_MODEL"
	case status >= 400 && status < 500 && status != http.StatusTooManyRequests && status != http.StatusRequestTimeout:
		chk.Status = health.Fail
		hint = "request refused: check LLM_MODEL and that LLM_BASE_URL is OpenAI-compatible"
	}
	chk.Detail = fmt.Sprintf("%s: %s; %s", c.endpoint, reason, hint)
	return []health.Check{chk}
}

// limitBody caps what the LLM endpoint may send back: an answer is a few hundred bytes.
type limitBody struct{ rt http.RoundTripper }

const maxResponseBytes = 1 << 20

func (l limitBody) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.rt.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.LimitReader(resp.Body, maxResponseBytes), resp.Body}
	return resp, nil
}
