package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/evaluator"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/warehouse"
)

const rulesUsage = `
Lint, test, explain and backtest Vigil rule files.

Usage:
  vigil rules lint [--lint-fatal] DIR...
  vigil rules test [--run REGEX] [--junit FILE] [--json] DIR...
  vigil rules explain --rules DIR --message FILE|- [--all]
  vigil rules backtest DIR --since TIME [--until TIME] [--tenant T] [flags]

A DIR argument reads the *.yaml and *.yml files directly in DIR; DIR/...
reads them recursively; a file argument reads that file. All files given
form one ruleset, whose version (a content hash) the summary prints.

  lint     parse and type-check every rule and report findings (no tests,
           no description or tags, no prefilter, an expr that can match
           messages its keyword prefilter never admits)
  test     also run every rule's inline tests
  explain  show, rule by rule, whether the prefilter hit, whether the rule
           fired and the value of each sub-expression, for one message (in
           the inline-test format: message, context, window, risk_score)
  backtest re-evaluate the messages sent in [--since, --until) from the
           MESSAGES stream with the ruleset in DIR, store its verdicts in
           the ClickHouse table backtest_verdicts under a run id, and print
           per rule the production verdicts, the backtest verdicts, the new
           ones (backtest only) and the removed ones (production only),
           matched on message id and rule id. Production verdicts, streams
           and context windows are never written. See
           'vigil rules backtest --help'.

Exit codes:
  0  success
  1  a file failed to compile or an inline test failed
  2  usage error
  3  lint findings under --lint-fatal
`

// runRules dispatches `vigil rules <lint|test|explain|backtest>`.
func runRules(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, strings.TrimLeft(rulesUsage, "\n"))
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, strings.TrimLeft(rulesUsage, "\n"))
		return exitOK
	case "lint":
		return runRulesLint(args[1:], stdout, stderr)
	case "test":
		return runRulesTest(ctx, args[1:], stdout, stderr)
	case "explain":
		return runRulesExplain(ctx, args[1:], stdout, stderr)
	case "backtest":
		return runRulesBacktest(ctx, args[1:], stdout, stderr)
	}
	fmt.Fprintf(stderr, "Error: unknown rules command %q\nTry: vigil rules --help\n", args[0])
	return exitUsage
}

// readRuleArgs reads the files named by DIR, DIR/... and file arguments.
func readRuleArgs(args []string) (map[string][]byte, error) {
	files := map[string][]byte{}
	for _, a := range args {
		dir, recursive := strings.CutSuffix(a, "/...")
		if dir == "" {
			dir = "."
		}
		fs, err := rules.ReadFiles(dir, recursive)
		if err != nil {
			return nil, err
		}
		for n, b := range fs {
			files[n] = b
		}
	}
	if len(files) == 0 {
		return nil, errors.New("no rule files (*.yaml, *.yml) found")
	}
	return files, nil
}

// compileChecked compiles files as one ruleset. When some files fail, it
// compiles the others alone so their results can still be reported.
func compileChecked(files map[string][]byte) (*rules.Set, rules.CompileErrors, error) {
	s, err := rules.Compile(files)
	if err == nil {
		return s, nil, nil
	}
	var ces rules.CompileErrors
	if !errors.As(err, &ces) {
		return nil, nil, err
	}
	good := map[string][]byte{}
	for n, b := range files {
		if len(ces.ByFile(n)) == 0 {
			good[n] = b
		}
	}
	if len(good) == 0 {
		return nil, ces, nil
	}
	s, err = rules.Compile(good)
	if err != nil {
		return nil, ces, nil
	}
	return s, ces, nil
}

func plural(n int, what string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, what)
	}
	return fmt.Sprintf("%d %ss", n, what)
}

func sortedKeys(files map[string][]byte) []string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// printCompileErrors prints a file's compile errors under FAILED:, in
// cel-go's display form, indented.
func printCompileErrors(w io.Writer, ces rules.CompileErrors) {
	fmt.Fprintln(w, "  FAILED:")
	for _, ce := range ces {
		for _, l := range strings.Split(ce.Display(), "\n") {
			fmt.Fprintln(w, "    "+l)
		}
	}
}

