// Package chaintest wires a chain for tests: a real journal and embedded store in a temporary data
// dir, an in-memory file store and a recording notifier, with the CRM of the test's choice.
package chaintest

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/figurative/figsupport/internal/chain"
	"github.com/figurative/figsupport/internal/journal"
	"github.com/figurative/figsupport/internal/local"
	"github.com/figurative/figsupport/internal/payload"
	"github.com/figurative/figsupport/internal/sqlite"
)

// Harness is a chain with inspectable backends.
type Harness struct {
	Chain    *chain.Chain
	Journal  *journal.Journal
	Local    *local.Store // the embedded CRM and tasks (Tasks always; CRM unless replaced)
	Files    *Files
	Notifier *Notifier
	Dir      string
}

// Options tune New.
type Options struct {
	CRM        chain.CRM          // default: the embedded store
	Tasks      chain.Tasks        // default: the embedded store
	Classifier chain.Classifier   // default: Fixed(SUPPORT), or MODELISATION when a file is attached
	Ack        chain.Acknowledger // default: none (acknowledgements off)
	Observer   chain.Observer     // default: none
	Chain      chain.Options      // zero values take the defaults
	Now        func() time.Time   // journal and store clock; default time.Now
	Dir        string             // data dir; default t.TempDir()
}

// New builds a harness.
func New(t testing.TB, o Options) *Harness {
	t.Helper()
	dir := o.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	db, err := sqlite.Open(filepath.Join(dir, "figsupport.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	j, err := journal.Open(ctx, db, filepath.Join(dir, "locks"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	st, err := local.Open(ctx, db, local.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if o.Now != nil {
		j.SetClock(o.Now)
		st.SetClock(o.Now)
	}
	h := &Harness{Journal: j, Local: st, Files: &Files{}, Notifier: &Notifier{}, Dir: dir}
	d := chain.Deps{CRM: st, Tasks: st, Files: h.Files, Notifier: h.Notifier, Journal: j, Classifier: ByFiles{}}
	if o.CRM != nil {
		d.CRM = o.CRM
	}
	if o.Tasks != nil {
		d.Tasks = o.Tasks
	}
	if o.Classifier != nil {
		d.Classifier = o.Classifier
	}
	d.Ack, d.Observer = o.Ack, o.Observer
	h.Chain = chain.New(d, o.Chain)
	return h
}

// Fixed classifies everything the same way.
type Fixed string

// Classify returns the fixed label.
func (f Fixed) Classify(context.Context, *payload.Request) chain.Classification {
	return chain.Classification{Label: string(f), Method: "rules", Reasons: []string{"fixed"}}
}

// ByFiles says MODELISATION when a file is attached or the source says so, else SUPPORT.
type ByFiles struct{}

// Classify applies that rule.
func (ByFiles) Classify(_ context.Context, r *payload.Request) chain.Classification {
	if len(r.Fichiers) > 0 || r.Source == "modelisation" {
		return chain.Classification{Label: payload.Modelisation, Method: "rules", Reasons: []string{"files"}}
	}
	return chain.Classification{Label: payload.Support, Method: "rules", Reasons: []string{"no files"}}
}

// Files is an in-memory object store: URLs are memory://<key>/<name>.
type Files struct {
	mu    sync.Mutex
	Calls int
	Fail  error // when set, Upload fails with it
}

// Upload records the files and returns deterministic URLs.
func (f *Files) Upload(_ context.Context, key string, at time.Time, files []payload.File) ([]payload.StoredFile, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Calls++
	if f.Fail != nil {
		return nil, f.Fail
	}
	out := make([]payload.StoredFile, len(files))
	for i, fl := range files {
		k := fmt.Sprintf("requests/%s/%s/%s", at.Format("2006/01"), key, fl.Name)
		out[i] = payload.StoredFile{Name: fl.Name, URL: "memory://" + k, Size: 1, Key: k}
	}
	return out, nil
}

// Notifier records notifications; Fail makes the next ones fail.
type Notifier struct {
	mu   sync.Mutex
	Sent []chain.Notification
	Fail error
	// Delay is how long a notification takes to send; one whose context ends before is cut off
	// and not sent, as an SMTP session closed before its DATA ends.
	Delay time.Duration
}

// Notify records n.
func (n *Notifier) Notify(ctx context.Context, x chain.Notification) error {
	n.mu.Lock()
	delay := n.Delay
	n.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.Fail != nil {
		return n.Fail
	}
	n.Sent = append(n.Sent, x)
	return nil
}

// Count is how many notifications were sent.
func (n *Notifier) Count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.Sent)
}

// Request builds a valid request from a few fields.
func Request(t testing.TB, email, text string, at time.Time, files ...string) *payload.Request {
	t.Helper()
	r := &payload.Request{UserEmail: email, Objet: text, Description: text + " (détails)", ReceivedAt: at}
	for _, f := range files {
		r.Fichiers = append(r.Fichiers, payload.File{Name: f, URL: "https://files.example.com/" + f})
	}
	if err := r.Normalize(payload.DefaultLimits, at); err != nil {
		t.Fatal(err)
	}
	return r
}
