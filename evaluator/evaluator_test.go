package evaluator_test

import (
	"context"
	"errors"
	"fmt"
	dto "github.com/prometheus/client_model/go"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/bus/bustest"
	"github.com/vigilhq/vigil/evaluator"
)

func TestThreatAndBanter(t *testing.T) {
	tests := []struct {
		name      string
		texts     []string // one conversation, in order; the last is judged
		wantRules []string // verdict rule ids on the last message
	}{
		{name: "threat fires", texts: []string{"hey", "I'm going to kill you"}, wantRules: []string{"threat.violence"}},
		{name: "banter after game talk does not", texts: []string{"ready for the game tonight?", "new map, boss level is hard", "I'm going to kill you"}},
		{name: "game talk long ago is out of the window", texts: []string{"ready for the game tonight?", "ok", "ok", "ok", "I'm going to kill you"}, wantRules: []string{"threat.violence"}},
		{name: "benign", texts: []string{"lunch at noon?"}},
	}
	r := newRig(t, nil, bus.Config{Partitions: 4, Memory: true}, nil)
	r.start(t, evaluator.WithWindow(3, time.Hour))
	var total int
	for i, tc := range tests {
		var ms []*vigil.Message
		for j, text := range tc.texts {
			ms = append(ms, message(fmt.Sprintf("conv%d", i), j, text))
		}
		r.publish(t, ms...)
		total += len(ms)
	}
	r.waitSettled(t, uint64(total), 10*time.Second)
	verdicts := records[vigil.Verdict](t, r, bus.StreamVerdicts)
	evals := records[vigil.Evaluation](t, r, bus.StreamEvaluations)
	version := r.rules.Current().Version()
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conv := fmt.Sprintf("conv%d", i)
			last := message(conv, len(tc.texts)-1, "")
			got := []string{}
			for _, v := range verdicts {
				if v.ConversationID != conv {
					continue
				}
				if v.MessageID != last.ID {
					t.Errorf("verdict on %s, want only on the last message %s", v.MessageID, last.ID)
				}
				got = append(got, v.RuleID)
				if v.ID != vigil.VerdictID(v.MessageID, v.RuleID, version) || v.Tier != 1 ||
					v.Action != vigil.ActionRetract || v.Severity != vigil.SeverityHigh ||
					v.SenderID == "" || v.MessageSentAt.IsZero() || v.LatencySeconds <= 0 || len(v.Spans) == 0 ||
					!slices.Equal(v.Tags, []string{"HR-conduct"}) {
					t.Errorf("verdict %+v lacks id, tier, action, severity, sender, sent time, latency, spans or tags", v)
				}
			}
			want := tc.wantRules
			if want == nil {
				want = []string{}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("verdict rules (-want +got):\n%s", diff)
			}
			var n int
			for _, e := range evals {
				if e.ConversationID != conv {
					continue
				}
				n++
				if e.RulesetVersion != version || !slices.Equal(e.Tiers, []int{1}) || e.RulesEvaluated != 2 || e.StreamSequence == 0 {
					t.Errorf("evaluation %+v: want version %s, tiers [1], 2 rules, a stream sequence", e, version)
				}
			}
			if n != len(tc.texts) {
				t.Errorf("%d evaluations, want one per message (%d)", n, len(tc.texts))
			}
		})
	}
	if got := r.streamCount(t, bus.StreamActions); got != 2 {
		t.Errorf("ACTIONS holds %d records, want 2 (the two retractions)", got)
	}
}

