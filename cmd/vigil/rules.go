package main

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/vigilhq/vigil/rules"
)

const rulesUsage = `
Lint, test and explain Vigil rule files.

Usage:
  vigil rules lint [--lint-fatal] DIR...
  vigil rules test [--run REGEX] [--junit FILE] [--json] DIR...
  vigil rules explain --rules DIR --message FILE|- [--all]

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

Exit codes:
  0  success
  1  a file failed to compile or an inline test failed
  2  usage error
  3  lint findings under --lint-fatal
`

// runRules dispatches `vigil rules <lint|test|explain>`.
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
