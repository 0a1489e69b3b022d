package clickup

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/backoff"
	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/fakes/clickupfake"
	"github.com/figurative/figsupport/internal/health"
)

// sleeps records the waits the client asked for, without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

type memMemo struct {
	mu   sync.Mutex
	m    map[string]string
	puts int
}

func (m *memMemo) Get(_ context.Context, k string) (string, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.m[k]
	return v, ok, nil
}

func (m *memMemo) Put(_ context.Context, k, v string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = map[string]string{}
	}
	m.m[k] = v
	m.puts++
	return nil
}

type fixture struct {
	fake   *clickupfake.Server
	tasks  *Tasks
	sleeps *sleeps
	now    time.Time
}

func setup(t *testing.T, mod ...func(*Config)) fixture {
	t.Helper()
	fake := clickupfake.New(t)
	now := time.Now()
	cfg := Config{
		Token: clickupfake.Token, BaseURL: fake.URL, ParentTaskID: "parent1",
		RequestsPerMinute: -1, Timeout: 2 * time.Second,
		Retry: &backoff.Policy{Attempts: 4, Base: 10 * time.Millisecond, Max: 5 * time.Second},
	}
	for _, m := range mod {
		m(&cfg)
	}
	tk, err := NewTasks(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := &sleeps{}
	tk.sleep = s.sleep
	tk.now = func() time.Time { return now }
	return fixture{fake: fake, tasks: tk, sleeps: s, now: now}
}

func TestCreateSubtask(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	st, err := f.tasks.CreateSubtask(ctx, chain.SubtaskInput{Name: "[MODELISATION] Jean <j@x.fr> — Chaise", Markdown: "**Client :** Jean\n\n> bonjour\n"})
	if err != nil {
		t.Fatal(err)
	}
	if st.ID == "" || st.URL != "https://app.clickup.com/t/"+st.ID {
		t.Fatalf("subtask = %+v", st)
	}
	got, ok := f.fake.Task(st.ID)
	if !ok || got.Parent != "parent1" || got.ListID != clickupfake.ListID || got.Name != "[MODELISATION] Jean <j@x.fr> — Chaise" {
		t.Fatalf("stored task = %+v", got)
	}
	if !strings.HasPrefix(got.Markdown, "**Client :** Jean\n\n> bonjour\n\n`figsupport-ref: ") {
		t.Fatalf("markdown = %q", got.Markdown)
	}
	for _, c := range f.fake.Calls() {
		if c.Auth != clickupfake.Token {
			t.Fatalf("Authorization = %q, want the raw token", c.Auth)
		}
	}
	if n := f.fake.Count("POST", "/api/v2/list/"+clickupfake.ListID+"/task"); n != 1 {
		t.Fatalf("POST count = %d", n)
	}
}

func TestListIDFetchedOnce(t *testing.T) {
	memo := &memMemo{}
	f := setup(t, func(c *Config) { c.Memo = memo })
	ctx := context.Background()
	for i := range 3 {
		if _, err := f.tasks.CreateSubtask(ctx, chain.SubtaskInput{Name: "t" + string(rune('a'+i)), Markdown: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.fake.Count("GET", "/api/v2/task/parent1"); n != 1 {
		t.Fatalf("parent GETs = %d, want 1", n)
	}
	if memo.puts != 1 || memo.m["clickup.list_id.parent1"] != clickupfake.ListID {
		t.Fatalf("memo = %+v", memo.m)
	}
	// A second process sharing the memo does not ask again.
	again, err := NewTasks(Config{Token: clickupfake.Token, BaseURL: f.fake.URL, ParentTaskID: "parent1", RequestsPerMinute: -1, Memo: memo})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.CreateSubtask(ctx, chain.SubtaskInput{Name: "t4", Markdown: "x"}); err != nil {
		t.Fatal(err)
	}
	if n := f.fake.Count("GET", "/api/v2/task/parent1"); n != 1 {
		t.Fatalf("parent GETs after restart = %d, want 1", n)
	}
}

func TestAppendKeepsEarlierContent(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	st, err := f.tasks.CreateSubtask(ctx, chain.SubtaskInput{Name: "sub", Markdown: "first message"})
	if err != nil {
		t.Fatal(err)
	}
	st2, err := f.tasks.AppendSubtask(ctx, st.ID, "### Nouveau message\n\nsecond", "")
	if err != nil {
		t.Fatal(err)
	}
	if st2.ID != st.ID || st2.URL == "" {
		t.Fatalf("append = %+v", st2)
	}
	got, _ := f.fake.Task(st.ID)
	if !strings.HasPrefix(got.Markdown, "first message") || !strings.HasSuffix(got.Markdown, "### Nouveau message\n\nsecond") {
		t.Fatalf("markdown after append = %q", got.Markdown)
	}
	// The GET asked for Markdown so that formatting survives the round trip.
	var sawMarkdown bool
	for _, c := range f.fake.Calls() {
		if c.Method == "GET" && c.Path == "/api/v2/task/"+st.ID && strings.Contains(c.Query, "include_markdown_description=true") {
			sawMarkdown = true
		}
	}
	if !sawMarkdown {
		t.Fatal("append did not read the description as Markdown")
	}
	// Repeating the same append (a retry after a lost answer) adds nothing.
	if _, err := f.tasks.AppendSubtask(ctx, st.ID, "### Nouveau message\n\nsecond", ""); err != nil {
		t.Fatal(err)
	}
	again, _ := f.fake.Task(st.ID)
	if again.Markdown != got.Markdown {
		t.Fatalf("repeated append changed the description:\n%q\n%q", got.Markdown, again.Markdown)
	}
}

func TestAppendMissingTask(t *testing.T) {
	f := setup(t)
	_, err := f.tasks.AppendSubtask(context.Background(), "nope", "x", "")
	if !errors.Is(err, chain.ErrNotFound) {
		t.Fatalf("err = %v, want chain.ErrNotFound", err)
	}
}

func TestRateLimitResetHonoured(t *testing.T) {
	f := setup(t)
	reset := f.now.Add(3 * time.Second).Truncate(time.Second)
	f.fake.Throttle(1, reset)
	if _, err := f.tasks.CreateSubtask(context.Background(), chain.SubtaskInput{Name: "n", Markdown: "m"}); err != nil {
		t.Fatal(err)
	}
	got := f.sleeps.all()
	if len(got) == 0 {
		t.Fatal("no wait after a 429")
	}
	// The hint is the time left until X-RateLimit-Reset by the client's clock.
	if want := reset.Sub(f.now); got[0] != want {
		t.Fatalf("waited %v, want %v (until X-RateLimit-Reset)", got[0], want)
	}
	if n := f.fake.Count("GET", "/api/v2/task/parent1"); n != 2 {
		t.Fatalf("parent GETs = %d, want 2 (one 429, one retry)", n)
	}
}

// TestRateLimitHints (issue 11): a reset 40 s away is waited for whole, not cut to the backoff's
// cap and retried early; one past the policy's MaxHint, or past the context's deadline, fails at
// once with the 429 and backoff.ErrWaitTooLong instead of sleeping into the deadline.
func TestRateLimitHints(t *testing.T) {
	tests := []struct {
		name      string
		reset     time.Duration
		deadline  time.Duration // 0: none
		wantErr   bool
		wantCalls int // to the parent task
	}{
		{name: "reset 40 s away honoured whole", reset: 40 * time.Second, wantCalls: 2},
		{name: "reset inside the deadline", reset: 40 * time.Second, deadline: time.Hour, wantCalls: 2},
		{name: "reset past the deadline fails at once", reset: 40 * time.Second, deadline: 10 * time.Second, wantErr: true, wantCalls: 1},
		{name: "reset beyond MaxHint fails at once", reset: time.Hour, wantErr: true, wantCalls: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := setup(t)
			reset := f.now.Add(tt.reset).Truncate(time.Second)
			f.fake.Throttle(1, reset)
			ctx := context.Background()
			if tt.deadline > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.deadline)
				defer cancel()
			}
			_, err := f.tasks.CreateSubtask(ctx, chain.SubtaskInput{Name: "n", Markdown: "m"})
			if n := f.fake.Count("GET", "/api/v2/task/parent1"); n != tt.wantCalls {
				t.Errorf("parent GETs = %d, want %d", n, tt.wantCalls)
			}
			if !tt.wantErr {
				if err != nil {
					t.Fatal(err)
				}
				if got := f.sleeps.all(); len(got) == 0 || got[0] != reset.Sub(f.now) {
					t.Fatalf("waits = %v, want first %v (until X-RateLimit-Reset)", got, reset.Sub(f.now))
				}
				return
			}
			var apiErr *APIError
			if !errors.As(err, &apiErr) || !apiErr.RateLimited() || !apiErr.Temporary() || !errors.Is(err, backoff.ErrWaitTooLong) {
				t.Fatalf("err = %v, want the 429 with backoff.ErrWaitTooLong", err)
			}
			if got := f.sleeps.all(); len(got) != 0 {
				t.Fatalf("waits = %v, want none", got)
			}
		})
	}
}

func TestServerErrorsRetried(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	st, err := f.tasks.CreateSubtask(ctx, chain.SubtaskInput{Name: "n", Markdown: "m"})
	if err != nil {
		t.Fatal(err)
	}
	f.fake.Inject(clickupfake.Fault{Method: "PUT", Status: http.StatusBadGateway, Times: 2})
	f.fake.Inject(clickupfake.Fault{Method: "GET", Path: "/api/v2/task/" + st.ID, Status: http.StatusServiceUnavailable})
	if _, err := f.tasks.AppendSubtask(ctx, st.ID, "more", ""); err != nil {
		t.Fatal(err)
	}
	if n := f.fake.Count("PUT", "/api/v2/task/"); n != 3 {
		t.Fatalf("PUT count = %d, want 3", n)
	}
	// ClickUp's X-RateLimit-Reset comes with every answer: after a 5xx the wait is the backoff's,
	// not the rest of the rate-limit window (up to a minute per failed call).
	for _, d := range f.sleeps.all() {
		if d > 5*time.Second {
			t.Fatalf("waits = %v after 5xx, want the backoff's (at most 5s)", f.sleeps.all())
		}
	}
	got, _ := f.fake.Task(st.ID)
	if strings.Count(got.Markdown, "more") != 1 {
		t.Fatalf("markdown = %q", got.Markdown)
	}
}

func TestNoDuplicateOnUnknownOutcome(t *testing.T) {
	tests := []struct {
		name  string
		fault clickupfake.Fault
		mod   func(*Config)
		posts int
	}{
		{"created then connection dropped", clickupfake.Fault{Method: "POST", After: true, Drop: true}, nil, 1},
		{"created then 500", clickupfake.Fault{Method: "POST", After: true, Status: http.StatusInternalServerError}, nil, 1},
		{"created then timeout", clickupfake.Fault{Method: "POST", After: true, Delay: 2 * time.Second},
			func(c *Config) { c.Timeout = 200 * time.Millisecond }, 1},
		{"not created, connection dropped", clickupfake.Fault{Method: "POST", Drop: true}, nil, 2},
		{"not created, 503", clickupfake.Fault{Method: "POST", Status: http.StatusServiceUnavailable}, nil, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mods []func(*Config)
			if tt.mod != nil {
				mods = append(mods, tt.mod)
			}
			f := setup(t, mods...)
			// Another subtask with the same name made earlier by a person is not ours.
			f.fake.AddTask(clickupfake.Task{ID: "old1", Name: "same", ListID: clickupfake.ListID, Parent: "parent1", Markdown: "old", DateCreated: f.now.Add(-time.Hour)})
			f.fake.Inject(tt.fault)
			st, err := f.tasks.CreateSubtask(context.Background(), chain.SubtaskInput{Name: "same", Markdown: "body"})
			if err != nil {
				t.Fatal(err)
			}
			var ours []clickupfake.Task
			for _, s := range f.fake.Subtasks("parent1") {
				if s.ID != "old1" {
					ours = append(ours, s)
				}
			}
			if len(ours) != 1 || ours[0].ID != st.ID {
				t.Fatalf("subtasks = %+v, returned %+v: want exactly one, returned", ours, st)
			}
			if n := f.fake.Count("POST", "/api/v2/list/"); n != tt.posts {
				t.Fatalf("POSTs = %d, want %d", n, tt.posts)
			}
		})
	}
}

