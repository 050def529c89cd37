package rules

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common"
	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
	"github.com/google/cel-go/interpreter"

	"github.com/vigilhq/vigil"
)

// Tiers of a rule.
const (
	// TierCEL rules are decided by their CEL expression on every message
	// their prefilter admits.
	TierCEL = 1
	// TierClassifier rules are candidates when prefilter and expression
	// hold; the evaluator then asks the tier-2 classifier with the rule's
	// Prompt and Labels.
	TierClassifier = 2
)

// Rule is one compiled rule. Its fields are read-only once the [Set] that
// holds it is built.
type Rule struct {
	ID          string
	Description string
	Severity    vigil.Severity
	Tier        int
	Action      vigil.Action
	// Tags are regulation references such as "FINRA-3110".
	Tags []string
	// Prompt and Labels are what a tier-2 rule asks the classifier.
	Prompt string
	Labels []string
	// File is the rule file's name as loaded; Line and Col locate the rule.
	File      string
	Line, Col int
	// Expr is the CEL expression as written.
	Expr string
	// When is the prefilter; a rule whose prefilter misses is not evaluated.
	When Prefilter
	// Tests are the rule's inline test cases.
	Tests []TestCase

	index    int
	ast      *cel.Ast
	prg      cel.Program
	keywords [][]string
	exprMap  exprMap
	src      *source

	explainOnce sync.Once
	explainPrg  cel.Program
	explainErr  error
}

// Prefilter is a rule's `when` block: cheap conditions checked before the
// CEL expression. Each non-empty list must match (keywords: any keyword
// phrase occurs in the message; channels: the message's channel; roles: the
// sender's role; pii: any of these PII kinds was found).
type Prefilter struct {
	Keywords []string
	Channels []string
	Roles    []string
	PII      []string
}

// TestCase is one inline test of a rule.
type TestCase struct {
	Name    string
	Line    int
	Message vigil.Message
	Context Context
	// Fires is whether the rule must fire on Message.
	Fires bool
}

// Context is what a rule knows about the conversation before the message.
type Context struct {
	// Messages are the previous messages, oldest first.
	Messages []vigil.Message
	// Window is the time span the previous messages cover.
	Window time.Duration
	// ParticipantCounts counts messages per participant id in the window.
	ParticipantCounts map[string]int
	// RiskScore is the conversation's rolling risk score.
	RiskScore float64
}

// Match is one rule whose prefilter and expression held for a message.
// Spans locate the phrases and patterns that matched in the message text.
type Match struct {
	Rule  *Rule
	Spans []vigil.Span
}

// Set is a compiled ruleset ([LoadFiles] also ran its inline tests). It is
// immutable and safe for concurrent use.
type Set struct {
	version string
	files   []string
	rules   []*Rule
	lint    CompileErrors
	opts    options

	// kw indexes keyword prefilters by their first normalized word.
	kw map[string][]kwEntry
	// always lists the rules without keywords, checked on every message.
	always []int

	pool sync.Pool
}

type kwEntry struct {
	phrase []string
	rule   int
}

var (
	envOnce   sync.Once
	sharedEnv *cel.Env
	envErr    error
	cache     = &textCache{}
)

// env returns the one CEL environment every rule of every Set compiles in.
func env() (*cel.Env, error) {
	envOnce.Do(func() { sharedEnv, envErr = newEnv(cache) })
	return sharedEnv, envErr
}

// Version is the ruleset's content hash ([Version] of its files): 8 hex
// digits over every file's base name and bytes. Verdicts carry it.
func (s *Set) Version() string { return s.version }

// Rules returns the rules ordered by file name, then position in the file.
func (s *Set) Rules() []*Rule { return s.rules }

// Files returns the names of the files the Set was compiled from, sorted.
func (s *Set) Files() []string { return s.files }

// Lint returns findings that do not reject the ruleset: a rule without
// tests, without a description or tags, without any prefilter (it then
// runs on every message), or whose expression can be true for messages its
// keyword prefilter never admits.
func (s *Set) Lint() CompileErrors { return s.lint }

