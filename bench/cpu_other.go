//go:build !unix

package bench

import "time"

// cpuTime returns 0: process CPU time is read only on unix.
func cpuTime() time.Duration { return 0 }
