package rules_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/rules"
)

func TestExplainThreatPair(t *testing.T) {
	s, err := rules.Load(os.DirFS("packs/finance"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		example string
		fired   bool
		value   string // a sub-expression value line that must appear
	}{
		{"threat", `{message: {text: "I'm going to kill you", role: customer}}`, true, `0 true contains_any(msg.text, ["kill you"`},
		{"banter", `{message: {text: "I'm going to kill you", role: staff}, context: [{text: "beat the boss on level 4?"}]}`, false,
			`2 true ctx.messages.exists(m, contains_any(m.text, ["game"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, c, err := rules.ParseExample([]byte(tc.example))
			if err != nil {
				t.Fatal(err)
			}
			exs, err := s.Explain(context.Background(), m, c)
			if err != nil {
				t.Fatal(err)
			}
			var ex *rules.Explanation
			for i := range exs {
				if exs[i].Rule.ID == "finance.threat.violence" {
					ex = &exs[i]
				}
			}
			if ex == nil || !ex.PrefilterHit || ex.Prefilter != `keyword "kill"` || ex.Fired != tc.fired {
				t.Fatalf("Explain(%s) = %+v, want prefilter hit on kill and fired %v", tc.name, ex, tc.fired)
			}
			var lines []string
			for _, v := range ex.Values {
				lines = append(lines, strings.Repeat(" ", v.Depth)+string(rune('0'+v.Depth))+" "+v.Value+" "+v.Expr)
			}
			found := false
			for _, l := range lines {
				if strings.Contains(strings.TrimLeft(l, " "), tc.value) {
					found = true
				}
			}
			if !found {
				t.Errorf("values:\n%s\nwant a line starting %q", strings.Join(lines, "\n"), tc.value)
			}
		})
	}
}

func TestParseExampleErrors(t *testing.T) {
	for _, in := range []string{`{message: {txt: hi}}`, `{message: {text: hi, time: yesterday}}`, `{window: soon}`, `[1, 2`} {
		if _, _, err := rules.ParseExample([]byte(in)); err == nil {
			t.Errorf("ParseExample(%q) = nil error, want one", in)
		}
	}
}