func TestBadToken(t *testing.T) {
	f := setup(t, func(c *Config) { c.Token = "pk_wrong_SECRET" })
	_, err := f.tasks.CreateSubtask(context.Background(), chain.SubtaskInput{Name: "n", Markdown: "m"})
	var apiErr *APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("err = %v, want *APIError", err)
	}
	if apiErr.Status != 401 || apiErr.Code != "OAUTH_025" || apiErr.Message != "Token invalid" {
		t.Fatalf("APIError = %+v", apiErr)
	}
	if strings.Contains(err.Error(), "pk_wrong_SECRET") {
		t.Fatalf("the error shows the token: %v", err)
	}
	if n := len(f.fake.Calls()); n != 1 {
		t.Fatalf("calls = %d, want 1 (a 401 is not retried)", n)
	}
}

func TestBearerPrefixRefused(t *testing.T) {
	// ClickUp personal tokens go raw; "Bearer pk_…" is refused by ClickUp and by the fake.
	f := setup(t, func(c *Config) { c.Token = "Bearer " + clickupfake.Token })
	_, err := f.tasks.CreateSubtask(context.Background(), chain.SubtaskInput{Name: "n", Markdown: "m"})
	var apiErr *APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Fatalf("err = %v", err)
	}
}

func TestSpecValidation(t *testing.T) {
	f := setup(t)
	if !f.fake.Validating() {
		t.Skip("ClickUp OpenAPI description not found: request validation not exercised (see the log above)")
	}
	f.fake.ExpectViolations = true
	tests := []struct {
		name, method, path, body string
	}{
		{"name of the wrong type", "POST", "/api/v2/list/" + clickupfake.ListID + "/task", `{"name": 3}`},
		{"name missing", "POST", "/api/v2/list/" + clickupfake.ListID + "/task", `{"parent": "parent1"}`},
		{"unknown field", "PUT", "/api/v2/task/parent1", `{"markdown_description": "x"}`},
		{"query of the wrong type", "GET", "/api/v2/task/parent1?include_subtasks=maybe", ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(f.fake.Violations())
			req, _ := http.NewRequest(tt.method, f.fake.URL+tt.path, bytes.NewBufferString(tt.body))
			req.Header.Set("Authorization", clickupfake.Token)
			if tt.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 400 || len(f.fake.Violations()) != before+1 {
				t.Fatalf("status %d, violations %v: the fake let an invalid request through", resp.StatusCode, f.fake.Violations())
			}
		})
	}
	// What this package sends is valid: create, append, get with subtasks, user.
	f.fake.ExpectViolations = false
	before := len(f.fake.Violations())
	st, err := f.tasks.CreateSubtask(context.Background(), chain.SubtaskInput{Name: "n", Markdown: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.tasks.AppendSubtask(context.Background(), st.ID, "more", ""); err != nil {
		t.Fatal(err)
	}
	if _, _, err := f.tasks.findCreated(context.Background(), "n", "x", f.now); err != nil {
		t.Fatal(err)
	}
	if v := f.fake.Violations(); len(v) != before {
		t.Fatalf("violations: %v", v[before:])
	}
}

func TestCheck(t *testing.T) {
	t.Run("ok", func(t *testing.T) {
		f := setup(t)
		checks := f.tasks.Check(context.Background())
		if len(checks) != 3 {
			t.Fatalf("checks = %+v", checks)
		}
		for _, c := range checks {
			if c.Status != health.OK || c.Service != "clickup" {
				t.Fatalf("check = %+v", c)
			}
		}
		if !strings.Contains(checks[2].Detail, clickupfake.ListID) {
			t.Fatalf("list check = %+v", checks[2])
		}
	})
	t.Run("bad token", func(t *testing.T) {
		f := setup(t, func(c *Config) { c.Token = "pk_bad_SECRET" })
		checks := f.tasks.Check(context.Background())
		if len(checks) != 1 || checks[0].Status != health.Fail || !strings.Contains(checks[0].Detail, "OAUTH_025") {
			t.Fatalf("checks = %+v", checks)
		}
		if strings.Contains(checks[0].Detail, "pk_bad_SECRET") {
			t.Fatal("the check shows the token")
		}
	})
	t.Run("missing parent", func(t *testing.T) {
		f := setup(t, func(c *Config) { c.ParentTaskID = "gone" })
		checks := f.tasks.Check(context.Background())
		if len(checks) != 2 || checks[1].Status != health.Fail || !strings.Contains(checks[1].Detail, "CLICKUP_PARENT_TASK_ID=gone") {
			t.Fatalf("checks = %+v", checks)
		}
	})
}

func TestClientSideLimiter(t *testing.T) {
	f := setup(t, func(c *Config) { c.RequestsPerMinute = 60 * 20 }) // one per 50 ms, burst 60
	if f.tasks.limiter == nil || f.tasks.limiter.Burst() != 60 {
		t.Fatalf("limiter = %+v", f.tasks.limiter)
	}
	// A cancelled context ends a wait on the limiter rather than blocking.
	f.tasks.limiter.SetBurst(0)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.tasks.AuthorizedUser(ctx); err == nil {
		t.Fatal("a request went out with a cancelled context and an empty limiter")
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no token", Config{ParentTaskID: "p"}, "CLICKUP_API_KEY"},
		{"no parent", Config{Token: "pk"}, "CLICKUP_PARENT_TASK_ID"},
		{"bad base", Config{Token: "pk", ParentTaskID: "p", BaseURL: "ftp://x"}, "CLICKUP_BASE_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewTasks(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want mention of %s", err, tt.want)
			}
		})
	}
}

