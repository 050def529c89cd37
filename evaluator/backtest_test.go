package evaluator_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/bus/bustest"
	"github.com/vigilhq/vigil/evaluator"
	"github.com/vigilhq/vigil/rules"
)

// backtestHistory is what TestBacktest publishes: conversation → texts, in
// order. The guarantee is sent by an advisor.
var backtestHistory = []struct {
	conv  string
	role  string
	texts []string
}{
	{"threat", "customer", []string{"you lost half my savings", "I'm going to kill you"}},
	{"banter", "staff", []string{"did you beat the boss on level 4?", "I'm going to kill you"}},
	{"old-banter", "staff", []string{"boss level tonight?", "ok", "I'm going to kill you"}},
	{"promise", "advisor", []string{"hello", "I guarantee you will double your money"}},
	{"insult", "staff", []string{"you useless idiot"}},
	{"lunch", "staff", []string{"lunch at noon?"}},
}

const customRule = `rules:
  - id: custom.lunch
    description: Lunch plans (a test rule).
    severity: low
    tier: 1
    action: flag
    when:
      keywords: [lunch]
    expr: contains_any(msg.text, ["lunch"])
`

// financePack returns the finance rule files, to be changed on disk.
func financePack(t *testing.T) map[string][]byte {
	t.Helper()
	sub, err := fs.Sub(rules.Packs(), "finance")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		files[p] = b
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func writeRuleDir(t *testing.T, files map[string][]byte) *rules.Set {
	t.Helper()
	dir := t.TempDir()
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := rules.LoadDir(dir)
	if err != nil {
		t.Fatalf("load %s: %v", dir, err)
	}
	return set
}

func TestBacktest(t *testing.T) {
	s := bustest.New(t)
	b := s.Bus(t, bus.Config{Partitions: 4, Memory: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var ms []*vigil.Message
	for _, c := range backtestHistory {
		for i, text := range c.texts {
			m := message(c.conv, i, text)
			m.Sender.Role = c.role
			ms = append(ms, m)
		}
	}
	if _, err := b.PublishMessages(ctx, ms); err != nil {
		t.Fatal(err)
	}
	pack := financePack(t)
	changed := financePack(t)
	delete(changed, "guarantees.yaml")
	changed["custom.yaml"] = []byte(customRule)
	finance := writeRuleDir(t, pack)

	type verdict struct{ Message, Rule, Reason string }
	tests := []struct {
		name      string
		set       *rules.Set
		cfg       evaluator.BacktestConfig
		opts      []evaluator.Option
		want      []verdict
		evaluated int
	}{
		{
			name: "finance pack", set: finance, evaluated: len(ms),
			want: []verdict{
				{"insult-0000", "finance.harassment.classify", evaluator.ReasonTier2NotCalled},
				{"promise-0001", "finance.promissory.guarantee", ""},
				{"threat-0001", "finance.threat.violence", ""},
			},
		},
		{
			name: "guarantees removed, lunch rule added", set: writeRuleDir(t, changed), evaluated: len(ms),
			want: []verdict{
				{"insult-0000", "finance.harassment.classify", evaluator.ReasonTier2NotCalled},
				{"lunch-0000", "custom.lunch", ""},
				{"threat-0001", "finance.threat.violence", ""},
			},
		},
		{
			// A one-message window no longer sees the game talk two
			// messages back, as the live evaluator would not.
			name: "short window", set: finance, evaluated: len(ms),
			opts: []evaluator.Option{evaluator.WithWindow(1, time.Hour)},
			want: []verdict{
				{"insult-0000", "finance.harassment.classify", evaluator.ReasonTier2NotCalled},
				{"old-banter-0002", "finance.threat.violence", ""},
				{"promise-0001", "finance.promissory.guarantee", ""},
				{"threat-0001", "finance.threat.violence", ""},
			},
		},
		{
			// Earlier messages are read as context only: the banter stays
			// banter although the game talk is before Since.
			name: "since keeps earlier context", set: finance, evaluated: 4,
			cfg: evaluator.BacktestConfig{Since: seqClock.Add(time.Second), Until: seqClock.Add(2 * time.Second)},
			want: []verdict{
				{"promise-0001", "finance.promissory.guarantee", ""},
				{"threat-0001", "finance.threat.violence", ""},
			},
		},
		{
			name: "other tenant", set: finance, cfg: evaluator.BacktestConfig{Tenant: "globex"},
			want: []verdict{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, err := evaluator.NewStreamSource(ctx, b.JetStream(), time.Time{})
			if err != nil {
				t.Fatal(err)
			}
			got := []verdict{}
			st, err := evaluator.Backtest(ctx, src, tc.set, tc.cfg, func(r evaluator.BacktestResult) error {
				for _, v := range r.Verdicts {
					got = append(got, verdict{v.MessageID, v.RuleID, v.Reason})
					wantTier := 1
					if v.Reason != "" {
						wantTier = 2
					}
					if v.ID != vigil.VerdictID(v.MessageID, v.RuleID, tc.set.Version()) || v.RulesetVersion != tc.set.Version() ||
						v.Tier != wantTier || v.Tenant != "acme" || v.ConversationID != r.Message.ConversationID ||
						v.Severity != tc.set.Rule(v.RuleID).Severity || v.Action != tc.set.Rule(v.RuleID).Action {
						t.Errorf("verdict %+v: wrong id, version, tier or rule fields", v)
					}
				}
				return nil
			}, tc.opts...)
			if err != nil {
				t.Fatalf("Backtest: %v", err)
			}
			slices.SortFunc(got, func(a, b verdict) int { return strings.Compare(a.Message+a.Rule, b.Message+b.Rule) })
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("verdicts (-want +got):\n%s", diff)
			}
			if st.Read != len(ms) || st.Evaluated != tc.evaluated || st.Verdicts != len(tc.want) {
				t.Errorf("stats = %+v, want read %d, evaluated %d, verdicts %d", st, len(ms), tc.evaluated, len(tc.want))
			}
		})
	}

	// Nothing was written: no verdicts, no context windows.
	if n := streamMsgs(t, b, bus.StreamVerdicts); n != 0 {
		t.Errorf("VERDICTS holds %d records after backtests, want 0", n)
	}
	keys, err := b.ContextKV().ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys.Keys() {
		t.Errorf("context window %s written by a backtest", k)
	}
}

func TestBacktestStopsAtLastSequence(t *testing.T) {
	s := bustest.New(t)
	b := s.Bus(t, bus.Config{Partitions: 2, Memory: true})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := b.PublishMessages(ctx, []*vigil.Message{message("c", 0, "a"), message("c", 1, "b")}); err != nil {
		t.Fatal(err)
	}
	src, err := evaluator.NewStreamSource(ctx, b.JetStream(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	// Published after the source was opened: not read.
	if _, err := b.PublishMessage(ctx, message("c", 2, "c")); err != nil {
		t.Fatal(err)
	}
	st, err := evaluator.Backtest(ctx, src, writeRuleDir(t, financePack(t)), evaluator.BacktestConfig{},
		func(evaluator.BacktestResult) error { return nil })
	if err != nil || st.Read != 2 {
		t.Fatalf("Backtest = %+v, %v; want 2 messages read", st, err)
	}

	// A start after the last message reads nothing.
	src, err = evaluator.NewStreamSource(ctx, b.JetStream(), time.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	st, err = evaluator.Backtest(ctx, src, writeRuleDir(t, financePack(t)), evaluator.BacktestConfig{},
		func(evaluator.BacktestResult) error { return nil })
	if err != nil || st.Read != 0 {
		t.Fatalf("Backtest after the end = %+v, %v; want nothing read", st, err)
	}
}

func streamMsgs(t *testing.T, b *bus.Bus, name string) uint64 {
	t.Helper()
	st, err := b.JetStream().Stream(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}
