package cmd

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/figurative/figsupport/internal/golden"
)

// Every command's JSON, one golden file each (go test ./cmd -update rewrites them): a session on
// the embedded backends that goes through every command, so that each documented key is seen
// present, whatever the content (empty lists as [], absent ids as "", a missing ticket as null).
func TestJSONGolden(t *testing.T) {
	e := newEnv(t)
	steps := []struct {
		name  string
		stdin string
		args  []string
		code  int
	}{
		{"classify", "", []string{"classify", support}, 0},
		{"process-dry-run-new", "", []string{"--dry-run", "process", modelisation}, 0},
		{"process-created", "", []string{"process", modelisation}, 0},
		{"process-dry-run-replay", "", []string{"--dry-run", "process", modelisation}, 0},
		{"process-replayed", "", []string{"process", modelisation}, 0},
		{"process-updated", "", []string{"process", followup}, 0},
		{"process-minimal", "", []string{"process", minimal}, 0},
		{"upload", "", []string{"upload", glb, png}, 0},
		{"upload-dry-run", "", []string{"--dry-run", "upload", glb}, 0},
		{"ticket-find", "", []string{"ticket", "find", "--email", "jean.dupont@example.com"}, 0},
		{"ticket-find-none", "", []string{"ticket", "find", "--email", "nobody@example.com"}, 0},
		{"ticket-create", "", []string{"ticket", "create", "--email", "tel@example.com", "--subject", "Rappel"}, 0},
		{"ticket-close-dry-run", "", []string{"--dry-run", "ticket", "close", "3"}, 0},
		{"ticket-close", "", []string{"ticket", "close", "3"}, 0},
		{"note", "", []string{"note", "--ticket", "3", "--body", "Rappelé"}, 0},
		{"note-contact", "", []string{"note", "--contact", "1", "--body", "Préfère le matin"}, 0},
		{"subtask-create", "", []string{"subtask", "create", "--name", "Modèle chaise"}, 0},
		{"subtask-update", "", []string{"subtask", "update", "2", "--description", "v2"}, 0},
		{"notify", "", []string{"notify", "--subject", "Test", "--body", "Bonjour"}, 0},
		{"notify-dry-run", "", []string{"--dry-run", "notify", "--subject", "Test"}, 0},
		{"requests-list", "", []string{"requests", "list", "--limit", "2"}, 0},
		{"requests-show", "", []string{"requests", "show", "demo-modelisation-1"}, 0},
		{"requests-retry-done", "", []string{"requests", "retry", "demo-modelisation-1"}, 0},
		{"requests-retry-dry-run", "", []string{"--dry-run", "requests", "retry", "demo-modelisation-1"}, 0},
		{"doctor", "", []string{"doctor"}, 0},
		{"doctor-dry-run", "", []string{"--dry-run", "doctor"}, 0},
		{"error-usage", "", []string{"ticket", "find"}, 2},
		{"error-conflict", `{"user_email":"x@example.com","objet":"Autre chose","request_id":"demo-modelisation-1"}`, []string{"process", "-"}, 2},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			r := e.run(st.stdin, append(st.args, "-o", "json")...)
			if r.code != st.code {
				t.Fatalf("exit %d, want %d\n%s%s", r.code, st.code, r.stdout, r.stderr)
			}
			var v any
			dec := json.NewDecoder(strings.NewReader(r.stdout))
			if err := dec.Decode(&v); err != nil || dec.More() {
				t.Fatalf("stdout is not one JSON object: %v\n%s", err, r.stdout)
			}
			golden.Check(t, filepath.Join("testdata", "golden", st.name+".json"), e.normalise(r.stdout))
		})
	}
}