// Rule returns the rule with id, or nil.
func (s *Set) Rule(id string) *Rule {
	for _, r := range s.rules {
		if r.ID == id {
			return r
		}
	}
	return nil
}

// LoadDir loads every *.yaml and *.yml file under dir (recursively), as
// [LoadFiles] does. File names in errors are joined to dir.
func LoadDir(dir string, opts ...Option) (*Set, error) {
	files, err := ReadFiles(dir, true)
	if err != nil {
		return nil, err
	}
	return LoadFiles(files, opts...)
}

// Load loads every *.yaml and *.yml file of fsys (recursively), as
// [LoadFiles] does.
func Load(fsys fs.FS, opts ...Option) (*Set, error) {
	files := map[string][]byte{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !isRuleFile(p) {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		files[p] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read rule files: %w", err)
	}
	return LoadFiles(files, opts...)
}

// LoadFiles compiles files (name → YAML bytes) and runs every inline test.
// If anything fails to compile, the error wraps [ErrRulesetRejected] and
// [CompileErrors]; if an inline test fails, it wraps [ErrRulesetRejected]
// and a [*TestFailedError]. Options: [WithMaxEstimatedCost],
// [WithCostLimit], [WithMaxErrors].
func LoadFiles(files map[string][]byte, opts ...Option) (*Set, error) {
	s, err := Compile(files, opts...)
	if err != nil {
		return nil, err
	}
	rep := s.Test(context.Background(), TestOptions{})
	if rep.Failed > 0 {
		return nil, fmt.Errorf("%w: %w", ErrRulesetRejected, &TestFailedError{Report: rep})
	}
	return s, nil
}

func isRuleFile(name string) bool {
	ext := path.Ext(name)
	return ext == ".yaml" || ext == ".yml"
}

// ReadFiles reads the rule files (*.yaml, *.yml) of dir, recursively when
// recursive is set, or dir itself when it is a file. Names are dir joined
// with the file's relative path.
func ReadFiles(dir string, recursive bool) (map[string][]byte, error) {
	files := map[string][]byte{}
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("read rule files: %w", err)
	}
	if !fi.IsDir() {
		b, err := os.ReadFile(dir)
		if err != nil {
			return nil, fmt.Errorf("read rule files: %w", err)
		}
		files[dir] = b
		return files, nil
	}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != dir && !recursive {
				return filepath.SkipDir
			}
			return nil
		}
		if !isRuleFile(p) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		files[p] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read rule files: %w", err)
	}
	return files, nil
}

// Version returns the content hash [Set.Version] would report for files:
// 8 hex digits of SHA-256 over every file's base name and bytes. Directory
// prefixes do not count, so the same files give the same version whether
// they are read from rules/packs/finance, from another checkout or from a
// KV bucket keyed by file name; renaming or editing a file changes it.
func Version(files map[string][]byte) string {
	sums := make([]string, 0, len(files))
	for n, b := range files {
		h := sha256.New()
		h.Write([]byte(baseName(n)))
		h.Write([]byte{0})
		h.Write(b)
		sums = append(sums, string(h.Sum(nil)))
	}
	sort.Strings(sums)
	h := sha256.New()
	for _, s := range sums {
		h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil))[:8]
}

func baseName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		return name[i+1:]
	}
	return name
}

