package rules

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode/utf8"
)

// ErrRulesetRejected is returned by [Load], [LoadDir], [LoadFiles] and
// [Compile] when any rule file fails to parse or compile, and by the Load
// functions when an inline test fails. Nothing of such a ruleset is usable:
// a caller reloading rules keeps its previous [Set]. The error also wraps
// [CompileErrors] (use errors.As) when compilation failed, or a
// [*TestFailedError] when inline tests failed.
var ErrRulesetRejected = errors.New("ruleset rejected")

// ErrInvalidOption is wrapped by every error an [Option] returns.
var ErrInvalidOption = errors.New("invalid option")

// DefaultMaxErrors caps how many problems a ruleset reports; more are
// summarized in one last line.
const DefaultMaxErrors = 100

// CompileError is one problem in a rule file, positioned in that file.
// Line and Col are 1-based; Col counts runes. RuleID is empty when the
// problem is not inside a rule (a YAML syntax error, an unknown top-level
// key). Source is the offending line of the file, when known.
type CompileError struct {
	File   string
	Line   int
	Col    int
	RuleID string
	Msg    string
	Source string
}

// Error returns "<file>:<line>:<col>: rule <id>: <message>".
func (e *CompileError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d:%d", e.Line, e.Col)
	}
	b.WriteString(": ")
	if e.RuleID != "" {
		b.WriteString("rule ")
		b.WriteString(e.RuleID)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Display renders the error the way cel-go displays its issues: an
// "ERROR: " line, the source line and a caret under the column.
func (e *CompileError) Display() string {
	s := "ERROR: " + e.Error()
	if e.Source == "" || e.Col < 1 || len(e.Source) > 200 {
		return s
	}
	src := strings.ReplaceAll(e.Source, "\t", " ")
	var ind strings.Builder
	b := []byte(src)
	for i := 0; i < e.Col-1 && len(b) > 0; i++ {
		_, sz := utf8.DecodeRune(b)
		b = b[sz:]
		if sz > 1 {
			ind.WriteString("\uff0e")
		} else {
			ind.WriteByte('.')
		}
	}
	if _, sz := utf8.DecodeRune(b); sz > 1 {
		ind.WriteString("\uff3e")
	} else {
		ind.WriteByte('^')
	}
	return s + "\n | " + src + "\n | " + ind.String()
}

// CompileErrors is every problem found in a ruleset, sorted by file, line
// and column and capped at [DefaultMaxErrors].
type CompileErrors []*CompileError

// Error lists every problem on its own line.
func (es CompileErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Display renders every problem as [CompileError.Display] does, one after
// the other.
func (es CompileErrors) Display() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Display()
	}
	return strings.Join(lines, "\n")
}

// sortAndCap orders problems by position and keeps the first max, adding a
// last entry that says how many were left out.
func (es CompileErrors) sortAndCap(max int) CompileErrors {
	sort.SliceStable(es, func(i, j int) bool {
		a, b := es[i], es[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		if a.Col != b.Col {
			return a.Col < b.Col
		}
		return a.Msg < b.Msg
	})
	if max > 0 && len(es) > max {
		n := len(es) - max
		es = append(es[:max:max], &CompileError{File: es[max-1].File, Msg: fmt.Sprintf("%d more errors not shown", n)})
	}
	return es
}

// ByFile returns the problems found in file.
func (es CompileErrors) ByFile(file string) CompileErrors {
	var out CompileErrors
	for _, e := range es {
		if e.File == file {
			out = append(out, e)
		}
	}
	return out
}

// TestFailedError is wrapped with [ErrRulesetRejected] by the Load
// functions when inline tests fail. Report holds every result.
type TestFailedError struct {
	Report Report
}

func (e *TestFailedError) Error() string {
	return fmt.Sprintf("%d of %d inline tests failed", e.Report.Failed, e.Report.Tests)
}

// EvalError is a runtime failure of one rule. Its message names the rule and
// the kind of failure only, never message content; Unwrap gives the CEL
// error for debugging.
type EvalError struct {
	RuleID string
	Kind   string
	Err    error
}

func (e *EvalError) Error() string { return fmt.Sprintf("evaluate rule %s: %s", e.RuleID, e.Kind) }

// Unwrap returns the underlying CEL or context error.
func (e *EvalError) Unwrap() error { return e.Err }
