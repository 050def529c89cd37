package evaluator_test

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/evaluator"
	"github.com/vigilhq/vigil/rules"
)

func TestTier2EndToEnd(t *testing.T) {
	tests := []struct {
		name         string
		cfg          evaluator.ClassifierConfig
		setup        func(*fakeLLM)
		texts        []string
		wantVerdicts int
		wantTiers    [][]int // per message
		wantCalls    int64
		wantMetric   map[string]float64 // tier2 calls by result
		wantBudget   float64
	}{
		{
			name: "classifier label becomes a tier-2 verdict", texts: []string{"I guarantee you will double your money"},
			wantVerdicts: 1, wantTiers: [][]int{{1, 2}}, wantCalls: 1, wantMetric: map[string]float64{"ok": 1},
		},
		{
			name: "label none gives no verdict", setup: func(f *fakeLLM) { f.label = evaluator.LabelNone },
			texts:        []string{"nothing is guaranteed in markets"},
			wantVerdicts: 0, wantTiers: [][]int{{1, 2}}, wantCalls: 1, wantMetric: map[string]float64{"none": 1},
		},
		{
			name: "timeout leaves tier 1 alone", cfg: evaluator.ClassifierConfig{Timeout: 50 * time.Millisecond, Retries: -1},
			setup:        func(f *fakeLLM) { f.script(time.Second) },
			texts:        []string{"I guarantee it"},
			wantVerdicts: 0, wantTiers: [][]int{{1}}, wantCalls: 1, wantMetric: map[string]float64{"timeout": 1},
		},
		{
			name: "exhausted budget is counted, no verdict", cfg: evaluator.ClassifierConfig{BudgetPerMinute: 1},
			texts:        []string{"I guarantee a 10% return", "guaranteed profits, trust me"},
			wantVerdicts: 1, wantTiers: [][]int{{1, 2}, {1}}, wantCalls: 1,
			wantMetric: map[string]float64{"ok": 1, "budget": 1}, wantBudget: 1,
		},
		{
			name: "breaker opens after consecutive failures", cfg: evaluator.ClassifierConfig{Retries: -1, BreakerFailures: 2, BreakerCooldown: time.Hour},
			setup:        func(f *fakeLLM) { f.script(0, 500, 500, 500, 500) },
			texts:        []string{"guarantee 1", "guarantee 2", "guarantee 3", "guarantee 4"},
			wantVerdicts: 0, wantTiers: [][]int{{1}, {1}, {1}, {1}}, wantCalls: 2,
			wantMetric: map[string]float64{"error": 2, "circuit_open": 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			llm := newFakeLLM(t)
			if tc.setup != nil {
				tc.setup(llm)
			}
			r := newRig(t, nil, bus.Config{Partitions: 1, Memory: true}, nil)
			cfg := tc.cfg
			cfg.URL, cfg.Model = llm.URL, "vigil-test"
			c, err := evaluator.NewClassifier(cfg, r.m)
			if err != nil {
				t.Fatal(err)
			}
			r.start(t, evaluator.WithClassifier(c), evaluator.WithTier2(1, 5*time.Second))
			var ms []*vigil.Message
			for i, text := range tc.texts {
				ms = append(ms, message("t2", i, text))
			}
			r.publish(t, ms...)
			r.waitSettled(t, uint64(len(ms)), 10*time.Second)
			verdicts := records[vigil.Verdict](t, r, bus.StreamVerdicts)
			if len(verdicts) != tc.wantVerdicts {
				t.Fatalf("%d verdicts, want %d: %+v", len(verdicts), tc.wantVerdicts, verdicts)
			}
			for _, v := range verdicts {
				if v.Tier != 2 || v.RuleID != "finance.guarantee" || v.Action != vigil.ActionEscalate || !strings.HasPrefix(v.Reason, "promise_of_returns") {
					t.Errorf("verdict %+v, want tier-2 escalate of finance.guarantee with the label as reason", v)
				}
			}
			evals := records[vigil.Evaluation](t, r, bus.StreamEvaluations)
			for i, e := range evals {
				if !slices.Equal(e.Tiers, tc.wantTiers[i]) {
					t.Errorf("evaluation %d tiers %v, want %v", i, e.Tiers, tc.wantTiers[i])
				}
			}
			if n := llm.calls.Load(); n != tc.wantCalls {
				t.Errorf("classifier saw %d calls, want %d", n, tc.wantCalls)
			}
			for _, res := range []string{"ok", "none", "timeout", "error", "budget", "circuit_open"} {
				if got := testutil.ToFloat64(r.m.Tier2Calls.WithLabelValues(res)); got != tc.wantMetric[res] {
					t.Errorf("tier2 calls{result=%s} = %v, want %v", res, got, tc.wantMetric[res])
				}
			}
			if got := testutil.ToFloat64(r.m.BudgetExhausted.WithLabelValues("acme")); got != tc.wantBudget {
				t.Errorf("budget exhaustions = %v, want %v", got, tc.wantBudget)
			}
		})
	}
}

