package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var updateRules = flag.Bool("update-rules", false, "rewrite the golden outputs in rules/testdata/cli/golden")

// runRulesCLI runs `vigil rules args...` in-process from the repository
// root, so file names in the output read as a user types them.
func runRulesCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), append([]string{"rules"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

// TestRulesCLI tables fixtures against exit codes and golden outputs, as
// promtool's TestRulesUnitTest does.
func TestRulesCLI(t *testing.T) {
	t.Chdir("../..")
	tests := []struct {
		name     string
		args     []string
		wantCode int
	}{
		{"test_packs", []string{"test", "rules/packs/..."}, exitOK},
		{"test_good", []string{"test", "rules/testdata/cli/good"}, exitOK},
		{"test_failing", []string{"test", "rules/testdata/cli/failing"}, exitFailure},
		{"test_compile_errors", []string{"test", "rules/testdata/cli/compile"}, exitFailure},
		{"test_run_filter", []string{"test", "--run", `threat\.`, "rules/packs/finance"}, exitOK},
		{"test_run_filter_failing_skipped", []string{"test", "--run", "promise fires", "rules/testdata/cli/failing"}, exitOK},
		{"test_json_failing", []string{"test", "--json", "rules/testdata/cli/failing"}, exitFailure},
		{"explain_tier2", []string{"explain", "--rules", "rules/packs/finance", "--message", "rules/testdata/cli/explain/tier2.yaml"}, exitOK},
		{"lint_findings", []string{"lint", "rules/testdata/cli/lint"}, exitOK},
		{"lint_fatal", []string{"lint", "--lint-fatal", "rules/testdata/cli/lint"}, exitLint},
		{"lint_packs_fatal", []string{"lint", "--lint-fatal", "rules/packs/..."}, exitOK},
		{"lint_compile_errors", []string{"lint", "rules/testdata/cli/compile/broken.yaml"}, exitFailure},
		{"explain_threat", []string{"explain", "--rules", "rules/packs/finance", "--message", "rules/testdata/cli/explain/threat.yaml"}, exitOK},
		{"explain_banter", []string{"explain", "--rules", "rules/packs/finance", "--message", "rules/testdata/cli/explain/banter.yaml"}, exitOK},
		{"usage_no_subcommand", nil, exitUsage},
		{"usage_unknown_subcommand", []string{"check"}, exitUsage},
		{"usage_no_dirs", []string{"test"}, exitUsage},
		{"usage_bad_run", []string{"test", "--run", "(", "rules/packs/..."}, exitUsage},
		{"usage_explain_without_message", []string{"explain", "--rules", "rules/packs/finance"}, exitUsage},
		{"missing_dir", []string{"test", "rules/testdata/cli/nope"}, exitFailure},
		{"help", []string{"--help"}, exitOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runRulesCLI(t, tc.args...)
			if code != tc.wantCode {
				t.Errorf("vigil rules %s = exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(tc.args, " "), code, tc.wantCode, stdout, stderr)
			}
			rulesGolden(t, tc.name+".stdout", stdout)
			rulesGolden(t, tc.name+".stderr", stderr)
		})
	}
}

func rulesGolden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join("rules", "testdata", "cli", "golden", name)
	if *updateRules {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -run TestRulesCLI -update-rules)", err)
	}
	if string(want) != got {
		t.Errorf("%s differs (-want +got):\n-%s\n+%s", name, want, got)
	}
}

func TestRulesCLIJUnit(t *testing.T) {
	t.Chdir("../..")
	out := filepath.Join(t.TempDir(), "junit.xml")
	code, _, _ := runRulesCLI(t, "test", "--junit", out, "rules/testdata/cli/failing", "rules/testdata/cli/good", "rules/testdata/cli/compile/syntax.yaml")
	if code != exitFailure {
		t.Fatalf("exit %d, want %d", code, exitFailure)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Suites []struct {
			Name     string `xml:"name,attr"`
			Tests    int    `xml:"tests,attr"`
			Failures int    `xml:"failures,attr"`
		} `xml:"testsuite"`
	}
	if err := xml.Unmarshal(b, &rep); err != nil {
		t.Fatalf("junit output is not XML: %v", err)
	}
	got := map[string][2]int{}
	for _, s := range rep.Suites {
		got[s.Name] = [2]int{s.Tests, s.Failures}
	}
	want := map[string][2]int{
		"rules/testdata/cli/compile/syntax.yaml":  {1, 1},
		"rules/testdata/cli/failing/failing.yaml": {2, 1},
		"rules/testdata/cli/good/greetings.yaml":  {3, 0},
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("suite %s = %v tests/failures, want %v", k, got[k], v)
		}
	}
}

// TestRulesCLIExplainStdin reads the message from stdin (--message -).
func TestRulesCLIExplainStdin(t *testing.T) {
	t.Chdir("../..")
	cmd := exec.Command(os.Args[0], "rules", "explain", "--rules", "rules/packs/finance/...", "--message", "-")
	cmd.Env = append(os.Environ(), "VIGIL_TEST_MAIN=1")
	cmd.Stdin = strings.NewReader(`{"message": {"text": "guaranteed returns, you can't lose", "role": "advisor"}}`)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	if code := cmd.ProcessState.ExitCode(); code != exitOK {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "finance.promissory.guarantee (tier 1, flag, high): FIRED") ||
		!strings.Contains(out.String(), `matched: "guaranteed returns" at 0:18`) {
		t.Errorf("explain output lacks the fired guarantee rule and its span:\n%s", out.String())
	}
}

// TestRulesCLIExitCodeReexec runs the real binary on the failing fixture:
// the process exit code, not just run's return value, is 1.
func TestRulesCLIExitCodeReexec(t *testing.T) {
	t.Chdir("../..")
	for _, tc := range []struct {
		dir  string
		want int
	}{{"rules/testdata/cli/failing", 1}, {"rules/packs/...", 0}} {
		cmd := exec.Command(os.Args[0], "rules", "test", tc.dir)
		cmd.Env = append(os.Environ(), "VIGIL_TEST_MAIN=1")
		var errOut bytes.Buffer
		cmd.Stderr = &errOut
		_ = cmd.Run()
		if code := cmd.ProcessState.ExitCode(); code != tc.want {
			t.Errorf("vigil rules test %s: exit %d, want %d; stderr:\n%s", tc.dir, code, tc.want, errOut.String())
		}
	}
}
