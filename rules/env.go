package rules

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/common/types/traits"
	"github.com/google/cel-go/ext"
	"github.com/google/cel-go/parser"
)

// Names of the CEL variables rules see.
const (
	varMsg = "msg"
	varCtx = "ctx"
	varPII = "pii"
	// varDoc is the per-evaluation text cache that the text-matching macros
	// pass to their functions, so a message is normalized once per Eval and
	// not once per rule. Rule authors never write it.
	varDoc = "_vigil_doc"
)

// Names of the CEL functions Vigil adds (documented in docs/rules.md).
const (
	fnHasPhrase   = "has_phrase"
	fnContainsAny = "contains_any"
	fnNear        = "near"
	fnMatchesRE   = "matches_re"
	fnHas         = "has"
	// fnContainsAnyPacked is contains_any with a literal list packed into
	// one string constant by the macro, so the list is not rebuilt on
	// every evaluation. Authors never write it.
	fnContainsAnyPacked = "_vigil_contains_any"
	// packSep separates the phrases of a packed list.
	packSep = "\x1f"
)

// msgVars is `msg` (and each element of `ctx.messages`) as CEL sees it.
type msgVars struct {
	Text         string            `cel:"text"`
	Sender       string            `cel:"sender"`
	Role         string            `cel:"role"`
	Roles        []string          `cel:"roles"`
	Channel      string            `cel:"channel"`
	Tenant       string            `cel:"tenant"`
	Conversation string            `cel:"conversation"`
	Time         time.Time         `cel:"time"`
	PII          []string          `cel:"pii"`
	Metadata     map[string]string `cel:"metadata"`
}

// ctxVars is `ctx` as CEL sees it.
type ctxVars struct {
	Messages          []msgVars        `cel:"messages"`
	Window            time.Duration    `cel:"window"`
	ParticipantCounts map[string]int64 `cel:"participant_counts"`
	RiskScore         float64          `cel:"risk_score"`

	// messages is Messages as a CEL list of already wrapped objects, built
	// once per Eval and shared by every rule (see fastFields).
	messages ref.Val
}

// fastFields wraps the native-types provider: the planner then reads the
// fields of msg and ctx with plain Go field access instead of reflection,
// and ctx.messages yields the list built once per Eval instead of
// re-wrapping each element on every access by every rule. Values not built
// by this package (a struct literal in an expression) take the reflective
// path.
type fastFields struct{ types.Provider }

func (p fastFields) FindStructFieldType(structType, field string) (*types.FieldType, bool) {
	ft, ok := p.Provider.FindStructFieldType(structType, field)
	if !ok || ft.GetFrom == nil {
		return ft, ok
	}
	get := fastGetter(structType, field)
	if get == nil {
		return ft, ok
	}
	slow := ft.GetFrom
	fast := *ft
	fast.GetFrom = func(obj any) (any, error) {
		if v, ok := get(obj); ok {
			return v, nil
		}
		return slow(obj)
	}
	return &fast, true
}

func fastGetter(structType, field string) func(any) (any, bool) {
	msgString := func(f func(*msgVars) string) func(any) (any, bool) {
		return func(o any) (any, bool) {
			m, ok := o.(*msgVars)
			if !ok {
				return nil, false
			}
			return types.String(f(m)), true
		}
	}
	switch structType + "." + field {
	case "rules.msgVars.text":
		return msgString(func(m *msgVars) string { return m.Text })
	case "rules.msgVars.role":
		return msgString(func(m *msgVars) string { return m.Role })
	case "rules.msgVars.channel":
		return msgString(func(m *msgVars) string { return m.Channel })
	case "rules.msgVars.sender":
		return msgString(func(m *msgVars) string { return m.Sender })
	case "rules.msgVars.tenant":
		return msgString(func(m *msgVars) string { return m.Tenant })
	case "rules.ctxVars.messages":
		return func(o any) (any, bool) {
			c, ok := o.(*ctxVars)
			if !ok || c.messages == nil {
				return nil, false
			}
			return c.messages, true
		}
	}
	return nil
}

