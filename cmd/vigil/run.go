package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
)

// Exit codes shared by every command.
const (
	exitOK      = 0 // success
	exitFailure = 1 // tests, validation or the operation failed
	exitUsage   = 2 // bad flags or arguments (Go flag convention)
	exitLint    = 3 // lint findings under --lint-fatal
)

// command is one `vigil <name>` subcommand.
type command struct {
	name     string
	synopsis string
	// run executes the command. args exclude the command name.
	run func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

// commands lists every subcommand; `vigil --help` prints them in this order.
var commands = []command{
	{name: "dev", synopsis: "run everything embedded (NATS, ClickHouse) on a laptop", run: runDev},
	{name: "serve", synopsis: "run against an external NATS cluster and ClickHouse (production)", run: runServe},
	{name: "replay", synopsis: "rebuild the ClickHouse tables from the streams", run: runReplay},
	{name: "report", synopsis: "run an auditor report (verdicts, coverage, exports…)", run: runReport},
	{name: "erase", synopsis: "erase (or restrict) a data subject and print the certificate", run: runErase},
	{name: "access", synopsis: "export a data subject's data (GDPR Art. 15) as JSON", run: runAccess},
	{name: "hold", synopsis: "create, release and list legal holds", run: runHold},
	{name: "retention", synopsis: "retention policies and the retention run", run: runRetention},
	{name: "rules", synopsis: "lint, test, explain and backtest rule files", run: runRules},
	{name: "bench", synopsis: "end-to-end benchmark against a baseline; writes bench/results/e2e.md", run: runBench},
	{name: "simulate", synopsis: "generate realistic chat traffic against a running Vigil", run: runSimulate},
	{name: "version", synopsis: "print the version", run: runVersion},
}

func findCommand(name string) (command, bool) {
	for _, c := range commands {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

// run dispatches args to a subcommand and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name := args[0]
	switch name {
	case "-h", "--help", "-help":
		usage(stdout)
		return exitOK
	case "help":
		if len(args) == 1 {
			usage(stdout)
			return exitOK
		}
		c, ok := findCommand(args[1])
		if !ok {
			fmt.Fprintf(stderr, "Error: unknown command %q\nTry: vigil --help\n", args[1])
			return exitUsage
		}
		return c.run(ctx, []string{"--help"}, stdout, stderr)
	}
	c, ok := findCommand(name)
	if !ok {
		fmt.Fprintf(stderr, "Error: unknown command %q\nTry: vigil --help\n", name)
		return exitUsage
	}
	return c.run(ctx, args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprint(w, `Vigil watches every chat message of a regulated firm for compliance risks:
it tokenizes personal data, stores messages durably in NATS JetStream,
evaluates CEL rules with conversation context and archives verdicts in
ClickHouse.

Usage:
  vigil <command> [flags] [arguments]

Commands:
`)
	cs := append([]command(nil), commands...)
	width := 0
	for _, c := range cs {
		width = max(width, len(c.name))
	}
	for _, c := range cs {
		fmt.Fprintf(w, "  %-*s  %s\n", width, c.name, c.synopsis)
	}
	fmt.Fprint(w, `
Run 'vigil <command> --help' (or 'vigil help <command>') for a command's flags.
`)
}

// flagSet builds a FlagSet whose --help prints the command's usage text
// followed by its flags with their defaults.
func flagSet(name, usageText string, stdout io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// The flag package calls Usage itself on -help and on every parse
	// error; keep it silent and print from parseFlags, once, on -help only.
	fs.Usage = func() {}
	usageMu.Lock()
	usagePrinters[fs] = func() {
		fmt.Fprint(stdout, strings.TrimLeft(usageText, "\n"))
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		if len(names) == 0 {
			return
		}
		sort.Strings(names)
		fmt.Fprint(stdout, "\nFlags:\n")
		fs.VisitAll(func(f *flag.Flag) {
			fmt.Fprintf(stdout, "  --%s  (env %s)\n      %s", f.Name, envName(f.Name), f.Usage)
			if f.DefValue != "" && f.DefValue != "false" {
				fmt.Fprintf(stdout, " Default: %s", f.DefValue)
			}
			fmt.Fprintln(stdout)
		})
	}
	usageMu.Unlock()
	return fs
}

var (
	usageMu       sync.Mutex
	usagePrinters = map[*flag.FlagSet]func(){}
)

// printUsage prints the --help text of a FlagSet built by flagSet.
func printUsage(fs *flag.FlagSet) {
	usageMu.Lock()
	p := usagePrinters[fs]
	usageMu.Unlock()
	if p != nil {
		p()
	}
}

// parseFlags parses args and maps the outcome to an exit code: -1 means
// continue, otherwise return the code (0 for --help, 2 for a usage error).
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) int {
	defer func() {
		usageMu.Lock()
		delete(usagePrinters, fs)
		usageMu.Unlock()
	}()
	err := fs.Parse(args)
	switch {
	case err == nil:
		return -1
	case errors.Is(err, flag.ErrHelp):
		printUsage(fs)
		return exitOK
	default:
		fmt.Fprintf(stderr, "Error: %v\nTry: vigil %s --help\n", err, fs.Name())
		return exitUsage
	}
}

// fail prints an error and an optional hint the way every command does.
func fail(stderr io.Writer, err error, hint string) int {
	fmt.Fprintf(stderr, "Error: %v\n", err)
	if hint != "" {
		fmt.Fprintf(stderr, "Try: %s\n", hint)
	}
	return exitFailure
}
