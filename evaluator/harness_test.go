package evaluator_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/bus/bustest"
	"github.com/vigilhq/vigil/evaluator"
	"github.com/vigilhq/vigil/rules"
)

// quietLogger drops everything below ERROR so test output stays readable.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
}

// loadRules loads the test rule set from testdata/rules.
func loadRules(t testing.TB) *rules.Set {
	t.Helper()
	set, err := rules.LoadDir(filepath.Join("testdata", "rules"))
	if err != nil {
		t.Fatalf("load test rules: %v", err)
	}
	return set
}

// rig is a real embedded JetStream with the Vigil streams, a rules holder
// and an evaluator over them.
type rig struct {
	s     *bustest.Server
	b     *bus.Bus
	rules *evaluator.Rules
	m     *evaluator.Metrics
	ev    *evaluator.Evaluator
}

func newRig(t testing.TB, s *bustest.Server, cfg bus.Config, set *rules.Set, ropts ...evaluator.RulesOption) *rig {
	t.Helper()
	if s == nil {
		s = bustest.New(t)
	}
	if set == nil {
		set = loadRules(t)
	}
	r := &rig{s: s, b: s.Bus(t, cfg), m: evaluator.NewMetrics(nil)}
	ropts = append([]evaluator.RulesOption{evaluator.WithRulesLogger(quietLogger()), evaluator.WithRulesMetrics(r.m)}, ropts...)
	var err error
	if r.rules, err = evaluator.NewRules(set, ropts...); err != nil {
		t.Fatal(err)
	}
	return r
}

// start builds and starts an evaluator; cleanup closes it.
func (r *rig) start(t testing.TB, opts ...evaluator.Option) *evaluator.Evaluator {
	t.Helper()
	opts = append([]evaluator.Option{
		evaluator.WithLogger(quietLogger()), evaluator.WithMetrics(r.m),
		evaluator.WithFetch(64, 50*time.Millisecond),
	}, opts...)
	ev, err := evaluator.New(r.b, r.rules, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ev.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = ev.Close(ctx)
	})
	r.ev = ev
	return ev
}

var seqClock = time.Date(2026, 12, 4, 9, 0, 0, 0, time.UTC)

// message builds a tokenized message; i orders it in its conversation.
func message(conv string, i int, text string) *vigil.Message {
	at := seqClock.Add(time.Duration(i) * time.Second)
	return &vigil.Message{
		ID: fmt.Sprintf("%s-%04d", conv, i), Tenant: "acme", ConversationID: conv,
		Sender: vigil.Participant{ID: fmt.Sprintf("u%d", i%2)}, Text: text,
		SentAt: at, ReceivedAt: time.Now(),
	}
}

func (r *rig) publish(t testing.TB, ms ...*vigil.Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := r.b.PublishMessages(ctx, ms); err != nil {
		t.Fatalf("publish messages: %v", err)
	}
}

// streamCount returns how many records a stream holds.
func (r *rig) streamCount(t testing.TB, stream string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := r.s.JS.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatalf("stream %s info: %v", stream, err)
	}
	return info.State.Msgs
}

// waitCount waits until stream holds at least n records.
func (r *rig) waitCount(t testing.TB, stream string, n uint64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := r.streamCount(t, stream)
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d records after %s, want %d", stream, got, within, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitSettled waits until EVALUATIONS holds at least n records and every
// partition consumer of the evaluator has nothing pending and nothing
// unacked: since a message is acked only after its verdicts and evaluation
// are stored, everything it produced is then readable.
func (r *rig) waitSettled(t testing.TB, n uint64, within time.Duration) {
	t.Helper()
	r.waitCount(t, bus.StreamEvaluations, n, within)
	deadline := time.Now().Add(within)
	for {
		settled := true
		for p := range r.b.Partitions() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c, err := r.s.JS.Consumer(ctx, bus.StreamMessages, bus.PartitionConsumerName(evaluator.DefaultDurable, p))
			if err != nil {
				cancel()
				t.Fatalf("consumer of partition %d: %v", p, err)
			}
			info, err := c.Info(ctx)
			cancel()
			if err != nil {
				t.Fatalf("consumer info of partition %d: %v", p, err)
			}
			if info.NumPending > 0 || info.NumAckPending > 0 {
				settled = false
			}
		}
		if settled {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumers still have pending or unacked messages after %s", within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// records decodes every record of a stream, in stream order.
func records[T any](t testing.TB, r *rig, stream string) []T {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := r.streamCount(t, stream)
	out := []T{}
	if n == 0 {
		return out
	}
	c, err := r.s.JS.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatalf("ordered consumer on %s: %v", stream, err)
	}
	for uint64(len(out)) < n {
		batch, err := c.Fetch(int(n)-len(out), jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatalf("fetch %s: %v", stream, err)
		}
		got := 0
		for msg := range batch.Messages() {
			var v T
			if err := json.Unmarshal(msg.Data(), &v); err != nil {
				t.Fatalf("decode %s record: %v", stream, err)
			}
			out = append(out, v)
			got++
		}
		if got == 0 {
			t.Fatalf("read %d of %d records of %s", len(out), n, stream)
		}
	}
	return out
}
