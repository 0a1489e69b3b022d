// Package e2e builds the figsupport binary and drives it as a user would: files and stdin in,
// JSON and exit codes out, several processes at once on one data dir.
package e2e

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/figurative/figsupport/internal/golden"

	"github.com/figurative/figsupport/internal/local"
	"github.com/figurative/figsupport/internal/sqlite"
	"github.com/figurative/figsupport/internal/testsrv/pgtest"
)

var binary string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "figsupport-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "figsupport")
	out, err := exec.Command("go", "build", "-race", "-o", binary, "..").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := pgtest.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

type result struct {
	stdout, stderr string
	code           int
}

// run runs the binary with a clean environment: no accounts, the given data dir.
func run(t *testing.T, dataDir, stdin string, args ...string) result {
	t.Helper()
	return runEnv(t, []string{"FIGSUPPORT_DATA_DIR=" + dataDir}, stdin, args...)
}

var (
	reMessageID = regexp.MustCompile(`"message_id": "[^"]*"`)
)

// normalise replaces what differs between machines (the data dir) with placeholders.
func normalise(s, dataDir string) string {
	s = strings.ReplaceAll(s, dataDir, "<DATA>")
	return reMessageID.ReplaceAllString(s, `"message_id": "<ID>"`)
}

// The README's walk-through: a modelling request, its follow-up two days later, a support
// request, a minimal one, then the same follow-up again (replayed).
func TestProcessPayloadsGolden(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	for _, step := range []struct{ name, file string }{
		{"1-modelisation", "modelisation.json"},
		{"2-followup", "followup.json"},
		{"3-support", "support.json"},
		{"4-minimal", "minimal.json"},
		{"5-followup-replayed", "followup.json"},
	} {
		t.Run(step.name, func(t *testing.T) {
			r := run(t, data, "", "process", "-o", "json", filepath.Join("testdata", "payloads", step.file))
			if r.code != 0 {
				t.Fatalf("exit %d\nstderr: %s", r.code, r.stderr)
			}
			golden.Check(t, filepath.Join("testdata", "golden", step.name+".json"), normalise(r.stdout, data))
		})
	}
	// The subtask got the follow-up appended, and two admin e-mails per conversation step were written.
	eml, _ := filepath.Glob(filepath.Join(data, "outbox", "*.eml"))
	if len(eml) != 4 {
		t.Errorf("outbox has %d messages, want 4 (the replay sends none)", len(eml))
	}
}

