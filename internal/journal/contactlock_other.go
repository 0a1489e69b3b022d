//go:build !linux

package journal

import (
	"context"
	"encoding/hex"
	"path/filepath"
)

// contactLocks serialise contacts across the processes that share a SQLite data dir: where
// open-file-description locks are missing, a lock file per contact that exists only while held.
type contactLocks struct{ dir string }

func openContactLocks(dir string) (*contactLocks, error) { return &contactLocks{dir: dir}, nil }

func (c *contactLocks) lock(ctx context.Context, sum [32]byte) (func(), error) {
	fl, err := lockFile(ctx, filepath.Join(c.dir, hex.EncodeToString(sum[:12])+".lock"))
	if err != nil {
		return nil, err
	}
	return fl.release, nil
}

func (c *contactLocks) close() {}

// lockFile waits for the lock until ctx ends.
func lockFile(ctx context.Context, path string) (*fileLock, error) {
	var fl *fileLock
	err := poll(ctx, func() (bool, error) {
		var err error
		fl, err = tryLockFile(path)
		return fl != nil, err
	})
	return fl, err
}
