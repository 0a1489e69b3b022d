package classify_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/golden"

	"github.com/figurative/figsupport/internal/classify"
	"github.com/figurative/figsupport/internal/payload"
)

// TestGolden runs every payload of testdata/requests through a rules-only classifier and compares
// the `classify --output json` document with testdata/golden/<name>.json.
func TestGolden(t *testing.T) {
	files, err := filepath.Glob("testdata/requests/*.json")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test payloads: %v", err)
	}
	c, err := classify.New(classify.Config{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			req, err := payload.ParseBytes(body, payload.DefaultLimits, now)
			if err != nil {
				t.Fatalf("payload: %v", err)
			}
			got, err := json.MarshalIndent(c.Classify(context.Background(), req), "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			golden.Check(t, filepath.Join("testdata", "golden", name+".json"), string(got))
		})
	}
}