func rulesPerFile(s *rules.Set) map[string]int {
	n := map[string]int{}
	if s != nil {
		for _, r := range s.Rules() {
			n[r.File]++
		}
	}
	return n
}

func runRulesLint(args []string, stdout, stderr io.Writer) int {
	fs := flagSet("rules lint", rulesUsage, stdout)
	lintFatal := fs.Bool("lint-fatal", false, "Exit 3 when there are lint findings.")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, "Error: no rule directories given\nTry: vigil rules lint rules/packs/...\n")
		return exitUsage
	}
	files, err := readRuleArgs(fs.Args())
	if err != nil {
		return fail(stderr, err, "vigil rules lint DIR...")
	}
	s, ces, err := compileChecked(files)
	if err != nil {
		return fail(stderr, err, "")
	}
	var lint rules.CompileErrors
	if s != nil {
		lint = s.Lint()
	}
	perFile := rulesPerFile(s)
	nRules := 0
	for i, name := range sortedKeys(files) {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stdout, "Checking %s\n", name)
		if fe := ces.ByFile(name); len(fe) > 0 {
			printCompileErrors(stderr, fe)
			continue
		}
		nRules += perFile[name]
		findings := lint.ByFile(name)
		if len(findings) > 0 && *lintFatal {
			fmt.Fprintln(stderr, "  FAILED:")
			for _, f := range findings {
				fmt.Fprintf(stderr, "    %s\n", f.Error())
			}
			continue
		}
		fmt.Fprintf(stdout, "  SUCCESS: %s\n", plural(perFile[name], "rule"))
		for _, f := range findings {
			fmt.Fprintf(stderr, "  WARNING: %s\n", f.Error())
		}
	}
	fmt.Fprintf(stdout, "\n%s, %s, %s", plural(len(files), "file"), plural(nRules, "rule"), plural(len(lint), "lint finding"))
	if len(ces) > 0 {
		fmt.Fprintf(stdout, ", %s", plural(len(ces), "compile error"))
	}
	fmt.Fprintf(stdout, " (ruleset %s)\n", rules.Version(files))
	switch {
	case len(ces) > 0:
		return exitFailure
	case len(lint) > 0 && *lintFatal:
		return exitLint
	}
	return exitOK
}

func runRulesTest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flagSet("rules test", rulesUsage, stdout)
	run := fs.String("run", "", "Run only the tests whose rule id or test name matches this regular expression.")
	junit := fs.String("junit", "", "Also write the results as JUnit XML to this file.")
	asJSON := fs.Bool("json", false, "Print the report as JSON on stdout instead of text (compile errors stay on stderr).")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if fs.NArg() == 0 {
		fmt.Fprint(stderr, "Error: no rule directories given\nTry: vigil rules test rules/packs/...\n")
		return exitUsage
	}
	var opts rules.TestOptions
	if *run != "" {
		re, err := regexp.Compile(*run)
		if err != nil {
			fmt.Fprintf(stderr, "Error: --run: %v\nTry: vigil rules test --help\n", err)
			return exitUsage
		}
		opts.Run = re
	}
	files, err := readRuleArgs(fs.Args())
	if err != nil {
		return fail(stderr, err, "vigil rules test DIR...")
	}
	s, ces, err := compileChecked(files)
	if err != nil {
		return fail(stderr, err, "")
	}
	var rep rules.Report
	if s != nil {
		rep = s.Test(ctx, opts)
	}
	if *junit != "" {
		if err := writeJUnit(*junit, files, ces, rep); err != nil {
			return fail(stderr, err, "")
		}
	}
	code := exitOK
	if len(ces) > 0 || rep.Failed > 0 {
		code = exitFailure
	}
	if *asJSON {
		if len(ces) > 0 {
			fmt.Fprintln(stderr, ces.Display())
		}
		rep.Version = rules.Version(files)
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fail(stderr, fmt.Errorf("write report: %w", err), "")
		}
		return code
	}
	reports := map[string]rules.FileReport{}
	for _, f := range rep.Files {
		reports[f.File] = f
	}
	for i, name := range sortedKeys(files) {
		if i > 0 {
			fmt.Fprintln(stdout)
		}
		fmt.Fprintf(stdout, "Checking %s\n", name)
		if fe := ces.ByFile(name); len(fe) > 0 {
			printCompileErrors(stderr, fe)
			continue
		}
		fr := reports[name]
		if fr.Failed() == 0 {
			fmt.Fprintf(stdout, "  SUCCESS: %s, %s\n", plural(fr.Rules, "rule"), plural(fr.Tests, "test"))
			continue
		}
		fmt.Fprintln(stderr, "  FAILED:")
		for _, c := range fr.Cases {
			if c.Passed {
				continue
			}
			fmt.Fprintf(stderr, "    rule: %s, test: %q\n        exp: %s\n        got: %s\n", c.RuleID, c.Test, c.Want, c.Got)
		}
	}
	fmt.Fprintf(stdout, "\n%s, %s, %s, %d failed", plural(len(files), "file"), plural(rep.Rules, "rule"), plural(rep.Tests, "test"), rep.Failed)
	if len(ces) > 0 {
		fmt.Fprintf(stdout, ", %s", plural(len(ces), "compile error"))
	}
	fmt.Fprintf(stdout, " (ruleset %s)\n", rules.Version(files))
	return code
}