var (
	msgType = cel.ObjectType("rules.msgVars")
	ctxType = cel.ObjectType("rules.ctxVars")
	docType = cel.OpaqueType("vigil.doc")
)

// doc is the CEL value of varDoc: a handle on the evaluation state.
type doc struct{ st *evalState }

func (d *doc) ConvertToNative(reflect.Type) (any, error) {
	return nil, fmt.Errorf("vigil.doc cannot be converted")
}
func (d *doc) ConvertToType(ref.Type) ref.Val { return types.NewErr("vigil.doc cannot be converted") }
func (d *doc) Equal(o ref.Val) ref.Val        { return types.Bool(d == o) }
func (d *doc) Type() ref.Type                 { return docType }
func (d *doc) Value() any                     { return d }

// textCache caches normalized phrases and compiled regular expressions for
// one Set. Entries come from rule literals, so the caches stay small; a cap
// keeps dynamic arguments from growing them without bound.
type textCache struct {
	phrases sync.Map // string → []string
	nPhrase atomic.Int64
	packs   sync.Map // packed string → [][]string
	nPack   atomic.Int64
	regexps sync.Map // string → *regexp.Regexp
	nRegexp atomic.Int64
}

const maxCacheEntries = 10000

func (c *textCache) phrase(p string) []string {
	if v, ok := c.phrases.Load(p); ok {
		return v.([]string)
	}
	ws := phraseWords(p)
	if c.nPhrase.Add(1) <= maxCacheEntries {
		c.phrases.Store(p, ws)
	}
	return ws
}

func (c *textCache) packed(p string) [][]string {
	if v, ok := c.packs.Load(p); ok {
		return v.([][]string)
	}
	var out [][]string
	for _, s := range strings.Split(p, packSep) {
		out = append(out, phraseWords(s))
	}
	if c.nPack.Add(1) <= maxCacheEntries {
		c.packs.Store(p, out)
	}
	return out
}

func (c *textCache) regexp(p string) (*regexp.Regexp, error) {
	if v, ok := c.regexps.Load(p); ok {
		return v.(*regexp.Regexp), nil
	}
	re, err := regexp.Compile(p)
	if err != nil {
		return nil, err
	}
	if c.nRegexp.Add(1) <= maxCacheEntries {
		c.regexps.Store(p, re)
	}
	return re, nil
}

// containsAnyMacro rewrites contains_any like docMacro; a list literal of
// string literals becomes one packed string constant.
func containsAnyMacro(eh parser.ExprHelper, target ast.Expr, args []ast.Expr) (ast.Expr, *common.Error) {
	text, list := args[0], args[len(args)-1]
	if target != nil {
		text = target
	}
	if list.Kind() == ast.ListKind && len(list.AsList().OptionalIndices()) == 0 {
		var ps []string
		for _, el := range list.AsList().Elements() {
			if el.Kind() != ast.LiteralKind {
				ps = nil
				break
			}
			p, ok := el.AsLiteral().(types.String)
			if !ok || strings.Contains(string(p), packSep) {
				ps = nil
				break
			}
			ps = append(ps, string(p))
		}
		if len(ps) > 0 {
			return eh.NewCall(fnContainsAnyPacked, eh.NewIdent(varDoc), text, eh.NewLiteral(types.String(strings.Join(ps, packSep)))), nil
		}
	}
	return docMacro(fnContainsAny)(eh, target, args)
}

// docMacro rewrites a text function call so that it also receives the
// evaluation's text cache: f(a, b) and a.f(b) become f(_vigil_doc, a, b).
func docMacro(fn string) parser.MacroExpander {
	return func(eh parser.ExprHelper, target ast.Expr, args []ast.Expr) (ast.Expr, *common.Error) {
		all := []ast.Expr{eh.NewIdent(varDoc)}
		if target != nil {
			all = append(all, target)
		}
		return eh.NewCall(fn, append(all, args...)...), nil
	}
}

