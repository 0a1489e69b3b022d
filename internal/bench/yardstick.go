package bench

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/figurative/figsupport/internal/sqlite"
)

// Yardstick is the bare durable server the daemon's intake is compared with: net/http, and one
// SQLite row per request written before the answer, in a database opened by internal/sqlite
// (WAL, synchronous NORMAL, busy_timeout, immediate transactions, the same connection pool):
// the least any server that records a request durably before a 2xx does on this machine.
type Yardstick struct {
	db     *sql.DB
	insert *sql.Stmt
}

// OpenYardstick opens (creating) the yardstick's database at path.
func OpenYardstick(ctx context.Context, path string) (*Yardstick, error) {
	db, err := sqlite.Open(path)
	if err != nil {
		return nil, err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS requests (
		id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, body TEXT NOT NULL, created_at INTEGER NOT NULL)`); err != nil {
		db.Close()
		return nil, fmt.Errorf("yardstick: %w", err)
	}
	st, err := db.PrepareContext(ctx, `INSERT INTO requests(key, body, created_at) VALUES(?, ?, ?)`)
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("yardstick: %w", err)
	}
	return &Yardstick{db: db, insert: st}, nil
}

// Close closes the database.
func (y *Yardstick) Close() error {
	y.insert.Close()
	return y.db.Close()
}

// ServeHTTP records the body and answers 202.
func (y *Yardstick) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, `{"error":"bad body"}`, http.StatusBadRequest)
		return
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	key := hex.EncodeToString(id[:])
	if _, err := y.insert.ExecContext(r.Context(), key, string(body), time.Now().UnixMilli()); err != nil {
		http.Error(w, `{"error":"not recorded"}`, http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(http.StatusAccepted)
	fmt.Fprintf(w, `{"status":"queued","request_id":%q}`+"\n", key)
}