// TestTier2DoesNotHoldBackTier1 blocks the classifier: the tier-1 verdict of
// the same message is published at once, the message is acked (its
// evaluation published) only when tier 2 answers, and later messages of the
// conversation go on meanwhile.
func TestTier2DoesNotHoldBackTier1(t *testing.T) {
	llm := newFakeLLM(t)
	llm.block = make(chan struct{})
	r := newRig(t, nil, bus.Config{Partitions: 1, Memory: true}, nil)
	c, err := evaluator.NewClassifier(evaluator.ClassifierConfig{URL: llm.URL, Model: "m", Timeout: 10 * time.Second}, r.m)
	if err != nil {
		t.Fatal(err)
	}
	r.start(t, evaluator.WithClassifier(c))
	r.publish(t, message("mixed", 0, "I guarantee I'm going to kill you"), message("mixed", 1, "see you"))
	r.waitCount(t, bus.StreamVerdicts, 1, 5*time.Second)
	r.waitCount(t, bus.StreamEvaluations, 1, 5*time.Second) // the second message
	evals := records[vigil.Evaluation](t, r, bus.StreamEvaluations)
	if len(evals) != 1 || evals[0].MessageID != message("mixed", 1, "").ID {
		t.Fatalf("evaluations while tier 2 is blocked = %+v, want only the second message's", evals)
	}
	close(llm.block)
	r.waitSettled(t, 2, 10*time.Second)
	verdicts := records[vigil.Verdict](t, r, bus.StreamVerdicts)
	var tiers []string
	for _, v := range verdicts {
		tiers = append(tiers, fmt.Sprintf("%s/%d", v.RuleID, v.Tier))
	}
	if !slices.Equal(tiers, []string{"threat.violence/1", "finance.guarantee/2"}) {
		t.Fatalf("verdicts in order %v, want tier 1 first then tier 2", tiers)
	}
}

func TestActionsReachSignedWebhooks(t *testing.T) {
	rcv := newReceiver(t, "tenant-secret", 500)
	r := newRig(t, nil, bus.Config{Partitions: 1, Memory: true}, nil)
	wh, err := evaluator.NewWebhooks(evaluator.WebhookConfig{
		Endpoints: []evaluator.WebhookEndpoint{{Tenant: "acme", URL: rcv.URL, Secret: []byte("tenant-secret")}},
		Backoff:   5 * time.Millisecond, Logger: quietLogger(),
	}, r.m)
	if err != nil {
		t.Fatal(err)
	}
	r.start(t, evaluator.WithWebhooks(wh))
	m := message("wh", 0, "I'm going to kill you")
	r.publish(t, m)
	waitFor(t, "verified delivery", func() bool { _, v, _ := rcv.counts(); return v == 1 })
	a, _, bad := rcv.counts()
	if a != 2 || bad != 0 {
		t.Errorf("receiver saw %d attempts (%d bad signatures), want 2 (one retry after 500) and 0", a, bad)
	}
	if id := rcv.verified[0]; id != vigil.VerdictID(m.ID, "threat.violence", r.rules.Current().Version()) {
		t.Errorf("delivery id %s is not the verdict id", id)
	}
}

