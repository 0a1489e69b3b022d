package cmd

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// Every kind of usage error, from cobra or from our code, exits 2; with -o json it is one JSON
// object on stdout naming the flag or argument at fault, and nothing is written to the data dir.
func TestUsageErrorsExit2(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		field string
	}{
		{"unknown command", []string{"nope"}, ""},
		{"unknown subcommand", []string{"ticket", "fnd"}, ""},
		{"unknown completion shell", []string{"completion", "tcsh"}, ""},
		{"unknown flag", []string{"--bogus"}, "--bogus"},
		{"unknown flag of a command", []string{"process", "--nope"}, "--nope"},
		{"unknown short flag", []string{"classify", "-x"}, "-x"},
		{"flag value of the wrong type", []string{"requests", "list", "--limit", "many"}, "--limit"},
		{"flag without its value", []string{"ticket", "find", "--email"}, "--email"},
		{"missing required flag", []string{"ticket", "find"}, "--email"},
		{"missing required flags", []string{"ticket", "create"}, "--email"},
		{"flag group: one required", []string{"note", "--body", "x"}, ""},
		{"flag group: exclusive", []string{"note", "--ticket", "1", "--contact", "2", "--body", "x"}, ""},
		{"missing id", []string{"requests", "show"}, "ID"},
		{"too many arguments", []string{"requests", "show", "1", "2"}, "2"},
		{"arguments where none are taken", []string{"doctor", "now"}, "now"},
		{"missing upload source", []string{"upload"}, "FILE|URL"},
		{"payload and --eml", []string{"process", "--eml", "x.eml", "y.json"}, ""},
		{"retry: id and --failed", []string{"requests", "retry", "x", "--failed"}, ""},
		{"retry: neither", []string{"requests", "retry"}, ""},
		{"bad --output", []string{"classify", "-o", "yaml", support}, "--output"},
		{"bad --email", []string{"ticket", "find", "--email", "not-an-address"}, "--email"},
		{"bad --at", []string{"ticket", "find", "--email", "a@b.fr", "--at", "yesterday"}, "--at"},
		{"bad --classification", []string{"ticket", "create", "--email", "a@b.fr", "--subject", "s", "--classification", "x"}, "--classification"},
		{"empty --subject", []string{"ticket", "create", "--email", "a@b.fr", "--subject", " "}, "--subject"},
		{"empty --body", []string{"note", "--ticket", "1", "--body", " "}, "--body"},
		{"bad --status", []string{"requests", "list", "--status", "lost"}, "--status"},
		{"bad --limit", []string{"requests", "list", "--limit", "0"}, "--limit"},
		{"missing payload file", []string{"process", "does-not-exist.json"}, "FILE"},
		{"missing e-mail file", []string{"process", "--eml", "does-not-exist.eml"}, "--eml"},
		{"missing upload file", []string{"upload", "/does/not/exist.glb"}, "/does/not/exist.glb"},
		{"bad --result", []string{"notify", "--result", support}, "--result"},
		{"invalid payload", []string{"process", "../testdata/bad/bad-email.json"}, "user_email"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			r := e.run("", tt.args...)
			if r.code != ExitUsage || r.stdout != "" || !strings.HasPrefix(r.stderr, "figsupport: error: ") || strings.Count(r.stderr, "\n") != 1 {
				t.Fatalf("text: exit %d\nstdout %q\nstderr %q", r.code, r.stdout, r.stderr)
			}
			r = e.run("", append([]string{"-o", "json"}, tt.args...)...)
			if r.code != ExitUsage || r.stderr != "" {
				t.Fatalf("json: exit %d, stderr %q", r.code, r.stderr)
			}
			var got errorJSON
			dec := json.NewDecoder(strings.NewReader(r.stdout))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&got); err != nil || dec.More() {
				t.Fatalf("stdout is not one JSON error: %v\n%s", err, r.stdout)
			}
			if got.ExitCode != ExitUsage || got.Field != tt.field || got.Error == "" {
				t.Fatalf("error = %+v, want field %q", got, tt.field)
			}
			for _, key := range []string{`"error"`, `"field"`, `"exit_code"`} {
				if !strings.Contains(r.stdout, key) {
					t.Errorf("key %s missing: %s", key, r.stdout)
				}
			}
			if _, err := os.Stat(e.dir); !os.IsNotExist(err) {
				t.Errorf("the data dir was created")
			}
		})
	}
}

// An error says each thing once: no prefix repeated, the id at fault named once.
func TestErrorsSayItOnce(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"ticket", "close", "999"}, "figsupport: error: ticket 999: not found\n"},
		{[]string{"subtask", "update", "86c7r48hb", "--description", "x"}, "figsupport: error: subtask 86c7r48hb: not found\n"},
		{[]string{"note", "--ticket", "12345", "--body", "x"}, "figsupport: error: ticket 12345: not found\n"},
		{[]string{"requests", "show", "nope"}, "figsupport: error: request nope: no such request in the journal\n"},
		{[]string{"notify", "--result", support}, "figsupport: error: --result: not a process result: no ticket_id\n"},
	}
	for _, tt := range tests {
		r := e.run("", tt.args...)
		if r.code != ExitUsage || r.stderr != tt.want {
			t.Errorf("%v: exit %d, stderr %q, want %q", tt.args, r.code, r.stderr, tt.want)
		}
	}
}

// Configuration problems exit 4 and name the key, in JSON too.
func TestConfigErrorsExit4(t *testing.T) {
	e := newEnv(t, "FIGSUPPORT_THREAD_WINDOW=two weeks")
	r := e.run("", "process", support, "-o", "json")
	var got errorJSON
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil || r.code != ExitConfig || got.Field != "FIGSUPPORT_THREAD_WINDOW" || got.ExitCode != ExitConfig {
		t.Fatalf("exit %d %+v %v\n%s", r.code, got, err, r.stdout)
	}
	r = newEnv(t).run("", "--env-file", "nope.env", "classify", support)
	if r.code != ExitConfig || !strings.Contains(r.stderr, "--env-file: cannot read nope.env: no such file or directory") {
		t.Fatalf("missing env file: exit %d %q", r.code, r.stderr)
	}
}
