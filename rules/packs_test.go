package rules_test

import (
	"context"
	"os"
	"testing"

	"github.com/vigilhq/vigil/rules"
)

// TestPacks loads every standard pack: it must compile, pass all inline
// tests and be lint-clean.
func TestPacks(t *testing.T) {
	for _, dir := range []string{"packs/finance", "packs/healthcare"} {
		t.Run(dir, func(t *testing.T) {
			s, err := rules.Load(os.DirFS(dir))
			if err != nil {
				t.Fatalf("Load(%s) = %v", dir, err)
			}
			rep := s.Test(context.Background(), rules.TestOptions{})
			if rep.Tests == 0 || rep.Failed != 0 {
				t.Errorf("Test(%s) = %d tests, %d failed; want >0 and 0", dir, rep.Tests, rep.Failed)
			}
			for _, f := range rep.Files {
				for _, c := range f.Cases {
					if !c.Passed {
						t.Errorf("%s: rule %s, test %q: want %s, got %s", f.File, c.RuleID, c.Test, c.Want, c.Got)
					}
				}
			}
			if l := s.Lint(); len(l) > 0 {
				t.Errorf("lint findings in %s:\n%s", dir, l)
			}
		})
	}
}