// A later run of the same request (MayExistSince set) finds the subtask an interrupted run made,
// by the marker derived from the request's key; another request's subtask is not mistaken for it.
func TestResumedCreateFindsEarlierRun(t *testing.T) {
	f := setup(t)
	ctx := context.Background()
	first, err := f.tasks.CreateSubtask(ctx, chain.SubtaskInput{Name: "[MODELISATION] Jean — chaise", Markdown: "m", Ref: "req-1"})
	if err != nil {
		t.Fatal(err)
	}
	since := time.Now().Add(-time.Hour)
	again, err := f.tasks.CreateSubtask(ctx, chain.SubtaskInput{Name: "[MODELISATION] Jean — chaise", Markdown: "m", Ref: "req-1", MayExistSince: since})
	if err != nil || again.ID != first.ID {
		t.Fatalf("resumed create = %+v, %v; want subtask %s found", again, err, first.ID)
	}
	other, err := f.tasks.CreateSubtask(ctx, chain.SubtaskInput{Name: "[MODELISATION] Jean — chaise", Markdown: "m", Ref: "req-2", MayExistSince: since})
	if err != nil || other.ID == first.ID {
		t.Fatalf("other request's create = %+v, %v; want a new subtask", other, err)
	}
	if n := len(f.fake.Subtasks("parent1")); n != 2 {
		t.Fatalf("%d subtasks, want 2", n)
	}
}

