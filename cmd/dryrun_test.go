package cmd

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
)

// writers are every command that writes, each with --dry-run: none may create the data dir, nor
// touch a file in an existing one.
var writers = [][]string{
	{"process", modelisation},
	{"process", "--eml", emlFile},
	{"upload", glb},
	{"ticket", "create", "--email", "a@example.com", "--subject", "S"},
	{"ticket", "close", "1"},
	{"note", "--ticket", "1", "--body", "x"},
	{"note", "--contact", "1", "--body", "x"},
	{"subtask", "create", "--name", "N"},
	{"subtask", "update", "1", "--description", "x"},
	{"notify", "--subject", "S", "--body", "B"},
	{"requests", "retry", "--failed"},
	{"doctor"},
	{"serve"},
}

// Commands that only read must not create the data dir either.
var readers = [][]string{
	{"ticket", "find", "--email", "a@example.com"},
	{"requests", "list"},
	{"classify", support},
}

func TestDryRunsWriteNothing(t *testing.T) {
	t.Run("fresh machine", func(t *testing.T) {
		for _, args := range append(slices.Clone(readers), writers...) {
			e := newEnv(t)
			full := append([]string{"--dry-run"}, args...)
			// Closing or noting ticket 1 is refused (there is none yet): exit 2, still nothing written.
			if r := e.run("", full...); r.code != 0 && r.code != ExitUsage {
				t.Fatalf("%v: exit %d\n%s%s", full, r.code, r.stdout, r.stderr)
			}
			if _, err := os.Stat(e.dir); !os.IsNotExist(err) {
				t.Errorf("%v created the data dir", args)
			}
		}
	})
	t.Run("existing data dir", func(t *testing.T) {
		e := newEnv(t)
		e.must("process", modelisation)
		e.must("ticket", "find", "--email", "jean.dupont@example.com") // a reader first: it must not write either
		before := snapshot(t, e.dir)
		for _, args := range append(slices.Clone(readers), writers...) {
			for _, out := range []string{"text", "json"} {
				full := append([]string{"--dry-run", "-o", out}, args...)
				if r := e.run("", full...); r.code != 0 {
					t.Fatalf("%v: exit %d\n%s%s", full, r.code, r.stdout, r.stderr)
				}
			}
			if after := snapshot(t, e.dir); !slices.Equal(before, after) {
				t.Fatalf("%v changed the data dir:\nbefore %v\nafter  %v", args, before, after)
			}
		}
	})
}

// A dry run looks at the journal as the run would: a new request, a replay, a conflict (exit 2,
// like the run), a resume with the steps left.
func TestProcessDryRunReadsTheJournal(t *testing.T) {
	e := newEnv(t)
	plan := func(stdin string, args ...string) (processPlan, result) {
		t.Helper()
		r := e.run(stdin, append([]string{"--dry-run", "-o", "json", "process"}, args...)...)
		var p processPlan
		if r.code == 0 {
			if err := json.Unmarshal([]byte(r.stdout), &p); err != nil {
				t.Fatalf("%v\n%s", err, r.stdout)
			}
		}
		return p, r
	}
	if p, _ := plan("", modelisation); p.Journal != "new" || !strings.Contains(strings.Join(p.Steps, "\n"), "create a MODELISATION ticket") {
		t.Fatalf("first plan: %+v", p)
	}
	e.must("process", modelisation)
	if p, _ := plan("", modelisation); p.Journal != "replay" || p.Response == nil || p.Response.TicketID != "1" || !p.Response.Replayed {
		t.Fatalf("plan of a processed request: %+v", p)
	}
	if p, _ := plan("", "--force", modelisation); p.Journal != "new" || !strings.Contains(p.Steps[0], "--force") {
		t.Fatalf("plan with --force: %+v", p)
	}
	// The follow-up would join ticket 1.
	if p, _ := plan("", followup); !strings.Contains(strings.Join(p.Steps, "\n"), "add a note to ticket 1") {
		t.Fatalf("follow-up plan: %+v", p.Steps)
	}
	// Same request_id, another payload: a conflict, exit 2 naming request_id, as the run says.
	other := `{"user_email":"x@example.com","objet":"Autre","request_id":"demo-modelisation-1"}`
	_, r := plan(other, "-")
	real := e.run(other, "process", "-o", "json", "-")
	if r.code != ExitUsage || real.code != ExitUsage || r.stdout != real.stdout || !strings.Contains(r.stdout, `"field": "request_id"`) {
		t.Fatalf("conflict: dry run exit %d %s; run exit %d %s", r.code, r.stdout, real.code, real.stdout)
	}
	// A request whose file cannot be fetched fails after classify (and the contact, when it was
	// quicker than the failed fetch) — for good, the address is refused: exit 2 — and stays in the
	// journal: the plan resumes with the upload and what follows.
	failing := `{"user_email":"y@example.com","objet":"Modèle 3D","fichiers":[{"url":"http://127.0.0.1:9/a.glb"}],"request_id":"loop-1"}`
	if r := e.run(failing, "process", "-"); r.code != ExitUsage {
		t.Fatalf("failing request: exit %d %s", r.code, r.stderr)
	}
	p, r := plan(failing, "-")
	if r.code != 0 || p.Journal != "resume" || !slices.Contains(p.DoneSteps, "classify") || slices.Contains(p.DoneSteps, "upload") ||
		!strings.Contains(p.Steps[1], "upload, ") || !strings.Contains(p.Steps[1], "thread, ticket") {
		t.Fatalf("plan of a failed request: exit %d %+v", r.code, p)
	}
}

// Inputs are checked by the plan as by the run: a missing file or one over the cap is exit 2.
func TestDryRunChecksInputs(t *testing.T) {
	dir := t.TempDir()
	big := dir + "/big.glb"
	if err := os.WriteFile(big, make([]byte, 2048), 0o644); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, "FIGSUPPORT_MAX_FILE_BYTES=1024")
	for _, args := range [][]string{
		{"upload", "/nonexistent"},
		{"upload", big},
		{"process", "../testdata/bad/missing-file.json"},
		{"ticket", "close", "1"},
		{"note", "--ticket", "1", "--body", "x"},
	} {
		for _, dry := range []bool{true, false} {
			full := args
			if dry {
				full = append([]string{"--dry-run"}, args...)
			}
			if r := e.run("", full...); r.code != ExitUsage {
				t.Errorf("%v: exit %d, want 2: %s", full, r.code, r.stderr)
			}
		}
	}
	r := e.run("", "--dry-run", "upload", big)
	if !strings.Contains(r.stderr, "2 KiB, over the 1 KiB cap (FIGSUPPORT_MAX_FILE_BYTES)") {
		t.Errorf("oversize: %q", r.stderr)
	}
}

// Plans name the real targets: the recipients, the store, the tracker.
func TestDryRunNamesTargets(t *testing.T) {
	e := newEnv(t, "NOTIFICATION_EMAIL=admin@figurative.fr, second@figurative.fr")
	out := e.must("--dry-run", "notify", "--subject", "S")
	if !strings.Contains(out, "would e-mail \"S\" to admin@figurative.fr, second@figurative.fr, written to "+e.dir+"/outbox") {
		t.Errorf("notify plan: %q", out)
	}
	out = e.must("--dry-run", "process", modelisation)
	for _, want := range []string{"upload 2 file(s) to " + e.dir + "/files", "create a modelling subtask in the embedded tracker", "e-mail the admin: admin@figurative.fr, second@figurative.fr"} {
		if !strings.Contains(out, want) {
			t.Errorf("process plan lacks %q:\n%s", want, out)
		}
	}
}
