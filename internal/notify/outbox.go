package notify

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"time"

	"github.com/figurative/figsupport/internal/health"
)

// Outbox is the embedded transport: every message becomes <dir>/<timestamp>-<id>.eml, written
// atomically, for a person or a mail client to pick up.
type Outbox struct {
	Dir string
	now func() time.Time
}

// NewOutbox returns an outbox writing into dir (created on first use).
func NewOutbox(dir string) (*Outbox, error) {
	if dir == "" {
		return nil, errors.New("notify: outbox directory is not set")
	}
	return &Outbox{Dir: dir, now: time.Now}, nil
}

// Kind is "outbox".
func (o *Outbox) Kind() string { return KindOutbox }

var unsafeID = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Send writes the message to a temporary file in the outbox and renames it into place, so a
// reader never sees half a message.
func (o *Outbox) Send(ctx context.Context, m *Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	id := unsafeID.ReplaceAllString(m.ID, "_")
	if len(id) > 64 {
		id = id[:64]
	}
	name := o.now().UTC().Format("20060102T150405.000000000Z") + "-" + id + ".eml"
	tmp, err := os.CreateTemp(o.Dir, ".tmp-*.eml")
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	defer os.Remove(tmp.Name()) // a no-op once renamed
	if _, err := tmp.Write(m.Raw); err != nil {
		tmp.Close()
		return fmt.Errorf("outbox: write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("outbox: sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("outbox: close %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(o.Dir, name)); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	return nil
}

// Check verifies that the outbox directory can be written.
func (o *Outbox) Check(ctx context.Context) []health.Check {
	c := health.Check{Service: KindOutbox, Name: "directory writable"}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		c.Status, c.Detail = health.Fail, err.Error()
		return []health.Check{c}
	}
	f, err := os.CreateTemp(o.Dir, ".doctor-*")
	if err != nil {
		c.Status, c.Detail = health.Fail, err.Error()
		return []health.Check{c}
	}
	f.Close()
	os.Remove(f.Name())
	c.Status, c.Detail = health.OK, "messages are written to "+o.Dir+" (no e-mail is sent: set SMTP_HOST or GRAPH_SENDER to send)"
	return []health.Check{c}
}