// JUnit XML, as CI systems read it.
type junitSuites struct {
	XMLName xml.Name     `xml:"testsuites"`
	Suites  []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Class   string        `xml:"classname,attr"`
	Name    string        `xml:"name,attr"`
	Failure *junitFailure `xml:"failure,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Text    string `xml:",chardata"`
}

func writeJUnit(path string, files map[string][]byte, ces rules.CompileErrors, rep rules.Report) error {
	reports := map[string]rules.FileReport{}
	for _, f := range rep.Files {
		reports[f.File] = f
	}
	var out junitSuites
	for _, name := range sortedKeys(files) {
		suite := junitSuite{Name: name}
		if fe := ces.ByFile(name); len(fe) > 0 {
			suite.Cases = append(suite.Cases, junitCase{Class: name, Name: "compile",
				Failure: &junitFailure{Message: "compile error", Text: fe.Display()}})
			suite.Tests, suite.Failures = 1, 1
		}
		for _, c := range reports[name].Cases {
			jc := junitCase{Class: c.RuleID, Name: c.Test}
			if !c.Passed {
				jc.Failure = &junitFailure{Message: "exp: " + c.Want + ", got: " + c.Got, Text: "exp: " + c.Want + "\ngot: " + c.Got}
				suite.Failures++
			}
			suite.Tests++
			suite.Cases = append(suite.Cases, jc)
		}
		out.Suites = append(out.Suites, suite)
	}
	b, err := xml.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("write junit report: %w", err)
	}
	if err := os.WriteFile(path, append([]byte(xml.Header), append(b, '\n')...), 0o644); err != nil {
		return fmt.Errorf("write junit report: %w", err)
	}
	return nil
}

// maxExprRunes shortens long sub-expressions in explain output.
const maxExprRunes = 100

func shorten(s string) string {
	if utf8.RuneCountInString(s) <= maxExprRunes {
		return s
	}
	r := []rune(s)
	return string(r[:maxExprRunes-1]) + "…"
}

func runRulesExplain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flagSet("rules explain", rulesUsage, stdout)
	var dirs stringList
	fs.Var(&dirs, "rules", "Rule directory (DIR or DIR/...) or file; repeat for several.")
	msgPath := fs.String("message", "", "Message and context to explain, in the inline-test format (YAML or JSON); - reads stdin.")
	all := fs.Bool("all", false, "Also list the rules whose prefilter missed.")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if len(dirs) == 0 || *msgPath == "" || fs.NArg() > 0 {
		fmt.Fprint(stderr, "Error: explain needs --rules and --message and no arguments\nTry: vigil rules explain --rules rules/packs/... --message msg.yaml\n")
		return exitUsage
	}
	var in []byte
	var err error
	if *msgPath == "-" {
		in, err = io.ReadAll(io.LimitReader(os.Stdin, rules.MaxFileBytes))
	} else {
		in, err = os.ReadFile(*msgPath)
	}
	if err != nil {
		return fail(stderr, fmt.Errorf("read message: %w", err), "")
	}
	m, c, err := rules.ParseExample(in)
	if err != nil {
		return fail(stderr, err, "vigil rules explain --help")
	}
	files, err := readRuleArgs(dirs)
	if err != nil {
		return fail(stderr, err, "")
	}
	s, err := rules.Compile(files)
	if err != nil {
		var ces rules.CompileErrors
		if errors.As(err, &ces) {
			fmt.Fprintln(stderr, ces.Display())
			return fail(stderr, rules.ErrRulesetRejected, "vigil rules lint "+strings.Join(dirs, " "))
		}
		return fail(stderr, err, "")
	}
	exs, err := s.Explain(ctx, m, c)
	if err != nil {
		return fail(stderr, err, "")
	}
	hits, fired := 0, 0
	for _, ex := range exs {
		r := ex.Rule
		if ex.PrefilterHit {
			hits++
		}
		if ex.Fired {
			fired++
		}
		if !ex.PrefilterHit && !*all {
			continue
		}
		outcome := "not fired"
		if ex.Fired {
			outcome = "FIRED"
		}
		fmt.Fprintf(stdout, "%s (tier %d, %s, %s): %s\n", r.ID, r.Tier, r.Action, r.Severity, outcome)
		if !ex.PrefilterHit {
			fmt.Fprintf(stdout, "  prefilter: miss, %s\n\n", ex.Prefilter)
			continue
		}
		fmt.Fprintf(stdout, "  prefilter: hit, %s\n", ex.Prefilter)
		if ex.Err != nil {
			fmt.Fprintf(stdout, "  error: %v\n", ex.Err)
		}
		for _, sp := range ex.Spans {
			if sp.Start >= 0 && sp.End <= len(m.Text) && sp.Start <= sp.End {
				fmt.Fprintf(stdout, "  matched: %q at %d:%d\n", m.Text[sp.Start:sp.End], sp.Start, sp.End)
			}
		}
		if r.Tier == rules.TierClassifier && ex.Fired {
			fmt.Fprintf(stdout, "  tier 2: the evaluator asks the classifier (labels: %s)\n", strings.Join(r.Labels, ", "))
		}
		for _, v := range ex.Values {
			fmt.Fprintf(stdout, "  %s%-6s %s\n", strings.Repeat("  ", v.Depth), v.Value, shorten(v.Expr))
		}
		fmt.Fprintln(stdout)
	}
	fmt.Fprintf(stdout, "%s, %s, %d fired (ruleset %s)\n", plural(len(exs), "rule"), plural(hits, "prefilter hit"), fired, s.Version())
	return exitOK
}

// stringList is a repeatable string flag.
type stringList []string

var _ flag.Value = (*stringList)(nil)

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

const rulesBacktestUsage = `
Re-evaluate past messages with another ruleset and compare with production.

Usage:
  vigil rules backtest DIR --since TIME [--until TIME] [--tenant T] [flags]

Reads the MESSAGES stream of the running vigil (--nats) with an ephemeral
ordered consumer, from one context window (--window-duration) before
--since up to the stream's last message as of the start, and evaluates
every message sent in [--since, --until) with the ruleset in DIR (DIR,
DIR/... or a file, as for 'vigil rules test'; its inline tests must pass).
Each conversation's context window is kept in memory with the live
evaluator's semantics, so a message sees the context it saw in production.
Nothing is published and no context window is written: production
verdicts, streams and KV buckets are untouched.

The run's verdicts go to the ClickHouse table backtest_verdicts under
--run-id (kept 30 days). The command then prints, per rule, the production
verdicts of the same messages, the backtest verdicts, the new ones
(backtest only) and the removed ones (production only), matched on
message id and rule id. Production counts, per message, only the verdicts
of the latest ruleset that evaluated it, as the sink has stored them so far.

Tier-2 rules: the classifier is not called. Each tier-1 candidate of a rule
that asks tier 2 is recorded as a verdict with tier 2 and reason "tier2 not
called in backtest", so such rules can show verdicts the classifier would
have cleared in production.

TIME is RFC 3339 (2026-12-01T00:00:00Z) or a date (2026-12-01). A progress
line is shown on stderr when stderr is a terminal.

Exit codes:
  0  backtest done and the difference printed
  1  the ruleset, NATS or ClickHouse failed
  2  usage error
`

// backtestFlushRows bounds the verdicts held before an INSERT.
const backtestFlushRows = 10_000

// backtestReport is what `vigil rules backtest --json` prints.
type backtestReport struct {
	RunID          string               `json:"run_id"`
	RulesetVersion string               `json:"ruleset_version"`
	Since          time.Time            `json:"since"`
	Until          time.Time            `json:"until"`
	Tenant         string               `json:"tenant,omitempty"`
	Messages       int                  `json:"messages"`
	Verdicts       int                  `json:"verdicts"`
	RuleErrors     int                  `json:"rule_errors"`
	Rules          []warehouse.RuleDiff `json:"rules"`
}

func runRulesBacktest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flagSet("rules backtest", rulesBacktestUsage, stdout)
	since := fs.String("since", "", "Evaluate messages sent at or after TIME (required).")
	until := fs.String("until", "", "Evaluate messages sent before TIME. Default: now.")
	tenant := fs.String("tenant", "", "Only this tenant. Default: all tenants.")
	natsURL := fs.String("nats", DefaultNATSURL, "NATS server URL(s) of the running vigil, comma-separated.")
	natsCreds := fs.String("nats-creds", "", "NATS credentials file (JWT + NKey).")
	dsn := fs.String("clickhouse", DefaultClickHouse, "ClickHouse address: http://host:8123/db or clickhouse://host:9000/db.")
	asJSON := fs.Bool("json", false, "Print the result as JSON on stdout.")
	runID := fs.String("run-id", "", "Id of this run in backtest_verdicts. Default: bt-<UTC time>-<random>.")
	windowN := fs.Int("window-messages", evaluator.DefaultWindowMessages, "Context window: previous messages kept per conversation (as the evaluator's).")
	windowD := fs.Duration("window-duration", evaluator.DefaultWindowDuration, "Context window: how far back it reaches (as the evaluator's).")
	// DIR may come first: vigil rules backtest DIR --since ….
	var dir string
	rest := args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		dir, rest = args[0], args[1:]
	}
	if code := parseFlags(fs, rest, stderr); code >= 0 {
		return code
	}
	if _, err := applyConfig(fs, lookupEnv); err != nil {
		return usageError(stderr, "rules backtest", "%v", err)
	}
	switch {
	case dir == "" && fs.NArg() == 1:
		dir = fs.Arg(0)
	case dir == "" && fs.NArg() == 0:
		return usageError(stderr, "rules backtest", "no rule directory given")
	case fs.NArg() > 0 && (dir != "" || fs.NArg() > 1):
		return usageError(stderr, "rules backtest", "one rule directory, got extra arguments %q", fs.Args())
	}
	if *since == "" {
		return usageError(stderr, "rules backtest", "--since is required")
	}
	sinceT, err := parseTimeFlag(*since, time.Time{})
	if err != nil {
		return usageError(stderr, "rules backtest", "--since: %v", err)
	}
	untilT, err := parseTimeFlag(*until, time.Now().UTC())
	if err != nil {
		return usageError(stderr, "rules backtest", "--until: %v", err)
	}
	if !sinceT.Before(untilT) {
		return usageError(stderr, "rules backtest", "--since (%s) must be before --until (%s)", sinceT.Format(time.RFC3339), untilT.Format(time.RFC3339))
	}
	if *windowN <= 0 || *windowD <= 0 {
		return usageError(stderr, "rules backtest", "--window-messages and --window-duration must be positive")
	}
	if *runID == "" {
		*runID = newRunID()
	}

	files, err := readRuleArgs([]string{dir})
	if err != nil {
		return fail(stderr, err, "vigil rules backtest DIR --since TIME")
	}
	set, err := rules.LoadFiles(files)
	if err != nil {
		return fail(stderr, fmt.Errorf("load ruleset %s: %w", dir, err), "vigil rules test "+dir)
	}
	ch, _, err := warehouse.Connect(ctx, *dsn)
	if err != nil {
		return fail(stderr, err, "start 'vigil dev' or pass --clickhouse")
	}
	defer ch.Close()
	quiet := slog.New(slog.DiscardHandler)
	nc, err := bus.Connect(ctx, *natsURL, bus.ConnectOptions{Name: "vigil rules backtest", CredsFile: *natsCreds, Logger: quiet})
	if err != nil {
		return fail(stderr, fmt.Errorf("connect to NATS: %w", err), "start 'vigil dev' or pass --nats")
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fail(stderr, fmt.Errorf("open jetstream: %w", err), "")
	}
	src, err := evaluator.NewStreamSource(ctx, js, sinceT.Add(-*windowD))
	if err != nil {
		return fail(stderr, err, "start 'vigil dev' or pass --nats")
	}

	var bar *progressbar.ProgressBar
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		bar = progressbar.NewOptions64(-1, progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("backtest"), progressbar.OptionShowCount(), progressbar.OptionThrottle(100*time.Millisecond))
	}
	var pending []vigil.Verdict
	flush := func() error {
		err := warehouse.InsertBacktestVerdicts(ctx, ch, *runID, pending)
		pending = pending[:0]
		return err
	}
	cfg := evaluator.BacktestConfig{Since: sinceT, Until: untilT, Tenant: *tenant}
	st, err := evaluator.Backtest(ctx, src, set, cfg, func(r evaluator.BacktestResult) error {
		if bar != nil {
			_ = bar.Add(1)
		}
		pending = append(pending, r.Verdicts...)
		if len(pending) >= backtestFlushRows {
			return flush()
		}
		return nil
	}, evaluator.WithWindow(*windowN, *windowD), evaluator.WithLogger(quiet))
	if err == nil {
		err = flush()
	}
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return fail(stderr, err, "")
	}
	diff, err := warehouse.BacktestDiff(ctx, ch, *runID, *tenant, sinceT, untilT)
	if err != nil {
		return fail(stderr, err, "")
	}
	rep := backtestReport{
		RunID: *runID, RulesetVersion: set.Version(), Since: sinceT, Until: untilT, Tenant: *tenant,
		Messages: st.Evaluated, Verdicts: st.Verdicts, RuleErrors: st.RuleErrors, Rules: diff,
	}
	if rep.Rules == nil {
		rep.Rules = []warehouse.RuleDiff{}
	}
	if *asJSON {
		if err := printJSON(stdout, rep); err != nil {
			return fail(stderr, fmt.Errorf("write result: %w", err), "")
		}
		return exitOK
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tPRODUCTION\tBACKTEST\tNEW\tREMOVED")
	for _, d := range rep.Rules {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\n", d.RuleID, d.Production, d.Backtest, d.New, d.Removed)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\n%s evaluated, %s (run %s, ruleset %s)\n", plural(rep.Messages, "message"), plural(rep.Verdicts, "verdict"), rep.RunID, rep.RulesetVersion)
	if rep.RuleErrors > 0 {
		fmt.Fprintf(stderr, "WARNING: rules failed on %s\n", plural(rep.RuleErrors, "message"))
	}
	return exitOK
}

// newRunID returns bt-<UTC time>-<4 random bytes in hex>.
func newRunID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "bt-" + time.Now().UTC().Format("20060102T150405Z") + "-" + hex.EncodeToString(b[:])
}
