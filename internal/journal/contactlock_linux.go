package journal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// contactLocks serialise contacts across the processes that share a SQLite data dir: an
// open-file-description lock (fcntl F_OFD_SETLK) on one byte of one file, at an offset taken from
// the contact's digest. Nothing is created or removed per lock: a file per contact, created and
// removed each time, cost ext4 an inode allocation per request (an eighth of the sync daemon's
// CPU, BENCHMARKS.md). Locks of one process share its descriptor and never conflict with each
// other (the journal serialises a contact within the process first); another process's
// descriptor conflicts. The kernel releases them when the process dies.
type contactLocks struct{ f *os.File }

func openContactLocks(dir string) (*contactLocks, error) {
	f, err := os.OpenFile(filepath.Join(dir, contactLockFile), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	return &contactLocks{f: f}, nil
}

// lock waits for the contact's lock until ctx ends (see poll).
func (c *contactLocks) lock(ctx context.Context, sum [32]byte) (func(), error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart, Start: int64(binary.BigEndian.Uint64(sum[:8]) >> 2), Len: 1}
	err := poll(ctx, func() (bool, error) {
		err := unix.FcntlFlock(c.f.Fd(), unix.F_OFD_SETLK, &lk)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) {
			return false, nil
		}
		return err == nil, err
	})
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", c.f.Name(), err)
	}
	return func() {
		un := lk
		un.Type = unix.F_UNLCK
		_ = unix.FcntlFlock(c.f.Fd(), unix.F_OFD_SETLK, &un)
	}, nil
}

func (c *contactLocks) close() { c.f.Close() }
