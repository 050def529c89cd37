package bench

import (
	"strings"
	"testing"
	"time"
)

func TestNum(t *testing.T) {
	tests := []struct {
		in   float64
		want string
	}{
		{0, "0"}, {999, "999"}, {1000, "1,000"}, {23432.4, "23,432"}, {1234567, "1,234,567"}, {-1500, "-1,500"},
	}
	for _, tc := range tests {
		if got := num(tc.in); got != tc.want {
			t.Errorf("num(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestWriteMarkdownGoals(t *testing.T) {
	phase := &Phase{Share: 0.5, TargetRate: 500, Result: &Result{Rate: 500,
		AckLatency:     LatencySummary{Count: 10, P50: time.Millisecond, P99: 4 * time.Millisecond},
		VerdictLatency: &LatencySummary{Count: 5, P50: 10 * time.Millisecond, P99: 80 * time.Millisecond}}}
	rep := &E2EReport{
		Machine: Machine{CPUs: 2, CPUModel: "test CPU"}, Commit: "abc1234", Command: "vigil bench",
		Runs: []E2ERun{{
			SyncInterval: "always",
			Baseline:     &BaselineResult{Rate: 2000, CPUSecondsPerMsg: 100e-6},
			Ramp: &RampResult{MaxTarget: 1000, MaxRate: 990,
				Steps: []RampStep{{TargetRate: 1000, AckedRate: 995, EvaluatedRate: 990, Sustained: true, CPUSecondsPerMsg: 1e-3}}},
			Rate: 990, Ratio: 0.495, Phases: []*Phase{phase},
		}},
	}
	var b strings.Builder
	if err := WriteMarkdown(&b, rep); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{
		"## sync_interval always (compliance default)",
		"baseline: bare JetStream 2,000 msgs/s",
		"e2e: 990 msgs/s sustained (target 1,000); ratio e2e / baseline: 0.49x",
		"CPU cost: baseline 100.0 µs/msg, e2e 1000 µs/msg at the max step (10×)",
		"- e2e rate: 990 msgs/s, goal ≥ 50,000 msgs/s — **missed**",
		"- e2e / baseline: 0.49x, goal ≥ 0.35x — met",
		"- ack p99 at 50 %: 4.00 ms, goal ≤ 5 ms — met",
		"- ack→verdict p99 at 50 %: 80 ms, goal ≤ 50 ms — **missed** (1.6× the goal)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q:\n%s", want, got)
		}
	}
}
