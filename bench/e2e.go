package bench

import (
	"context"
	"fmt"
	"time"
)

// Defaults of [RampConfig].
const (
	// DefaultRampStart is the first rate tried, in messages per second.
	DefaultRampStart = 250
	// DefaultRampFactor multiplies the rate from one step to the next.
	DefaultRampFactor = 1.5
	// DefaultRampSteps bounds the number of steps (bisection included).
	DefaultRampSteps = 10
	// DefaultRampStep is the sending time of one step.
	DefaultRampStep = 5 * time.Second
	// DefaultEvalGrace is how long after a step's last ack the evaluator
	// may take to drain for the step to count as sustained.
	DefaultEvalGrace = 2 * time.Second
	// DefaultSinkGrace is the same for the warehouse sink, which batches
	// for up to a second.
	DefaultSinkGrace = 5 * time.Second
	// DefaultAckedShare is the share of the target rate that must be acked.
	DefaultAckedShare = 0.9
	// DefaultBacklogShare is the share of a step's messages that may still
	// be unevaluated (or unsunk) once the grace has passed.
	DefaultBacklogShare = 0.01
)

// minRampRate is the lowest rate a ramp steps down to.
const minRampRate = 10

// bisectGap ends the bisection when the first failing rate is within 20 %
// of the last sustained one.
const bisectGap = 1.2

// Counts is the pipeline's progress as [ProgressFunc] reads it: messages
// evaluated (records on the EVALUATIONS stream) and evaluations written to
// the warehouse.
type Counts struct {
	Evaluated int64 `json:"evaluated"`
	Sunk      int64 `json:"sunk"`
}

// ProgressFunc reads the pipeline's counts.
type ProgressFunc func(ctx context.Context) (Counts, error)

// RampConfig configures [Ramp].
type RampConfig struct {
	// Run is the template of every step: Target, Transport, Sessions,
	// Batch… Rate and Duration are set per step; Count must be 0.
	Run RunConfig
	// Progress reads the pipeline's counts. Required.
	Progress ProgressFunc
	// Start, Factor, Steps and Step shape the ramp. Defaults
	// [DefaultRampStart], [DefaultRampFactor], [DefaultRampSteps],
	// [DefaultRampStep].
	Start  float64
	Factor float64
	Steps  int
	Step   time.Duration
	// EvalGrace and SinkGrace: defaults [DefaultEvalGrace] and
	// [DefaultSinkGrace].
	EvalGrace time.Duration
	SinkGrace time.Duration
}

// RampStep is one step of a ramp.
type RampStep struct {
	TargetRate float64 `json:"target_rate"`
	// AckedRate is acked messages per second of sending.
	AckedRate float64 `json:"acked_rate"`
	Acked     int64   `json:"acked"`
	Failed    int64   `json:"failed"`
	// EvaluatedRate is the step's messages over the time from its first
	// send until the evaluator had drained them (or the grace ended).
	EvaluatedRate float64 `json:"evaluated_rate"`
	// EvalLag and SinkLag are how long after the last ack the evaluator
	// and the sink had caught up; -1 when they had not within the grace.
	EvalLagSeconds float64 `json:"eval_lag_seconds"`
	SinkLagSeconds float64 `json:"sink_lag_seconds"`
	// EvalBacklog and SinkBacklog are what was left when the grace ended.
	EvalBacklog int64          `json:"eval_backlog"`
	SinkBacklog int64          `json:"sink_backlog"`
	AckLatency  LatencySummary `json:"ack_latency"`
	// Sustained reports whether the step met every criterion; Reason says
	// which one failed.
	Sustained bool   `json:"sustained"`
	Reason    string `json:"reason,omitempty"`
	// CPUSecondsPerMsg is process CPU time per acked message.
	CPUSecondsPerMsg float64 `json:"cpu_seconds_per_msg"`
}

// RampResult is what [Ramp] found.
type RampResult struct {
	Steps []RampStep `json:"steps"`
	// MaxTarget is the highest sustained target rate; MaxRate that step's
	// evaluated rate (the end-to-end figure). Both 0 when no step held.
	MaxTarget float64 `json:"max_target"`
	MaxRate   float64 `json:"max_rate"`
}

