package rules_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/rules"
)

// maxFuzzInput keeps the fuzzer on inputs the size of real rule files.
const maxFuzzInput = 64 << 10

// FuzzCompile feeds rule files to the parser and compiler. Seeds are the
// packs and every testdata fixture (plus testdata/fuzz/FuzzCompile).
// Properties: no panic; a rejection wraps ErrRulesetRejected with
// positioned CompileErrors; an accepted Set evaluates and explains a
// message without panicking and has a stable version.
//
// Minimizing an interesting input re-runs this whole pipeline thousands of
// times; bound it or the fuzzer spends its time there:
//
//	go test -run '^$' -fuzz FuzzCompile -fuzztime 60s -fuzzminimizetime 20x ./rules
func FuzzCompile(f *testing.F) {
	for _, pattern := range []string{"packs/*/*.yaml", "testdata/bad/*.yaml", "testdata/cli/*/*.yaml"} {
		names, err := filepath.Glob(pattern)
		if err != nil {
			f.Fatal(err)
		}
		for _, n := range names {
			b, err := os.ReadFile(n)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxFuzzInput {
			return
		}
		files := map[string][]byte{"fuzz.yaml": b}
		s, err := rules.Compile(files)
		if err != nil {
			if s != nil {
				t.Fatal("Compile returned a Set with an error")
			}
			if !errors.Is(err, rules.ErrRulesetRejected) {
				t.Fatalf("Compile error %v does not wrap ErrRulesetRejected", err)
			}
			var ces rules.CompileErrors
			if !errors.As(err, &ces) || len(ces) == 0 {
				t.Fatalf("Compile error %v carries no CompileErrors", err)
			}
			for _, ce := range ces {
				if ce.File != "fuzz.yaml" || ce.Msg == "" {
					t.Fatalf("bad CompileError %+v", ce)
				}
				_ = ce.Display()
			}
			return
		}
		if s.Version() != rules.Version(files) {
			t.Fatal("Version is not the content hash")
		}
		ctx := context.Background()
		m := &vigil.Message{Text: "I'm going to kill you ⟦CARD:1a⟧ " + strings.Repeat("x ", 10), PII: map[string]int{"card": 1}}
		c := &rules.Context{Messages: []vigil.Message{{Text: "boss level"}}}
		_, _ = s.Eval(ctx, m, c)
		_, _ = s.Explain(ctx, m, c)
		_ = s.Test(ctx, rules.TestOptions{})
	})
}

// FuzzTokenize checks the text normalizer through has_phrase: any text
// containing a phrase as its own words keeps matching it.
func FuzzTokenize(f *testing.F) {
	for _, s := range []string{"I'm going to k1ll you", "résumé ⟦EMAIL:7f⟧ can’t", "⟦unterminated", "a\u0301b", "$100 @home"} {
		f.Add(s)
	}
	s, err := rules.Compile(map[string][]byte{"p.yaml": []byte("rules:\n  - id: p\n    severity: low\n    action: flag\n    expr: msg.text.has_phrase('needle word')\n")})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > maxFuzzInput {
			return
		}
		m := &vigil.Message{Text: text + " needle word"}
		ms, err := s.Eval(context.Background(), m, nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(text, "⟦") && len(ms) != 1 {
			t.Fatalf("has_phrase('needle word') missed in %q", m.Text)
		}
		for _, mt := range ms {
			for _, sp := range mt.Spans {
				if sp.Start < 0 || sp.End > len(m.Text) || sp.Start >= sp.End {
					t.Fatalf("span %+v out of range for %q", sp, m.Text)
				}
			}
		}
	})
}