// newEnv builds the one CEL environment every rule compiles in.
func newEnv(c *textCache) (*cel.Env, error) {
	str := func(v ref.Val) string { return string(v.(types.String)) }
	return cel.NewEnv(
		ext.NativeTypes(reflect.TypeFor[msgVars](), reflect.TypeFor[ctxVars](), ext.ParseStructTags(true)),
		func(e *cel.Env) (*cel.Env, error) {
			return cel.CustomTypeProvider(fastFields{e.CELTypeProvider()})(e)
		},
		ext.Strings(),
		cel.Variable(varMsg, msgType),
		cel.Variable(varCtx, ctxType),
		cel.Variable(varPII, cel.MapType(cel.StringType, cel.IntType)),
		cel.Variable(varDoc, docType),
		cel.Macros(
			cel.ReceiverMacro(fnHasPhrase, 1, docMacro(fnHasPhrase)),
			cel.GlobalMacro(fnHasPhrase, 2, docMacro(fnHasPhrase)),
			cel.GlobalMacro(fnContainsAny, 2, containsAnyMacro),
			cel.ReceiverMacro(fnContainsAny, 1, containsAnyMacro),
			cel.GlobalMacro(fnNear, 4, docMacro(fnNear)),
			cel.GlobalMacro(fnMatchesRE, 2, docMacro(fnMatchesRE)),
			cel.ReceiverMacro(fnMatchesRE, 1, docMacro(fnMatchesRE)),
		),
		cel.Function(fnHasPhrase,
			cel.Overload("has_phrase_doc_string_string", []*cel.Type{docType, cel.StringType, cel.StringType}, cel.BoolType,
				cel.FunctionBinding(func(args ...ref.Val) ref.Val {
					st := args[0].(*doc).st
					return types.Bool(st.hasPhrase(str(args[1]), c.phrase(str(args[2]))))
				}))),
		cel.Function(fnContainsAny,
			cel.Overload("contains_any_doc_string_list", []*cel.Type{docType, cel.StringType, cel.ListType(cel.StringType)}, cel.BoolType,
				cel.FunctionBinding(func(args ...ref.Val) ref.Val {
					st := args[0].(*doc).st
					text := str(args[1])
					l := args[2].(traits.Lister)
					n := int(l.Size().(types.Int))
					found := false
					for i := 0; i < n; i++ {
						p, ok := l.Get(types.Int(i)).(types.String)
						if !ok {
							return types.NewErr("contains_any: list element is not a string")
						}
						if st.hasPhrase(text, c.phrase(string(p))) {
							found = true
						}
					}
					return types.Bool(found)
				}))),
		cel.Function(fnContainsAnyPacked,
			cel.Overload("vigil_contains_any_doc_string_packed", []*cel.Type{docType, cel.StringType, cel.StringType}, cel.BoolType,
				cel.FunctionBinding(func(args ...ref.Val) ref.Val {
					st := args[0].(*doc).st
					text := str(args[1])
					found := false
					for _, p := range c.packed(str(args[2])) {
						if st.hasPhrase(text, p) {
							found = true
						}
					}
					return types.Bool(found)
				}))),
		cel.Function(fnNear,
			cel.Overload("near_doc_string_string_string_int", []*cel.Type{docType, cel.StringType, cel.StringType, cel.StringType, cel.IntType}, cel.BoolType,
				cel.FunctionBinding(func(args ...ref.Val) ref.Val {
					st := args[0].(*doc).st
					n := int64(args[4].(types.Int))
					if n < 0 {
						return types.NewErr("near: distance must not be negative")
					}
					return types.Bool(st.near(str(args[1]), c.phrase(str(args[2])), c.phrase(str(args[3])), int(n)))
				}))),
		cel.Function(fnMatchesRE,
			cel.Overload("matches_re_doc_string_string", []*cel.Type{docType, cel.StringType, cel.StringType}, cel.BoolType,
				cel.FunctionBinding(func(args ...ref.Val) ref.Val {
					st := args[0].(*doc).st
					re, err := c.regexp(str(args[2]))
					if err != nil {
						return types.NewErr("matches_re: invalid pattern")
					}
					return types.Bool(st.matchRE(str(args[1]), re))
				}))),
		cel.Function(fnHas,
			cel.MemberOverload("map_string_int_has_string", []*cel.Type{cel.MapType(cel.StringType, cel.IntType), cel.StringType}, cel.BoolType,
				cel.BinaryBinding(func(m, k ref.Val) ref.Val {
					v, found := m.(traits.Mapper).Find(types.String(strings.ToLower(str(k))))
					if !found {
						return types.False
					}
					n, ok := v.(types.Int)
					return types.Bool(ok && n > 0)
				}))),
		// Keep the macro calls as written so `vigil rules explain` can print
		// sub-expressions the way the author wrote them.
		cel.EnableMacroCallTracking(),
	)
}

