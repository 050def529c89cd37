package bench_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/bench"
)

// fakePipeline evaluates and sinks what the ack server acked, at most
// capacity messages per second.
type fakePipeline struct {
	srv      *ackServer
	capacity float64

	mu    sync.Mutex
	done  float64
	last  time.Time
	calls int
}

func (p *fakePipeline) progress(context.Context) (bench.Counts, error) {
	p.srv.mu.Lock()
	var acked float64
	for _, n := range p.srv.ids {
		acked += float64(n)
	}
	p.srv.mu.Unlock()
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if !p.last.IsZero() {
		p.done = min(acked, p.done+p.capacity*now.Sub(p.last).Seconds())
	} else {
		p.done = acked
	}
	p.last = now
	p.calls++
	return bench.Counts{Evaluated: int64(p.done), Sunk: int64(p.done)}, nil
}

func TestRampFindsCapacity(t *testing.T) {
	if testing.Short() {
		t.Skip("paced load for a few seconds")
	}
	s := &ackServer{}
	target := newAckServer(t, s)
	p := &fakePipeline{srv: s, capacity: 200}
	res, err := bench.Ramp(context.Background(), bench.RampConfig{
		Run:      bench.RunConfig{Target: target, Sessions: 4, Seed: 1},
		Progress: p.progress,
		Start:    100, Factor: 4, Steps: 6,
		Step:      500 * time.Millisecond,
		EvalGrace: 200 * time.Millisecond, SinkGrace: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("Ramp: %v", err)
	}
	var at400 *bench.RampStep
	for i, st := range res.Steps {
		t.Logf("step %d: target %.0f acked %.0f evaluated %.0f sustained %v %s",
			i, st.TargetRate, st.AckedRate, st.EvaluatedRate, st.Sustained, st.Reason)
		if st.TargetRate == 400 {
			at400 = &res.Steps[i]
		}
	}
	if at400 == nil || at400.Sustained {
		t.Errorf("step at 400 msgs/s = %+v, want one that is not sustained (capacity 200)", at400)
	}
	if res.MaxTarget <= 0 || res.MaxTarget >= 400 {
		t.Errorf("MaxTarget = %.0f, want in (0, 400) for a pipeline of capacity 200", res.MaxTarget)
	}
	if res.MaxRate <= 0 || res.MaxRate > 1.5*res.MaxTarget {
		t.Errorf("MaxRate = %.0f, want in (0, 1.5 × %.0f]", res.MaxRate, res.MaxTarget)
	}
}

func TestRampInvalid(t *testing.T) {
	if _, err := bench.Ramp(context.Background(), bench.RampConfig{}); err == nil {
		t.Fatal("Ramp without a progress reader: no error")
	}
}

func TestBaseline(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an embedded NATS server")
	}
	res, err := bench.Baseline(context.Background(), bench.BaselineConfig{
		DataDir: t.TempDir(), SyncInterval: 2 * time.Minute, Duration: 300 * time.Millisecond, Payloads: 500,
	})
	if err != nil {
		t.Fatalf("Baseline: %v", err)
	}
	if res.Published == 0 || res.Consumed != res.Published || res.Rate <= 0 || res.MeanBytes < 100 {
		t.Errorf("Baseline = %+v, want every published message consumed at a positive rate", res)
	}
	if res.SyncInterval != "2m0s" {
		t.Errorf("SyncInterval = %q, want 2m0s", res.SyncInterval)
	}
}

func TestFsyncLatency(t *testing.T) {
	s, err := bench.FsyncLatency(t.TempDir(), 5)
	if err != nil {
		t.Fatalf("FsyncLatency: %v", err)
	}
	if s.Count != 5 || s.P50 <= 0 {
		t.Errorf("FsyncLatency = %+v, want 5 positive samples", s)
	}
}
