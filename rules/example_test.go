package rules_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/rules"
)

const exampleRules = `rules:
  - id: threat.violence
    description: A threat, unless the conversation is about a game.
    severity: critical
    action: retract
    tags: [FINRA-3110]
    when:
      keywords: [kill]
    expr: |
      msg.text.has_phrase("kill you")
      && !ctx.messages.exists(m, contains_any(m.text, ["game", "boss", "respawn"]))
    tests:
      - name: threat
        message: {text: "I'm going to kill you"}
        fires: true
`

func ExampleSet_Eval() {
	set, err := rules.LoadFiles(map[string][]byte{"threats.yaml": []byte(exampleRules)})
	if err != nil {
		fmt.Println(err)
		return
	}
	msg := &vigil.Message{Text: "I'm going to K1LL you"}
	for _, prev := range [][]vigil.Message{nil, {{Text: "that boss fight again?"}}} {
		matches, err := set.Eval(context.Background(), msg, &rules.Context{Messages: prev})
		if err != nil {
			fmt.Println(err)
			return
		}
		for _, m := range matches {
			sp := m.Spans[0]
			fmt.Printf("%s: %s %q\n", m.Rule.ID, m.Rule.Action, msg.Text[sp.Start:sp.End])
		}
		if len(matches) == 0 {
			fmt.Println("no verdict")
		}
	}
	// Output:
	// threat.violence: retract "K1LL you"
	// no verdict
}

func ExampleCompileErrors() {
	bad := "rules:\n  - id: r1\n    severity: high\n    action: flag\n    expr: msg.text.has_phrase(\"x\") && msg.sender_role == \"advisor\"\n"
	_, err := rules.Compile(map[string][]byte{"bad.yaml": []byte(bad)})
	var ces rules.CompileErrors
	if errors.Is(err, rules.ErrRulesetRejected) && errors.As(err, &ces) {
		fmt.Println(ces.Display())
	}
	// Output:
	// ERROR: bad.yaml:5:42: rule r1: undefined field 'sender_role'
	//  |     expr: msg.text.has_phrase("x") && msg.sender_role == "advisor"
	//  | .........................................^
}
