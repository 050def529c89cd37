package evaluator_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/evaluator"
	"github.com/vigilhq/vigil/rules"
)

func readTestRules(t testing.TB) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, name := range []string{"threats.yaml", "guarantees.yaml"} {
		b, err := os.ReadFile(filepath.Join("testdata", "rules", name))
		if err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	return files
}

// reloadSteps is the scenario both reload sources run: a changed rule is
// picked up, a broken one is rejected and the previous set stays active.
var reloadSteps = []struct {
	name        string
	edit        func(string) string // applied to threats.yaml
	wantChanged bool
	wantOK      float64
	text        string // evaluated after the step
	wantVerdict bool
}{
	{
		name: "changed rule is active",
		edit: func(s string) string {
			s = strings.Replace(s, "keywords: [kill]", "keywords: [kill, destroy]", 1)
			return strings.Replace(s, `has_phrase(msg.text, "kill you")`, `contains_any(msg.text, ["kill you", "destroy you"])`, 1)
		},
		wantChanged: true, wantOK: 1,
		text: "I will destroy you", wantVerdict: true,
	},
	{
		name: "broken rule is rejected, previous set kept",
		edit: func(s string) string {
			return strings.Replace(s, "expr: >-", "expr: >-\n      undefined_fn(msg.text) ||", 1)
		},
		wantChanged: false, wantOK: 0,
		text: "I will destroy you", wantVerdict: true,
	},
}

func TestHotReloadDir(t *testing.T) {
	dir := t.TempDir()
	files := readTestRules(t)
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set, err := rules.LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := newRig(t, nil, bus.Config{Partitions: 2, Memory: true}, set, evaluator.WithRulesDir(dir, 20*time.Millisecond))
	if err := r.rules.Open(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.rules.Close(context.Background()) })
	r.start(t)
	runReloadSteps(t, r, func(t *testing.T, edit func(string) string) {
		p := filepath.Join(dir, "threats.yaml")
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(edit(string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
	})
}

func TestHotReloadKV(t *testing.T) {
	r := newRig(t, nil, bus.Config{Partitions: 2, Memory: true}, nil)
	files := readTestRules(t)
	ctx := context.Background()
	for n, b := range files {
		if _, err := r.b.RulesKV().Put(ctx, n, b); err != nil {
			t.Fatal(err)
		}
	}
	holder, err := evaluator.NewRules(loadRules(t), evaluator.WithRulesKV(r.b.RulesKV()),
		evaluator.WithRulesLogger(quietLogger()), evaluator.WithRulesMetrics(r.m))
	if err != nil {
		t.Fatal(err)
	}
	r.rules = holder
	if err := holder.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Close(context.Background()) })
	// The bucket's files (named without the testdata/ prefix) are a new version.
	want := rules.Version(files)
	waitFor(t, "initial load from the bucket", func() bool { return holder.Current().Version() == want })
	r.start(t)
	runReloadSteps(t, r, func(t *testing.T, edit func(string) string) {
		e, err := r.b.RulesKV().Get(ctx, "threats.yaml")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := r.b.RulesKV().Put(ctx, "threats.yaml", []byte(edit(string(e.Value())))); err != nil {
			t.Fatal(err)
		}
	})
}

func runReloadSteps(t *testing.T, r *rig, edit func(*testing.T, func(string) string)) {
	for i, st := range reloadSteps {
		t.Run(st.name, func(t *testing.T) {
			before := r.rules.Current().Version()
			r.m.RulesLastReloadSuccessful.Set(-1) // so the wait below sees this step's outcome
			edit(t, st.edit)
			waitFor(t, "reload outcome", func() bool {
				return testutil.ToFloat64(r.m.RulesLastReloadSuccessful) == st.wantOK
			})
			after := r.rules.Current().Version()
			if (after != before) != st.wantChanged {
				t.Fatalf("version %s → %s, want changed=%v", before, after, st.wantChanged)
			}
			evals := r.streamCount(t, bus.StreamEvaluations)
			verdicts := r.streamCount(t, bus.StreamVerdicts)
			m := message("reload", i, st.text)
			r.publish(t, m)
			r.waitSettled(t, evals+1, 10*time.Second)
			got := r.streamCount(t, bus.StreamVerdicts) - verdicts
			if (got == 1) != st.wantVerdict {
				t.Fatalf("%q produced %d verdicts, want verdict=%v", st.text, got, st.wantVerdict)
			}
			if st.wantVerdict {
				vs := records[vigil.Verdict](t, r, bus.StreamVerdicts)
				if v := vs[len(vs)-1]; v.RulesetVersion != after {
					t.Errorf("verdict ruleset %s, want the active %s", v.RulesetVersion, after)
				}
			}
		})
	}
}

func TestRulesReloadRejectsBrokenSet(t *testing.T) {
	m := evaluator.NewMetrics(nil)
	initial := loadRules(t)
	holder, err := evaluator.NewRules(initial, evaluator.WithRulesMetrics(m), evaluator.WithRulesLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		files   map[string][]byte
		wantErr error
		wantOK  float64
	}{
		{"unknown key", map[string][]byte{"x.yaml": []byte("rules:\n  - id: a\n    bogus: 1\n")}, rules.ErrRulesetRejected, 0},
		{"failing inline test", map[string][]byte{"x.yaml": []byte(strings.Replace(string(readTestRules(t)["threats.yaml"]), "fires: false", "fires: true", 1))}, rules.ErrRulesetRejected, 0},
		{"good set", readTestRules(t), nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := holder.Current()
			err := holder.Reload(tc.files)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Reload = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil && holder.Current() != before {
				t.Error("rejected set replaced the current one")
			}
			if got := testutil.ToFloat64(m.RulesLastReloadSuccessful); got != tc.wantOK {
				t.Errorf("vigil_rules_last_reload_successful = %v, want %v", got, tc.wantOK)
			}
		})
	}
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReloadForgetsRemovedRulesSeries(t *testing.T) {
	m := evaluator.NewMetrics(nil)
	holder, err := evaluator.NewRules(loadRules(t), evaluator.WithRulesMetrics(m), evaluator.WithRulesLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	m.Verdicts.WithLabelValues("threat.violence", "retract").Inc()
	m.Verdicts.WithLabelValues("finance.guarantee", "escalate").Inc()
	files := readTestRules(t)
	delete(files, "threats.yaml")
	if err := holder.Reload(files); err != nil {
		t.Fatal(err)
	}
	if got := testutil.CollectAndCount(m.Verdicts); got != 1 {
		t.Errorf("%d verdict series after threat.violence left the set, want 1", got)
	}
	if got := testutil.ToFloat64(m.Verdicts.WithLabelValues("finance.guarantee", "escalate")); got != 1 {
		t.Errorf("kept rule's series = %v, want 1", got)
	}
}
