// Command vigil is the Vigil compliance monitor: one binary for the embedded
// developer stack, production serving, rule tooling, reports and the
// privacy/retention admin commands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signalContext()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// signalDebounce is how long after the first signal further signals are
// taken as duplicates of it rather than a request to abort.
const signalDebounce = time.Second

// signalContext is cancelled by the first SIGINT/SIGTERM, which starts a
// graceful drain; a second signal aborts the process at once.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-ch:
			cancel()
		case <-done:
			return
		}
		// A terminal's Ctrl-C reaches the whole process group, and a
		// wrapper script may forward it once more: signals within
		// signalDebounce of the first count as the same request.
		first := time.Now()
		for {
			select {
			case s := <-ch:
				if time.Since(first) < signalDebounce {
					continue
				}
				fmt.Fprintf(os.Stderr, "Error: second %v, aborting without draining\n", s)
				os.Exit(exitFailure)
			case <-done:
				return
			}
		}
	}()
	return ctx, func() {
		signal.Stop(ch)
		close(done)
		cancel()
	}
}
