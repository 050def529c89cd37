package main

import (
	"context"
	"io"
)

const devUsage = `Run Vigil with everything embedded: NATS JetStream and ClickHouse (chDB).

Usage:
  vigil dev [flags]
`

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flagSet("dev", devUsage, stdout)
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	<-ctx.Done()
	return exitOK
}