// Sizes the cost estimator assumes for values whose size only the message
// knows. They bound what one rule may cost in the worst case.
const (
	estTextRunes   = 4096
	estContextMsgs = 100
	estListItems   = 16
	estStringRunes = 256
)

// costEstimator tells the CEL checker how big the variables may get and
// what Vigil's functions cost, so [Env.EstimateCost] bounds a rule.
type costEstimator struct{}

var _ checker.CostEstimator = costEstimator{}

func (costEstimator) EstimateSize(n checker.AstNode) *checker.SizeEstimate {
	p := n.Path()
	if len(p) == 0 {
		return nil
	}
	last := p[len(p)-1]
	switch {
	case last == "messages":
		return &checker.SizeEstimate{Min: 0, Max: estContextMsgs}
	case last == "text":
		return &checker.SizeEstimate{Min: 0, Max: estTextRunes}
	case last == "pii" || last == "roles" || last == "metadata" || last == "participant_counts" || p[0] == varPII:
		return &checker.SizeEstimate{Min: 0, Max: estListItems}
	}
	return &checker.SizeEstimate{Min: 0, Max: estStringRunes}
}

func (e costEstimator) EstimateCallCost(fn, _ string, _ *checker.AstNode, args []checker.AstNode) *checker.CallEstimate {
	size := func(n checker.AstNode) uint64 {
		if s := n.ComputedSize(); s != nil {
			return s.Max
		}
		if s := e.EstimateSize(n); s != nil {
			return s.Max
		}
		return estStringRunes
	}
	words := func(n checker.AstNode) uint64 { return size(n)/8 + 1 }
	var c uint64
	switch fn {
	case fnHasPhrase:
		c = words(args[1])
	case fnContainsAny:
		c = words(args[1]) * max(size(args[2]), 1)
	case fnContainsAnyPacked:
		n := uint64(1)
		if lit := args[2].Expr(); lit.Kind() == ast.LiteralKind {
			if p, ok := lit.AsLiteral().(types.String); ok {
				n = uint64(strings.Count(string(p), packSep) + 1)
			}
		}
		c = words(args[1]) * n
	case fnNear:
		c = 2 * words(args[1])
	case fnMatchesRE:
		c = size(args[1]) * 2
	default:
		return nil
	}
	return &checker.CallEstimate{CostEstimate: checker.CostEstimate{Min: 1, Max: c}}
}

// actualCost charges Vigil's functions at run time in proportion to the
// text they scan, as the estimator does.
type actualCost struct{}

func (actualCost) CallCost(fn, _ string, args []ref.Val, _ ref.Val) *uint64 {
	textLen := func(i int) uint64 {
		if i < len(args) {
			if s, ok := args[i].(types.String); ok {
				return uint64(len(s))
			}
		}
		return 0
	}
	var c uint64
	switch fn {
	case fnHasPhrase, fnNear:
		c = textLen(1)/8 + 1
	case fnContainsAny:
		n := uint64(1)
		if l, ok := args[2].(traits.Lister); ok {
			n = uint64(max(int64(l.Size().(types.Int)), 1))
		}
		c = (textLen(1)/8 + 1) * n
	case fnContainsAnyPacked:
		n := uint64(1)
		if p, ok := args[2].(types.String); ok {
			n = uint64(strings.Count(string(p), packSep) + 1)
		}
		c = (textLen(1)/8 + 1) * n
	case fnMatchesRE:
		c = textLen(1)/4 + 1
	default:
		return nil
	}
	return &c
}
