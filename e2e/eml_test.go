package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// process --eml: a customer's e-mail with two attachments becomes a ticket with both files; the
// same e-mail again (same Message-Id) is a replay; the spool is emptied; a text that is not an
// e-mail is bad input and creates nothing, not even the data dir.
func TestProcessEmail(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	r := run(t, data, "", "process", "--eml", "testdata/emails/modelisation.eml", "-o", "json")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var resp struct {
		Status         string `json:"status"`
		Classification string `json:"classification"`
		RequestID      string `json:"request_id"`
		ContactID      string `json:"contact_id"`
		Files          []struct {
			Name string `json:"name"`
			URL  string `json:"url"`
		} `json:"files"`
		Replayed bool `json:"replayed"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil {
		t.Fatal(err)
	}
	if resp.Status != "created" || resp.Classification != "MODELISATION" || resp.RequestID != "lampe-2026-01-12@example.com" || len(resp.Files) != 2 {
		t.Fatalf("resp = %+v", resp)
	}
	glb, _ := os.ReadFile("../testdata/files/chaise.glb")
	if got, err := os.ReadFile(strings.TrimPrefix(resp.Files[0].URL, "file://")); err != nil || string(got) != string(glb) {
		t.Fatalf("stored attachment %s: %v", resp.Files[0].URL, err)
	}
	if left, _ := filepath.Glob(filepath.Join(data, "spool", "*")); len(left) != 0 {
		t.Errorf("spool not emptied: %v", left)
	}
	eml, _ := os.ReadFile("../testdata/emails/modelisation.eml")
	r = run(t, data, string(eml), "process", "--eml", "-", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &resp); err != nil || !resp.Replayed {
		t.Fatalf("same e-mail again: %+v %v", resp, err)
	}
	if r := run(t, data, "", "ticket", "find", "--email", "helene.martin@example.com", "--at", "2026-01-12T12:00:00Z"); r.code != 0 || !strings.Contains(r.stdout, "Modélisation 3D de notre lampe") {
		t.Errorf("ticket find: %d %s %s", r.code, r.stdout, r.stderr)
	}

	fresh := filepath.Join(t.TempDir(), "fresh")
	r = run(t, fresh, "", "process", "--eml", "testdata/payloads/support.json")
	if r.code != 2 || !strings.Contains(r.stderr, "not an e-mail") {
		t.Fatalf("JSON given as e-mail: exit %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("bad e-mail created the data dir")
	}
	if r := run(t, fresh, "", "process", "--eml", "x.eml", "testdata/payloads/support.json"); r.code != 2 {
		t.Errorf("--eml with a payload too: exit %d", r.code)
	}
}
