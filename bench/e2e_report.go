package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Goals of the end-to-end benchmark (issue 6), reported against.
const (
	// GoalRate is the end-to-end rate goal on 2 cores, msgs/s.
	GoalRate = 50000
	// GoalRatio is the goal for end-to-end over bare JetStream.
	GoalRatio = 0.35
	// GoalAckP99 is the ack latency p99 goal at half the maximum rate.
	GoalAckP99 = 5 * time.Millisecond
	// GoalVerdictP99 is the ack→verdict p99 goal at half the maximum rate.
	GoalVerdictP99 = 50 * time.Millisecond
)

// Machine describes where a benchmark ran.
type Machine struct {
	CPUs     int    `json:"cpus"`
	CPUModel string `json:"cpu_model"`
	// LoadAvg is /proc/loadavg at the start and the end of the run: the
	// machine is shared, so it says how much CPU others used.
	LoadStart string `json:"load_start"`
	LoadEnd   string `json:"load_end"`
	GoVersion string `json:"go_version"`
}

// E2EReport is the whole `vigil bench` result.
type E2EReport struct {
	Machine   Machine   `json:"machine"`
	Date      time.Time `json:"date"`
	Commit    string    `json:"commit"`
	Command   string    `json:"command"`
	Transport Transport `json:"transport"`
	Sessions  int       `json:"sessions"`
	Batch     int       `json:"batch"`
	// PhaseSeconds is the duration of each latency phase.
	PhaseSeconds float64 `json:"phase_seconds"`
	// StepSeconds is the duration of each ramp step.
	StepSeconds    float64  `json:"step_seconds"`
	Runs           []E2ERun `json:"runs"`
	ElapsedSeconds float64  `json:"elapsed_seconds"`
}

// E2ERun is the benchmark for one fsync policy.
type E2ERun struct {
	SyncInterval string `json:"sync_interval"`
	// Fsync is the write+fsync latency of the data directory's disk.
	Fsync    *LatencySummary `json:"fsync,omitempty"`
	Baseline *BaselineResult `json:"baseline,omitempty"`
	Ramp     *RampResult     `json:"ramp,omitempty"`
	// Rate is the maximum sustained end-to-end rate; Ratio is Rate over
	// the baseline's rate.
	Rate   float64  `json:"rate"`
	Ratio  float64  `json:"ratio"`
	Phases []*Phase `json:"phases,omitempty"`
	// ProfileTop is the top of the CPU profile taken during ProfilePhase;
	// ProfileFile where the profile was written ("" when not kept).
	ProfileShare float64 `json:"profile_share,omitempty"`
	ProfileTop   string  `json:"profile_top,omitempty"`
	ProfileFile  string  `json:"profile_file,omitempty"`
	// Error says why the run stopped early.
	Error string `json:"error,omitempty"`
}

// Phase returns the phase at share, or nil.
func (r *E2ERun) Phase(share float64) *Phase {
	for _, p := range r.Phases {
		if p.Share == share {
			return p
		}
	}
	return nil
}

