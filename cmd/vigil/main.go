// Command vigil is the Vigil compliance monitor: one binary for the embedded
// developer stack, production serving, rule tooling, reports and the
// privacy/retention admin commands.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
