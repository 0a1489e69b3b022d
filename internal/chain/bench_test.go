package chain_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/chain/chaintest"
)

// BenchmarkProcess measures the chain's own cost on the embedded backends (SQLite journal and
// CRM in WAL mode, in-memory files and notifier): what the daemon adds to the outside services'
// latency. new-ticket creates a contact and a ticket each time; follow-up adds a note to one.
func BenchmarkProcess(b *testing.B) {
	ctx := context.Background()
	for _, bc := range []struct {
		name  string
		email func(i int) string
	}{
		{"new-ticket", func(i int) string { return fmt.Sprintf("c%d@example.com", i) }},
		{"follow-up", func(int) string { return "same@example.com" }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := chaintest.New(b, chaintest.Options{})
			i := 0
			for b.Loop() {
				req := chaintest.Request(b, bc.email(i), fmt.Sprintf("Message %d", i), t0.Add(time.Duration(i)*time.Second))
				if _, err := h.Chain.Process(ctx, req, chain.RunOptions{}); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