// WriteMarkdown writes rep as the Markdown report bench/results/e2e.md.
func WriteMarkdown(w io.Writer, rep *E2EReport) error {
	var b strings.Builder
	m := rep.Machine
	fmt.Fprintf(&b, "# vigil bench: end to end vs bare JetStream\n\n")
	fmt.Fprintf(&b, "- **Machine**: %d CPUs, %s, %s; load average at start %s, at end %s (shared machine)\n",
		m.CPUs, m.CPUModel, m.GoVersion, m.LoadStart, m.LoadEnd)
	fmt.Fprintf(&b, "- **Date**: %s\n", rep.Date.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- **Commit**: `%s`\n", rep.Commit)
	fmt.Fprintf(&b, "- **Command**: `%s` (%.0f s in all)\n", rep.Command, rep.ElapsedSeconds)
	fmt.Fprintf(&b, "- **Load**: %s transport, %d message(s) per request, paced by a token bucket over %d sessions "+
		"with one request in flight each (open loop until %d requests are outstanding, then the acked rate falls "+
		"behind the target); ramp steps of %.0f s, latency phases of %.0f s\n\n",
		rep.Transport, rep.Batch, rep.Sessions, rep.Sessions, rep.StepSeconds, rep.PhaseSeconds)
	b.WriteString(`Everything runs in one process: embedded NATS (file store), embedded ClickHouse
(chDB), ingest, PII tokenizer and vault, evaluator with the built-in packs, the
warehouse sink and review, and the load generator itself, all on the same cores.

- **Baseline**: bare JetStream on its own embedded server with the same fsync policy:
  generated messages (ingest JSON, same size distribution), async publish with a unique
  ` + "`Nats-Msg-Id`" + `, concurrently consumed by a durable pull consumer (` + "`Fetch(1000)`" + `,
  explicit ack), client over loopback TCP. Rate = consumed msgs/s.
- **End to end**: ingest → PII → MESSAGES → finance/healthcare packs → VERDICTS and
  EVALUATIONS → ClickHouse. **Sustained** = ≥ 90 % of the target rate acked, no failures,
  the evaluator (records on EVALUATIONS) within 1 % of everything acked 2 s after the
  step's last ack, and the sink (rows in ` + "`vigil.evaluations`" + `) within 1 % 5 s after.
  The e2e rate is the best sustained step's evaluated rate (its messages over first send
  → evaluator caught up).
- **Latency**: open-loop phases at 25/50/90 % of the max rate. Ack = request sent → ack
  (per request); ack→verdict = ack → first verdict pushed for that message (WebSocket
  only; only rule-worthy messages get verdicts, so these phases raise the rule-worthy
  share from 2 % to 20 % to get a sample; the ramp uses the default mix).

`)
	for i := range rep.Runs {
		writeRun(&b, &rep.Runs[i], rep.Machine.CPUs)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeRun(b *strings.Builder, r *E2ERun, cpus int) {
	label := "sync_interval " + r.SyncInterval
	if r.SyncInterval == "always" {
		label += " (compliance default)"
	} else {
		label += " (relaxed: a power loss can lose acked messages)"
	}
	fmt.Fprintf(b, "## %s\n\n", label)
	if r.Error != "" {
		fmt.Fprintf(b, "**Run stopped early**: %s\n\n", r.Error)
	}
	if f := r.Fsync; f != nil {
		fmt.Fprintf(b, "disk: 512 B write + fsync on the data directory p50 %s, p99 %s, max %s (%d probes)\n\n",
			ms(f.P50), ms(f.P99), ms(f.Max), f.Count)
	}
	if bl := r.Baseline; bl != nil {
		fmt.Fprintf(b, "baseline: bare JetStream %s msgs/s (publish %s msgs/s, %d msgs of %.0f B mean, %.1f µs CPU/msg)\n\n",
			num(bl.Rate), num(bl.PublishRate), bl.Consumed, bl.MeanBytes, bl.CPUSecondsPerMsg*1e6)
	}
	if rp := r.Ramp; rp != nil {
		b.WriteString("| target msgs/s | acked msgs/s | evaluated msgs/s | eval lag | sink lag | ack p50 / p99 | CPU µs/msg | process CPU | sustained |\n")
		b.WriteString("| ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |\n")
		for _, s := range rp.Steps {
			ok := "yes"
			if !s.Sustained {
				ok = "no: " + s.Reason
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s / %s | %.0f | %.2f cores | %s |\n",
				num(s.TargetRate), num(s.AckedRate), num(s.EvaluatedRate), lag(s.EvalLagSeconds), lag(s.SinkLagSeconds),
				ms(s.AckLatency.P50), ms(s.AckLatency.P99), s.CPUSecondsPerMsg*1e6, s.CPUSecondsPerMsg*s.AckedRate, ok)
		}
		b.WriteString("\n")
	}
	if r.Baseline != nil && r.Ramp != nil {
		fmt.Fprintf(b, "e2e: %s msgs/s sustained (target %s); ratio e2e / baseline: %.2fx\n\n",
			num(r.Rate), num(r.Ramp.MaxTarget), r.Ratio)
		for _, s := range r.Ramp.Steps {
			if s.TargetRate != r.Ramp.MaxTarget || s.CPUSecondsPerMsg == 0 || r.Baseline.CPUSecondsPerMsg == 0 {
				continue
			}
			// On a shared machine the wall-clock rates depend on what the
			// neighbours run; CPU per message does not (much).
			bc, ec := r.Baseline.CPUSecondsPerMsg, s.CPUSecondsPerMsg
			fmt.Fprintf(b, "CPU cost: baseline %.1f µs/msg, e2e %.0f µs/msg at the max step (%.0f×); "+
				"CPU-bound ceiling on %d idle cores: baseline ~%s, e2e ~%s msgs/s (ratio %.3fx)\n\n",
				bc*1e6, ec*1e6, ec/bc, cpus, num(float64(cpus)/bc), num(float64(cpus)/ec), bc/ec)
			break
		}
	}
	if len(r.Phases) > 0 {
		b.WriteString("| share of max | target msgs/s | acked msgs/s | ack p50 / p99 / p99.9 | ack→verdict p50 / p99 / p99.9 (n) | CPU µs/msg | process CPU |\n")
		b.WriteString("| ---: | ---: | ---: | --- | --- | ---: | ---: |\n")
		for _, p := range r.Phases {
			a := p.Result.AckLatency
			v := "n/a (HTTP)"
			if vl := p.Result.VerdictLatency; vl != nil {
				v = fmt.Sprintf("%s / %s / %s (%d)", ms(vl.P50), ms(vl.P99), ms(vl.P999), vl.Count)
			}
			fmt.Fprintf(b, "| %.0f %% | %s | %s | %s / %s / %s | %s | %.0f | %.2f cores |\n",
				100*p.Share, num(p.TargetRate), num(p.Result.Rate), ms(a.P50), ms(a.P99), ms(a.P999), v,
				p.CPUSecondsPerMsg*1e6, p.CPUSecondsPerMsg*p.Result.Rate)
		}
		b.WriteString("\n")
	}
	writeGoals(b, r)
	if r.ProfileTop != "" {
		fmt.Fprintf(b, "CPU profile of the whole process during the %.0f %% phase", 100*r.ProfileShare)
		if r.ProfileFile != "" {
			fmt.Fprintf(b, " (`%s`)", r.ProfileFile)
		}
		b.WriteString(", top 20 by flat time, then by cumulative time:\n\n```\n")
		b.WriteString(strings.TrimRight(r.ProfileTop, "\n"))
		b.WriteString("\n```\n\n")
	}
}

func writeGoals(b *strings.Builder, r *E2ERun) {
	if r.Ramp == nil {
		return
	}
	b.WriteString("Goals:\n\n")
	goal := func(name string, met bool, got, want string, by string) {
		s := "met"
		if !met {
			s = "**missed** (" + by + ")"
		}
		fmt.Fprintf(b, "- %s: %s, goal %s — %s\n", name, got, want, s)
	}
	goal("e2e rate", r.Rate >= GoalRate, num(r.Rate)+" msgs/s", "≥ 50,000 msgs/s",
		fmt.Sprintf("%.1f%% of goal, %.0f× short", 100*r.Rate/GoalRate, GoalRate/max(r.Rate, 1)))
	goal("e2e / baseline", r.Ratio >= GoalRatio, fmt.Sprintf("%.2fx", r.Ratio), "≥ 0.35x",
		fmt.Sprintf("%.2fx below", GoalRatio-r.Ratio))
	if p := r.Phase(0.5); p != nil {
		a := p.Result.AckLatency.P99
		goal("ack p99 at 50 %", a <= GoalAckP99, ms(a), "≤ 5 ms", fmt.Sprintf("%.1f× the goal", float64(a)/float64(GoalAckP99)))
		if vl := p.Result.VerdictLatency; vl != nil && vl.Count > 0 {
			goal("ack→verdict p99 at 50 %", vl.P99 <= GoalVerdictP99, ms(vl.P99), "≤ 50 ms",
				fmt.Sprintf("%.1f× the goal", float64(vl.P99)/float64(GoalVerdictP99)))
		} else {
			b.WriteString("- ack→verdict p99 at 50 %: not measured (no verdicts; use --transport ws)\n")
		}
	}
	b.WriteString("\n")
}

// num formats a rate with thousands separators.
func num(f float64) string {
	s := fmt.Sprintf("%.0f", f)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []byte
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	if neg {
		return "-" + string(out)
	}
	return string(out)
}

func ms(d time.Duration) string {
	switch {
	case d == 0:
		return "–"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond))
	}
}

func lag(s float64) string {
	if s < 0 {
		return "not caught up"
	}
	return fmt.Sprintf("%.2f s", s)
}
