package bench

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/journal"
	"github.com/figurative/figsupport/internal/sqlite"
)

// BenchmarkRecord measures what the daemon's intake writes before its 202, from 4 goroutines at
// once (on 2 cores), on the journal's own schema: Journal.Record as it is (a transaction: SELECT
// of the key, INSERT, each statement prepared anew), beside the same row written by one prepared
// INSERT … ON CONFLICT DO NOTHING in autocommit — what Record could do on its common path (a new
// key), looking further only when the key exists. The gap between them is what the journal's
// rework would give the intake (BENCHMARKS.md).
//
//	go test -run '^$' -bench Record ./internal/bench
func BenchmarkRecord(b *testing.B) {
	ctx := context.Background()
	open := func(b *testing.B) (*sql.DB, *journal.Journal) {
		dir := b.TempDir()
		db, err := sqlite.Open(filepath.Join(dir, "figsupport.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		j, err := journal.Open(ctx, db, filepath.Join(dir, "locks"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { j.Close() })
		return db, j
	}
	body := string(supportRequest("record", 0))
	run := fmt.Sprint(time.Now().UnixNano())
	parallel := func(b *testing.B, record func(key string) error) {
		var next atomic.Int64
		b.SetParallelism(2)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := record(fmt.Sprintf("%s-%d", run, next.Add(1))); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	}
	b.Run("journal.Record", func(b *testing.B) {
		_, j := open(b)
		parallel(b, func(key string) error {
			_, err := j.Record(ctx, chain.NewRun{Key: key, Hash: "h-" + key, Email: "c@example.com", Request: []byte(body), TTL: time.Hour})
			return err
		})
	})
	b.Run("prepared-insert", func(b *testing.B) {
		db, _ := open(b)
		st, err := db.PrepareContext(ctx, `INSERT INTO requests(key, hash, email, status, request, attempts, created_at, updated_at, expires_at, owner, lease_until)
			VALUES(?, ?, ?, 'queued', ?, 0, ?, ?, ?, ?, ?) ON CONFLICT(key) WHERE archived = 0 DO NOTHING RETURNING id`)
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		parallel(b, func(key string) error {
			now := time.Now().UnixMilli()
			var id int64
			return st.QueryRowContext(ctx, key, "h-"+key, "c@example.com", body, now, now, now+3_600_000, "owner", now+60_000).Scan(&id)
		})
	})
}
