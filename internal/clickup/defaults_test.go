package clickup

import (
	"testing"

	"github.com/figurative/figsupport/internal/config"
)

// TestDefaultsAgreeWithConfig: the package's own defaults (for use on its own) are the values of
// internal/config.Keys, the one place defaults are decided.
func TestDefaultsAgreeWithConfig(t *testing.T) {
	v := config.New(func(string) (string, bool) { return "", false })
	if got := v.URL("CLICKUP_BASE_URL"); got != DefaultBaseURL {
		t.Errorf("CLICKUP_BASE_URL: package %s, config.Keys %s", DefaultBaseURL, got)
	}
	if got := v.Int("CLICKUP_RATE_LIMIT"); got != DefaultRequestsPerMinute {
		t.Errorf("CLICKUP_RATE_LIMIT: package %d, config.Keys %d", DefaultRequestsPerMinute, got)
	}
	if err := v.Err(); err != nil {
		t.Fatal(err)
	}
}
