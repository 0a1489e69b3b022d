// Package classify decides whether a request is SUPPORT or MODELISATION: keyword rules first, an
// OpenAI-compatible LLM when the rules are not sure, and a configurable fallback.
package classify

// Result is a classification and how it was reached; its JSON is the `classify --output json` contract.
type Result struct {
	Classification string   `json:"classification"`
	Ambiguous      bool     `json:"ambiguous"`
	Method         string   `json:"method"` // rules, llm or fallback
	Reasons        []string `json:"reasons"`
}

// Methods.
const (
	MethodRules    = "rules"
	MethodLLM      = "llm"
	MethodFallback = "fallback"
)
