package main

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/rules"
)

// TestRulesBacktestCLI runs `vigil rules backtest` against a `vigil dev`
// whose production verdicts come from the built-in packs: the finance
// pack without guarantees.yaml and with a lunch rule loses the promissory
// verdict and gains a lunch verdict, and production verdicts stay as they
// were.
func TestRulesBacktestCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded engines")
	}
	p := startVigil(t, "dev", "--data", t.TempDir(), "--http", "127.0.0.1:0", "--nats-port", "-1", "--clickhouse-http", "127.0.0.1:0")
	m := p.waitLine(t, startedRE, 3*time.Minute)
	httpAddr, natsURL, chURL := m[1], m[2], m[3]

	post := func(conv, role, at, text string) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{
			"tenant": "acme", "conversation_id": conv, "sent_at": at,
			"sender": map[string]string{"id": "u-" + conv, "role": role}, "text": text,
		})
		resp, err := http.Post("http://"+httpAddr+"/v1/messages", "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST /v1/messages = %d %s, want 202", resp.StatusCode, b)
		}
	}
	post("c-promise", "advisor", "2026-12-04T10:00:00Z", "this fund has guaranteed returns")
	post("c-threat", "customer", "2026-12-04T10:00:01Z", "I'm going to kill you")
	post("c-game", "staff", "2026-12-04T10:00:02Z", "did you beat the boss on level 4?")
	post("c-game", "staff", "2026-12-04T10:00:03Z", "I'm going to kill you")
	post("c-lunch", "staff", "2026-12-04T10:00:04Z", "lunch at noon?")
	post("c-late", "staff", "2026-12-04T12:00:00Z", "lunch tomorrow?") // after --until
	deadline := time.Now().Add(30 * time.Second)
	// The sink writes evaluations and verdicts from separate streams: wait
	// for both.
	for chInt(t, chURL, "SELECT count() FROM vigil.evaluations FINAL") < 6 ||
		chInt(t, chURL, "SELECT uniqExact(rule_id) FROM vigil.verdicts FINAL WHERE rule_id IN ('finance.promissory.guarantee', 'finance.threat.violence')") < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("messages not evaluated after 30s:\n%s", p.output())
		}
		time.Sleep(200 * time.Millisecond)
	}
	const countVerdicts = "SELECT count() FROM vigil.verdicts"
	before := chQuery(t, chURL, "SELECT rule_id, message_id FROM vigil.verdicts FINAL ORDER BY rule_id")
	if !strings.Contains(before, "finance.promissory.guarantee") || !strings.Contains(before, "finance.threat.violence") {
		t.Fatalf("production verdicts = %q, want the promissory and threat verdicts", before)
	}
	nBefore := chInt(t, chURL, countVerdicts)

	// The changed ruleset: finance without guarantees, plus a lunch rule.
	dir := t.TempDir()
	sub, err := fs.Sub(rules.Packs(), "finance")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(dir, sub); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "guarantees.yaml")); err != nil {
		t.Fatal(err)
	}
	lunch := "rules:\n  - id: custom.lunch\n    description: Lunch plans.\n    severity: low\n    tier: 1\n    action: flag\n" +
		"    when:\n      keywords: [lunch]\n    expr: contains_any(msg.text, [\"lunch\"])\n"
	if err := os.WriteFile(filepath.Join(dir, "lunch.yaml"), []byte(lunch), 0o644); err != nil {
		t.Fatal(err)
	}

	backtest := func(args ...string) (int, string, string) {
		t.Helper()
		cmd := exec.Command(os.Args[0], append([]string{"rules", "backtest", dir,
			"--since", "2026-12-04T09:00:00Z", "--until", "2026-12-04T11:00:00Z",
			"--nats", natsURL, "--clickhouse", chURL + "/vigil"}, args...)...)
		cmd.Env = append(os.Environ(), "VIGIL_TEST_MAIN=1")
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		_ = cmd.Run()
		return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
	}
	code, out, errOut := backtest("--run-id", "bt-test-1", "--tenant", "acme")
	if code != exitOK {
		t.Fatalf("vigil rules backtest exit %d, want 0; stderr:\n%s", code, errOut)
	}
	files, err := rules.ReadFiles(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	want := `RULE                          PRODUCTION  BACKTEST  NEW  REMOVED
custom.lunch                  0           1         1    0
finance.promissory.guarantee  1           0         0    1
finance.threat.violence       1           1         0    0

5 messages evaluated, 2 verdicts (run bt-test-1, ruleset ` + rules.Version(files) + ")\n"
	if out != want {
		t.Errorf("stdout:\n%s\nwant:\n%s\nstderr:\n%s", out, want, errOut)
	}
	if errOut != "" {
		t.Errorf("stderr = %q, want nothing (not a terminal)", errOut)
	}
	if got := chInt(t, chURL, "SELECT count() FROM vigil.backtest_verdicts FINAL WHERE run_id = 'bt-test-1'"); got != 2 {
		t.Errorf("backtest_verdicts of the run = %d, want 2", got)
	}

	// --json, and another tenant sees nothing.
	code, out, errOut = backtest("--json", "--tenant", "globex")
	if code != exitOK {
		t.Fatalf("vigil rules backtest --json exit %d; stderr:\n%s", code, errOut)
	}
	var rep backtestReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json output %q: %v", out, err)
	}
	if !strings.HasPrefix(rep.RunID, "bt-") || rep.Messages != 0 || len(rep.Rules) != 0 {
		t.Errorf("--json for another tenant = %+v, want a generated run id and nothing evaluated", rep)
	}

	// Production verdicts are untouched.
	if after := chQuery(t, chURL, "SELECT rule_id, message_id FROM vigil.verdicts FINAL ORDER BY rule_id"); after != before {
		t.Errorf("production verdicts changed:\nbefore %q\nafter  %q", before, after)
	}
	if n := chInt(t, chURL, countVerdicts); n != nBefore {
		t.Errorf("verdicts rows = %d after the backtest, want %d", n, nBefore)
	}

	// Usage errors.
	for _, args := range [][]string{
		{"rules", "backtest", dir},
		{"rules", "backtest", "--since", "2026-12-04"},
		{"rules", "backtest", dir, "--since", "yesterday"},
		{"rules", "backtest", dir, "--since", "2026-12-05", "--until", "2026-12-04"},
	} {
		var buf bytes.Buffer
		if code := run(t.Context(), args, &buf, &buf); code != exitUsage {
			t.Errorf("vigil %q = %d, want %d\n%s", args, code, exitUsage, buf.String())
		}
	}
}