// Ramp finds the highest sustained end-to-end rate. It runs open-loop
// steps at rising target rates (Start, Start×Factor, …); when the first
// step does not hold it steps down by Factor² until one does; then it
// bisects between the last good and the last bad rate until the two are
// within 20 %. A step is sustained when at least 90 % of its target rate
// was acked with no failures, and the evaluator (within EvalGrace) and the
// sink (within SinkGrace) had processed all but 1 % of everything acked so
// far. After a step that does not hold, Ramp waits for the pipeline to
// drain before the next one.
func Ramp(ctx context.Context, cfg RampConfig) (*RampResult, error) {
	if cfg.Progress == nil || cfg.Run.Count != 0 {
		return nil, fmt.Errorf("%w: ramp needs a progress reader and no count", ErrInvalidConfig)
	}
	if cfg.Start <= 0 {
		cfg.Start = DefaultRampStart
	}
	if cfg.Factor <= 1 {
		cfg.Factor = DefaultRampFactor
	}
	if cfg.Steps <= 0 {
		cfg.Steps = DefaultRampSteps
	}
	if cfg.Step <= 0 {
		cfg.Step = DefaultRampStep
	}
	if cfg.EvalGrace <= 0 {
		cfg.EvalGrace = DefaultEvalGrace
	}
	if cfg.SinkGrace <= 0 {
		cfg.SinkGrace = DefaultSinkGrace
	}
	base, err := cfg.Progress(ctx)
	if err != nil {
		return nil, fmt.Errorf("read pipeline progress: %w", err)
	}
	res := &RampResult{}
	var acked int64 // acked by this ramp so far
	good, bad := 0.0, 0.0
	rate := cfg.Start
	for i := 0; i < cfg.Steps && ctx.Err() == nil; i++ {
		st, n, err := rampStep(ctx, cfg, rate, base, acked)
		if err != nil {
			return res, err
		}
		acked += n
		res.Steps = append(res.Steps, st)
		if st.Sustained {
			good = rate
			if st.EvaluatedRate > res.MaxRate {
				res.MaxTarget, res.MaxRate = rate, st.EvaluatedRate
			}
		} else {
			bad = rate
			// Let the backlog drain before another step.
			if err := WaitDrained(ctx, cfg.Progress, base.Evaluated+acked, base.Sunk+acked, 60*time.Second); err != nil {
				return res, err
			}
			acked = 0
			if base, err = cfg.Progress(ctx); err != nil {
				return res, fmt.Errorf("read pipeline progress: %w", err)
			}
		}
		switch {
		case bad == 0:
			rate *= cfg.Factor
		case good == 0:
			// Nothing held yet: step down.
			rate /= cfg.Factor * cfg.Factor
			if rate < minRampRate {
				return res, nil
			}
		case bad/good < bisectGap:
			return res, nil
		default:
			rate = (good + bad) / 2
		}
	}
	return res, nil
}

