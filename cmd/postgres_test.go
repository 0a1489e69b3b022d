package cmd

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/figurative/figsupport/internal/testsrv/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Run(m)) }

// With FIGSUPPORT_DATABASE_URL the journal, the memo and the embedded CRM live in PostgreSQL:
// the chain, its replay, a dry run that writes nothing, the journal's listing and doctor.
func TestPostgresDatabase(t *testing.T) {
	e := newEnv(t, "FIGSUPPORT_DATABASE_URL="+pgtest.New(t))
	first := e.must("process", "-o", "json", "../testdata/payloads/modelisation.json")
	if !strings.Contains(first, `"status": "created"`) || !strings.Contains(first, `"ticket_id": "1"`) {
		t.Fatalf("first: %s", first)
	}
	follow := e.must("process", "-o", "json", "../testdata/payloads/followup.json")
	if !strings.Contains(follow, `"status": "updated"`) || !strings.Contains(follow, `"ticket_id": "1"`) {
		t.Fatalf("follow-up: %s", follow)
	}
	if again := e.must("process", "-o", "json", "../testdata/payloads/followup.json"); !strings.Contains(again, `"replayed": true`) {
		t.Fatalf("replay: %s", again)
	}
	plan := e.must("--dry-run", "process", "-o", "json", "../testdata/payloads/support.json")
	if !strings.Contains(plan, `"journal": "new"`) {
		t.Fatalf("plan: %s", plan)
	}
	var list struct {
		Requests []struct {
			Status string `json:"status"`
		} `json:"requests"`
	}
	if err := json.Unmarshal([]byte(e.must("requests", "list", "-o", "json")), &list); err != nil || len(list.Requests) != 2 {
		t.Fatalf("list after a dry run: %+v %v (the plan must have written nothing)", list, err)
	}
	doc := e.run("", "doctor", "-o", "json")
	if doc.code != 0 || !strings.Contains(doc.stdout, "advisory locks usable") || strings.Contains(doc.stdout, e.vars["FIGSUPPORT_DATABASE_URL"]) {
		t.Fatalf("doctor: exit %d\n%s", doc.code, doc.stdout)
	}
	if _, err := os.Stat(e.dir + "/figsupport.db"); !os.IsNotExist(err) {
		t.Errorf("a SQLite file was made beside PostgreSQL: %v", err)
	}
}

// A URL that is not PostgreSQL's is a configuration error naming the key.
func TestDatabaseURLRefused(t *testing.T) {
	e := newEnv(t, "FIGSUPPORT_DATABASE_URL=mysql://x@y/z")
	r := e.run("", "process", "-o", "json", "../testdata/payloads/support.json")
	if r.code != ExitConfig || !strings.Contains(r.stdout, `"field": "FIGSUPPORT_DATABASE_URL"`) {
		t.Fatalf("exit %d %s", r.code, r.stdout)
	}
}
