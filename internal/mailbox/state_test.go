package mailbox_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/mailbox"
)

func TestFileState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "mailbox-state.json")
	s := &mailbox.FileState{Path: path}
	if f, err := s.Load("imap:a"); err != nil || f.Generation != "" || len(f.Failed) != 0 {
		t.Fatalf("missing file: %+v, %v", f, err)
	}
	at := time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	want := mailbox.Folder{Generation: "42", Failed: map[string]mailbox.Failure{"7": {Attempts: 2, Last: at, Error: "503"}}}
	if err := s.Save("imap:a", want); err != nil {
		t.Fatal(err)
	}
	if err := s.Save("graph:b", mailbox.Folder{Generation: "AAMk"}); err != nil {
		t.Fatal(err)
	}
	// Another process (the next cron run) reads what was saved, both folders kept.
	again := &mailbox.FileState{Path: path}
	got, err := again.Load("imap:a")
	if err != nil || got.Generation != "42" || got.Failed["7"] != want.Failed["7"] {
		t.Fatalf("loaded %+v, %v", got, err)
	}
	if g, _ := again.Load("graph:b"); g.Generation != "AAMk" {
		t.Fatalf("other folder %+v", g)
	}
	// A damaged file is reported, and replaced by the next save.
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := again.Load("imap:a"); err == nil {
		t.Fatal("a damaged file loaded without error")
	}
	if err := again.Save("imap:a", want); err != nil {
		t.Fatal(err)
	}
	if got, err := again.Load("imap:a"); err != nil || got.Generation != "42" {
		t.Fatalf("after replacing: %+v, %v", got, err)
	}
}