func TestProcessStdinAndText(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	body, err := os.ReadFile("../testdata/payloads/support.json")
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, data, string(body), "process", "-")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	golden.Check(t, filepath.Join("testdata", "golden", "support-stdin.txt"), normalise(r.stdout, data))
	if !strings.Contains(r.stderr, "backends: ") || !strings.Contains(r.stderr, "crm=embedded") {
		t.Errorf("stderr does not say which backends are used: %q", r.stderr)
	}
	// The same payload again without request_id: same hash key, replayed.
	r = run(t, data, string(body), "process", "-o", "json", "-")
	var resp struct {
		Replayed bool   `json:"replayed"`
		TicketID string `json:"ticket_id"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil || !resp.Replayed || resp.TicketID != "1" {
		t.Fatalf("second run: %+v %v\n%s", resp, err, r.stdout)
	}
}

// Bad payloads: exit 2, a message naming the field, and the data dir is not even created.
func TestBadPayloads(t *testing.T) {
	lines, err := os.ReadFile("../testdata/bad/FIELDS")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(lines)), "\n") {
		file, field, _ := strings.Cut(line, " ")
		t.Run(file, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			r := run(t, data, "", "process", "-o", "json", filepath.Join("testdata", "bad", file))
			if r.code != 2 {
				t.Fatalf("exit %d, want 2; stderr %s", r.code, r.stderr)
			}
			if r.stderr != "" {
				t.Errorf("stderr = %q, want nothing: the error is the JSON answer", r.stderr)
			}
			var e struct {
				Error    string `json:"error"`
				Field    string `json:"field"`
				ExitCode int    `json:"exit_code"`
			}
			dec := json.NewDecoder(strings.NewReader(r.stdout))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&e); err != nil || dec.More() || e.ExitCode != 2 {
				t.Fatalf("stdout is not one JSON error: %q", r.stdout)
			}
			if e.Field != field || e.Error == "" || (field != "" && !strings.Contains(e.Error, field)) {
				t.Errorf("error = %+v, want it to name field %q", e, field)
			}
			if _, err := os.Stat(data); !os.IsNotExist(err) {
				t.Errorf("data dir was touched: %v", err)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	tests := []struct {
		name string
		env  []string
		args []string
		want int
	}{
		{"unknown flag is usage", nil, []string{"process", "--nope"}, 2},
		{"bad output format is usage", nil, []string{"classify", "-o", "yaml", "testdata/payloads/support.json"}, 2},
		{"missing file is usage", nil, []string{"process", "does-not-exist.json"}, 2},
		{"bad config value", []string{"FIGSUPPORT_THREAD_WINDOW=two weeks"}, []string{"process", "testdata/payloads/support.json"}, 4},
		{"missing explicit env file", nil, []string{"--env-file", "nope.env", "classify", "testdata/payloads/support.json"}, 4},
		{"ticket find with no ticket", nil, []string{"ticket", "find", "--email", "nobody@example.com"}, 0},
		{"closing an unknown ticket", nil, []string{"ticket", "close", "999"}, 2},
		{"missing required flag", nil, []string{"ticket", "find"}, 2},
		{"too many arguments", nil, []string{"requests", "show", "1", "2"}, 2},
		{"flag-group violation", nil, []string{"note", "--body", "x"}, 2},
		{"missing id", nil, []string{"requests", "show"}, 2},
		{"unknown command", nil, []string{"nope"}, 2},
		{"unknown completion shell", nil, []string{"completion", "tcsh"}, 2},
		{"dry run of a missing upload", nil, []string{"--dry-run", "upload", "/nonexistent"}, 2},
		{"version", nil, []string{"--version"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(binary, tt.args...)
			cmd.Dir = ".."
			cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "FIGSUPPORT_DATA_DIR=" + data}, tt.env...)
			out, err := cmd.CombinedOutput()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			}
			if code != tt.want {
				t.Fatalf("exit %d, want %d\n%s", code, tt.want, out)
			}
		})
	}
}

// Ten processes at once for one new contact: one contact, one ticket, nine follow-up notes.
func TestConcurrentProcessesOneTicket(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	const n = 10
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range n {
		wg.Go(func() {
			body := fmt.Sprintf(`{"user_email":"rush@example.com","objet":"Bug %d","description":"Le site plante (%d)","received_at":"2026-02-01T10:00:%02dZ"}`, i, i, i)
			results[i] = run(t, data, body, "process", "-o", "json", "-")
		})
	}
	wg.Wait()
	tickets := map[string]int{}
	for i, r := range results {
		if r.code != 0 {
			t.Fatalf("process %d: exit %d: %s", i, r.code, r.stderr)
		}
		var resp struct {
			TicketID string `json:"ticket_id"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil {
			t.Fatal(err)
		}
		tickets[resp.TicketID]++
	}
	if len(tickets) != 1 {
		t.Fatalf("tickets used: %v, want exactly one", tickets)
	}
	db, err := sqlite.Open(filepath.Join(data, "figsupport.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := local.Open(context.Background(), db, local.Config{})
	if err != nil {
		t.Fatal(err)
	}
	contacts, tk, notes, _, err := st.Counts(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if contacts != 1 || tk != 1 || notes != n-1 {
		t.Fatalf("contacts %d tickets %d notes %d, want 1, 1, %d", contacts, tk, notes, n-1)
	}
}

// The stand-alone commands on the embedded backends, as the README shows them.
func TestCommands(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	must := func(args ...string) string {
		t.Helper()
		r := run(t, data, "", args...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d: %s", args, r.code, r.stderr)
		}
		return r.stdout
	}
	var created struct {
		Ticket  struct{ ID, URL string }
		Contact struct{ ID string }
	}
	if err := json.Unmarshal([]byte(must("ticket", "create", "--email", "Tel@Example.com", "--subject", "Rappel", "--body", "appelé", "-o", "json")), &created); err != nil {
		t.Fatal(err)
	}
	var found struct {
		Ticket *struct {
			ID    string `json:"id"`
			Stage string `json:"stage"`
		} `json:"ticket"`
	}
	if err := json.Unmarshal([]byte(must("ticket", "find", "--email", "tel@example.com", "-o", "json")), &found); err != nil || found.Ticket == nil || found.Ticket.ID != created.Ticket.ID {
		t.Fatalf("find = %+v, %v; want ticket %s", found.Ticket, err, created.Ticket.ID)
	}
	if out := must("note", "--ticket", created.Ticket.ID, "--body", "<b>rappel</b>"); !strings.Contains(out, "note 1 added to ticket "+created.Ticket.ID) {
		t.Errorf("note: %q", out)
	}
	if out := must("ticket", "close", created.Ticket.ID); !strings.Contains(out, "closed (stage 4)") {
		t.Errorf("close: %q", out)
	}
	if out := must("ticket", "find", "--email", "tel@example.com", "-o", "json"); strings.TrimSpace(out) != "{\n  \"ticket\": null\n}" {
		t.Errorf("find after close = %q, want a null ticket", out)
	}
	if out := must("subtask", "create", "--name", "Modèle chaise", "--description", "v1"); !strings.HasPrefix(out, "subtask 1 created") {
		t.Errorf("subtask create: %q", out)
	}
	if out := must("subtask", "update", "1", "--description", "v2"); !strings.HasPrefix(out, "subtask 1 updated") {
		t.Errorf("subtask update: %q", out)
	}
	if out := must("subtask", "update", "1", "--replace", "--description", "v3"); !strings.HasPrefix(out, "subtask 1 updated") {
		t.Errorf("subtask replace: %q", out)
	}
	if r := run(t, data, "", "subtask", "update", "99", "--description", "x"); r.code != 2 {
		t.Errorf("updating an unknown subtask: exit %d, want 2", r.code)
	}
	if out := must("notify", "--subject", "Test", "--body", "Bonjour"); !strings.Contains(out, "sent through outbox") {
		t.Errorf("notify: %q", out)
	}
	if out := must("upload", "testdata/files/chaise.glb"); !strings.HasPrefix(out, "file://"+data+"/files/manual/") {
		t.Errorf("upload: %q", out)
	}
	if out := must("--dry-run", "ticket", "close", "1"); !strings.Contains(out, "dry run") {
		t.Errorf("dry run: %q", out)
	}
	if out := must("classify", "testdata/payloads/support.json", "-o", "json"); !strings.Contains(out, `"classification": "SUPPORT"`) {
		t.Errorf("classify: %q", out)
	}
	if out := must("doctor"); !strings.Contains(out, "crm=embedded") {
		t.Errorf("doctor: %q", out)
	}
	if out := must("completion", "bash"); !strings.Contains(out, "figsupport") {
		t.Errorf("completion: %.80q", out)
	}
}
