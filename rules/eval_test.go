package rules_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/rules"
)

// compileOne compiles a single rule with expr and when (YAML flow mapping
// or "").
func compileOne(t testing.TB, expr, when string, opts ...rules.Option) *rules.Set {
	t.Helper()
	src := "rules:\n  - id: r\n    severity: high\n    action: flag\n    expr: " + fmt.Sprintf("%q", expr) + "\n"
	if when != "" {
		src += "    when: " + when + "\n"
	}
	s, err := rules.Compile(map[string][]byte{"r.yaml": []byte(src)}, opts...)
	if err != nil {
		t.Fatalf("Compile(%q) = %v", expr, err)
	}
	return s
}

func fires(t testing.TB, s *rules.Set, m *vigil.Message, c *rules.Context) bool {
	t.Helper()
	ms, err := s.Eval(context.Background(), m, c)
	if err != nil {
		t.Fatalf("Eval = %v", err)
	}
	return len(ms) > 0
}

func TestFunctions(t *testing.T) {
	game := &rules.Context{Messages: []vigil.Message{{Text: "this boss fight is impossible"}, {Text: "respawn at the last level"}}}
	tests := []struct {
		name string
		expr string
		text string
		ctx  *rules.Context
		pii  map[string]int
		want bool
	}{
		{"phrase exact", `msg.text.has_phrase("kill you")`, "I will kill you", nil, nil, true},
		{"phrase case", `msg.text.has_phrase("kill you")`, "I WILL KILL YOU!", nil, nil, true},
		{"phrase leetspeak", `msg.text.has_phrase("kill you")`, "I will k1ll y0u", nil, nil, true},
		{"phrase diacritics", `msg.text.has_phrase("resume")`, "send your résumé", nil, nil, true},
		{"phrase word boundary", `msg.text.has_phrase("kill")`, "great skills", nil, nil, false},
		{"phrase not adjacent", `msg.text.has_phrase("kill you")`, "kill the lights, you", nil, nil, false},
		{"phrase apostrophe", `msg.text.has_phrase("can't lose")`, "you cant lose", nil, nil, true},
		{"phrase curly apostrophe", `msg.text.has_phrase("can't lose")`, "you can’t lose", nil, nil, true},
		{"numbers stay numbers", `msg.text.has_phrase("iooo")`, "send 1000", nil, nil, false},
		{"pii placeholder is not words", `msg.text.has_phrase("email")`, "reach me at ⟦EMAIL:7f3a⟧ today", nil, nil, false},
		{"pii placeholder separates words", `msg.text.has_phrase("at today")`, "reach me at⟦EMAIL:7f3a⟧today", nil, nil, true},
		{"global form", `has_phrase(msg.text, "whats app")`, "whats-app me", nil, nil, true},
		{"contains_any hit", `contains_any(msg.text, ["whatsapp", "signal"])`, "Ping me on Signal", nil, nil, true},
		{"contains_any miss", `contains_any(msg.text, ["whatsapp", "signal"])`, "signals are mixed", nil, nil, false},
		{"contains_any receiver", `msg.text.contains_any(["whatsapp", "signal"])`, "Ping me on Signal", nil, nil, true},
		{"contains_any dynamic list", `contains_any(msg.text, msg.text.split(" "))`, "dynamic list", nil, nil, true},
		{"contains_any dynamic list miss", `contains_any(msg.text, [msg.channel + "x"])`, "sms x no", nil, nil, false},
		{"contains_any empty", `contains_any(msg.text, [])`, "anything", nil, nil, false},
		{"near within", `near(msg.text, "buy", "before", 3)`, "buy it all before the announcement", nil, nil, true},
		{"near reversed", `near(msg.text, "before", "buy", 3)`, "buy it all before the announcement", nil, nil, true},
		{"near too far", `near(msg.text, "buy", "announcement", 2)`, "buy it all before the announcement", nil, nil, false},
		{"near zero adjacent", `near(msg.text, "buy", "now", 0)`, "buy now", nil, nil, true},
		{"regex", `matches_re(msg.text, "(?i)acct\\s*#?\\d{4}")`, "move ACCT #1234", nil, nil, true},
		{"regex receiver", `msg.text.matches_re("^hi")`, "hi there", nil, nil, true},
		{"regex miss", `matches_re(msg.text, "\\d{6}")`, "12345", nil, nil, false},
		{"pii.has", `pii.has("card")`, "x", nil, map[string]int{"CARD": 1}, true},
		{"pii.has zero count", `pii.has("card")`, "x", nil, map[string]int{"card": 0}, false},
		{"pii.has missing", `pii.has("ssn")`, "x", nil, map[string]int{"card": 2}, false},
		{"msg.pii list", `"card" in msg.pii`, "x", nil, map[string]int{"card": 2}, true},
		{"ctx exists game", `ctx.messages.exists(m, contains_any(m.text, ["boss", "respawn"]))`, "I'm going to kill you", game, nil, true},
		{"ctx exists no ctx", `ctx.messages.exists(m, contains_any(m.text, ["boss", "respawn"]))`, "I'm going to kill you", nil, nil, false},
		{"ctx size", `size(ctx.messages) == 2 && ctx.window == duration("5m")`, "x", &rules.Context{Messages: game.Messages, Window: 5 * time.Minute}, nil, true},
		{"ctx counters", `ctx.participant_counts["u1"] > 3 && ctx.risk_score > 0.5`, "x", &rules.Context{ParticipantCounts: map[string]int{"u1": 4}, RiskScore: 0.7}, nil, true},
		{"msg fields", `msg.role == "advisor" && msg.channel == "sms" && msg.tenant == "acme" && msg.sender == "u1"`, "x", nil, nil, true},
		{"ctx fields", `ctx.messages[1].text == "respawn at the last level" && ctx.messages.all(m, m.role == "")`, "x", game, nil, true},
		{"struct literal takes the reflective path", `rules.msgVars{text: "kill"}.text == "kill"`, "x", nil, nil, true},
		{"ext strings", `msg.text.lowerAscii().startsWith("hello")`, "HELLO there", nil, nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := compileOne(t, tc.expr, "")
			m := &vigil.Message{Text: tc.text, Tenant: "acme", Channel: "SMS", Sender: vigil.Participant{ID: "u1", Role: "Advisor"}, PII: tc.pii}
			if got := fires(t, s, m, tc.ctx); got != tc.want {
				t.Errorf("%s on %q = %v, want %v", tc.expr, tc.text, got, tc.want)
			}
		})
	}
}

