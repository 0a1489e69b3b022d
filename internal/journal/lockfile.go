package journal

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// contactLockFile holds the contacts' byte-range locks where the system has them (Linux).
const contactLockFile = "contacts.lock"

// fileLock is an exclusive flock(2) on a file that exists only while it is held: release removes
// the file before unlocking, and whoever locked the old file meanwhile sees that its path is gone
// (or is another file) and tries again. So no lock file is left behind, and two holders never
// hold "the same" lock through two different files.
type fileLock struct {
	path string
	f    *os.File
}

// tryLockFile takes the lock at once, or returns nil when another holds it.
func tryLockFile(path string) (*fileLock, error) {
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, nil
			}
			return nil, fmt.Errorf("flock %s: %w", path, err)
		}
		if current(f, path) {
			return &fileLock{path: path, f: f}, nil
		}
		f.Close() // released and removed by its holder while we waited: take the new one
	}
}

// poll calls try until it takes its lock, fails, or ctx ends, waiting 1 ms, then twice as long
// each time up to 50 ms (waiters across processes are rare: the daemon and a command run by hand
// on the same contact).
func poll(ctx context.Context, try func() (bool, error)) error {
	wait := time.Millisecond
	for {
		if ok, err := try(); err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
		wait = min(2*wait, 50*time.Millisecond)
	}
}

// current reports whether f is still the file at path.
func current(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Stat(path)
	return err == nil && os.SameFile(a, b)
}

// release removes the file, then unlocks it.
func (l *fileLock) release() {
	_ = os.Remove(l.path)
	_ = unix.Flock(int(l.f.Fd()), unix.LOCK_UN)
	_ = l.f.Close()
}
