package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/chain/chaintest"
	"github.com/figurative/figsupport/internal/journal"
	"github.com/figurative/figsupport/internal/local"
	"github.com/figurative/figsupport/internal/notify"
	"github.com/figurative/figsupport/internal/payload"
	"github.com/figurative/figsupport/internal/sqlite"
)

// embedded wires the chain as `serve` does with every backend embedded (the SQLite journal and
// CRM in one database, the outbox), in this process, so that profiles see the chain, the journal
// and the CRM without HTTP or logging.
func embedded(b *testing.B, conns int, outbox bool) *chain.Chain {
	b.Helper()
	ctx := context.Background()
	dir := b.TempDir()
	db, err := sqlite.Open(filepath.Join(dir, "figsupport.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if conns > 0 {
		db.SetMaxOpenConns(conns)
	}
	j, err := journal.Open(ctx, db, filepath.Join(dir, "locks"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { j.Close() })
	st, err := local.Open(ctx, db, local.Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	var n chain.Notifier = &chaintest.Notifier{}
	if outbox {
		if n, err = notify.New(notify.Config{To: []string{"admin@localhost"}, OutboxDir: filepath.Join(dir, "outbox")}); err != nil {
			b.Fatal(err)
		}
	}
	return chain.New(chain.Deps{CRM: st, Tasks: st, Files: &chaintest.Files{}, Notifier: n, Journal: j,
		Classifier: chaintest.Fixed(payload.Support)}, chain.Options{})
}

// BenchmarkChainEmbedded runs new SUPPORT requests through the chain with every backend
// embedded, from 4 goroutines at once (the pool's default workers), recorded first as the daemon
// does (Accept, then Process): the most `serve --mode sync` can do on this machine once HTTP is
// taken away. conns is the database's connection pool (internal/sqlite opens 4); outbox
// writes each notification to disk (fsync) as the embedded notifier does, memory does not.
//
//	go test -run '^$' -bench ChainEmbedded -cpuprofile cpu.out ./internal/bench
func BenchmarkChainEmbedded(b *testing.B) {
	for _, conns := range []int{0, 1} {
		for _, outbox := range []bool{true, false} {
			name := fmt.Sprintf("conns=%d/outbox=%v", conns, outbox)
			if conns == 0 {
				name = fmt.Sprintf("conns=default/outbox=%v", outbox)
			}
			b.Run(name, func(b *testing.B) {
				c := embedded(b, conns, outbox)
				ctx := context.Background()
				var next atomic.Int64
				run := fmt.Sprint(time.Now().UnixNano())
				b.SetParallelism(2) // 4 goroutines on 2 cores: the pool's 4 workers
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						i := next.Add(1)
						req := chaintest.Request(b, fmt.Sprintf("c%d-%s@example.com", i, run), fmt.Sprintf("Paiement %d", i), time.Now())
						req.RequestID = fmt.Sprintf("%s-%d", run, i)
						if _, err := c.Accept(ctx, req); err != nil {
							b.Fatal(err)
						}
						if _, err := c.Process(ctx, req, chain.RunOptions{Recorded: true}); err != nil {
							b.Fatal(err)
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
			})
		}
	}
}
