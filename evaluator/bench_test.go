package evaluator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/evaluator"
)

// BenchmarkAckToVerdict measures end-to-end latency from the MESSAGES
// PubAck to the verdict observed on VERDICTS (a core NATS subscription on
// the verdict subjects), with every message firing one tier-1 verdict, 100
// conversations, 8 partitions, file storage. Sub-benchmarks pace publishing
// at a fixed rate; "burst" publishes everything at once and reports
// throughput. Run with a fixed count, e.g. -benchtime 5000x.
func BenchmarkAckToVerdict(b *testing.B) {
	for _, rate := range []int{500, 2000, 0} {
		name := fmt.Sprintf("rate=%d", rate)
		if rate == 0 {
			name = "burst"
		}
		b.Run(name, func(b *testing.B) { benchAckToVerdict(b, rate) })
	}
}

func benchAckToVerdict(b *testing.B, rate int) {
	r := newRig(b, nil, bus.Config{Partitions: 8}, nil)
	r.start(b, evaluator.WithFetch(256, 100*time.Millisecond))

	var mu sync.Mutex
	acked := make(map[string]time.Time, b.N)
	lat := make([]time.Duration, 0, b.N)
	pre := make([]time.Duration, 0, b.N) // receipt → verdict built (fetch, window, tier 1)
	done := make(chan struct{})
	sub, err := r.s.Conn.Subscribe("vrd.>", func(msg *nats.Msg) {
		now := time.Now()
		var v vigil.Verdict
		if err := json.Unmarshal(msg.Data, &v); err != nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if t0, ok := acked[v.MessageID]; ok {
			lat = append(lat, now.Sub(t0))
			pre = append(pre, v.EvaluatedAt.Sub(t0))
			delete(acked, v.MessageID)
			if len(lat) == b.N {
				close(done)
			}
		}
	})
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = sub.Unsubscribe() }()

	ms := make([]*vigil.Message, b.N)
	for i := range ms {
		ms[i] = message(fmt.Sprintf("bench%03d", i%100), i/100, "I'm going to kill you")
	}
	ctx := context.Background()
	b.ResetTimer()
	cpu0 := cpuTime()
	start := time.Now()
	if rate == 0 {
		now := time.Now()
		mu.Lock()
		for _, m := range ms {
			acked[m.ID] = now // burst: latency counts from the batch's start
		}
		mu.Unlock()
		if _, err := r.b.PublishMessages(ctx, ms); err != nil {
			b.Fatal(err)
		}
	} else {
		interval := time.Second / time.Duration(rate)
		for i, m := range ms {
			if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
				time.Sleep(d)
			}
			// Record before publishing: the verdict may arrive before
			// PublishMessage returns; the PubAck itself takes ~25-100 µs.
			mu.Lock()
			acked[m.ID] = time.Now()
			mu.Unlock()
			if _, err := r.b.PublishMessage(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		mu.Lock()
		b.Fatalf("saw %d of %d verdicts", len(lat), b.N)
	}
	elapsed := time.Since(start)
	cpu := cpuTime() - cpu0
	b.StopTimer()
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	slices.Sort(pre)
	q := func(d []time.Duration, p float64) float64 {
		return float64(d[int(p*float64(len(d)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(q(lat, 0.50), "p50_ms")
	b.ReportMetric(q(lat, 0.99), "p99_ms")
	b.ReportMetric(q(pre, 0.99), "p99_to_eval_ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max_ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	// CPU of the whole test process (evaluator, embedded nats-server and
	// publisher) per message: capacity independent of other load on the
	// machine is about nproc / cpu_us_per_msg.
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu_us/msg")
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the user+system CPU time of this process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
