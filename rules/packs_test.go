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

// TestEmbeddedPacks: the packs compiled into the binary are the ones on
// disk and load cleanly.
func TestEmbeddedPacks(t *testing.T) {
	s, err := rules.Load(rules.Packs())
	if err != nil {
		t.Fatalf("Load(Packs()) = %v", err)
	}
	disk, err := rules.Load(os.DirFS("packs"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Version() != disk.Version() || len(s.Rules()) != len(disk.Rules()) || len(s.Rules()) == 0 {
		t.Errorf("embedded packs: version %s, %d rules; on disk: version %s, %d rules", s.Version(), len(s.Rules()), disk.Version(), len(disk.Rules()))
	}
}
