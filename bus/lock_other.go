//go:build !unix

package bus

import (
	"fmt"
	"os"
	"sync"
)

// lockDir creates path exclusively; a stale lock file from a crashed
// process must be removed by hand on these platforms.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if os.IsExist(err) {
		return nil, fmt.Errorf("%w (%s)", ErrDataDirLocked, path)
	}
	if err != nil {
		return nil, fmt.Errorf("embedded nats: lock %s: %w", path, err)
	}
	return f, nil
}

var unlockMu sync.Mutex

func (e *Embedded) unlock() {
	unlockMu.Lock()
	defer unlockMu.Unlock()
	if e.lock != nil {
		name := e.lock.Name()
		e.lock.Close()
		os.Remove(name)
		e.lock = nil
	}
}
