//go:build unix

package chlocal

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// checkDataDirFree probes the lock ClickHouse takes on <dir>/status (flock,
// exclusive) and releases it at once, so that a second engine on the same
// directory gets [ErrDataDirLocked] instead of an anonymous connect failure.
func checkDataDirFree(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, "status"), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("open data dir status file: %w", err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("%w: %s", ErrDataDirLocked, dir)
		}
		return fmt.Errorf("lock data dir status file: %w", err)
	}
	return syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
