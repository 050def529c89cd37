package main

import (
	"context"
	"fmt"
	"io"
	"runtime/debug"
)

const versionUsage = `Print the version of this vigil binary.

Usage:
  vigil version
`

func runVersion(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flagSet("version", versionUsage, stdout)
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	v := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				v = s.Value
			}
		}
	}
	fmt.Fprintf(stdout, "vigil %s\n", v)
	return exitOK
}
