package rules

import (
	"context"
	"fmt"
	"regexp"

	"github.com/vigilhq/vigil"
)

// TestOptions selects which inline tests [Set.Test] runs.
type TestOptions struct {
	// Run, when set, runs only the cases whose rule id or test name it
	// matches.
	Run *regexp.Regexp
}

// Report is the outcome of [Set.Test]: one entry per file, in name order.
type Report struct {
	Version string       `json:"version"`
	Files   []FileReport `json:"files"`
	// Rules, Tests and Failed total the files.
	Rules  int `json:"rules"`
	Tests  int `json:"tests"`
	Failed int `json:"failed"`
}

// FileReport is the outcome of the inline tests of one file.
type FileReport struct {
	File  string       `json:"file"`
	Rules int          `json:"rules"`
	Tests int          `json:"tests"`
	Cases []CaseResult `json:"cases"`
}

// Failed counts the failed cases of the file.
func (f FileReport) Failed() int {
	n := 0
	for _, c := range f.Cases {
		if !c.Passed {
			n++
		}
	}
	return n
}

// CaseResult is one inline test case's outcome. Want and Got read
// "no verdict" or "<action> severity=<severity>".
type CaseResult struct {
	RuleID string `json:"rule_id"`
	Test   string `json:"test"`
	Line   int    `json:"line"`
	Passed bool   `json:"passed"`
	Want   string `json:"want"`
	Got    string `json:"got"`
}

// Test runs the inline tests of every rule: each case evaluates its rule
// alone (prefilter and expression) on the case's message and context.
func (s *Set) Test(ctx context.Context, opts TestOptions) Report {
	rep := Report{Version: s.version}
	byFile := map[string]*FileReport{}
	for _, f := range s.files {
		rep.Files = append(rep.Files, FileReport{File: f})
	}
	for i := range rep.Files {
		byFile[rep.Files[i].File] = &rep.Files[i]
	}
	for _, r := range s.rules {
		fr := byFile[r.File]
		ran := false
		for _, tc := range r.Tests {
			if opts.Run != nil && !opts.Run.MatchString(r.ID) && !opts.Run.MatchString(tc.Name) {
				continue
			}
			ran = true
			res := CaseResult{RuleID: r.ID, Test: tc.Name, Line: tc.Line, Want: "no verdict"}
			if tc.Fires {
				res.Want = r.verdict()
			}
			fired, err := s.EvalRule(ctx, r, &tc.Message, &tc.Context)
			switch {
			case err != nil:
				res.Got = "error: " + err.Error()
			case fired:
				res.Got = r.verdict()
			default:
				res.Got = "no verdict"
			}
			res.Passed = err == nil && fired == tc.Fires
			fr.Cases = append(fr.Cases, res)
			fr.Tests++
			rep.Tests++
			if !res.Passed {
				rep.Failed++
			}
		}
		if ran || opts.Run == nil {
			fr.Rules++
			rep.Rules++
		}
	}
	return rep
}

func (r *Rule) verdict() string {
	return fmt.Sprintf("%s severity=%s", r.Action, r.Severity)
}

// EvalRule evaluates r alone on m and c: its prefilter, then its
// expression. r must belong to s.
func (s *Set) EvalRule(ctx context.Context, r *Rule, m *vigil.Message, c *Context) (bool, error) {
	st := s.acquire(m, c)
	defer s.release(st)
	if _, hit := st.keywordHit(r); !hit || !st.admits(r) {
		return false, nil
	}
	return r.eval(ctx, st)
}
