package cmd

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The result lines the support team reads are French, from the answer's fields: a replay and a
// retry of a finished request never claim a creation; the tool's own remarks are English lines
// on stderr; never both languages in one line.
func TestOneVoice(t *testing.T) {
	e := newEnv(t)
	r := e.run("", "process", modelisation)
	if !strings.HasPrefix(r.stdout, "Nouveau ticket créé: #1\n") || !strings.Contains(r.stdout, "  fichier:        chaise.glb (49 o) ") {
		t.Fatalf("first run:\n%s", r.stdout)
	}
	r = e.run("", "process", modelisation)
	if !strings.HasPrefix(r.stdout, "Demande déjà traitée: ticket #1\n") || strings.Contains(r.stdout, "créé") {
		t.Fatalf("replay:\n%s", r.stdout)
	}
	if !strings.Contains(r.stderr, "request demo-modelisation-1 was processed already: answered from the journal, nothing done again") {
		t.Fatalf("replay status: %q", r.stderr)
	}
	out := e.must("requests", "retry", "demo-modelisation-1")
	if out != "demo-modelisation-1: done already, nothing done again (ticket 1)\n" {
		t.Fatalf("retry of a finished request: %q", out)
	}
	if out := e.must("requests", "show", "demo-modelisation-1"); !strings.Contains(out, "  answer:   Nouveau ticket créé: #1\n") {
		t.Fatalf("show: %q", out)
	}
	// No line mixes the two: French words of the result block never share a line with English ones.
	french := regexp.MustCompile(`(?i)ticket créé|déjà traitée|ajouté|fichier:|sous-tâche|demande:`)
	english := regexp.MustCompile(`(?i)replayed|journal|nothing|incomplete|bytes|warning`)
	for _, line := range strings.Split(r.stdout+r.stderr+out, "\n") {
		if french.MatchString(line) && english.MatchString(line) {
			t.Errorf("two languages in one line: %q", line)
		}
	}
}

// -v logs each step of the chain with its duration, readably: no time stamps, durations rounded.
func TestVerboseLogsSteps(t *testing.T) {
	e := newEnv(t)
	r := e.run("", "-v", "process", support)
	if r.code != 0 {
		t.Fatalf("exit %d %s", r.code, r.stderr)
	}
	for _, step := range []string{"classify", "contact", "thread", "ticket", "notify"} {
		// Every line of a run says which request (then contact, then ticket) it is about.
		re := regexp.MustCompile(`(?m)^level=DEBUG msg="step done" request_id=\S+ (contact_id=\S+ )?(ticket_id=\S+ )?step=` + step + ` duration=[0-9.]+(µs|ms|s)$`)
		if !re.MatchString(r.stderr) {
			t.Errorf("no readable log line for step %s in:\n%s", step, r.stderr)
		}
	}
	if strings.Contains(r.stderr, "time=") {
		t.Errorf("time stamps in -v logs:\n%s", r.stderr)
	}
	if r := e.run("", "process", minimal); strings.Contains(r.stderr, "step done") {
		t.Errorf("steps logged without -v:\n%s", r.stderr)
	}
}

// A progress bar on stderr for an upload, only where a person watches: a terminal, text output.
func TestUploadProgressBar(t *testing.T) {
	big := filepath.Join(t.TempDir(), "scan.glb")
	if err := os.WriteFile(big, make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		terminal bool
		args     []string
		bar      bool
	}{
		{"terminal", true, []string{"upload", big}, true},
		{"piped", false, []string{"upload", big}, false},
		{"json on a terminal", true, []string{"upload", big, "-o", "json"}, false},
		{"small file on a terminal", true, []string{"upload", glb}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.terminal = tt.terminal
			r := e.run("", tt.args...)
			if r.code != 0 {
				t.Fatalf("exit %d %s", r.code, r.stderr)
			}
			if got := strings.Contains(r.stderr, "uploading"); got != tt.bar {
				t.Fatalf("bar shown %v, want %v; stderr %q", got, tt.bar, r.stderr)
			}
			if tt.bar && !strings.Contains(r.stderr, "3.0 MiB") {
				t.Errorf("the bar does not count the bytes: %q", r.stderr)
			}
		})
	}
}

func TestVersion(t *testing.T) {
	out := newEnv(t).must("--version")
	if !regexp.MustCompile(`^figsupport \S+.* go1\.\d+`).MatchString(out) {
		t.Fatalf("--version = %q", out)
	}
}

// Stdin on a terminal is no payload, said at once, for every command reading FILE|-.
func TestNoPayloadOnATerminal(t *testing.T) {
	for _, args := range [][]string{{"process"}, {"process", "-"}, {"classify", "-"}, {"process", "--eml", "-"}, {"notify", "--result", "-"}} {
		e := newEnv(t)
		e.terminal = true
		r := e.run("", args...)
		if r.code != ExitUsage || !strings.Contains(r.stderr, "no ") || !strings.Contains(r.stderr, "pipe it on stdin") {
			t.Errorf("%v: exit %d %q", args, r.code, r.stderr)
		}
	}
}

// The command line refuses what the daemon refuses: a JSON document over FIGSUPPORT_MAX_BODY_BYTES.
func TestBodyLimitAsTheDaemon(t *testing.T) {
	body := `{"user_email":"a@example.com","objet":"x","description":"` + strings.Repeat("a", 2000) + `"}`
	for _, args := range [][]string{{"process", "-"}, {"classify", "-"}} {
		e := newEnv(t, "FIGSUPPORT_MAX_BODY_BYTES=1024")
		if r := e.run(body, args...); r.code != ExitUsage || !strings.Contains(r.stderr, "1024") {
			t.Errorf("%v: exit %d %q", args, r.code, r.stderr)
		}
		if r := newEnv(t).run(body, args...); r.code != 0 {
			t.Errorf("%v under the default limit: exit %d %q", args, r.code, r.stderr)
		}
	}
}

// `requests retry --failed` counts the requests on a bar when a person watches.
func TestRetryProgressBar(t *testing.T) {
	for _, terminal := range []bool{true, false} {
		e := newEnv(t)
		for _, id := range []string{"loop-1", "loop-2"} {
			failing := `{"user_email":"y@example.com","objet":"Modèle 3D","fichiers":[{"url":"http://127.0.0.1:9/a.glb"}],"request_id":"` + id + `"}`
			if r := e.run(failing, "process", "-"); r.code != ExitUsage { // a refused address: the input is at fault
				t.Fatalf("exit %d %s", r.code, r.stderr)
			}
		}
		e.terminal = terminal
		r := e.run("", "requests", "retry", "--failed")
		if r.code != ExitFailed || strings.Count(r.stdout, "still failing") != 2 {
			t.Fatalf("exit %d\n%s", r.code, r.stdout)
		}
		if got := strings.Contains(r.stderr, "retrying"); got != terminal {
			t.Errorf("terminal %v: bar shown %v; stderr %q", terminal, got, r.stderr)
		}
	}
}
