package cmd

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// testClock is every test's now: the payloads' dates are early January 2026, inside every window.
var testClock = time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)

// env is one data dir and environment that commands run against in-process: the embedded
// backends, a fixed clock, streams in buffers, no terminal.
type env struct {
	t    *testing.T
	dir  string
	vars map[string]string
	// terminal makes stderr (and stdin) count as a terminal.
	terminal bool
}

func newEnv(t *testing.T, vars ...string) *env {
	t.Helper()
	e := &env{t: t, dir: filepath.Join(t.TempDir(), "data"), vars: map[string]string{"HOME": t.TempDir(), "NO_COLOR": "1"}}
	e.vars["FIGSUPPORT_DATA_DIR"] = e.dir
	for _, kv := range vars {
		k, v, _ := strings.Cut(kv, "=")
		e.vars[k] = v
	}
	return e
}

type result struct {
	code           int
	stdout, stderr string
}

// globals are what Execute would build, with the test's clock and streams; the backends' clocks
// follow the test's too, so that times in the output are the same every run.
func (e *env) globals(stdin string) (*Globals, *bytes.Buffer, *bytes.Buffer) {
	var out, errb bytes.Buffer
	g := &Globals{
		IO:       IO{In: strings.NewReader(stdin), Out: &out, ErrOut: &errb},
		Env:      func(k string) (string, bool) { v, ok := e.vars[k]; return v, ok },
		Now:      func() time.Time { return testClock },
		Terminal: func(any) bool { return e.terminal },
	}
	g.OpenApp = func(ctx context.Context, g *Globals, o appOptions) (*app, error) {
		a, err := openApp(ctx, g, o)
		if err == nil {
			a.journal.SetClock(g.Now)
			a.local.SetClock(g.Now)
		}
		return a, err
	}
	return g, &out, &errb
}

func (e *env) run(stdin string, args ...string) result {
	e.t.Helper()
	g, out, errb := e.globals(stdin)
	code := Run(context.Background(), g, args)
	return result{code, out.String(), errb.String()}
}

// must runs a command that must succeed.
func (e *env) must(args ...string) string {
	e.t.Helper()
	r := e.run("", args...)
	if r.code != 0 {
		e.t.Fatalf("%v: exit %d\nstdout %s\nstderr %s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

var (
	reManual    = regexp.MustCompile(`manual/2026/01/[0-9a-f]+/`)
	reMessageID = regexp.MustCompile(`"message_id": "[^"]*"`)
)

// repoRoot is where this checkout is, for paths the output shows absolute.
var repoRoot, _ = filepath.Abs("..")

// normalise replaces what differs between runs and machines: the data dir, the checkout, the
// random prefix of uploads.
func (e *env) normalise(s string) string {
	s = strings.ReplaceAll(s, e.dir, "<DATA>")
	s = strings.ReplaceAll(s, repoRoot, "<REPO>")
	s = reManual.ReplaceAllString(s, "manual/2026/01/<RANDOM>/")
	return reMessageID.ReplaceAllString(s, `"message_id": "<ID>"`)
}

// snapshot lists every file under dir with its size and modification time: a dry run must leave
// it as it was.
func snapshot(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if os.IsNotExist(err) {
			return nil
		}
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %s %d %s", strings.TrimPrefix(p, dir), info.Mode(), info.Size(), info.ModTime()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

const (
	modelisation = "../testdata/payloads/modelisation.json"
	followup     = "../testdata/payloads/followup.json"
	support      = "../testdata/payloads/support.json"
	minimal      = "../testdata/payloads/minimal.json"
	emlFile      = "../testdata/emails/modelisation.eml"
	glb          = "../testdata/files/chaise.glb"
	png          = "../testdata/files/vue-de-face.png"
)