func TestPrefilter(t *testing.T) {
	tests := []struct {
		name string
		when string
		msg  vigil.Message
		want bool
	}{
		{"keyword hit", `{keywords: [whatsapp]}`, vigil.Message{Text: "use WhatsApp"}, true},
		{"keyword phrase hit", `{keywords: ["text me"]}`, vigil.Message{Text: "just text me later"}, true},
		{"keyword phrase miss", `{keywords: ["text me"]}`, vigil.Message{Text: "text is here, me too"}, false},
		{"keyword leet", `{keywords: [signal]}`, vigil.Message{Text: "s1gnal?"}, true},
		{"keyword miss", `{keywords: [whatsapp]}`, vigil.Message{Text: "use email"}, false},
		{"channel hit", `{channels: [sms]}`, vigil.Message{Text: "x", Channel: "SMS"}, true},
		{"channel miss", `{channels: [sms]}`, vigil.Message{Text: "x", Channel: "teams"}, false},
		{"role hit", `{roles: [advisor, staff]}`, vigil.Message{Text: "x", Sender: vigil.Participant{Role: "staff"}}, true},
		{"role miss", `{roles: [advisor]}`, vigil.Message{Text: "x", Sender: vigil.Participant{Role: "customer"}}, false},
		{"pii hit", `{pii: [card, ssn]}`, vigil.Message{Text: "x", PII: map[string]int{"ssn": 1}}, true},
		{"pii miss", `{pii: [card]}`, vigil.Message{Text: "x", PII: map[string]int{"email": 1}}, false},
		{"all must hold", `{keywords: [x], roles: [advisor]}`, vigil.Message{Text: "x", Sender: vigil.Participant{Role: "customer"}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := compileOne(t, "true", tc.when)
			if got := fires(t, s, &tc.msg, nil); got != tc.want {
				t.Errorf("when %s on %+v fired = %v, want %v", tc.when, tc.msg, got, tc.want)
			}
		})
	}
}