// TestConversationOrder runs one long conversation alongside 100 others and
// checks that its messages were evaluated in stream order: the window in the
// bucket holds every message in order, and the evaluations were published
// in order.
func TestConversationOrder(t *testing.T) {
	const long, others, each = 200, 100, 10
	r := newRig(t, nil, bus.Config{Partitions: 8, Memory: true}, nil)
	r.start(t, evaluator.WithWindow(long, 24*time.Hour))
	var ms []*vigil.Message
	for i := range long {
		ms = append(ms, message("ordered", i, fmt.Sprintf("message %d", i)))
		if i < each {
			for c := range others {
				ms = append(ms, message(fmt.Sprintf("other%03d", c), i, "hello"))
			}
		}
	}
	r.publish(t, ms...)
	r.waitSettled(t, uint64(len(ms)), 60*time.Second)

	w, err := evaluator.NewWindow(r.b, long, 24*time.Hour, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := w.Messages(context.Background(), "acme", "ordered")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != long {
		t.Fatalf("window holds %d messages, want %d", len(entries), long)
	}
	for i, e := range entries {
		if want := message("ordered", i, "").ID; e.Message.ID != want || (i > 0 && e.Seq <= entries[i-1].Seq) {
			t.Fatalf("window entry %d = %s at seq %d, want %s after seq %d", i, e.Message.ID, e.Seq, want, entries[max(i-1, 0)].Seq)
		}
	}
	var last uint64
	var n int
	for _, e := range records[vigil.Evaluation](t, r, bus.StreamEvaluations) {
		if e.ConversationID != "ordered" {
			continue
		}
		if e.StreamSequence <= last {
			t.Fatalf("evaluation of seq %d published after seq %d", e.StreamSequence, last)
		}
		last = e.StreamSequence
		n++
	}
	if n != long {
		t.Fatalf("%d evaluations of the ordered conversation, want %d", n, long)
	}
	// Published all at once, most messages queue up on their lanes and go
	// through the batch path, which the checks above held to the same order.
	var hm dto.Metric
	if err := r.m.BatchSize.Write(&hm); err != nil {
		t.Fatal(err)
	}
	if got := hm.GetHistogram().GetSampleSum(); got < float64(len(ms))/2 {
		t.Errorf("%v of %d messages evaluated in batches, want at least half", got, len(ms))
	}
}

// TestRestartMidStream crashes the evaluator (Close abandons in-flight
// work) half-way and starts another on the same durable consumers: every
// message is evaluated, no verdict is lost or published twice.
func TestRestartMidStream(t *testing.T) {
	const convs, per = 10, 100
	r := newRig(t, nil, bus.Config{Partitions: 4, AckWait: time.Second}, nil)
	var ms []*vigil.Message
	var threats int
	for i := range per {
		for c := range convs {
			text := "nothing to see"
			if (i+c)%3 == 0 {
				text = "I'm going to kill you"
				threats++
			}
			ms = append(ms, message(fmt.Sprintf("c%02d", c), i, text))
		}
	}
	r.publish(t, ms...)
	first := r.start(t)
	// Stop early: a whole batch path round is fast enough to finish
	// hundreds of messages between two polls.
	r.waitCount(t, bus.StreamEvaluations, 1, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := first.Close(ctx); err != nil {
		t.Fatalf("Close = %v", err)
	}
	if got := r.streamCount(t, bus.StreamEvaluations); got >= uint64(len(ms)) {
		t.Fatalf("first evaluator finished everything (%d); the test needs a mid-stream stop", got)
	}
	// Partitions are pinned to one client; Close unpins them, so the next
	// evaluator takes over at once rather than after bus.DefaultPinnedTTL.
	r.start(t)
	r.waitSettled(t, uint64(len(ms)), bus.DefaultPinnedTTL*4/5)

	verdicts := records[vigil.Verdict](t, r, bus.StreamVerdicts)
	ids := map[string]int{}
	for _, v := range verdicts {
		ids[v.ID]++
	}
	if len(verdicts) != threats || len(ids) != threats {
		t.Errorf("VERDICTS holds %d records with %d distinct ids, want %d and %d", len(verdicts), len(ids), threats, threats)
	}
	evals := records[vigil.Evaluation](t, r, bus.StreamEvaluations)
	seen := map[string]bool{}
	for _, e := range evals {
		if seen[e.MessageID] {
			t.Errorf("message %s evaluated twice in EVALUATIONS", e.MessageID)
		}
		seen[e.MessageID] = true
	}
	if len(seen) != len(ms) {
		t.Errorf("%d messages evaluated, want %d", len(seen), len(ms))
	}
	// Windows did not count a redelivered message twice.
	w, err := evaluator.NewWindow(r.b, 255, 24*time.Hour, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	for c := range convs {
		entries, err := w.Messages(context.Background(), "acme", fmt.Sprintf("c%02d", c))
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != per || entries[len(entries)-1].Message.ID != message(fmt.Sprintf("c%02d", c), per-1, "").ID {
			t.Errorf("conversation c%02d window: %d entries ending %s", c, len(entries), entries[len(entries)-1].Message.ID)
		}
	}
}

// TestPoisonedMessageIsDeadLettered publishes a message that cannot be
// decoded between good ones: it is dead-lettered with a reason and its
// conversation and the others go on.
func TestPoisonedMessageIsDeadLettered(t *testing.T) {
	r := newRig(t, nil, bus.Config{Partitions: 2, Memory: true}, nil)
	r.start(t)
	r.publish(t, message("p", 0, "hello"))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.s.JS.Publish(ctx, bus.MessageSubject("acme", "p"), []byte("{not json")); err != nil {
		t.Fatal(err)
	}
	if _, err := r.s.JS.Publish(ctx, bus.MessageSubject("acme", "p"), []byte(`{"id":"","tenant":"acme","conversation_id":"p"}`)); err != nil {
		t.Fatal(err)
	}
	r.publish(t, message("p", 3, "I'm going to kill you"), message("q", 0, "hi"))
	r.waitSettled(t, 3, 10*time.Second)
	var got []string
	for _, dl := range records[bus.DeadLetter](t, r, bus.StreamDeadLetter) {
		got = append(got, fmt.Sprintf("%s/%d/%s", dl.Stream, dl.Sequence, dl.Reason))
	}
	if diff := cmp.Diff([]string{"MESSAGES/2/decode", "MESSAGES/3/invalid"}, got); diff != "" {
		t.Errorf("dead letters (-want +got):\n%s", diff)
	}
	if got := testutil.ToFloat64(r.m.DeadLetters.WithLabelValues(evaluator.ReasonDecode)); got != 1 {
		t.Errorf("dead letters metric = %v, want 1", got)
	}
	r.waitCount(t, bus.StreamVerdicts, 1, 5*time.Second)
}

func TestDrainFinishesInFlightWork(t *testing.T) {
	r := newRig(t, nil, bus.Config{Partitions: 2, Memory: true}, nil)
	ev := r.start(t)
	var ms []*vigil.Message
	for i := range 200 {
		ms = append(ms, message("d", i, "I'm going to kill you"))
	}
	r.publish(t, ms...)
	r.waitCount(t, bus.StreamEvaluations, 1, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ev.Drain(ctx); err != nil {
		t.Fatalf("Drain = %v", err)
	}
	select {
	case <-ev.Closed():
	default:
		t.Fatal("Closed() not closed after Drain returned")
	}
	// Everything evaluated was acked: nothing it published is missing its ack.
	evals, verdicts := r.streamCount(t, bus.StreamEvaluations), r.streamCount(t, bus.StreamVerdicts)
	if evals != verdicts {
		t.Errorf("%d evaluations but %d verdicts after drain", evals, verdicts)
	}
	if err := ev.Start(ctx); err == nil {
		t.Error("Start after Drain succeeded, want ErrClosed")
	}
}

func TestNewInvalid(t *testing.T) {
	s := bustest.New(t)
	b := s.Bus(t, bus.Config{Partitions: 2, Memory: true})
	holder, err := evaluator.NewRules(loadRules(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		b     evaluator.Bus
		rules *evaluator.Rules
		opts  []evaluator.Option
	}{
		{name: "nil bus", rules: holder},
		{name: "nil rules", b: b},
		{name: "partition outside the bus", b: b, rules: holder, opts: []evaluator.Option{evaluator.WithPartitions(2)}},
		{name: "empty window", b: b, rules: holder, opts: []evaluator.Option{evaluator.WithWindow(0, time.Minute)}},
		{name: "zero lanes", b: b, rules: holder, opts: []evaluator.Option{evaluator.WithLanes(0)}},
		{name: "zero fetch wait", b: b, rules: holder, opts: []evaluator.Option{evaluator.WithFetch(10, 0)}},
		{name: "nil classifier", b: b, rules: holder, opts: []evaluator.Option{evaluator.WithClassifier(nil)}},
		{name: "empty durable", b: b, rules: holder, opts: []evaluator.Option{evaluator.WithDurable("")}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := evaluator.New(tc.b, tc.rules, tc.opts...); !errors.Is(err, evaluator.ErrInvalidOption) {
				t.Fatalf("New = %v, want ErrInvalidOption", err)
			}
		})
	}
}

// TestTwoReplicasHandOver runs two evaluators (separate connections, as two
// vigil serve replicas) on the same partition consumers: one holds the pin
// and evaluates; when it drains, the other takes over, and every message is
// evaluated exactly once, in order.
func TestTwoReplicasHandOver(t *testing.T) {
	const n = 200
	cfg := bus.Config{Partitions: 2, Memory: true}
	r := newRig(t, nil, cfg, nil)
	nc, err := nats.Connect(r.s.Server.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b2, err := bus.Open(ctx, nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	first := r.start(t, evaluator.WithWindow(n, 24*time.Hour))
	second, err := evaluator.New(b2, r.rules, evaluator.WithWindow(n, 24*time.Hour), evaluator.WithLogger(quietLogger()),
		evaluator.WithFetch(64, 50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Close(context.Background()) })

	var ms []*vigil.Message
	for i := range n {
		ms = append(ms, message("handover", i, fmt.Sprintf("message %d", i)))
	}
	r.publish(t, ms[:n/2]...)
	r.waitCount(t, bus.StreamEvaluations, n/4, 10*time.Second)
	if err := first.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	r.publish(t, ms[n/2:]...)
	r.waitSettled(t, n, 10*time.Second)

	seen := map[string]int{}
	var last uint64
	for _, e := range records[vigil.Evaluation](t, r, bus.StreamEvaluations) {
		seen[e.MessageID]++
		if e.StreamSequence <= last {
			t.Fatalf("evaluation of seq %d after seq %d", e.StreamSequence, last)
		}
		last = e.StreamSequence
	}
	if len(seen) != n {
		t.Fatalf("%d messages evaluated, want %d", len(seen), n)
	}
	w, err := evaluator.NewWindow(r.b, n, 24*time.Hour, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	entries, err := w.Messages(ctx, "acme", "handover")
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range entries {
		if want := ms[i].ID; e.Message.ID != want {
			t.Fatalf("window entry %d = %s, want %s", i, e.Message.ID, want)
		}
	}
	if len(entries) != n {
		t.Fatalf("window holds %d messages, want %d", len(entries), n)
	}
}

func TestConfigOptions(t *testing.T) {
	s := bustest.New(t)
	b := s.Bus(t, bus.Config{Partitions: 2, Memory: true})
	holder, err := evaluator.NewRules(loadRules(t))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		cfg     evaluator.Config
		wantErr error
	}{
		{"zero config is all defaults", evaluator.Config{}, nil},
		{"every field", evaluator.Config{Durable: "ev2", Partitions: []int{1}, WindowMessages: 5, WindowDuration: time.Minute,
			WindowCacheSize: 10, Lanes: 2, FetchBatch: 10, FetchWait: time.Second, MessageTimeout: time.Second,
			MaxAttempts: 1, Tier2Workers: 1, Tier2Timeout: time.Second}, nil},
		{"negative window", evaluator.Config{WindowMessages: -1}, evaluator.ErrInvalidOption},
		{"partition outside the bus", evaluator.Config{Partitions: []int{5}}, evaluator.ErrInvalidOption},
		{"negative lanes", evaluator.Config{Lanes: -2}, evaluator.ErrInvalidOption},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := evaluator.New(b, holder, tc.cfg.Options()...); !errors.Is(err, tc.wantErr) {
				t.Fatalf("New(%+v) = %v, want %v", tc.cfg, err, tc.wantErr)
			}
		})
	}
}

// TestServerRestartMidStream stops the evaluator and the NATS server half-way
// and starts both again on the same store: consumers, windows and dedup
// state survive, so nothing is skipped or published twice.
func TestServerRestartMidStream(t *testing.T) {
	const convs, per = 5, 200
	cfg := bus.Config{Partitions: 2, AckWait: time.Second}
	r := newRig(t, nil, cfg, nil)
	var ms []*vigil.Message
	var threats int
	for i := range per {
		for c := range convs {
			text := "nothing to see"
			if (i+c)%4 == 0 {
				text = "I'm going to kill you"
				threats++
			}
			ms = append(ms, message(fmt.Sprintf("s%02d", c), i, text))
		}
	}
	r.publish(t, ms...)
	ev := r.start(t)
	// Stop early: the batch path finishes hundreds of messages between
	// two polls.
	r.waitCount(t, bus.StreamEvaluations, 1, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ev.Close(ctx); err != nil {
		t.Fatal(err)
	}
	r.s.Shutdown()

	s2 := bustest.NewAt(t, filepath.Dir(r.s.StoreDir))
	r2 := newRig(t, s2, cfg, nil)
	if got := r2.streamCount(t, bus.StreamEvaluations); got >= uint64(len(ms)) {
		t.Fatalf("everything was evaluated before the restart (%d); the test needs a mid-stream stop", got)
	}
	r2.start(t)
	r2.waitSettled(t, uint64(len(ms)), 30*time.Second)
	verdicts := records[vigil.Verdict](t, r2, bus.StreamVerdicts)
	ids := map[string]bool{}
	for _, v := range verdicts {
		ids[v.ID] = true
	}
	if len(verdicts) != threats || len(ids) != threats {
		t.Errorf("VERDICTS holds %d records with %d distinct ids, want %d", len(verdicts), len(ids), threats)
	}
	if got := r2.streamCount(t, bus.StreamEvaluations); got != uint64(len(ms)) {
		t.Errorf("EVALUATIONS holds %d records, want %d", got, len(ms))
	}
	w, err := evaluator.NewWindow(r2.b, 255, 24*time.Hour, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	for c := range convs {
		entries, err := w.Messages(context.Background(), "acme", fmt.Sprintf("s%02d", c))
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != per {
			t.Errorf("conversation s%02d window holds %d messages, want %d", c, len(entries), per)
		}
	}
}
