//go:build unix

package bus

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// lockDir takes an exclusive, non-blocking flock on path. The kernel drops
// it when the process dies, so a crashed vigil never leaves a stale lock.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("embedded nats: open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w (%s)", ErrDataDirLocked, path)
		}
		return nil, fmt.Errorf("embedded nats: lock %s: %w", path, err)
	}
	return f, nil
}

var unlockMu sync.Mutex

func (e *Embedded) unlock() {
	unlockMu.Lock()
	defer unlockMu.Unlock()
	if e.lock != nil {
		_ = syscall.Flock(int(e.lock.Fd()), syscall.LOCK_UN)
		e.lock.Close()
		e.lock = nil
	}
}
