package journal

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/postgres"
	"github.com/figurative/figsupport/internal/sqlite"
	"github.com/figurative/figsupport/internal/testsrv/pgtest"
)

// clock is a settable clock for SetClock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

var t0 = time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)

type env struct {
	j     *Journal
	clk   *clock
	dir   string
	locks string
	dsn   string // PostgreSQL's database, when the env is on PostgreSQL
}

// The databases the journal runs on: the tests that hold for both run on each (PostgreSQL skips,
// saying so, where its server binaries are absent).
var databases = []string{"sqlite", "postgres"}

// onEachDB runs test on each database, as a subtest.
func onEachDB(t *testing.T, test func(t *testing.T, db string)) {
	for _, db := range databases {
		t.Run(db, func(t *testing.T) { test(t, db) })
	}
}

// newEnvOn is a journal on db with a fixed clock.
func newEnvOn(t *testing.T, db string) *env {
	t.Helper()
	if db == "sqlite" {
		return newEnv(t)
	}
	dsn := pgtest.New(t)
	e := &env{clk: &clock{t: t0}, dsn: dsn}
	e.j = e.another(t)
	return e
}

// another is a second journal on the env's database, as another process (or instance) has.
func (e *env) another(t *testing.T) *Journal {
	t.Helper()
	if e.dsn == "" {
		j := open(t, e.dir)
		j.SetClock(e.clk.now)
		return j
	}
	db, err := postgres.Open(context.Background(), e.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	j, err := OpenPostgres(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	j.SetClock(e.clk.now)
	return j
}

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

func open(t *testing.T, dir string) *Journal {
	t.Helper()
	db, err := sqlite.Open(filepath.Join(dir, "figsupport.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	j, err := Open(context.Background(), db, filepath.Join(dir, "locks"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func newEnv(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	j := open(t, dir)
	clk := &clock{t: t0}
	j.SetClock(clk.now)
	return &env{j: j, clk: clk, dir: dir, locks: filepath.Join(dir, "locks")}
}

type req struct {
	Email string `json:"user_email"`
	Text  string `json:"description"`
}

const ttl = 24 * time.Hour

// nr is the NewRun of a test request with that key and hash.
func nr(key, hash string) chain.NewRun {
	body, _ := json.Marshal(req{"a@example.com", "bonjour"})
	return chain.NewRun{Key: key, Hash: hash, Email: "a@example.com", Request: body, TTL: ttl}
}

func (e *env) begin(t *testing.T, key, hash string, force bool) *chain.Run {
	t.Helper()
	run, err := e.j.Begin(context.Background(), nr(key, hash), force)
	if err != nil {
		t.Fatalf("Begin(%s): %v", key, err)
	}
	return run
}

func TestBegin(t *testing.T) { onEachDB(t, testBegin) }

func testBegin(t *testing.T, db string) {
	ctx := context.Background()

	t.Run("new run", func(t *testing.T) {
		e := newEnvOn(t, db)
		run := e.begin(t, "k1", "h1", false)
		if run.Attempts != 1 || run.Status != chain.StatusRunning || run.Replay || run.ID == 0 {
			t.Errorf("got %+v", run)
		}
		if run.Key != "k1" || run.Hash != "h1" || run.Email != "a@example.com" || len(run.Steps) != 0 {
			t.Errorf("got %+v", run)
		}
		if !run.CreatedAt.Equal(t0) || !run.ExpiresAt.Equal(t0.Add(ttl)) {
			t.Errorf("created %v expires %v", run.CreatedAt, run.ExpiresAt)
		}
		var stored req
		if err := json.Unmarshal(run.Request, &stored); err != nil || stored.Text != "bonjour" {
			t.Errorf("request %s: %v", run.Request, err)
		}
		got, err := e.j.Get(ctx, "k1")
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != run.ID || got.Status != chain.StatusRunning || got.Attempts != 1 || string(got.Request) != string(run.Request) ||
			!got.CreatedAt.Equal(t0) || !got.ExpiresAt.Equal(t0.Add(ttl)) {
			t.Errorf("stored %+v", got)
		}
	})

	t.Run("unfinished run resumes with its steps", func(t *testing.T) {
		e := newEnvOn(t, db)
		run := e.begin(t, "k1", "h1", false)
		if err := e.j.SaveStep(ctx, run, "upload", []string{"https://files.example/a.jpg"}); err != nil {
			t.Fatal(err)
		}
		if err := e.j.SaveStep(ctx, run, "contact", map[string]string{"id": "c-1"}); err != nil {
			t.Fatal(err)
		}
		if err := e.j.Finish(ctx, run, chain.Outcome{Status: chain.StatusFailed, Response: nil, Error: "hubspot: 503"}); err != nil {
			t.Fatal(err)
		}
		e.clk.advance(time.Minute)

		again := e.begin(t, "k1", "h1", false)
		if again.ID != run.ID || again.Attempts != 2 || again.Status != chain.StatusRunning || again.Replay {
			t.Fatalf("got %+v", again)
		}
		if again.LastError != "hubspot: 503" {
			t.Errorf("last_error = %q", again.LastError)
		}
		var urls []string
		if ok, err := again.Step("upload", &urls); !ok || err != nil || len(urls) != 1 || urls[0] != "https://files.example/a.jpg" {
			t.Errorf("upload step: %v %v %v", urls, ok, err)
		}
		var contact map[string]string
		if ok, err := again.Step("contact", &contact); !ok || err != nil || contact["id"] != "c-1" {
			t.Errorf("contact step: %v %v %v", contact, ok, err)
		}
		if ok, err := again.Step("ticket", &contact); ok || err != nil {
			t.Errorf("ticket step reported done: %v %v", ok, err)
		}

		third := e.begin(t, "k1", "h1", false)
		if third.Attempts != 3 {
			t.Errorf("attempts = %d, want 3", third.Attempts)
		}
		stored, err := e.j.Get(ctx, "k1")
		if err != nil {
			t.Fatal(err)
		}
		if stored.Attempts != 3 || stored.Status != chain.StatusRunning || len(stored.Steps) != 2 || !stored.UpdatedAt.Equal(t0.Add(time.Minute)) {
			t.Errorf("stored %+v", stored)
		}
	})

	t.Run("incomplete run resumes rather than replays", func(t *testing.T) {
		e := newEnvOn(t, db)
		run := e.begin(t, "k1", "h1", false)
		if err := e.j.Finish(ctx, run, chain.Outcome{Status: chain.StatusIncomplete, Response: map[string]string{"status": "incomplete"}, Error: "subtask: 500"}); err != nil {
			t.Fatal(err)
		}
		again := e.begin(t, "k1", "h1", false)
		if again.Replay || again.Attempts != 2 || again.Status != chain.StatusRunning {
			t.Errorf("got %+v", again)
		}
	})

	t.Run("finished run replays its response", func(t *testing.T) {
		e := newEnvOn(t, db)
		run := e.begin(t, "k1", "h1", false)
		if err := e.j.SaveStep(ctx, run, "ticket", map[string]string{"id": "t-9"}); err != nil {
			t.Fatal(err)
		}
		resp := map[string]any{"status": "created", "ticket_id": "t-9"}
		if err := e.j.Finish(ctx, run, chain.Outcome{Status: chain.StatusDone, Response: resp, Error: ""}); err != nil {
			t.Fatal(err)
		}
		if run.Status != chain.StatusDone || string(run.Response) != `{"status":"created","ticket_id":"t-9"}` {
			t.Errorf("in-memory run not updated: %+v", run)
		}
		e.clk.advance(ttl - time.Millisecond)
		again := e.begin(t, "k1", "h1", false)
		if !again.Replay || again.ID != run.ID || again.Status != chain.StatusDone || again.Attempts != 1 {
			t.Fatalf("got %+v", again)
		}
		var got map[string]any
		if err := json.Unmarshal(again.Response, &got); err != nil || got["ticket_id"] != "t-9" {
			t.Errorf("response %s: %v", again.Response, err)
		}
	})

	t.Run("same key different payload conflicts", func(t *testing.T) {
		e := newEnvOn(t, db)
		run := e.begin(t, "k1", "h1", false)
		_, err := e.j.Begin(ctx, nr("k1", "h2"), false)
		if !errors.Is(err, chain.ErrConflict) {
			t.Fatalf("unfinished: err = %v, want chain.ErrConflict", err)
		}
		if err := e.j.Finish(ctx, run, chain.Outcome{Status: chain.StatusDone, Response: map[string]string{}, Error: ""}); err != nil {
			t.Fatal(err)
		}
		_, err = e.j.Begin(ctx, nr("k1", "h2"), false)
		if !errors.Is(err, chain.ErrConflict) {
			t.Fatalf("finished: err = %v, want chain.ErrConflict", err)
		}
		stored, err := e.j.Get(ctx, "k1")
		if err != nil || stored.Hash != "h1" || stored.Attempts != 1 || stored.Status != chain.StatusDone {
			t.Errorf("a conflict touched the run: %+v %v", stored, err)
		}
	})

	t.Run("expired key starts a new run and archives the old", func(t *testing.T) {
		e := newEnvOn(t, db)
		old := e.begin(t, "k1", "h1", false)
		if err := e.j.SaveStep(ctx, old, "ticket", map[string]string{"id": "t-1"}); err != nil {
			t.Fatal(err)
		}
		if err := e.j.Finish(ctx, old, chain.Outcome{Status: chain.StatusDone, Response: map[string]string{"ticket_id": "t-1"}, Error: ""}); err != nil {
			t.Fatal(err)
		}
		e.clk.advance(ttl)
		fresh := e.begin(t, "k1", "h1", false)
		if fresh.Replay || fresh.ID == old.ID || fresh.Attempts != 1 || len(fresh.Steps) != 0 || !fresh.CreatedAt.Equal(t0.Add(ttl)) {
			t.Fatalf("got %+v", fresh)
		}
		archived, err := e.j.Get(ctx, fmt.Sprint(old.ID))
		if err != nil {
			t.Fatal(err)
		}
		if archived.ID != old.ID || archived.Status != chain.StatusDone || string(archived.Response) != `{"ticket_id":"t-1"}` || len(archived.Steps) != 1 {
			t.Errorf("archived %+v", archived)
		}
		current, err := e.j.Get(ctx, "k1")
		if err != nil || current.ID != fresh.ID {
			t.Errorf("Get(k1) = %+v, %v; want the new run", current, err)
		}
	})

	t.Run("expired key with another payload is a new run, not a conflict", func(t *testing.T) {
		e := newEnvOn(t, db)
		done := e.begin(t, "k1", "h1", false)
		if err := e.j.Finish(ctx, done, chain.Outcome{Status: chain.StatusDone, Response: map[string]string{}, Error: ""}); err != nil {
			t.Fatal(err)
		}
		e.clk.advance(ttl + time.Hour)
		run := e.begin(t, "k1", "h2", false)
		if run.Hash != "h2" || run.Attempts != 1 {
			t.Errorf("got %+v", run)
		}
	})

	t.Run("an unfinished run never expires: it resumes", func(t *testing.T) {
		e := newEnvOn(t, db)
		old := e.begin(t, "k1", "h1", false)
		if err := e.j.SaveStep(ctx, old, "ticket", map[string]string{"id": "t-1"}); err != nil {
			t.Fatal(err)
		}
		if err := e.j.Finish(ctx, old, chain.Outcome{Status: chain.StatusIncomplete, Response: nil, Error: "notify: 451"}); err != nil {
			t.Fatal(err)
		}
		e.clk.advance(10 * ttl)
		again := e.begin(t, "k1", "h1", false)
		if again.ID != old.ID || again.Attempts != 2 || len(again.Steps) != 1 {
			t.Fatalf("got %+v, want the old run resumed with its step", again)
		}
	})

	t.Run("a client key that looks like an archived one does not collide", func(t *testing.T) {
		e := newEnvOn(t, db)
		old := e.begin(t, "k1", "h1", true)
		other := e.begin(t, fmt.Sprintf("k1#%d", old.ID), "h9", false)
		fresh := e.begin(t, "k1", "h2", true)
		if other.ID == old.ID || fresh.ID == old.ID || fresh.ID == other.ID {
			t.Fatalf("runs %d %d %d, want three", old.ID, other.ID, fresh.ID)
		}
		if got, err := e.j.Get(ctx, "k1"); err != nil || got.ID != fresh.ID {
			t.Fatalf("Get(k1) = %+v, %v", got, err)
		}
	})

	t.Run("force starts a new run and archives the old", func(t *testing.T) {
		e := newEnvOn(t, db)
		old := e.begin(t, "k1", "h1", false)
		if err := e.j.Finish(ctx, old, chain.Outcome{Status: chain.StatusDone, Response: map[string]string{"ticket_id": "t-1"}, Error: ""}); err != nil {
			t.Fatal(err)
		}
		fresh := e.begin(t, "k1", "h2", true)
		if fresh.Replay || fresh.ID == old.ID || fresh.Hash != "h2" || fresh.Attempts != 1 {
			t.Fatalf("got %+v", fresh)
		}
		archived, err := e.j.Get(ctx, fmt.Sprint(old.ID))
		if err != nil || archived.ID != old.ID || archived.Status != chain.StatusDone {
			t.Errorf("archived %+v, %v", archived, err)
		}
		// Forcing again archives the second run too; both stay readable.
		third := e.begin(t, "k1", "h2", true)
		if third.ID == fresh.ID {
			t.Fatal("force reused the run")
		}
		if _, err := e.j.Get(ctx, fmt.Sprint(fresh.ID)); err != nil {
			t.Errorf("second archive: %v", err)
		}
		runs, err := e.j.List(ctx, nil, 10)
		if err != nil || len(runs) != 3 {
			t.Errorf("List = %d runs, %v", len(runs), err)
		}
	})

	t.Run("concurrent begins of one key make one run", func(t *testing.T) {
		e := newEnvOn(t, db)
		const n = 8
		ids := make(chan *chain.Run, n)
		var wg sync.WaitGroup
		for range n {
			wg.Go(func() {
				run, err := e.j.Begin(ctx, nr("k1", "h1"), false)
				if err != nil {
					t.Error(err)
					return
				}
				ids <- run
			})
		}
		wg.Wait()
		close(ids)
		seen := map[int]bool{}
		var id int64
		for run := range ids {
			if id != 0 && run.ID != id {
				t.Errorf("two runs: %d and %d", id, run.ID)
			}
			id = run.ID
			seen[run.Attempts] = true
		}
		if len(seen) != n {
			t.Errorf("attempts seen %v, want 1..%d once each", seen, n)
		}
	})

}

func TestSaveStepAndFinish(t *testing.T) { onEachDB(t, testSaveStepAndFinish) }

func testSaveStepAndFinish(t *testing.T, db string) {
	ctx := context.Background()
	e := newEnvOn(t, db)
	run := e.begin(t, "k1", "h1", false)
	if err := e.j.SaveStep(ctx, run, "upload", []string{"a"}); err != nil {
		t.Fatal(err)
	}
	e.clk.advance(time.Second)
	if err := e.j.SaveStep(ctx, run, "upload", []string{"a", "b"}); err != nil {
		t.Fatal(err)
	}
	if err := e.j.SaveStep(ctx, run, "bad", make(chan int)); err == nil {
		t.Error("SaveStep of an unencodable value succeeded")
	}
	if _, ok := run.Steps["bad"]; ok {
		t.Error("a failed step was recorded in memory")
	}
	stored, err := e.j.Get(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	// A step is one write to the steps table: the run's row (updated_at) is left alone.
	if string(stored.Steps["upload"]) != `["a","b"]` || len(stored.Steps) != 1 || !stored.UpdatedAt.Equal(t0) {
		t.Errorf("stored %+v steps %s", stored, stored.Steps["upload"])
	}
	var n int
	if ok, err := stored.Step("upload", &n); ok || err == nil {
		t.Error("decoding a step into the wrong type did not fail")
	}

	if err := e.j.Finish(ctx, run, chain.Outcome{Status: chain.StatusDone, Response: map[string]string{"ticket_id": "t-1"}, Error: ""}); err != nil {
		t.Fatal(err)
	}
	// A later Finish without a response keeps the one recorded.
	if err := e.j.Finish(ctx, run, chain.Outcome{Status: chain.StatusIncomplete, Response: nil, Error: "notify: smtp 421"}); err != nil {
		t.Fatal(err)
	}
	stored, err = e.j.Get(ctx, "k1")
	if err != nil {
		t.Fatal(err)
	}
	if stored.Status != chain.StatusIncomplete || stored.LastError != "notify: smtp 421" || string(stored.Response) != `{"ticket_id":"t-1"}` {
		t.Errorf("stored %+v", stored)
	}
}

func TestGet(t *testing.T) { onEachDB(t, testGet) }

func testGet(t *testing.T, db string) {
	ctx := context.Background()
	e := newEnvOn(t, db)
	a := e.begin(t, "alpha", "h", false) // id 1
	b := e.begin(t, "1", "h", false)     // id 2, key "1": the key wins over id 1
	c := e.begin(t, "gamma", "h", false) // id 3
	if err := e.j.SaveStep(ctx, c, "contact", "c-3"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		in     string
		wantID int64
	}{
		{"alpha", a.ID},
		{"gamma", c.ID},
		{strconv.FormatInt(c.ID, 10), c.ID},
		{"2", b.ID},
		{"1", b.ID},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			run, err := e.j.Get(ctx, tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if run.ID != tt.wantID {
				t.Errorf("Get(%q) = run %d (key %s), want %d", tt.in, run.ID, run.Key, tt.wantID)
			}
			if run.ID == c.ID && string(run.Steps["contact"]) != `"c-3"` {
				t.Errorf("steps not loaded: %v", run.Steps)
			}
		})
	}
	for _, missing := range []string{"nope", "99", "", "ALPHA"} {
		t.Run("missing "+missing, func(t *testing.T) {
			_, err := e.j.Get(ctx, missing)
			if !errors.Is(err, chain.ErrRunNotFound) {
				t.Errorf("Get(%q) err = %v, want ErrRunNotFound", missing, err)
			}
		})
	}
}

func TestList(t *testing.T) { onEachDB(t, testList) }

func testList(t *testing.T, db string) {
	ctx := context.Background()
	e := newEnvOn(t, db)
	statuses := []string{chain.StatusDone, chain.StatusFailed, chain.StatusRunning, chain.StatusIncomplete, chain.StatusFailed, chain.StatusDone}
	for i, s := range statuses {
		run := e.begin(t, fmt.Sprintf("k%d", i), "h", false)
		if s != chain.StatusRunning {
			if err := e.j.Finish(ctx, run, chain.Outcome{Status: s, Response: nil, Error: ""}); err != nil {
				t.Fatal(err)
			}
		}
	}
	keys := func(runs []*chain.Run) []string {
		var out []string
		for _, r := range runs {
			out = append(out, r.Key)
		}
		return out
	}
	tests := []struct {
		name   string
		filter []string
		limit  int
		want   []string
	}{
		{"all newest first", nil, 100, []string{"k5", "k4", "k3", "k2", "k1", "k0"}},
		{"limit", nil, 2, []string{"k5", "k4"}},
		{"failed", []string{chain.StatusFailed}, 100, []string{"k4", "k1"}},
		{"failed or incomplete", []string{chain.StatusFailed, chain.StatusIncomplete}, 100, []string{"k4", "k3", "k1"}},
		{"running", []string{chain.StatusRunning}, 100, []string{"k2"}},
		{"unknown status", []string{"bogus"}, 100, nil},
		{"done limited", []string{chain.StatusDone}, 1, []string{"k5"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs, err := e.j.List(ctx, tt.filter, tt.limit)
			if err != nil {
				t.Fatal(err)
			}
			if got := keys(runs); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("List(%v, %d) = %v, want %v", tt.filter, tt.limit, got, tt.want)
			}
			for _, r := range runs {
				if r.Steps == nil {
					t.Errorf("run %s has a nil steps map", r.Key)
				}
			}
		})
	}
}

func TestMemo(t *testing.T) { onEachDB(t, testMemo) }

func testMemo(t *testing.T, db string) {
	ctx := context.Background()
	e := newEnvOn(t, db)
	m := Memo{J: e.j}
	if v, ok, err := m.Get(ctx, "chain:contact-ticket:1"); ok || err != nil || v != "" {
		t.Fatalf("absent key: %q %v %v", v, ok, err)
	}
	if err := m.Put(ctx, "chain:contact-ticket:1", "t-1"); err != nil {
		t.Fatal(err)
	}
	if err := e.j.MemoPut(ctx, "other", ""); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := e.j.MemoGet(ctx, "chain:contact-ticket:1"); !ok || err != nil || v != "t-1" {
		t.Fatalf("got %q %v %v", v, ok, err)
	}
	if err := e.j.MemoPut(ctx, "chain:contact-ticket:1", "t-2"); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := m.Get(ctx, "chain:contact-ticket:1"); !ok || err != nil || v != "t-2" {
		t.Fatalf("after overwrite: %q %v %v", v, ok, err)
	}
	if v, ok, err := m.Get(ctx, "other"); !ok || err != nil || v != "" {
		t.Fatalf("empty value: %q %v %v", v, ok, err)
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	{
		db, err := sqlite.Open(filepath.Join(dir, "figsupport.db"))
		if err != nil {
			t.Fatal(err)
		}
		j, err := Open(ctx, db, filepath.Join(dir, "locks"))
		if err != nil {
			t.Fatal(err)
		}
		run, err := j.Begin(ctx, nr("k1", "h1"), false)
		if err != nil {
			t.Fatal(err)
		}
		if err := j.SaveStep(ctx, run, "upload", "x"); err != nil {
			t.Fatal(err)
		}
		if err := j.MemoPut(ctx, "m", "v"); err != nil {
			t.Fatal(err)
		}
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	j := open(t, dir) // migrations run again and must be a no-op
	run, err := j.Begin(ctx, nr("k1", "h1"), false)
	if err != nil {
		t.Fatal(err)
	}
	if run.Attempts != 2 || string(run.Steps["upload"]) != `"x"` {
		t.Errorf("after reopening: %+v", run)
	}
	if v, ok, _ := j.MemoGet(ctx, "m"); !ok || v != "v" {
		t.Errorf("memo lost: %q %v", v, ok)
	}
}

// waiters is how many Lock calls of j hold or wait for name: it lets a test know that a
// goroutine is blocked in Lock without sleeping.
func waiters(j *Journal, name string) int {
	sum := sha256.Sum256([]byte(strings.ToLower(name))) // as Lock names its lock
	j.mu.Lock()
	defer j.mu.Unlock()
	if kl := j.inflight[hex.EncodeToString(sum[:12])]; kl != nil {
		return kl.refs
	}
	return 0
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// lockWithin tries to take name, giving up after d: the error means "someone else holds it".
func lockWithin(j *Journal, name string, d time.Duration) (func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return j.Lock(ctx, name)
}

func TestLock(t *testing.T) { onEachDB(t, testLock) }

func testLock(t *testing.T, db string) {
	t.Run("same name is serialised", func(t *testing.T) {
		e := newEnvOn(t, db)
		unlockA, err := e.j.Lock(context.Background(), "a@example.com")
		if err != nil {
			t.Fatal(err)
		}
		var mu sync.Mutex
		var events []string
		record := func(s string) { mu.Lock(); events = append(events, s); mu.Unlock() }

		acquired := make(chan func())
		go func() {
			unlock, err := e.j.Lock(context.Background(), "a@example.com")
			if err != nil {
				t.Error(err)
				close(acquired)
				return
			}
			record("B acquired")
			acquired <- unlock
		}()
		waitFor(t, "B to wait", func() bool { return waiters(e.j, "a@example.com") == 2 })
		select {
		case <-acquired:
			t.Fatal("B got the lock while A held it")
		default:
		}
		record("A releases")
		unlockA()
		unlockB := <-acquired
		if unlockB == nil {
			t.FailNow()
		}
		if fmt.Sprint(events) != "[A releases B acquired]" {
			t.Errorf("events %v", events)
		}
		unlockB()
		unlockB() // releasing twice is harmless
		unlockA()
		if n := waiters(e.j, "a@example.com"); n != 0 {
			t.Errorf("%d references left", n)
		}
		// And the name can be taken again at once.
		unlock, err := lockWithin(e.j, "a@example.com", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		unlock()
	})

	t.Run("mutual exclusion under contention", func(t *testing.T) {
		e := newEnvOn(t, db)
		var inside, maxInside, total int
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for range 5 {
					unlock, err := e.j.Lock(context.Background(), "Same@Example.com")
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					inside++
					total++
					if inside > maxInside {
						maxInside = inside
					}
					mu.Unlock()
					mu.Lock()
					inside--
					mu.Unlock()
					unlock()
				}
			})
		}
		wg.Wait()
		if maxInside != 1 || total != 80 {
			t.Errorf("max holders %d, total %d", maxInside, total)
		}
		if len(e.j.inflight) != 0 {
			t.Errorf("inflight map not emptied: %d", len(e.j.inflight))
		}
	})

	t.Run("different names do not block each other", func(t *testing.T) {
		e := newEnvOn(t, db)
		unlockA, err := e.j.Lock(context.Background(), "a@example.com")
		if err != nil {
			t.Fatal(err)
		}
		defer unlockA()
		unlockB, err := lockWithin(e.j, "b@example.com", 10*time.Second)
		if err != nil {
			t.Fatalf("b blocked behind a: %v", err)
		}
		unlockB()
	})

	t.Run("names differing in case share the lock", func(t *testing.T) {
		e := newEnvOn(t, db)
		unlockA, err := e.j.Lock(context.Background(), "Client@Example.COM")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lockWithin(e.j, "client@example.com", 20*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want a deadline while the other case holds it", err)
		}
		unlockA()
		unlock, err := lockWithin(e.j, "client@example.com", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		unlock()
	})

	t.Run("cancelled while waiting", func(t *testing.T) {
		e := newEnvOn(t, db)
		unlockA, err := e.j.Lock(context.Background(), "a@example.com")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() {
			unlock, err := e.j.Lock(ctx, "a@example.com")
			if unlock != nil {
				unlock()
			}
			done <- err
		}()
		waitFor(t, "the waiter", func() bool { return waiters(e.j, "a@example.com") == 2 })
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if n := waiters(e.j, "a@example.com"); n != 1 {
			t.Errorf("%d references after the waiter gave up, want 1", n)
		}
		unlockA()
		unlock, err := lockWithin(e.j, "a@example.com", 10*time.Second)
		if err != nil {
			t.Fatalf("lock not free after the cancelled waiter: %v", err)
		}
		unlock()
	})

	t.Run("lock shared by two journals", func(t *testing.T) {
		// Two Journals on one lock dir have separate in-process maps and their own file
		// descriptors: for flock(2) they are two processes.
		e := newEnvOn(t, db)
		other := e.another(t)
		unlock1, err := e.j.Lock(context.Background(), "a@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := lockWithin(other, "A@example.com", 30*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("second journal: err = %v, want a deadline while the first holds the lock", err)
		}
		if n := waiters(other, "a@example.com"); n != 0 {
			t.Errorf("a failed file lock left %d references", n)
		}

		var mu sync.Mutex
		var events []string
		record := func(s string) { mu.Lock(); events = append(events, s); mu.Unlock() }
		acquired := make(chan func())
		go func() {
			unlock, err := other.Lock(context.Background(), "a@example.com")
			if err != nil {
				t.Error(err)
				close(acquired)
				return
			}
			record("second acquired")
			acquired <- unlock
		}()
		waitFor(t, "the second journal to wait", func() bool { return waiters(other, "a@example.com") == 1 })
		select {
		case <-acquired:
			t.Fatal("the second journal got the lock while the first held it")
		default:
		}
		record("first releases")
		unlock1()
		unlock2 := <-acquired
		if unlock2 == nil {
			t.FailNow()
		}
		if fmt.Sprint(events) != "[first releases second acquired]" {
			t.Errorf("events %v", events)
		}
		// Now the first waits for the second.
		if _, err := lockWithin(e.j, "a@example.com", 30*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("first journal: err = %v, want a deadline while the second holds the lock", err)
		}
		unlock2()
		unlock, err := lockWithin(e.j, "a@example.com", 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		unlock()
	})

	t.Run("file lock across processes", func(t *testing.T) {
		if db != "sqlite" {
			t.Skip("SQLite's lock file between processes; PostgreSQL's advisory lock between instances is the case above")
		}
		if testing.Short() {
			t.Skip("starts a child process")
		}
		e := newEnvOn(t, db)
		cmd := exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$")
		cmd.Env = append(os.Environ(), "JOURNAL_LOCK_HELPER="+e.dir)
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer cmd.Wait()
		defer stdin.Close()
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || line != "locked\n" {
			t.Fatalf("child said %q, %v", line, err)
		}
		if _, err := lockWithin(e.j, "a@example.com", 30*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want a deadline while the child holds the lock", err)
		}
		other, err := lockWithin(e.j, "b@example.com", 10*time.Second)
		if err != nil {
			t.Fatalf("another contact waits for the child's: %v", err)
		}
		other()
		stdin.Close() // the child unlocks and exits
		if err := cmd.Wait(); err != nil {
			t.Fatalf("child: %v", err)
		}
		unlock, err := lockWithin(e.j, "a@example.com", 10*time.Second)
		if err != nil {
			t.Fatalf("lock not free after the child exited: %v", err)
		}
		unlock()
	})
}

// TestLockHelperProcess is the child of "file lock across processes": it takes the lock, says so,
// and holds it until its stdin closes.
func TestLockHelperProcess(t *testing.T) {
	dir := os.Getenv("JOURNAL_LOCK_HELPER")
	if dir == "" {
		t.Skip("helper process only")
	}
	j := open(t, dir)
	unlock, err := j.Lock(context.Background(), "a@example.com")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("locked")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	unlock()
}

func TestRecordThenBegin(t *testing.T) { onEachDB(t, testRecordThenBegin) }

func testRecordThenBegin(t *testing.T, db string) {
	ctx := context.Background()
	e := newEnvOn(t, db)
	if _, err := e.j.Record(ctx, nr("k1", "h1")); err != nil {
		t.Fatal(err)
	}
	queued, err := e.j.Get(ctx, "k1")
	if err != nil || queued.Status != chain.StatusQueued || queued.Attempts != 0 {
		t.Fatalf("after Record: %+v, %v; want queued with no attempt", queued, err)
	}
	// Recording again, even with another payload, leaves the run alone: Begin decides.
	if _, err := e.j.Record(ctx, nr("k1", "h2")); err != nil {
		t.Fatal(err)
	}
	run := e.begin(t, "k1", "h1", false)
	if run.ID != queued.ID || run.Attempts != 1 || run.Status != chain.StatusRunning || run.Replay {
		t.Fatalf("Begin after Record = %+v, want the queued run's first attempt", run)
	}
	if _, err := e.j.Begin(ctx, nr("k1", "h2"), false); !errors.Is(err, chain.ErrConflict) {
		t.Fatalf("other payload: %v, want chain.ErrConflict", err)
	}
	if err := e.j.Finish(ctx, run, chain.Outcome{Status: chain.StatusDone, Response: map[string]string{"ticket_id": "1"}, Error: ""}); err != nil {
		t.Fatal(err)
	}
	// A done key: Record writes nothing, Begin replays.
	if _, err := e.j.Record(ctx, nr("k1", "h1")); err != nil {
		t.Fatal(err)
	}
	if again := e.begin(t, "k1", "h1", false); !again.Replay {
		t.Fatalf("after done: %+v, want a replay", again)
	}
	if runs, _ := e.j.List(ctx, nil, 10); len(runs) != 1 {
		t.Fatalf("%d runs, want 1", len(runs))
	}
}

// die stops j as a killed process would: no more renewals, its owner lock released by the
// kernel, nothing written to the database.
func die(j *Journal) {
	close(j.stop)
	<-j.done
	if j.ownerFL != nil {
		j.ownerFL.release()
	}
}

func TestOwnership(t *testing.T) { onEachDB(t, testOwnership) }

func testOwnership(t *testing.T, db string) {
	ctx := context.Background()

	t.Run("a run held by a live process is in flight elsewhere", func(t *testing.T) {
		e := newEnvOn(t, db)
		other := e.another(t)
		other.SetClock(e.clk.now)
		run, err := other.Begin(ctx, nr("k1", "h1"), false)
		if err != nil {
			t.Fatal(err)
		}
		if !e.j.Held(run) || other.Held(run) {
			t.Fatalf("Held: by another %v, by its owner %v", e.j.Held(run), other.Held(run))
		}
		if _, err := e.j.Begin(ctx, nr("k1", "h1"), false); !errors.Is(err, chain.ErrInFlight) {
			t.Fatalf("Begin of a held run: %v, want ErrInFlight", err)
		}
	})

	t.Run("a run left by a dead process is taken over", func(t *testing.T) {
		e := newEnvOn(t, db)
		other := e.another(t)
		other.SetClock(e.clk.now)
		run, err := other.Begin(ctx, nr("k1", "h1"), false)
		if err != nil {
			t.Fatal(err)
		}
		if err := other.SaveStep(ctx, run, "upload", "x"); err != nil {
			t.Fatal(err)
		}
		die(other)
		if db == "postgres" {
			// Across machines no lock file tells a dead instance: its lease running out does.
			e.clk.advance(DefaultLease)
		}
		stored, err := e.j.Get(ctx, "k1")
		if err != nil {
			t.Fatal(err)
		}
		if e.j.Held(stored) {
			t.Fatal("a dead owner's run is still held")
		}
		again, err := e.j.Begin(ctx, nr("k1", "h1"), false)
		if err != nil {
			t.Fatal(err)
		}
		if again.Attempts != 2 || again.Owner != e.j.Owner() || string(again.Steps["upload"]) != `"x"` {
			t.Fatalf("taken over: %+v", again)
		}
		if db == "postgres" {
			return
		}
		if _, err := os.Stat(filepath.Join(e.locks, ownerFile(other.Owner()))); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the dead owner's lock file is left: %v", err)
		}
	})

	t.Run("an expired lease frees the run even if its owner lives", func(t *testing.T) {
		e := newEnvOn(t, db)
		other := e.another(t)
		other.SetClock(e.clk.now)
		other.SetLease(time.Minute)
		if _, err := other.Begin(ctx, nr("k1", "h1"), false); err != nil {
			t.Fatal(err)
		}
		e.clk.advance(time.Minute)
		stored, err := e.j.Get(ctx, "k1")
		if err != nil || e.j.Held(stored) {
			t.Fatalf("Held after the lease = %v, %v", stored, err)
		}
	})

	t.Run("the owner renews its leases while it lives", func(t *testing.T) {
		if db != "sqlite" {
			t.Skip("the same renewer on both databases; this case opens the SQLite file itself")
		}
		e := newEnvOn(t, db)
		db, err := sqlite.Open(filepath.Join(e.dir, "figsupport.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		other, err := Open(ctx, db, e.locks)
		if err != nil {
			t.Fatal(err)
		}
		other.Close() // stop the default renewer: restart it with a short lease
		other, err = Open(ctx, db, e.locks)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { other.Close() })
		run, err := other.Record(ctx, nr("k1", "h1"))
		if err != nil {
			t.Fatal(err)
		}
		first := run.LeaseUntil
		other.SetLease(300 * time.Millisecond) // the running renewer keeps its period; the lease it writes is new
		waitFor(t, "a renewal", func() bool {
			r, err := e.j.Get(ctx, "k1")
			return err == nil && !r.LeaseUntil.Equal(first)
		})
	})

	t.Run("close hands unfinished runs back", func(t *testing.T) {
		e := newEnvOn(t, db)
		other := e.another(t)
		if _, err := other.Record(ctx, nr("k1", "h1")); err != nil {
			t.Fatal(err)
		}
		if err := other.Close(); err != nil {
			t.Fatal(err)
		}
		stored, err := e.j.Get(ctx, "k1")
		if err != nil || stored.Owner != "" || stored.Status != chain.StatusQueued || e.j.Held(stored) {
			t.Fatalf("after Close: %+v %v", stored, err)
		}
	})

	t.Run("finish releases the run", func(t *testing.T) {
		e := newEnvOn(t, db)
		run := e.begin(t, "k1", "h1", false)
		if err := e.j.Finish(ctx, run, chain.Outcome{Status: chain.StatusFailed, Error: "x", Failure: chain.FailureUnavailable}); err != nil {
			t.Fatal(err)
		}
		stored, err := e.j.Get(ctx, "k1")
		if err != nil || stored.Owner != "" || !stored.LeaseUntil.IsZero() || stored.Failure != chain.FailureUnavailable {
			t.Fatalf("after Finish: %+v %v", stored, err)
		}
	})
}

func TestLockFilesAreRemoved(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		unlock, err := e.j.Lock(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		unlock()
	}
	entries, err := os.ReadDir(e.locks)
	if err != nil {
		t.Fatal(err)
	}
	for _, de := range entries {
		// The owner's file while it lives, and the one file of the contacts' byte-range locks.
		if !strings.HasPrefix(de.Name(), "owner-") && (runtime.GOOS != "linux" || de.Name() != contactLockFile) {
			t.Errorf("lock file left behind: %s", de.Name())
		}
	}
}

func TestTicketRunsAndPending(t *testing.T) { onEachDB(t, testTicketRunsAndPending) }

func testTicketRunsAndPending(t *testing.T, db string) {
	ctx := context.Background()
	e := newEnvOn(t, db)
	a := e.begin(t, "a", "h", false)
	b := e.begin(t, "b", "h", false)
	c := e.begin(t, "c", "h", false)
	if _, err := e.j.Record(ctx, nr("d", "h")); err != nil {
		t.Fatal(err)
	}
	for _, r := range []*chain.Run{a, c} {
		if err := e.j.SetTicket(ctx, r, "thread", map[string]string{"id": "7"}, "7"); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.j.SetTicket(ctx, b, "thread", map[string]string{"id": "8"}, "8"); err != nil {
		t.Fatal(err)
	}
	if a.TicketID != "7" {
		t.Errorf("in-memory ticket = %q", a.TicketID)
	}
	if err := e.j.Finish(ctx, c, chain.Outcome{Status: chain.StatusDone, Response: map[string]string{}}); err != nil {
		t.Fatal(err)
	}
	runs, err := e.j.TicketRuns(ctx, "7")
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 2 || runs[0].Key != "a" || runs[1].Key != "c" || string(runs[1].Steps["thread"]) != `{"id":"7"}` {
		t.Fatalf("TicketRuns(7) = %v", runs)
	}
	pending, err := e.j.Pending(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range pending {
		keys = append(keys, r.Key)
	}
	if fmt.Sprint(keys) != "[a b d]" {
		t.Errorf("Pending = %v, want [a b d] (oldest first, finished left out)", keys)
	}
	st, err := e.j.Stats(ctx)
	if err != nil || st.Pending != 3 || !st.OldestPending.Equal(t0) {
		t.Errorf("Stats = %+v, %v", st, err)
	}
	if err := e.j.Writable(ctx); err != nil {
		t.Errorf("Writable: %v", err)
	}
}

// Runnable leaves out what no retry policy takes, so that a page of them cannot hide a
// retryable run behind it.
func TestRunnable(t *testing.T) { onEachDB(t, testRunnable) }

func testRunnable(t *testing.T, db string) {
	ctx := context.Background()
	e := newEnvOn(t, db)
	finish := func(key string, o chain.Outcome) {
		t.Helper()
		if err := e.j.Finish(ctx, e.begin(t, key, key, false), o); err != nil {
			t.Fatal(err)
		}
	}
	finish("refused", chain.Outcome{Status: chain.StatusFailed, Error: "422", Failure: chain.FailureInput})
	finish("creds", chain.Outcome{Status: chain.StatusIncomplete, Error: "401", Failure: chain.FailureCredentials})
	finish("busy", chain.Outcome{Status: chain.StatusFailed, Error: "503", Failure: chain.FailureUnavailable})
	finish("slow", chain.Outcome{Status: chain.StatusIncomplete, Error: "429", Failure: chain.FailureRateLimited})
	finish("done", chain.Outcome{Status: chain.StatusDone, Response: map[string]string{}})
	if _, err := e.j.Record(ctx, nr("queued", "q")); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		limit, maxAttempts int
		want               string
	}{
		{10, 0, "[busy slow queued]"},
		{1, 0, "[busy]"},
		{10, 1, "[queued]"}, // each failed run has had its one attempt
		{10, 2, "[busy slow queued]"},
	} {
		runs, err := e.j.Runnable(ctx, tt.limit, tt.maxAttempts)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, r := range runs {
			keys = append(keys, r.Key)
		}
		if fmt.Sprint(keys) != tt.want {
			t.Errorf("Runnable(%d, %d) = %v, want %s", tt.limit, tt.maxAttempts, keys, tt.want)
		}
	}
}

func TestClaim(t *testing.T) { onEachDB(t, testClaim) }

// Two processes sweeping one journal never both take a run: a claim holds only if nobody claimed
// the run since it was read.
func testClaim(t *testing.T, db string) {
	ctx := context.Background()
	e := newEnvOn(t, db)
	other := e.another(t)
	for _, k := range []string{"a", "b", "c"} {
		if _, err := e.j.Record(ctx, nr(k, "h")); err != nil {
			t.Fatal(err)
		}
	}
	// e.j's process died: its queued runs are free (here: Close hands them back).
	if err := e.j.Close(); err != nil {
		t.Fatal(err)
	}
	first, _ := e.another(t).Pending(ctx, 10)
	second, _ := other.Pending(ctx, 10)
	var mu sync.Mutex
	got := map[string]int{}
	var wg sync.WaitGroup
	for _, c := range []struct {
		j    *Journal
		runs []*chain.Run
	}{{other, second}, {e.another(t), first}} {
		wg.Go(func() {
			claimed, err := c.j.Claim(ctx, c.runs)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range claimed {
				got[r.Key]++
				if r.Owner != c.j.Owner() {
					t.Errorf("%s claimed for %q, want %q", r.Key, r.Owner, c.j.Owner())
				}
			}
		})
	}
	wg.Wait()
	if len(got) != 3 || got["a"] != 1 || got["b"] != 1 || got["c"] != 1 {
		t.Fatalf("claims %v, want each run once", got)
	}
	// A run read before another claimed it is not taken again from under that process.
	stale, _ := other.Pending(ctx, 10)
	if again, err := e.another(t).Claim(ctx, stale); err != nil || len(again) != 0 {
		t.Fatalf("a second claim of held runs took %d, %v", len(again), err)
	}
}