func TestEvalSpans(t *testing.T) {
	s := compileOne(t, `msg.text.has_phrase("guaranteed returns") || matches_re(msg.text, "risk.free")`, "")
	text := "Guaranteed returns, totally risk-free."
	ms, err := s.Eval(context.Background(), &vigil.Message{Text: text}, nil)
	if err != nil || len(ms) != 1 {
		t.Fatalf("Eval = %v, %v; want one match", ms, err)
	}
	var got []string
	for _, sp := range ms[0].Spans {
		got = append(got, text[sp.Start:sp.End])
	}
	if strings.Join(got, "|") != "Guaranteed returns" {
		t.Errorf("spans = %q, want [Guaranteed returns] (|| short-circuits)", got)
	}
}

func TestEvalCostLimit(t *testing.T) {
	s := compileOne(t, `ctx.messages.exists(m, m.text.has_phrase("zzz"))`, "", rules.WithCostLimit(20))
	c := &rules.Context{}
	for i := 0; i < 50; i++ {
		c.Messages = append(c.Messages, vigil.Message{Text: strings.Repeat("word ", 40)})
	}
	ms, err := s.Eval(context.Background(), &vigil.Message{Text: "x"}, c)
	var ee *rules.EvalError
	if len(ms) != 0 || !errors.As(err, &ee) || ee.Kind != "cost limit exceeded" || ee.RuleID != "r" {
		t.Fatalf("Eval = %v, %v; want an EvalError cost limit exceeded for rule r", ms, err)
	}
	if strings.Contains(err.Error(), "word") {
		t.Errorf("error %q leaks message text", err)
	}
}

func TestEvalCanceled(t *testing.T) {
	s := compileOne(t, `true`, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Eval(ctx, &vigil.Message{Text: "x"}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Eval on canceled ctx = %v, want context.Canceled", err)
	}
}

func TestEvalConcurrent(t *testing.T) {
	s := compileOne(t, `msg.text.has_phrase("alpha") && !ctx.messages.exists(m, m.text.has_phrase("beta"))`, `{keywords: [alpha]}`)
	done := make(chan bool)
	for g := 0; g < 4; g++ {
		go func(g int) {
			ok := true
			for i := 0; i < 200; i++ {
				c := &rules.Context{}
				if i%2 == 0 {
					c.Messages = []vigil.Message{{Text: "beta"}}
				}
				ms, err := s.Eval(context.Background(), &vigil.Message{Text: fmt.Sprintf("alpha %d %d", g, i)}, c)
				if err != nil || (len(ms) == 1) != (i%2 == 1) {
					ok = false
				}
			}
			done <- ok
		}(g)
	}
	for g := 0; g < 4; g++ {
		if !<-done {
			t.Error("concurrent Eval gave a wrong result")
		}
	}
}

// TestNoPIIInErrors drives seeded personal data through the failure paths
// (runtime error, cost limit, failed inline test) and scans every message.
func TestNoPIIInErrors(t *testing.T) {
	const secret = "4111111111111111 jane.doe@example.com"
	for _, expr := range []string{
		`int(msg.text) > 0`,
		`msg.metadata[msg.text] == "x"`,
		`matches_re(msg.text, msg.text + "(")`,
	} {
		s := compileOne(t, expr, "")
		_, err := s.Eval(context.Background(), &vigil.Message{Text: secret, Metadata: map[string]string{}}, nil)
		var ee *rules.EvalError
		if !errors.As(err, &ee) {
			t.Errorf("%s: Eval = %v, want an EvalError", expr, err)
			continue
		}
		if strings.Contains(err.Error(), "4111") || strings.Contains(err.Error(), "jane") {
			t.Errorf("%s: error %q leaks message text", expr, err)
		}
	}
	src := "rules:\n  - id: r\n    severity: low\n    action: flag\n    expr: int(msg.text) > 0\n    tests:\n      - name: t\n        message: {text: \"" + secret + "\"}\n        fires: true\n"
	s, err := rules.Compile(map[string][]byte{"r.yaml": []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	rep := s.Test(context.Background(), rules.TestOptions{})
	if rep.Failed != 1 || strings.Contains(fmt.Sprint(rep), "4111") {
		t.Errorf("report %+v: want 1 failure that does not echo the message", rep)
	}
}
