package rules_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/rules"
)

// benchTexts is a traffic mix: mostly ordinary chat, a few messages that
// hit a rule.
var benchTexts = []string{
	"Morning! Did you see the CPI print? Rates might move this afternoon.",
	"Can you send me the quarterly statement for the joint account please",
	"Sure, I'll have it over by end of day. Anything else you need?",
	"Let's schedule a call on Thursday to rebalance the portfolio",
	"The fund's fees are listed on page 4 of the prospectus",
	"I'm going to kill you if you're late to lunch again",
	"Thanks, that's really helpful, talk soon",
	"Let's take this to WhatsApp, easier for me",
	"Returns are not guaranteed but the outlook is positive for bonds",
	"Please confirm the wire of ⟦ACCOUNT:9c1e⟧ before noon",
	"What time does the market close on the holiday?",
	"I want to file a complaint about the unauthorized trade last week",
	"Our analyst thinks the tech sector is overvalued right now",
	"Could you update my mailing address to ⟦ADDRESS:11aa⟧",
	"We should diversify into international equities over time",
	"ok",
}

var benchContext = &rules.Context{Messages: []vigil.Message{
	{Text: "hi, how was the weekend?", Sender: vigil.Participant{ID: "c1", Role: "customer"}},
	{Text: "great, went hiking. you?", Sender: vigil.Participant{ID: "a1", Role: "advisor"}},
	{Text: "quiet. about my retirement account...", Sender: vigil.Participant{ID: "c1", Role: "customer"}},
	{Text: "sure, what do you need?", Sender: vigil.Participant{ID: "a1", Role: "advisor"}},
	{Text: "can we lower the risk a bit", Sender: vigil.Participant{ID: "c1", Role: "customer"}},
}}

func benchMessages() []vigil.Message {
	roles := []string{"advisor", "customer"}
	ms := make([]vigil.Message, len(benchTexts))
	for i, t := range benchTexts {
		ms[i] = vigil.Message{ID: fmt.Sprint(i), Tenant: "acme", Text: t, Channel: "teams",
			Sender: vigil.Participant{ID: "p", Role: roles[i%2]}}
		if strings.Contains(t, "⟦ACCOUNT") {
			ms[i].PII = map[string]int{"account": 1}
		}
	}
	return ms
}

func benchEval(b *testing.B, s *rules.Set) {
	ms := benchMessages()
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	matches := 0
	for i := 0; b.Loop(); i++ {
		out, err := s.Eval(ctx, &ms[i%len(ms)], benchContext)
		if err != nil {
			b.Fatal(err)
		}
		matches += len(out)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	// The machine is shared: msgs per CPU-second of this process is the
	// per-core throughput even when other processes steal the cores.
	if d := cpuTime() - cpu0; d > 0 {
		b.ReportMetric(float64(b.N)/d.Seconds(), "msgs/cpu-s")
	}
	if matches == 0 {
		b.Fatal("no rule ever matched: the benchmark measures nothing")
	}
}

// BenchmarkEvalFinancePack evaluates the finance pack (11 rules).
func BenchmarkEvalFinancePack(b *testing.B) {
	s, err := rules.Load(os.DirFS("packs/finance"))
	if err != nil {
		b.Fatal(err)
	}
	benchEval(b, s)
}

// generatedRules writes n rules in the style of the packs: each has three
// keyword phrases from a vocabulary of invented terms, an expression over
// those phrases and a context check. indexed=false drops the `when` block,
// so every rule runs on every message.
func generatedRules(n int, indexed bool) map[string][]byte {
	r := rand.New(rand.NewPCG(1, 2))
	var b strings.Builder
	b.WriteString("rules:\n")
	// Rule 0 matches real traffic so the benchmark checks it still finds
	// something; the others watch invented terms.
	for i := 0; i < n; i++ {
		terms := []string{fmt.Sprintf("zq%dterm", r.IntN(5*n)), fmt.Sprintf("zq%dterm", r.IntN(5*n)), fmt.Sprintf("xv%d deal", i)}
		if i == 0 {
			terms[0] = "whatsapp"
		}
		fmt.Fprintf(&b, "  - id: gen.r%03d\n    severity: medium\n    action: flag\n    tags: [GEN]\n", i)
		if indexed {
			fmt.Fprintf(&b, "    when:\n      keywords: [%q, %q, %q]\n", terms[0], terms[1], terms[2])
		}
		fmt.Fprintf(&b, "    expr: contains_any(msg.text, [%q, %q, %q]) && !ctx.messages.exists(m, m.text.has_phrase(%q))\n",
			terms[0], terms[1], terms[2], fmt.Sprintf("zz%d", i))
	}
	return map[string][]byte{"generated.yaml": []byte(b.String())}
}

// BenchmarkEval500Rules evaluates 500 generated rules through the keyword
// prefilter index.
func BenchmarkEval500Rules(b *testing.B) {
	s, err := rules.Compile(generatedRules(500, true))
	if err != nil {
		b.Fatal(err)
	}
	benchEval(b, s)
}

// BenchmarkEval500RulesNoPrefilter is the same ruleset without `when`:
// every rule is evaluated on every message (the cost the index removes).
func BenchmarkEval500RulesNoPrefilter(b *testing.B) {
	s, err := rules.Compile(generatedRules(500, false))
	if err != nil {
		b.Fatal(err)
	}
	benchEval(b, s)
}

// BenchmarkCompile500Rules measures loading (parse, type-check, cost
// estimate, plan) a 500-rule file.
func BenchmarkCompile500Rules(b *testing.B) {
	files := generatedRules(500, true)
	for b.Loop() {
		if _, err := rules.Compile(files); err != nil {
			b.Fatal(err)
		}
	}
}

// cpuTime is the user+system CPU time of this process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestPrefilterIndexEquivalence: on rules whose keywords cover their
// expression, evaluating through the keyword index gives exactly the
// matches of evaluating every rule.
func TestPrefilterIndexEquivalence(t *testing.T) {
	indexed, err := rules.Compile(generatedRules(200, true))
	if err != nil {
		t.Fatal(err)
	}
	if l := indexed.Lint(); strings.Contains(l.Error(), "prefilter hides") {
		t.Fatalf("generated rules are not covered by their keywords: %v", l)
	}
	all, err := rules.Compile(generatedRules(200, false))
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	ctx := context.Background()
	hits := 0
	for i := 0; i < 300; i++ {
		var words []string
		for j := 0; j < 8; j++ {
			switch r.IntN(4) {
			case 0:
				words = append(words, fmt.Sprintf("zq%dterm", r.IntN(1000)))
			case 1:
				words = append(words, fmt.Sprintf("xv%d", r.IntN(200)), "deal")
			default:
				words = append(words, "filler")
			}
		}
		m := &vigil.Message{Text: strings.Join(words, " ")}
		c := &rules.Context{Messages: []vigil.Message{{Text: fmt.Sprintf("zz%d", r.IntN(200))}}}
		a, err1 := indexed.Eval(ctx, m, c)
		b, err2 := all.Eval(ctx, m, c)
		if err1 != nil || err2 != nil {
			t.Fatal(err1, err2)
		}
		ids := func(ms []rules.Match) string {
			var s []string
			for _, m := range ms {
				s = append(s, m.Rule.ID)
			}
			return strings.Join(s, ",")
		}
		if ids(a) != ids(b) {
			t.Fatalf("message %q: indexed matches [%s], all rules [%s]", m.Text, ids(a), ids(b))
		}
		hits += len(a)
	}
	if hits < 60 {
		t.Errorf("only %d matches over 300 messages: the test exercises too little", hits)
	}
}
