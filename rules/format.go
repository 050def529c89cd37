package rules

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"

	"github.com/vigilhq/vigil"
)

// MaxFileBytes bounds one rule file; larger files are rejected unparsed.
const MaxFileBytes = 4 << 20

// Keys of a rule file. Their order is the documented order.
const (
	keyRules = "rules"
)

// scalar is a YAML scalar with its position, so later checks (a bad
// severity, a CEL error inside expr) can point at the file.
type scalar struct {
	Value string
	Line  int
	Col   int
	node  ast.Node
	set   bool
}

// UnmarshalYAML keeps the node; it implements yaml.NodeUnmarshaler.
func (s *scalar) UnmarshalYAML(n ast.Node) error {
	tk := n.GetToken()
	switch v := n.(type) {
	case *ast.StringNode:
		s.Value = v.Value
	case *ast.LiteralNode:
		s.Value = v.Value.Value
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode:
		s.Value = tk.Value
	case *ast.NullNode:
		s.Value = ""
	default:
		return yamlNodeError{msg: fmt.Sprintf("expected a scalar, got %s", strings.ToLower(n.Type().String())), tk: tk}
	}
	s.node, s.set = n, true
	if tk != nil {
		s.Line, s.Col = tk.Position.Line, tk.Position.Column
	}
	return nil
}

type yamlNodeError struct {
	msg string
	tk  *token.Token
}

func (e yamlNodeError) Error() string { return e.msg }

// ruleSpec is one rule as written.
type ruleSpec struct {
	ID          scalar     `yaml:"id"`
	Description string     `yaml:"description"`
	Severity    scalar     `yaml:"severity"`
	Tier        scalar     `yaml:"tier"`
	When        *whenSpec  `yaml:"when"`
	Expr        scalar     `yaml:"expr"`
	Action      scalar     `yaml:"action"`
	Tags        []string   `yaml:"tags"`
	Prompt      string     `yaml:"prompt"`
	Labels      []string   `yaml:"labels"`
	Tests       []testSpec `yaml:"tests"`

	line, col int
}

// whenSpec is the cheap prefilter of a rule.
type whenSpec struct {
	Keywords []scalar `yaml:"keywords"`
	Channels []string `yaml:"channels"`
	Roles    []string `yaml:"roles"`
	PII      []string `yaml:"pii"`
}

// testSpec is one inline test case.
type testSpec struct {
	Name              scalar         `yaml:"name"`
	Message           messageSpec    `yaml:"message"`
	Context           []messageSpec  `yaml:"context"`
	Window            string         `yaml:"window"`
	ParticipantCounts map[string]int `yaml:"participant_counts"`
	RiskScore         float64        `yaml:"risk_score"`
	Fires             *bool          `yaml:"fires"`
}

// messageSpec is a message in a test case, already tokenized as the
// evaluator would see it.
type messageSpec struct {
	Text         string            `yaml:"text"`
	Sender       string            `yaml:"sender"`
	Role         string            `yaml:"role"`
	Channel      string            `yaml:"channel"`
	Tenant       string            `yaml:"tenant"`
	Conversation string            `yaml:"conversation"`
	Time         string            `yaml:"time"`
	PII          []string          `yaml:"pii"`
	Roles        []string          `yaml:"roles"`
	Metadata     map[string]string `yaml:"metadata"`
}

// source is one rule file's bytes split in lines, for error snippets.
type source struct {
	name  string
	lines []string
}

func newSource(name string, b []byte) *source {
	return &source{name: name, lines: strings.Split(string(b), "\n")}
}

func (s *source) line(n int) string {
	if n < 1 || n > len(s.lines) {
		return ""
	}
	return strings.TrimRight(s.lines[n-1], "\r")
}

func (s *source) errorf(line, col int, ruleID, format string, args ...any) *CompileError {
	return &CompileError{File: s.name, Line: line, Col: col, RuleID: ruleID, Msg: fmt.Sprintf(format, args...), Source: s.line(line)}
}

// yamlError converts a go-yaml error into a positioned CompileError.
func (s *source) yamlError(err error, ruleID string) *CompileError {
	var ne yamlNodeError
	if errors.As(err, &ne) && ne.tk != nil {
		return s.errorf(ne.tk.Position.Line, ne.tk.Position.Column, ruleID, "%s", ne.msg)
	}
	var ye yaml.Error
	if errors.As(err, &ye) && ye.GetToken() != nil {
		p := ye.GetToken().Position
		return s.errorf(p.Line, p.Column, ruleID, "%s", yamlMessage(ye))
	}
	return s.errorf(0, 0, ruleID, "%s", strings.ToLower(firstLine(err.Error())))
}

