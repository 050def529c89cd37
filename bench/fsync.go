package bench

import (
	"fmt"
	"os"
	"time"
)

// DefaultFsyncProbes is the number of fsyncs [FsyncLatency] times.
const DefaultFsyncProbes = 100

// FsyncLatency appends 512-byte records to a file in dir and fsyncs after
// each, n times, and summarises how long each write+fsync took: the floor
// under every acknowledgement with sync_interval always, where JetStream
// fsyncs before each PubAck. The file is removed afterwards.
func FsyncLatency(dir string, n int) (LatencySummary, error) {
	if n <= 0 {
		n = DefaultFsyncProbes
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return LatencySummary{}, fmt.Errorf("fsync probe: %w", err)
	}
	f, err := os.CreateTemp(dir, "fsync-probe-*")
	if err != nil {
		return LatencySummary{}, fmt.Errorf("fsync probe: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := newLatencyHist()
	rec := make([]byte, 512)
	for range n {
		start := time.Now()
		if _, err := f.Write(rec); err != nil {
			return LatencySummary{}, fmt.Errorf("fsync probe write: %w", err)
		}
		if err := f.Sync(); err != nil {
			return LatencySummary{}, fmt.Errorf("fsync probe sync: %w", err)
		}
		h.record(time.Since(start))
	}
	return h.summary(), nil
}
