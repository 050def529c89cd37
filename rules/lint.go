package rules

import (
	"strings"

	"github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/types"
)

// lintRule returns the findings that do not reject a rule.
func lintRule(src *source, sp *ruleSpec, r *Rule) CompileErrors {
	var out CompileErrors
	at := func(msg string) { out = append(out, src.errorf(sp.ID.Line, sp.ID.Col, r.ID, "%s", msg)) }
	if r.Description == "" {
		at("no description")
	}
	if len(r.Tests) == 0 {
		at("no inline tests")
	}
	if len(r.Tags) == 0 {
		at("no tags (regulation references)")
	}
	if len(r.When.Keywords)+len(r.When.Channels)+len(r.When.Roles)+len(r.When.PII) == 0 {
		at("no prefilter (when): the rule is evaluated on every message")
	}
	if len(r.keywords) > 0 && r.ast != nil && !r.keywordsCover(r.ast.NativeRep().Expr()) {
		out = append(out, r.exprError(0, "expr can be true for a message without any of when.keywords; the prefilter hides those matches (add keywords or a phrase match on msg.text to every || branch)"))
	}
	return out
}

// keywordsCover reports whether e can only be true when the message holds
// one of the rule's keywords: some conjunct of every || branch matches
// phrases on msg.text that all contain a keyword.
func (r *Rule) keywordsCover(e ast.Expr) bool {
	if e.Kind() != ast.CallKind {
		return false
	}
	call := e.AsCall()
	args := call.Args()
	switch call.FunctionName() {
	case operators.LogicalAnd:
		return r.keywordsCover(args[0]) || r.keywordsCover(args[1])
	case operators.LogicalOr:
		return r.keywordsCover(args[0]) && r.keywordsCover(args[1])
	case fnHasPhrase:
		return len(args) == 3 && isMsgText(args[1]) && r.literalCovered(args[2])
	case fnContainsAnyPacked:
		if len(args) != 3 || !isMsgText(args[1]) || args[2].Kind() != ast.LiteralKind {
			return false
		}
		p, ok := args[2].AsLiteral().(types.String)
		if !ok {
			return false
		}
		for _, ph := range strings.Split(string(p), packSep) {
			if !r.phraseCovered(phraseWords(ph)) {
				return false
			}
		}
		return true
	case fnNear:
		return len(args) == 5 && isMsgText(args[1]) && (r.literalCovered(args[2]) || r.literalCovered(args[3]))
	}
	return false
}

func isMsgText(e ast.Expr) bool {
	if e.Kind() != ast.SelectKind || e.AsSelect().FieldName() != "text" {
		return false
	}
	op := e.AsSelect().Operand()
	return op.Kind() == ast.IdentKind && op.AsIdent() == varMsg
}

func (r *Rule) literalCovered(e ast.Expr) bool {
	if e.Kind() != ast.LiteralKind {
		return false
	}
	p, ok := e.AsLiteral().(types.String)
	return ok && r.phraseCovered(phraseWords(string(p)))
}

// phraseCovered reports whether some keyword occurs inside phrase, so a
// message matching phrase always passes the keyword prefilter.
func (r *Rule) phraseCovered(phrase []string) bool {
	ws := make([]word, len(phrase))
	for i, p := range phrase {
		ws[i] = word{norm: p}
	}
	for _, k := range r.keywords {
		found := false
		findPhrase(ws, k, func(int) bool { found = true; return false })
		if found {
			return true
		}
	}
	return false
}