// TestAppendMarkedBlocks (issue 12): each appended block carries a marker derived from its request's
// key, and a block whose marker is anywhere in the description is not appended again — also when
// its PUT landed, its answer was lost, and another request appended a block before the retry.
func TestAppendMarkedBlocks(t *testing.T) {
	ctx := context.Background()
	f := setup(t)
	st, err := f.tasks.CreateSubtask(ctx, chain.SubtaskInput{Name: "sub", Markdown: "first message", Ref: "req-0"})
	if err != nil {
		t.Fatal(err)
	}
	// Request A: every PUT is done and its answer lost; the call fails, the block is there once.
	f.fake.Inject(clickupfake.Fault{Method: "PUT", After: true, Drop: true, Times: 4})
	if _, err := f.tasks.AppendSubtask(ctx, st.ID, "### Message A", "req-A"); err == nil {
		t.Fatal("append with every answer lost succeeded")
	}
	// Request B is appended after it.
	if _, err := f.tasks.AppendSubtask(ctx, st.ID, "### Message B", "req-B"); err != nil {
		t.Fatal(err)
	}
	puts := f.fake.Count("PUT", "/api/v2/task/")
	// A's retry finds its marker in the middle of the description and writes nothing.
	if _, err := f.tasks.AppendSubtask(ctx, st.ID, "### Message A", "req-A"); err != nil {
		t.Fatal(err)
	}
	// So does B's, and a retry whose text changed (the marker is the request's, not the text's).
	if _, err := f.tasks.AppendSubtask(ctx, st.ID, "### Message B (reformulé)", "req-B"); err != nil {
		t.Fatal(err)
	}
	if n := f.fake.Count("PUT", "/api/v2/task/"); n != puts {
		t.Errorf("%d PUTs for repeats, want 0", n-puts)
	}
	got, _ := f.fake.Task(st.ID)
	md := got.Markdown
	if strings.Count(md, "### Message A") != 1 || strings.Count(md, "### Message B") != 1 || strings.Index(md, "### Message A") > strings.Index(md, "### Message B") {
		t.Fatalf("description = %q, want A then B, once each", md)
	}
	for _, ref := range []string{"req-A", "req-B"} {
		if strings.Count(md, chain.BlockMarker(ref)) != 1 {
			t.Errorf("marker of %s not exactly once in %q", ref, md)
		}
	}
	if strings.Contains(md, chain.BlockMarker("req-0")) || strings.Count(md, newRef("req-0")) != 1 {
		t.Errorf("create and append markers mixed up: %q", md)
	}
	// An unmarked append still skips an identical last block only.
	if _, err := f.tasks.AppendSubtask(ctx, st.ID, "note libre", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := f.tasks.AppendSubtask(ctx, st.ID, "note libre", ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.fake.Task(st.ID); strings.Count(got.Markdown, "note libre") != 1 {
		t.Errorf("unmarked repeat appended twice: %q", got.Markdown)
	}
}

// TestErrorClasses is the contract the chain classifies by.
func TestErrorClasses(t *testing.T) {
	tests := []struct {
		status                            int
		temporary, credentials, rateLimit bool
	}{
		{400, false, false, false}, {401, false, true, false}, {403, false, true, false}, {404, false, false, false},
		{409, false, false, false}, {422, false, false, false}, {429, true, false, true}, {500, true, false, false}, {502, true, false, false},
	}
	for _, tt := range tests {
		e := &APIError{Status: tt.status}
		if e.Temporary() != tt.temporary || e.Credentials() != tt.credentials || e.RateLimited() != tt.rateLimit || e.Refused() != (tt.status == 429) {
			t.Errorf("%d: Temporary %v Credentials %v RateLimited %v Refused %v", tt.status, e.Temporary(), e.Credentials(), e.RateLimited(), e.Refused())
		}
	}
}
