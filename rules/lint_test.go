package rules_test

import (
	"strings"
	"testing"

	"github.com/vigilhq/vigil/rules"
)

func TestLintKeywordCoverage(t *testing.T) {
	const finding = "expr can be true for a message without any of when.keywords"
	tests := []struct {
		name     string
		keywords string
		expr     string
		want     bool
	}{
		{"covered phrase", "[whatsapp]", `msg.text.has_phrase("whatsapp")`, false},
		{"keyword inside phrase", "[cell]", `contains_any(msg.text, ["my cell", "personal cell"])`, false},
		{"one phrase uncovered", "[whatsapp]", `contains_any(msg.text, ["whatsapp", "telegram"])`, true},
		{"and needs one covered side", "[kill]", `msg.text.has_phrase("kill you") && !contains_any(msg.text, ["game"])`, false},
		{"or needs both sides", "[kill]", `msg.text.has_phrase("kill you") || msg.text.has_phrase("hurt you")`, true},
		{"near needs one side", "[coordinate]", `near(msg.text, "coordinate", "bids", 3)`, false},
		{"context text does not count", "[boss]", `ctx.messages.exists(m, m.text.has_phrase("boss"))`, true},
		{"regex is not known", "[acct]", `matches_re(msg.text, "acct")`, true},
		{"normalized comparison", "[risk free]", `msg.text.has_phrase("risk-free")`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := "rules:\n  - id: r\n    description: d\n    severity: low\n    action: flag\n    tags: [T]\n    when: {keywords: " + tc.keywords + "}\n    expr: '" + tc.expr + "'\n"
			s, err := rules.Compile(map[string][]byte{"r.yaml": []byte(src)})
			if err != nil {
				t.Fatal(err)
			}
			got := strings.Contains(s.Lint().Error(), finding)
			if got != tc.want {
				t.Errorf("keywords %s, expr %s: finding = %v, want %v (lint: %v)", tc.keywords, tc.expr, got, tc.want, s.Lint())
			}
		})
	}
}