// yamlMessage words go-yaml's messages in Vigil's terms (Go types mean
// nothing to a rule author).
func yamlMessage(e yaml.Error) string {
	var te *yaml.TypeError
	if errors.As(e, &te) {
		return fmt.Sprintf("wrong type for this value: want %s", yamlKind(te.DstType.Kind().String()))
	}
	return e.GetMessage()
}

func yamlKind(k string) string {
	switch k {
	case "slice":
		return "a list"
	case "map", "struct", "ptr":
		return "a mapping"
	case "bool":
		return "true or false"
	case "int", "int64", "float64":
		return "a number"
	}
	return "a " + k
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// parseFile parses one rule file. It reports every problem it can find:
// a syntax error ends parsing, but a bad rule does not hide the next one.
func parseFile(src *source, b []byte) ([]ruleSpec, CompileErrors) {
	if len(b) > MaxFileBytes {
		return nil, CompileErrors{src.errorf(0, 0, "", "file is larger than %d bytes", MaxFileBytes)}
	}
	if !utf8.Valid(b) {
		return nil, CompileErrors{src.errorf(0, 0, "", "file is not valid UTF-8")}
	}
	f, err := parseBytes(b)
	if err != nil {
		return nil, CompileErrors{src.yamlError(err, "")}
	}
	var body ast.Node
	for _, d := range f.Docs {
		if d.Body == nil {
			continue
		}
		if body != nil {
			p := d.Body.GetToken().Position
			return nil, CompileErrors{src.errorf(p.Line, p.Column, "", "a rule file holds one YAML document")}
		}
		body = d.Body
	}
	if body == nil {
		return nil, CompileErrors{src.errorf(1, 1, "", "no rules: the file is empty")}
	}
	top, ok := body.(*ast.MappingNode)
	if !ok {
		p := body.GetToken().Position
		return nil, CompileErrors{src.errorf(p.Line, p.Column, "", "a rule file is a mapping with a %q list", keyRules)}
	}
	var errs CompileErrors
	var seq *ast.SequenceNode
	for _, kv := range top.Values {
		k := kv.Key.GetToken()
		switch kv.Key.String() {
		case keyRules:
			s, ok := kv.Value.(*ast.SequenceNode)
			if !ok {
				p := kv.Value.GetToken().Position
				errs = append(errs, src.errorf(p.Line, p.Column, "", "%q must be a list of rules", keyRules))
				continue
			}
			seq = s
		default:
			errs = append(errs, src.errorf(k.Position.Line, k.Position.Column, "", "unknown field %q", kv.Key.String()))
		}
	}
	if seq == nil {
		if len(errs) == 0 {
			errs = append(errs, src.errorf(1, 1, "", "no %q list in the file", keyRules))
		}
		return nil, errs
	}
	var specs []ruleSpec
	for _, n := range seq.Values {
		var r ruleSpec
		id := ruleIDOf(n)
		if err := decodeNode(n, &r); err != nil {
			errs = append(errs, src.yamlError(err, id))
			continue
		}
		p := n.GetToken().Position
		if m, ok := n.(*ast.MappingNode); ok && len(m.Values) > 0 {
			// A mapping's own token is its first value; point at the first key.
			p = m.Values[0].Key.GetToken().Position
		}
		r.line, r.col = p.Line, p.Column
		specs = append(specs, r)
	}
	return specs, errs
}

// ruleIDOf finds the id of a rule mapping for errors found before the
// rule is decoded.
func ruleIDOf(n ast.Node) string {
	m, ok := n.(*ast.MappingNode)
	if !ok {
		return ""
	}
	for _, kv := range m.Values {
		if kv.Key.String() == "id" {
			if s, ok := kv.Value.(*ast.StringNode); ok {
				return s.Value
			}
		}
	}
	return ""
}

// exprMap maps offsets inside a CEL expression back to file positions.
// Block scalars (| and >) keep one expression line per file line; flow
// scalars on one line shift by their column (plus the opening quote).
type exprMap struct {
	segs []exprSeg
}

type exprSeg struct {
	off       int // rune offset in the expression where this file line starts
	line, col int // file position of that offset
}

func newExprMap(src *source, s scalar) exprMap {
	lit, ok := s.node.(*ast.LiteralNode)
	if !ok {
		col := s.Col
		if tk := s.node.GetToken(); tk != nil && (tk.Type == token.DoubleQuoteType || tk.Type == token.SingleQuoteType) {
			col++
		}
		return exprMap{segs: []exprSeg{{off: 0, line: s.Line, col: col}}}
	}
	// Content starts on the line after the indicator; its indentation is
	// that of the first non-blank line.
	first := lit.Start.Position.Line + 1
	indent := -1
	var segs []exprSeg
	off := 0
	for ln := first; ln <= len(src.lines); ln++ {
		text := src.line(ln)
		trimmed := strings.TrimLeft(text, " ")
		if indent < 0 {
			if trimmed == "" {
				continue
			}
			indent = len(text) - len(trimmed)
		} else if trimmed != "" && len(text)-len(trimmed) < indent {
			break
		}
		segs = append(segs, exprSeg{off: off, line: ln, col: indent + 1})
		if len(text) >= indent {
			off += utf8.RuneCountInString(text[indent:]) + 1
		} else {
			off++
		}
	}
	if len(segs) == 0 {
		segs = []exprSeg{{off: 0, line: s.Line, col: s.Col}}
	}
	return exprMap{segs: segs}
}

// position returns the file line and column of rune offset off.
func (m exprMap) position(off int) (line, col int) {
	seg := m.segs[0]
	for _, s := range m.segs[1:] {
		if s.off > off {
			break
		}
		seg = s
	}
	return seg.line, seg.col + off - seg.off
}

// exampleSpec is a message and its context in the inline-test format.
type exampleSpec struct {
	Message           messageSpec    `yaml:"message"`
	Context           []messageSpec  `yaml:"context"`
	Window            string         `yaml:"window"`
	ParticipantCounts map[string]int `yaml:"participant_counts"`
	RiskScore         float64        `yaml:"risk_score"`
}

// ParseExample reads a message and its conversation context written as an
// inline test case is (YAML or JSON): `message`, `context`, `window`,
// `participant_counts`, `risk_score`. `vigil rules explain` reads its
// --message file with it. Unknown keys are errors.
func ParseExample(b []byte) (*vigil.Message, *Context, error) {
	var ex exampleSpec
	if err := unmarshalStrict(b, &ex); err != nil {
		var ye yaml.Error
		if errors.As(err, &ye) && ye.GetToken() != nil {
			p := ye.GetToken().Position
			return nil, nil, fmt.Errorf("parse example: %d:%d: %s", p.Line, p.Column, ye.GetMessage())
		}
		return nil, nil, fmt.Errorf("parse example: %s", firstLine(err.Error()))
	}
	m, err := ex.Message.message()
	if err != nil {
		return nil, nil, fmt.Errorf("parse example: message: %w", err)
	}
	c := &Context{ParticipantCounts: ex.ParticipantCounts, RiskScore: ex.RiskScore}
	for i, cm := range ex.Context {
		msg, err := cm.message()
		if err != nil {
			return nil, nil, fmt.Errorf("parse example: context message %d: %w", i+1, err)
		}
		c.Messages = append(c.Messages, msg)
	}
	if ex.Window != "" {
		if c.Window, err = time.ParseDuration(ex.Window); err != nil {
			return nil, nil, fmt.Errorf("parse example: invalid window")
		}
	}
	return &m, c, nil
}

// errMalformed stands in for a panic of the YAML library on malformed
// input (seen with tags on empty sequence values): a rule file is untrusted
// input and must never take the process down.
var errMalformed = errors.New("malformed YAML: cannot decode this value")

func decodeNode(n ast.Node, v any) (err error) {
	defer func() {
		if recover() != nil {
			err = yamlNodeError{msg: errMalformed.Error(), tk: n.GetToken()}
		}
	}()
	return yaml.NodeToValue(n, v, yaml.Strict())
}

func parseBytes(b []byte) (f *ast.File, err error) {
	defer func() {
		if recover() != nil {
			f, err = nil, errMalformed
		}
	}()
	return parser.ParseBytes(b, 0)
}

func unmarshalStrict(b []byte, v any) (err error) {
	defer func() {
		if recover() != nil {
			err = errMalformed
		}
	}()
	return yaml.UnmarshalWithOptions(b, v, yaml.Strict())
}