func sortedNames(files map[string][]byte) []string {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-]*$`)

// Compile parses and type-checks files (name → YAML bytes) without running
// inline tests. Every problem of every file is reported: the error wraps
// [ErrRulesetRejected] and [CompileErrors], sorted by position and capped.
// Nothing is half-loaded: on error the Set is nil.
func Compile(files map[string][]byte, opts ...Option) (*Set, error) {
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	e, err := env()
	if err != nil {
		return nil, fmt.Errorf("build cel environment: %w", err)
	}
	s := &Set{version: Version(files), files: sortedNames(files), opts: o}
	var errs CompileErrors
	seen := map[string]*Rule{}
	for _, name := range s.files {
		src := newSource(name, files[name])
		specs, perrs := parseFile(src, files[name])
		errs = append(errs, perrs...)
		for i := range specs {
			r, rerrs := compileRule(e, src, &specs[i], o)
			errs = append(errs, rerrs...)
			if r == nil {
				continue
			}
			if prev, ok := seen[r.ID]; ok {
				sp := specs[i].ID
				errs = append(errs, src.errorf(sp.Line, sp.Col, r.ID, "duplicate rule id (first defined at %s:%d:%d)", prev.File, prev.Line, prev.Col))
				continue
			}
			seen[r.ID] = r
			r.index = len(s.rules)
			s.rules = append(s.rules, r)
			s.lint = append(s.lint, lintRule(src, &specs[i], r)...)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrRulesetRejected, errs.sortAndCap(o.maxErrors))
	}
	s.lint = s.lint.sortAndCap(0)
	s.buildIndex()
	s.pool.New = func() any { return &evalState{set: s, marks: make([]bool, len(s.rules))} }
	return s, nil
}

// compileRule validates one rule spec and compiles its expression.
func compileRule(e *cel.Env, src *source, sp *ruleSpec, o options) (*Rule, CompileErrors) {
	var errs CompileErrors
	id := sp.ID.Value
	bad := func(s scalar, format string, args ...any) {
		line, col := s.Line, s.Col
		if !s.set {
			line, col = sp.line, sp.col
		}
		errs = append(errs, src.errorf(line, col, id, format, args...))
	}
	switch {
	case !sp.ID.set || id == "":
		bad(sp.ID, "missing id")
	case !idPattern.MatchString(id):
		bad(sp.ID, "invalid id %q: use letters, digits, '.', '_' and '-'", id)
	}
	r := &Rule{
		ID: id, Description: strings.TrimSpace(sp.Description), Tags: sp.Tags,
		Prompt: strings.TrimSpace(sp.Prompt), Labels: sp.Labels,
		File: src.name, Line: sp.line, Col: sp.col, Expr: sp.Expr.Value, src: src,
	}
	if sp.ID.set {
		r.Line, r.Col = sp.ID.Line, sp.ID.Col
	}
	r.Severity = vigil.Severity(sp.Severity.Value)
	if !sp.Severity.set {
		bad(sp.Severity, "missing severity")
	} else if !r.Severity.Valid() {
		bad(sp.Severity, "invalid severity %q: want info, low, medium, high or critical", sp.Severity.Value)
	}
	r.Action = vigil.Action(sp.Action.Value)
	if !sp.Action.set {
		bad(sp.Action, "missing action")
	} else if !r.Action.Valid() {
		bad(sp.Action, "invalid action %q: want flag, retract, escalate, alert or escalate_tier2", sp.Action.Value)
	}
	r.Tier = TierCEL
	if sp.Tier.set {
		switch sp.Tier.Value {
		case "1":
		case "2":
			r.Tier = TierClassifier
		default:
			bad(sp.Tier, "invalid tier %q: want 1 (CEL) or 2 (classifier)", sp.Tier.Value)
		}
	}
	if r.Tier == TierClassifier && r.Prompt == "" {
		bad(sp.Tier, "a tier-2 rule needs a prompt for the classifier")
	}
	if sp.When != nil {
		for _, k := range sp.When.Keywords {
			ws := phraseWords(k.Value)
			if len(ws) == 0 {
				bad(k, "keyword %q has no words", k.Value)
				continue
			}
			r.keywords = append(r.keywords, ws)
			r.When.Keywords = append(r.When.Keywords, k.Value)
		}
		r.When.Channels = lowerAll(sp.When.Channels)
		r.When.Roles = lowerAll(sp.When.Roles)
		r.When.PII = lowerAll(sp.When.PII)
	}
	if !sp.Expr.set || strings.TrimSpace(sp.Expr.Value) == "" {
		bad(sp.Expr, "missing expr")
	} else {
		r.exprMap = newExprMap(src, sp.Expr)
		errs = append(errs, r.compileExpr(e, o)...)
	}
	r.Tests, errs = compileTests(src, sp, errs)
	if len(errs) > 0 {
		return nil, errs
	}
	return r, nil
}

func lowerAll(ss []string) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// exprError positions a CEL problem at offset off of the expression.
func (r *Rule) exprError(off int, format string, args ...any) *CompileError {
	line, col := r.exprMap.position(off)
	return r.src.errorf(line, col, r.ID, format, args...)
}

func (r *Rule) compileExpr(e *cel.Env, o options) CompileErrors {
	var errs CompileErrors
	a, iss := e.Compile(r.Expr)
	if iss != nil && iss.Err() != nil {
		celSrc := common.NewTextSource(r.Expr)
		for _, ce := range iss.Errors() {
			off, _ := celSrc.LocationOffset(ce.Location)
			// The text macros pass the evaluation's text cache as a first
			// argument; authors never wrote it, so keep it out of messages.
			msg := strings.ReplaceAll(ce.Message, "vigil.doc, ", "")
			msg = strings.TrimSuffix(msg, " (in container '')")
			errs = append(errs, r.exprError(int(off), "%s", msg))
		}
		return errs
	}
	if !a.OutputType().IsExactType(cel.BoolType) {
		return CompileErrors{r.exprError(0, "expr must evaluate to bool, got %s", a.OutputType())}
	}
	// Patterns written as literals are compiled now, so a typo is a load
	// error at its position and not a runtime error on some message.
	errs = append(errs, r.checkPatterns(a)...)
	est, err := e.EstimateCost(a, costEstimator{})
	if err != nil {
		errs = append(errs, r.exprError(0, "estimate cost: %v", err))
	} else if est.Max > o.maxEstimatedCost {
		errs = append(errs, r.exprError(0, "estimated cost %d exceeds the limit of %d (nested loops over ctx.messages or many patterns?)", est.Max, o.maxEstimatedCost))
	}
	if len(errs) > 0 {
		return errs
	}
	prg, err := e.Program(a,
		cel.CostLimit(o.costLimit),
		cel.CostTracking(actualCost{}),
		cel.InterruptCheckFrequency(o.interruptFreq),
	)
	if err != nil {
		return CompileErrors{r.exprError(0, "plan: %v", err)}
	}
	r.ast, r.prg = a, prg
	return nil
}

func (r *Rule) checkPatterns(a *cel.Ast) CompileErrors {
	var errs CompileErrors
	nav := ast.NavigateAST(a.NativeRep())
	for _, n := range ast.MatchDescendants(nav, ast.FunctionMatcher(fnMatchesRE)) {
		args := n.AsCall().Args()
		if len(args) != 3 || args[2].Kind() != ast.LiteralKind {
			continue
		}
		p, ok := args[2].AsLiteral().(types.String)
		if !ok {
			continue
		}
		if _, err := cache.regexp(string(p)); err != nil {
			off := a.NativeRep().SourceInfo().GetStartLocation(args[2].ID())
			o, _ := common.NewTextSource(r.Expr).LocationOffset(off)
			errs = append(errs, r.exprError(int(o), "invalid regular expression: %s", strings.TrimPrefix(err.Error(), "error parsing regexp: ")))
		}
	}
	return errs
}

// compileTests converts the inline tests of a rule.
func compileTests(src *source, sp *ruleSpec, errs CompileErrors) ([]TestCase, CompileErrors) {
	var out []TestCase
	names := map[string]bool{}
	for _, t := range sp.Tests {
		at := func(format string, args ...any) {
			line, col := t.Name.Line, t.Name.Col
			if !t.Name.set {
				line, col = sp.line, sp.col
			}
			errs = append(errs, src.errorf(line, col, sp.ID.Value, format, args...))
		}
		name := strings.TrimSpace(t.Name.Value)
		switch {
		case name == "":
			at("test without a name")
		case names[name]:
			at("duplicate test name %q", name)
		}
		names[name] = true
		if t.Fires == nil {
			at("test %q: missing fires (true or false)", name)
		}
		tc := TestCase{Name: name, Line: t.Name.Line, Fires: t.Fires != nil && *t.Fires}
		var err error
		if tc.Message, err = t.Message.message(); err != nil {
			at("test %q: message: %v", name, err)
		}
		for i, m := range t.Context {
			cm, err := m.message()
			if err != nil {
				at("test %q: context message %d: %v", name, i+1, err)
			}
			tc.Context.Messages = append(tc.Context.Messages, cm)
		}
		if t.Window != "" {
			if tc.Context.Window, err = time.ParseDuration(t.Window); err != nil {
				at("test %q: invalid window %q", name, t.Window)
			}
		}
		tc.Context.ParticipantCounts = t.ParticipantCounts
		tc.Context.RiskScore = t.RiskScore
		out = append(out, tc)
	}
	return out, errs
}

func (m messageSpec) message() (vigil.Message, error) {
	msg := vigil.Message{
		ID: "test", Tenant: m.Tenant, ConversationID: m.Conversation,
		Sender:  vigil.Participant{ID: m.Sender, Role: m.Role},
		Channel: m.Channel, Text: m.Text, Metadata: m.Metadata,
	}
	if msg.Tenant == "" {
		msg.Tenant = "test"
	}
	if msg.Sender.ID == "" {
		msg.Sender.ID = "sender"
	}
	for _, r := range m.Roles {
		msg.Participants = append(msg.Participants, vigil.Participant{ID: r, Role: r})
	}
	if len(m.PII) > 0 {
		msg.PII = map[string]int{}
		for _, k := range m.PII {
			msg.PII[strings.ToLower(k)]++
		}
	}
	if m.Time != "" {
		t, err := time.Parse(time.RFC3339, m.Time)
		if err != nil {
			return msg, fmt.Errorf("invalid time %q: want RFC 3339", m.Time)
		}
		msg.SentAt = t
	}
	return msg, nil
}

// buildIndex indexes keyword prefilters by their first word.
func (s *Set) buildIndex() {
	s.kw = map[string][]kwEntry{}
	for _, r := range s.rules {
		if len(r.keywords) == 0 {
			s.always = append(s.always, r.index)
			continue
		}
		for _, k := range r.keywords {
			s.kw[k[0]] = append(s.kw[k[0]], kwEntry{phrase: k, rule: r.index})
		}
	}
}

// evalState is everything one Eval computes once and shares between rules:
// the message's normalized words, the CEL values of msg, ctx and pii.
type evalState struct {
	set   *Set
	m     *vigil.Message
	c     *Context
	words []word
	other map[string][]word
	spans []vigil.Span
	marks []bool

	channel, role string
	piiKinds      []string

	msgVal, ctxVal, piiVal ref.Val
	doc                    doc
}

var _ interpreter.Activation = (*evalState)(nil)

func (s *Set) acquire(m *vigil.Message, c *Context) *evalState {
	st := s.pool.Get().(*evalState)
	st.m, st.c = m, c
	st.words = tokenize(m.Text)
	st.channel = strings.ToLower(m.Channel)
	st.role = strings.ToLower(m.Sender.Role)
	st.piiKinds = st.piiKinds[:0]
	for k, n := range m.PII {
		if n > 0 {
			st.piiKinds = append(st.piiKinds, strings.ToLower(k))
		}
	}
	sort.Strings(st.piiKinds)
	st.doc.st = st
	return st
}

func (s *Set) release(st *evalState) {
	st.m, st.c, st.words, st.other = nil, nil, nil, nil
	st.msgVal, st.ctxVal, st.piiVal = nil, nil, nil
	st.spans = st.spans[:0]
	clear(st.marks)
	s.pool.Put(st)
}

// ResolveName builds msg, ctx and pii lazily: a rule that never reads ctx
// costs no conversion of the context window.
func (st *evalState) ResolveName(name string) (any, bool) {
	e, _ := env()
	switch name {
	case varDoc:
		return &st.doc, true
	case varMsg:
		if st.msgVal == nil {
			mv := toMsgVars(st.m)
			mv.PII = append([]string(nil), st.piiKinds...)
			st.msgVal = e.CELTypeAdapter().NativeToValue(&mv)
		}
		return st.msgVal, true
	case varPII:
		if st.piiVal == nil {
			m := make(map[string]int64, len(st.piiKinds))
			for k, n := range st.m.PII {
				m[strings.ToLower(k)] += int64(n)
			}
			st.piiVal = e.CELTypeAdapter().NativeToValue(m)
		}
		return st.piiVal, true
	case varCtx:
		if st.ctxVal == nil {
			cv := ctxVars{}
			if st.c != nil {
				cv.Window, cv.RiskScore = st.c.Window, st.c.RiskScore
				cv.Messages = make([]msgVars, len(st.c.Messages))
				elems := make([]ref.Val, len(st.c.Messages))
				for i := range st.c.Messages {
					cv.Messages[i] = toMsgVars(&st.c.Messages[i])
					elems[i] = e.CELTypeAdapter().NativeToValue(&cv.Messages[i])
				}
				cv.messages = types.NewRefValList(e.CELTypeAdapter(), elems)
				cv.ParticipantCounts = make(map[string]int64, len(st.c.ParticipantCounts))
				for k, n := range st.c.ParticipantCounts {
					cv.ParticipantCounts[k] = int64(n)
				}
			}
			st.ctxVal = e.CELTypeAdapter().NativeToValue(&cv)
		}
		return st.ctxVal, true
	}
	return nil, false
}

// Parent implements interpreter.Activation.
func (st *evalState) Parent() interpreter.Activation { return nil }

func toMsgVars(m *vigil.Message) msgVars {
	mv := msgVars{
		Text: m.Text, Sender: m.Sender.ID, Role: strings.ToLower(m.Sender.Role),
		Channel: strings.ToLower(m.Channel), Tenant: m.Tenant, Conversation: m.ConversationID,
		Time: m.SentAt, Metadata: m.Metadata,
	}
	for k, n := range m.PII {
		if n > 0 {
			mv.PII = append(mv.PII, strings.ToLower(k))
		}
	}
	sort.Strings(mv.PII)
	for _, p := range m.Participants {
		if p.Role != "" {
			mv.Roles = append(mv.Roles, strings.ToLower(p.Role))
		}
	}
	return mv
}

// wordsOf returns the normalized words of text and whether text is the
// message's own text (only those matches become spans). Other texts (the
// context messages) are normalized once per Eval too.
func (st *evalState) wordsOf(text string) ([]word, bool) {
	if text == st.m.Text {
		return st.words, true
	}
	if ws, ok := st.other[text]; ok {
		return ws, false
	}
	if st.other == nil {
		st.other = map[string][]word{}
	}
	ws := tokenize(text)
	st.other[text] = ws
	return ws, false
}

func (st *evalState) hasPhrase(text string, phrase []string) bool {
	ws, isMsg := st.wordsOf(text)
	found := false
	findPhrase(ws, phrase, func(i int) bool {
		found = true
		if isMsg {
			st.spans = append(st.spans, vigil.Span{Start: ws[i].start, End: ws[i+len(phrase)-1].end, Kind: "phrase"})
		}
		return isMsg
	})
	return found
}

func (st *evalState) near(text string, a, b []string, n int) bool {
	ws, isMsg := st.wordsOf(text)
	var as, bs []int
	findPhrase(ws, a, func(i int) bool { as = append(as, i); return true })
	if len(as) == 0 {
		return false
	}
	findPhrase(ws, b, func(i int) bool { bs = append(bs, i); return true })
	for _, i := range as {
		for _, j := range bs {
			gap := j - (i + len(a))
			if j < i {
				gap = i - (j + len(b))
			}
			if gap >= -min(len(a), len(b)) && gap <= n && i != j {
				if isMsg {
					st.spans = append(st.spans,
						vigil.Span{Start: ws[i].start, End: ws[i+len(a)-1].end, Kind: "phrase"},
						vigil.Span{Start: ws[j].start, End: ws[j+len(b)-1].end, Kind: "phrase"})
				}
				return true
			}
		}
	}
	return false
}

func (st *evalState) matchRE(text string, re *regexp.Regexp) bool {
	loc := re.FindStringIndex(text)
	if loc == nil {
		return false
	}
	if text == st.m.Text {
		st.spans = append(st.spans, vigil.Span{Start: loc[0], End: loc[1], Kind: "regex"})
	}
	return true
}

// admits reports whether r's prefilter passes the message's channel, role
// and PII kinds (keywords are checked through the index).
func (st *evalState) admits(r *Rule) bool {
	w := &r.When
	if len(w.Channels) > 0 && !contains(w.Channels, st.channel) {
		return false
	}
	if len(w.Roles) > 0 && !contains(w.Roles, st.role) {
		return false
	}
	if len(w.PII) > 0 {
		hit := false
		for _, k := range w.PII {
			if contains(st.piiKinds, k) {
				hit = true
				break
			}
		}
		if !hit {
			return false
		}
	}
	return true
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// keywordHit returns the first keyword of r found in the message, if any.
func (st *evalState) keywordHit(r *Rule) (string, bool) {
	for i, k := range r.keywords {
		found := false
		findPhrase(st.words, k, func(int) bool { found = true; return false })
		if found {
			return r.When.Keywords[i], true
		}
	}
	return "", len(r.keywords) == 0
}

// mark sets st.marks for every rule whose prefilter admits the message.
func (st *evalState) mark() {
	s := st.set
	for _, i := range s.always {
		if st.admits(s.rules[i]) {
			st.marks[i] = true
		}
	}
	if len(s.kw) == 0 {
		return
	}
	for wi, w := range st.words {
		for _, e := range s.kw[w.norm] {
			if st.marks[e.rule] || wi+len(e.phrase) > len(st.words) {
				continue
			}
			ok := true
			for k := 1; k < len(e.phrase); k++ {
				if st.words[wi+k].norm != e.phrase[k] {
					ok = false
					break
				}
			}
			if ok && st.admits(s.rules[e.rule]) {
				st.marks[e.rule] = true
			}
		}
	}
}

// Eval evaluates every rule whose prefilter admits m and returns those
// whose expression is true, in rule order: tier-1 rules (verdicts) and
// tier-2 rules (to ask the classifier; Match.Rule.Tier tells which). c may
// be nil for a conversation without history.
//
// A rule that fails at run time (cost limit, runtime error) is skipped and
// reported in the returned error as an [*EvalError]; the other matches are
// still returned. If ctx ends, Eval stops and returns ctx's error.
func (s *Set) Eval(ctx context.Context, m *vigil.Message, c *Context) ([]Match, error) {
	if m == nil {
		return nil, errors.New("eval: nil message")
	}
	st := s.acquire(m, c)
	defer s.release(st)
	st.mark()
	var out []Match
	var errs []error
	for i, ok := range st.marks {
		if !ok {
			continue
		}
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("eval: %w", err)
		}
		r := s.rules[i]
		fired, err := r.eval(ctx, st)
		if err != nil {
			if ctx.Err() != nil {
				return out, fmt.Errorf("eval: %w", ctx.Err())
			}
			errs = append(errs, err)
			continue
		}
		if fired {
			out = append(out, Match{Rule: r, Spans: spansOf(st.spans)})
		}
	}
	return out, errors.Join(errs...)
}

// eval runs r's expression; st.spans holds what it matched.
func (r *Rule) eval(ctx context.Context, st *evalState) (bool, error) {
	st.spans = st.spans[:0]
	v, _, err := r.prg.ContextEval(ctx, st)
	if err != nil {
		return false, r.evalError(ctx, err)
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, &EvalError{RuleID: r.ID, Kind: "result is not a bool"}
	}
	return bool(b), nil
}

func (r *Rule) evalError(ctx context.Context, err error) error {
	kind := "runtime error"
	switch {
	case ctx.Err() != nil:
		kind, err = ctx.Err().Error(), ctx.Err()
	case strings.Contains(err.Error(), "cost limit exceeded"):
		kind = "cost limit exceeded"
	case strings.Contains(err.Error(), "operation interrupted"):
		kind = "interrupted"
	}
	return &EvalError{RuleID: r.ID, Kind: kind, Err: err}
}

// spansOf returns a sorted, de-duplicated copy of spans.
func spansOf(spans []vigil.Span) []vigil.Span {
	if len(spans) == 0 {
		return nil
	}
	out := append([]vigil.Span(nil), spans...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Start != out[j].Start {
			return out[i].Start < out[j].Start
		}
		return out[i].End < out[j].End
	})
	n := 1
	for i := 1; i < len(out); i++ {
		if out[i] != out[n-1] {
			out[n] = out[i]
			n++
		}
	}
	return out[:n]
}
