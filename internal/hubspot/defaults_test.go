package hubspot

import (
	"slices"
	"testing"

	"github.com/figurative/figsupport/internal/config"
)

// TestDefaultsAgreeWithConfig: the package's own defaults (for use on its own) are the values of
// internal/config.Keys, the one place defaults are decided.
func TestDefaultsAgreeWithConfig(t *testing.T) {
	v := config.New(func(string) (string, bool) { return "", false })
	checks := []struct {
		key       string
		got, want any
	}{
		{"HUBSPOT_BASE_URL", DefaultBaseURL, v.URL("HUBSPOT_BASE_URL")},
		{"HUBSPOT_APP_DOMAIN", DefaultAppDomain, v.String("HUBSPOT_APP_DOMAIN")},
		{"HUBSPOT_PIPELINE_ID", DefaultPipelineID, v.String("HUBSPOT_PIPELINE_ID")},
		{"HUBSPOT_STAGE_NEW", DefaultStageNew, v.String("HUBSPOT_STAGE_NEW")},
		{"HUBSPOT_STAGE_CLOSED", DefaultStageClosed, v.String("HUBSPOT_STAGE_CLOSED")},
		{"HUBSPOT_OPEN_STAGES", slices.Equal(DefaultOpenStages, v.List("HUBSPOT_OPEN_STAGES")), true},
		{"HUBSPOT_RATE_LIMIT", DefaultRequestsPer10s, v.Int("HUBSPOT_RATE_LIMIT")},
		{"HUBSPOT_TIMEOUT", DefaultTimeout, v.Duration("HUBSPOT_TIMEOUT")},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: package default %v, config.Keys %v", c.key, c.got, c.want)
		}
	}
	if err := v.Err(); err != nil {
		t.Fatal(err)
	}
}
