package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestBenchQuick runs the smoke version of `vigil bench` in a child
// process and checks the report's shape, not its numbers.
func TestBenchQuick(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the embedded engines and runs load")
	}
	out := filepath.Join(t.TempDir(), "e2e.md")
	p := startVigil(t, "bench", "--quick", "--out", out)
	if code := p.wait(t, 3*time.Minute); code != exitOK {
		t.Fatalf("vigil bench --quick exited %d, want 0:\n%s", code, p.output())
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	report := string(b)
	for _, re := range []string{
		`(?m)^- \*\*Machine\*\*: \d+ CPUs, `,
		`(?m)^- \*\*Commit\*\*: `,
		"(?m)^- \\*\\*Command\\*\\*: `vigil bench --quick --out ",
		`(?m)^## sync_interval always \(compliance default\)$`,
		`(?m)^baseline: bare JetStream [\d,]+ msgs/s`,
		`(?m)^e2e: [\d,]+ msgs/s sustained \(target [\d,]+\); ratio e2e / baseline: \d+\.\d\dx$`,
		`(?m)^\| 50 % \| `,
		`(?m)^- ack p99 at 50 %: `,
	} {
		if !regexp.MustCompile(re).MatchString(report) {
			t.Errorf("report has no line matching %s:\n%s", re, report)
		}
	}
	if strings.Contains(report, "Run stopped early") {
		t.Errorf("report says the run stopped early:\n%s", report)
	}
}

func TestBenchFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    int
		wantErr string
	}{
		{"bad transport", []string{"--transport", "nats"}, exitUsage, "Error: --transport: want http or ws"},
		{"bad sync interval", []string{"--sync-interval", "always,soon"}, exitUsage, "Error: --sync-interval:"},
		{"zero duration", []string{"--duration", "0s"}, exitUsage, "must be positive"},
		{"argument", []string{"now"}, exitUsage, `unexpected argument "now"`},
		{"out dir missing", []string{"--out", "/nonexistent/dir/e2e.md"}, exitUsage, "Error: --out: directory /nonexistent/dir does not exist"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			got := run(context.Background(), append([]string{"bench"}, tc.args...), &stdout, &stderr)
			if got != tc.want || !strings.Contains(stderr.String(), tc.wantErr) {
				t.Errorf("vigil bench %v = %d, stderr %q; want %d and %q", tc.args, got, stderr.String(), tc.want, tc.wantErr)
			}
		})
	}
}
