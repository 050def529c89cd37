package rules_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilhq/vigil/rules"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// TestCompileBad compiles each testdata/bad/*.bad.yaml alone: it must be
// rejected as a whole, every error positioned, and the rendered errors
// (caret lines included) equal to the .golden file beside it.
func TestCompileBad(t *testing.T) {
	tests := []struct {
		file string
		// want are "line:col: message fragment" entries that must all appear.
		want []string
	}{
		{"syntax.bad.yaml", []string{"6:5: ',' or ']' must be specified"}},
		{"unknown_key.bad.yaml", []string{`5:5: rule unknown.key: unknown field "expresion"`}},
		{"unknown_top_key.bad.yaml", []string{`1:1: unknown field "groups"`}},
		{"non_bool.bad.yaml", []string{"5:11: rule non.bool: expr must evaluate to bool, got int"}},
		{"unknown_variable.bad.yaml", []string{"7:9: rule unknown.variable: undeclared reference to 'message'"}},
		{"unknown_function.bad.yaml", []string{"5:52: rule unknown.function: undeclared reference to 'sounds_like'"}},
		{"unknown_field.bad.yaml", []string{"5:15: rule unknown.field: undefined field 'txt'"}},
		{"cost.bad.yaml", []string{"6:7: rule too.expensive: estimated cost"}},
		{"duplicate_id.bad.yaml", []string{"6:9: rule dup.rule: duplicate rule id (first defined at testdata/bad/duplicate_id.bad.yaml:2:9)"}},
		{"severity_action.bad.yaml", []string{
			`3:15: rule bad.severity: invalid severity "urgent"`,
			`8:13: rule bad.action: invalid action "delete"`,
			`13:11: rule bad.tier: invalid tier "3"`,
		}},
		{"regex.bad.yaml", []string{"6:28: rule bad.regex: invalid regular expression: missing closing ): `(unclosed`"}},
		{"folded.bad.yaml", []string{
			"7:31: rule folded.expr: undeclared reference to 'nope'",
			"11:31: rule quoted.expr: undeclared reference to 'nada'",
		}},
		{"tier2.bad.yaml", []string{"4:11: rule tier2.noprompt: a tier-2 rule needs a prompt"}},
		{"missing.bad.yaml", []string{
			"2:5: missing id", "2:5: missing severity", "2:5: missing action", "2:5: missing expr",
			`3:9: rule bad id!: invalid id "bad id!"`,
			`8:15: rule bad id!: test "no expectation": missing fires`,
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			name := filepath.Join("testdata", "bad", tc.file)
			b, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			s, err := rules.Compile(map[string][]byte{name: b})
			if s != nil {
				t.Errorf("Compile(%s) returned a Set, want nil", tc.file)
			}
			if !errors.Is(err, rules.ErrRulesetRejected) {
				t.Fatalf("Compile(%s) = %v, want ErrRulesetRejected", tc.file, err)
			}
			var ces rules.CompileErrors
			if !errors.As(err, &ces) || len(ces) == 0 {
				t.Fatalf("Compile(%s) error %v does not wrap CompileErrors", tc.file, err)
			}
			for _, ce := range ces {
				if ce.File != name || ce.Line < 1 || ce.Col < 1 {
					t.Errorf("error %q lacks a position in %s", ce.Error(), name)
				}
			}
			got := ces.Error()
			for _, w := range tc.want {
				if !strings.Contains(got, name+":"+w) {
					t.Errorf("Compile(%s) errors:\n%s\nwant one containing %q", tc.file, got, name+":"+w)
				}
			}
			golden(t, name+".golden", ces.Display()+"\n")
		})
	}
}

// golden compares got with the file, or rewrites it under -update.
func golden(t *testing.T, file, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if string(want) != got {
		t.Errorf("output differs from %s (-want +got):\n-%s\n+%s", file, want, got)
	}
}

// TestLoadRejectsWhole: one bad file rejects the good ones with it.
func TestLoadRejectsWhole(t *testing.T) {
	good := []byte("rules:\n  - id: ok\n    severity: low\n    action: flag\n    expr: msg.text.has_phrase('x')\n")
	bad := []byte("rules:\n  - id: broken\n    severity: low\n    action: flag\n    expr: msg.nope\n")
	s, err := rules.LoadFiles(map[string][]byte{"good.yaml": good, "bad.yaml": bad})
	if s != nil || !errors.Is(err, rules.ErrRulesetRejected) {
		t.Fatalf("LoadFiles = %v, %v; want nil, ErrRulesetRejected", s, err)
	}
	if !strings.Contains(err.Error(), "bad.yaml:5:14: rule broken: undefined field 'nope'") {
		t.Errorf("LoadFiles error = %q, want the position of the bad field", err)
	}
}

// TestLoadRejectsFailingTests: inline test failures reject the ruleset.
func TestLoadRejectsFailingTests(t *testing.T) {
	b, err := os.ReadFile("testdata/cli/failing/failing.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := rules.LoadFiles(map[string][]byte{"failing.yaml": b})
	var tf *rules.TestFailedError
	if s != nil || !errors.Is(err, rules.ErrRulesetRejected) || !errors.As(err, &tf) {
		t.Fatalf("LoadFiles = %v, %v; want nil, ErrRulesetRejected wrapping *TestFailedError", s, err)
	}
	if tf.Report.Failed != 1 {
		t.Errorf("failed tests = %d, want 1", tf.Report.Failed)
	}
}

func TestCompileErrorsCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("rules:\n")
	for i := 0; i < 30; i++ {
		b.WriteString("  - id: r" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + "\n    severity: nope\n    action: flag\n    expr: 'true'\n")
	}
	_, err := rules.Compile(map[string][]byte{"many.yaml": []byte(b.String())}, rules.WithMaxErrors(10))
	var ces rules.CompileErrors
	if !errors.As(err, &ces) {
		t.Fatalf("Compile = %v, want CompileErrors", err)
	}
	if len(ces) != 11 || ces[10].Msg != "20 more errors not shown" {
		t.Errorf("got %d errors, last %q; want 10 and a line saying 20 more", len(ces), ces[len(ces)-1].Msg)
	}
	if ces[0].Line != 3 || ces[9].Line != 39 {
		t.Errorf("errors not sorted by line: first %d, tenth %d", ces[0].Line, ces[9].Line)
	}
}

func TestVersionIsContentHash(t *testing.T) {
	a := map[string][]byte{"a.yaml": []byte("x"), "b.yaml": []byte("y")}
	b := map[string][]byte{"b.yaml": []byte("y"), "a.yaml": []byte("x")}
	c := map[string][]byte{"a.yaml": []byte("x"), "b.yaml": []byte("z")}
	d := map[string][]byte{"a.yamlx": []byte(""), "b.yaml": []byte("y")}
	if rules.Version(a) != rules.Version(b) {
		t.Error("Version depends on map order")
	}
	if rules.Version(a) == rules.Version(c) || rules.Version(a) == rules.Version(d) {
		t.Error("Version does not change with content or names")
	}
	e := map[string][]byte{"rules/packs/a.yaml": []byte("x"), "other/b.yaml": []byte("y")}
	if rules.Version(a) != rules.Version(e) {
		t.Error("Version depends on the directory the files were read from")
	}
	f := map[string][]byte{"a.yaml": []byte("y"), "b.yaml": []byte("x")}
	if rules.Version(a) == rules.Version(f) {
		t.Error("Version does not change when contents move between files")
	}
	if v := rules.Version(a); len(v) != 8 {
		t.Errorf("Version = %q, want 8 hex digits", v)
	}
}