// rampStep runs one step at rate and returns it and the messages it acked.
func rampStep(ctx context.Context, cfg RampConfig, rate float64, base Counts, before int64) (RampStep, int64, error) {
	rc := cfg.Run
	rc.Rate, rc.Duration, rc.NoVerdicts = rate, cfg.Step, true
	cpu0 := cpuTime()
	start := time.Now()
	r, err := Run(ctx, rc)
	if err != nil {
		return RampStep{}, 0, fmt.Errorf("ramp step at %.0f msgs/s: %w", rate, err)
	}
	end := start.Add(r.Elapsed)
	if r.Elapsed == 0 {
		end = time.Now()
	}
	st := RampStep{TargetRate: rate, AckedRate: r.Rate, Acked: r.Acked, Failed: r.Failed,
		AckLatency: r.AckLatency, EvalLagSeconds: -1, SinkLagSeconds: -1}
	wantEval := base.Evaluated + before + r.Acked
	wantSink := base.Sunk + before + r.Acked
	slack := int64(DefaultBacklogShare * float64(r.Acked))
	evalDone, sinkDone := time.Time{}, time.Time{}
	var c Counts
	for {
		c, err = cfg.Progress(ctx)
		if err != nil {
			return st, r.Acked, fmt.Errorf("read pipeline progress: %w", err)
		}
		now := time.Now()
		if evalDone.IsZero() && c.Evaluated >= wantEval-slack {
			evalDone = now
		}
		if sinkDone.IsZero() && c.Sunk >= wantSink-slack {
			sinkDone = now
		}
		if (!evalDone.IsZero() || now.Sub(end) > cfg.EvalGrace) &&
			(!sinkDone.IsZero() || now.Sub(end) > cfg.SinkGrace) {
			break
		}
		select {
		case <-ctx.Done():
			return st, r.Acked, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if cpu := cpuTime() - cpu0; r.Acked > 0 && cpu > 0 {
		st.CPUSecondsPerMsg = cpu.Seconds() / float64(r.Acked)
	}
	st.EvalBacklog = max(0, wantEval-c.Evaluated)
	st.SinkBacklog = max(0, wantSink-c.Sunk)
	evalEnd := time.Now()
	if !evalDone.IsZero() {
		st.EvalLagSeconds = max(0, evalDone.Sub(end).Seconds())
		evalEnd = evalDone
	}
	if !sinkDone.IsZero() {
		st.SinkLagSeconds = max(0, sinkDone.Sub(end).Seconds())
	}
	evaluated := r.Acked - st.EvalBacklog
	if d := evalEnd.Sub(start).Seconds(); d > 0 {
		st.EvaluatedRate = float64(evaluated) / d
	}
	switch {
	case r.Failed > 0:
		st.Reason = fmt.Sprintf("%d messages failed", r.Failed)
	case r.Rate < DefaultAckedShare*rate:
		st.Reason = fmt.Sprintf("acked %.0f msgs/s < %.0f%% of target", r.Rate, 100*DefaultAckedShare)
	case evalDone.IsZero():
		st.Reason = fmt.Sprintf("evaluator %d behind after %v", st.EvalBacklog, cfg.EvalGrace)
	case st.EvalLagSeconds > cfg.EvalGrace.Seconds():
		st.Reason = fmt.Sprintf("evaluator caught up %.1f s after the last ack (> %v)", st.EvalLagSeconds, cfg.EvalGrace)
	case sinkDone.IsZero():
		st.Reason = fmt.Sprintf("sink %d behind after %v", st.SinkBacklog, cfg.SinkGrace)
	case st.SinkLagSeconds > cfg.SinkGrace.Seconds():
		st.Reason = fmt.Sprintf("sink caught up %.1f s after the last ack (> %v)", st.SinkLagSeconds, cfg.SinkGrace)
	default:
		st.Sustained = true
	}
	return st, r.Acked, nil
}

// WaitDrained polls progress until at least evaluated and sunk are
// reached or timeout passes; a timeout is not an error (the caller reads
// the counts again), only a failing progress reader or ctx is.
func WaitDrained(ctx context.Context, progress ProgressFunc, evaluated, sunk int64, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		c, err := progress(ctx)
		if err != nil {
			return fmt.Errorf("read pipeline progress: %w", err)
		}
		if c.Evaluated >= evaluated && c.Sunk >= sunk {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil
}

// Phase is one open-loop run at a fixed share of the maximum rate.
type Phase struct {
	// Share is the fraction of the maximum sustained rate.
	Share      float64 `json:"share"`
	TargetRate float64 `json:"target_rate"`
	Result     *Result `json:"result"`
	// CPUSecondsPerMsg is process CPU time per acked message.
	CPUSecondsPerMsg float64 `json:"cpu_seconds_per_msg"`
}

// RunPhase runs rc at share × maxRate for rc.Duration, measuring CPU
// time, then waits (up to drain) for the pipeline to have evaluated and
// sunk everything.
func RunPhase(ctx context.Context, rc RunConfig, share, maxRate float64, progress ProgressFunc, drain time.Duration) (*Phase, error) {
	before, err := progress(ctx)
	if err != nil {
		return nil, fmt.Errorf("read pipeline progress: %w", err)
	}
	rc.Rate = share * maxRate
	cpu0 := cpuTime()
	r, err := Run(ctx, rc)
	if err != nil {
		return nil, fmt.Errorf("phase at %.0f msgs/s: %w", rc.Rate, err)
	}
	p := &Phase{Share: share, TargetRate: rc.Rate, Result: r}
	if cpu := cpuTime() - cpu0; r.Acked > 0 && cpu > 0 {
		p.CPUSecondsPerMsg = cpu.Seconds() / float64(r.Acked)
	}
	if err := WaitDrained(ctx, progress, before.Evaluated+r.Acked, before.Sunk+r.Acked, drain); err != nil {
		return p, err
	}
	return p, nil
}
