package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/figurative/figsupport/internal/health"
)

// Outbox is the embedded transport: every message becomes <dir>/<Message-ID>.eml, written
// atomically, for a person or a mail client to pick up. The file is named after the message's
// Message-ID, so a message sent again (a repeated notification) finds its file there and writes
// nothing: the outbox delivers each Message-ID once.
type Outbox struct {
	Dir string
}

// NewOutbox returns an outbox writing into dir (created on first use).
func NewOutbox(dir string) (*Outbox, error) {
	if dir == "" {
		return nil, errors.New("notify: outbox directory is not set")
	}
	return &Outbox{Dir: dir}, nil
}

// Kind is "outbox".
func (o *Outbox) Kind() string { return KindOutbox }

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9.@_+-]+`)

// FileName is the outbox file of a Message-ID: the id itself when it is a safe file name, else a
// cleaned copy followed by a digest of the id, so that two ids never share a file.
func FileName(messageID string) string {
	name := unsafeName.ReplaceAllString(messageID, "_")
	if name == messageID && len(name) <= 120 && !strings.HasPrefix(name, ".") {
		return name + ".eml"
	}
	sum := sha256.Sum256([]byte(messageID))
	name = strings.TrimLeft(name[:min(len(name), 80)], ".") // ASCII after the replacement
	return name + "-" + hex.EncodeToString(sum[:6]) + ".eml"
}

// Send writes the message to a temporary file in the outbox and links it into place, so a reader
// never sees half a message, and a message whose file exists already is not written again.
func (o *Outbox) Send(ctx context.Context, m *Message) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if m.MessageID == "" {
		return errors.New("outbox: the message has no Message-ID")
	}
	final := filepath.Join(o.Dir, FileName(m.MessageID))
	if _, err := os.Lstat(final); err == nil {
		return nil // sent already
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	tmp, err := os.CreateTemp(o.Dir, ".tmp-*.eml")
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	defer os.Remove(tmp.Name())
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
	// A hard link never replaces an existing file: of two sends of one Message-ID racing, one
	// writes the file and the other finds it.
	err = os.Link(tmp.Name(), final)
	switch {
	case err == nil, errors.Is(err, fs.ErrExist):
		return nil
	case errors.Is(err, errors.ErrUnsupported), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.ENOTSUP):
		// A file system without hard links: rename, checked just before.
		if _, err := os.Lstat(final); err == nil {
			return nil
		}
		if err := os.Rename(tmp.Name(), final); err != nil {
			return fmt.Errorf("outbox: %w", err)
		}
		return nil
	}
	return fmt.Errorf("outbox: %w", err)
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
