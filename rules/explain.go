package rules

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"

	"github.com/vigilhq/vigil"
)

// Explanation tells why one rule did or did not fire on a message.
type Explanation struct {
	Rule *Rule
	// PrefilterHit is whether the rule's `when` block admitted the message;
	// Prefilter says which condition decided ("keyword \"kill\"",
	// "role customer not in [advisor]", "no prefilter").
	PrefilterHit bool
	Prefilter    string
	// Fired is whether the rule matched (prefilter and expression).
	Fired bool
	// Spans locate what matched in the message text when the rule fired.
	Spans []vigil.Span
	// Values are the values of the expression and of the operands of its
	// logical operators (&&, ||, !), outermost first, each evaluated even
	// where the real evaluation short-circuits. Empty when the prefilter
	// missed.
	Values []ExprValue
	// Err is the rule's runtime error, if any.
	Err error
}

// ExprValue is one sub-expression and its value.
type ExprValue struct {
	// Depth is the nesting level under the whole expression (0).
	Depth int
	Expr  string
	Value string
}

// Explain evaluates every rule on m and c and reports, per rule in rule
// order, whether its prefilter hit, whether it fired and the values of its
// sub-expressions. It is slower than [Set.Eval] and meant for
// `vigil rules explain`. If ctx ends, Explain returns ctx's error.
func (s *Set) Explain(ctx context.Context, m *vigil.Message, c *Context) ([]Explanation, error) {
	if m == nil {
		return nil, fmt.Errorf("explain: nil message")
	}
	out := make([]Explanation, 0, len(s.rules))
	for _, r := range s.rules {
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("explain: %w", err)
		}
		out = append(out, s.explainRule(ctx, r, m, c))
	}
	return out, nil
}

func (s *Set) explainRule(ctx context.Context, r *Rule, m *vigil.Message, c *Context) Explanation {
	st := s.acquire(m, c)
	defer s.release(st)
	ex := Explanation{Rule: r}
	ex.PrefilterHit, ex.Prefilter = st.prefilterReason(r)
	if !ex.PrefilterHit {
		return ex
	}
	fired, err := r.eval(ctx, st)
	ex.Fired, ex.Err = fired && err == nil, err
	if ex.Fired {
		ex.Spans = spansOf(st.spans)
	}
	prg, err := r.explainProgram()
	if err != nil {
		ex.Err = err
		return ex
	}
	st.spans = st.spans[:0]
	_, det, _ := prg.ContextEval(ctx, st)
	if det == nil || det.State() == nil {
		return ex
	}
	state := det.State()
	info := r.ast.NativeRep().SourceInfo()
	var walk func(e ast.Expr, depth int)
	walk = func(e ast.Expr, depth int) {
		text, err := cel.ExprToString(e, info)
		if err != nil {
			text = "?"
		}
		text = strings.Join(strings.Fields(text), " ")
		v, ok := state.Value(e.ID())
		ex.Values = append(ex.Values, ExprValue{Depth: depth, Expr: text, Value: formatValue(v, ok)})
		if e.Kind() != ast.CallKind {
			return
		}
		if _, isMacro := info.GetMacroCall(e.ID()); isMacro {
			return
		}
		switch e.AsCall().FunctionName() {
		case operators.LogicalAnd, operators.LogicalOr, operators.LogicalNot:
			for _, a := range e.AsCall().Args() {
				walk(a, depth+1)
			}
		}
	}
	walk(r.ast.NativeRep().Expr(), 0)
	return ex
}

// explainProgram plans the rule once more with state tracking and
// exhaustive evaluation, on first use only: Eval never pays for it.
func (r *Rule) explainProgram() (cel.Program, error) {
	r.explainOnce.Do(func() {
		e, err := env()
		if err != nil {
			r.explainErr = err
			return
		}
		r.explainPrg, r.explainErr = e.Program(r.ast,
			cel.EvalOptions(cel.OptExhaustiveEval|cel.OptTrackState),
			cel.InterruptCheckFrequency(DefaultInterruptCheckFrequency))
	})
	return r.explainPrg, r.explainErr
}

func formatValue(v ref.Val, ok bool) string {
	if !ok || v == nil {
		return "(not evaluated)"
	}
	switch x := v.(type) {
	case *types.Err:
		return "error: " + x.Error()
	case types.String:
		return fmt.Sprintf("%q", string(x))
	}
	return fmt.Sprint(v.Value())
}

// prefilterReason checks r's prefilter and says which condition decided.
func (st *evalState) prefilterReason(r *Rule) (bool, string) {
	w := &r.When
	if len(w.Channels) > 0 && !contains(w.Channels, st.channel) {
		return false, fmt.Sprintf("channel %q not in [%s]", st.channel, strings.Join(w.Channels, ", "))
	}
	if len(w.Roles) > 0 && !contains(w.Roles, st.role) {
		return false, fmt.Sprintf("role %q not in [%s]", st.role, strings.Join(w.Roles, ", "))
	}
	if len(w.PII) > 0 && !st.admits(r) {
		return false, fmt.Sprintf("no PII of kind [%s]", strings.Join(w.PII, ", "))
	}
	kw, hit := st.keywordHit(r)
	switch {
	case !hit:
		return false, "no keyword"
	case kw != "":
		return true, fmt.Sprintf("keyword %q", kw)
	case len(w.Channels)+len(w.Roles)+len(w.PII) > 0:
		return true, "channel, role and PII conditions hold"
	}
	return true, "no prefilter"
}
