// Package health is the shape of the checks `figsupport doctor` prints: every backend reports a
// list of them, and none carries a secret.
package health

// Status of one check.
const (
	OK   = "ok"
	Warn = "warn"
	Fail = "fail"
)

// Check is one line of the doctor's report.
type Check struct {
	Service string `json:"service"` // hubspot, clickup, r2, smtp, graph, llm, journal…
	Name    string `json:"name"`    // what was checked
	Status  string `json:"status"`  // ok, warn or fail
	Detail  string `json:"detail"`  // what is wrong and how to fix it; never a secret
}
