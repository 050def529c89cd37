package bench_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/bench"
	"github.com/vigilhq/vigil/bus"
)

// TestMeasure measures the front half of Vigil in one process (ingest with
// the real tokenizer, JetStream with sync_interval: always, the evaluator
// with the finance pack) under generated traffic, and prints a Markdown
// table. It runs only with VIGIL_MEASURE=1, on loopback, bounded in count:
//
//	VIGIL_MEASURE=1 go test -run TestMeasure -v -timeout 10m ./bench
func TestMeasure(t *testing.T) {
	if os.Getenv("VIGIL_MEASURE") != "1" {
		t.Skip("set VIGIL_MEASURE=1 to measure")
	}
	tests := []struct {
		name string
		cfg  bench.RunConfig
	}{
		{"http single, 16 sessions", bench.RunConfig{Transport: bench.TransportHTTP, Sessions: 16, Count: 4000}},
		{"http batch 100, 4 sessions", bench.RunConfig{Transport: bench.TransportHTTP, Sessions: 4, Batch: 100, Count: 20000}},
		{"ws single, 16 sessions", bench.RunConfig{Transport: bench.TransportWS, Sessions: 16, Count: 4000}},
		{"nats batch 100, 4 sessions", bench.RunConfig{Transport: bench.TransportNATS, Sessions: 4, Batch: 100, Count: 20000}},
	}
	var rows []string
	for _, sync := range []bool{true, false} {
		p := newPipeline(t, bus.DefaultPartitions, sync)
		for i, tc := range tests {
			cfg := tc.cfg
			cfg.Target, cfg.NATSURL, cfg.Token, cfg.Tenant = p.target, p.natsURL, pipelineToken, "bank"
			cfg.Seed, cfg.VerdictWait = int64(100+i), 2*time.Second
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			start := time.Now()
			res, err := bench.Run(ctx, cfg)
			if err != nil {
				cancel()
				t.Fatalf("%s: %v", tc.name, err)
			}
			// End to end: until the evaluator has recorded an evaluation
			// for every stored message, so the next run starts without a
			// backlog and this one's evaluated rate is known.
			caughtUp := p.awaitEvaluated(ctx, t)
			cancel()
			evalRate := float64(res.Acked) / caughtUp.Sub(start).Seconds()
			v := "–"
			if res.VerdictLatency != nil && res.VerdictLatency.Count > 0 {
				v = fmt.Sprintf("%v / %v", res.VerdictLatency.P50.Round(10*time.Microsecond), res.VerdictLatency.P99.Round(10*time.Microsecond))
			}
			rows = append(rows, fmt.Sprintf("| %s | %v | %d | %.0f | %.0f | %v / %v / %v | %s | %d |", tc.name, sync,
				res.Acked, res.Rate, evalRate, res.AckLatency.P50.Round(10*time.Microsecond), res.AckLatency.P99.Round(10*time.Microsecond),
				res.AckLatency.P999.Round(10*time.Microsecond), v, res.Failed))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := p.js.Stream(ctx, bus.StreamMessages)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		s := st.CachedInfo().State
		rows = append(rows, fmt.Sprintf("| (MESSAGES after the runs above: %d messages, %.0f bytes/message stored) | | | | | | | |", s.Msgs, float64(s.Bytes)/float64(s.Msgs)))
	}
	t.Logf("\n| run | sync always | acked | ingest msgs/s | evaluated msgs/s (end to end) | ack p50 / p99 / p99.9 (request) | verdict p50 / p99 | failed |\n|---|---|---|---|---|---|---|---|\n%s",
		strings.Join(rows, "\n"))
}

// awaitEvaluated waits until EVALUATIONS holds a record for every message
// in MESSAGES and returns when that was first seen.
func (p *pipeline) awaitEvaluated(ctx context.Context, t *testing.T) time.Time {
	t.Helper()
	for {
		msgs, err := p.js.Stream(ctx, bus.StreamMessages)
		if err != nil {
			t.Fatal(err)
		}
		evals, err := p.js.Stream(ctx, bus.StreamEvaluations)
		if err != nil {
			t.Fatal(err)
		}
		if evals.CachedInfo().State.Msgs >= msgs.CachedInfo().State.Msgs {
			return time.Now()
		}
		select {
		case <-ctx.Done():
			t.Fatalf("evaluator did not catch up: %d of %d messages evaluated",
				evals.CachedInfo().State.Msgs, msgs.CachedInfo().State.Msgs)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