// TestSlowConversationDoesNotStallOthers fills the tier-2 pool with one
// conversation whose classifier never answers: that conversation's lane
// waits, the other conversations of the same partition are evaluated.
func TestSlowConversationDoesNotStallOthers(t *testing.T) {
	const lanes = 8
	llm := newFakeLLM(t)
	llm.block = make(chan struct{})
	t.Cleanup(func() { close(llm.block) })
	r := newRig(t, nil, bus.Config{Partitions: 1, Memory: true}, nil)
	c, err := evaluator.NewClassifier(evaluator.ClassifierConfig{URL: llm.URL, Model: "m", Timeout: time.Minute}, r.m)
	if err != nil {
		t.Fatal(err)
	}
	r.start(t, evaluator.WithClassifier(c), evaluator.WithTier2(1, time.Minute), evaluator.WithLanes(lanes))
	// Lanes are FNV-1a of the stored subject modulo the lane count.
	lane := func(conv string) uint32 {
		h := fnv.New32a()
		h.Write([]byte(bus.StoredMessageSubject("acme", conv, 1)))
		return h.Sum32() % lanes
	}
	var slow []*vigil.Message
	for i := range 10 {
		slow = append(slow, message("slow", i, fmt.Sprintf("guaranteed return %d", i)))
	}
	r.publish(t, slow...)
	var others []*vigil.Message
	for i := 0; len(others) < 30; i++ {
		conv := fmt.Sprintf("fast%02d", i)
		if lane(conv) != lane("slow") {
			others = append(others, message(conv, 0, "I'm going to kill you"))
		}
	}
	r.publish(t, others...)
	r.waitCount(t, bus.StreamVerdicts, uint64(len(others)), 10*time.Second)
	r.waitCount(t, bus.StreamEvaluations, uint64(len(others)), 10*time.Second)
	if got := r.streamCount(t, bus.StreamEvaluations); got != uint64(len(others)) {
		t.Errorf("%d evaluations, want %d: the slow conversation's messages must wait for tier 2", got, len(others))
	}
}

// TestEscalateTier2Action checks a tier-1 rule whose action is
// escalate_tier2: it publishes no verdict of its own, asks the classifier,
// and the classifier's label becomes a tier-2 flag.
func TestEscalateTier2Action(t *testing.T) {
	set, err := rules.LoadFiles(map[string][]byte{"offchannel.yaml": []byte(`rules:
  - id: offchannel.maybe
    description: Mentions another app; the classifier decides whether it moves the conversation off channel.
    severity: medium
    tier: 1
    action: escalate_tier2
    tags: [SEC-17a-4]
    when:
      keywords: [whatsapp]
    expr: contains_any(msg.text, ["whatsapp"])
    prompt: You decide whether staff move a client conversation to an unmonitored app.
    labels: [off_channel]
`)})
	if err != nil {
		t.Fatal(err)
	}
	llm := newFakeLLM(t)
	llm.label = "off_channel"
	r := newRig(t, nil, bus.Config{Partitions: 1, Memory: true}, set)
	c, err := evaluator.NewClassifier(evaluator.ClassifierConfig{URL: llm.URL, Model: "m"}, r.m)
	if err != nil {
		t.Fatal(err)
	}
	r.start(t, evaluator.WithClassifier(c))
	r.publish(t, message("oc", 0, "text me on whatsapp instead"))
	r.waitSettled(t, 1, 10*time.Second)
	verdicts := records[vigil.Verdict](t, r, bus.StreamVerdicts)
	if len(verdicts) != 1 {
		t.Fatalf("%d verdicts, want 1: %+v", len(verdicts), verdicts)
	}
	if v := verdicts[0]; v.Tier != 2 || v.Action != vigil.ActionFlag || v.RuleID != "offchannel.maybe" || !strings.HasPrefix(v.Reason, "off_channel") {
		t.Errorf("verdict %+v, want a tier-2 flag of offchannel.maybe", v)
	}
	if got := r.streamCount(t, bus.StreamActions); got != 1 {
		t.Errorf("ACTIONS holds %d records, want the one flag", got)
	}
}
