package chlocal

import (
	"bytes"
	"strings"
)

// stmtKind classifies a statement by its leading keyword.
type stmtKind int

const (
	kindOther  stmtKind = iota // not recognised: left to the engine
	kindRead                   // SELECT, WITH, SHOW, DESCRIBE, EXISTS, EXPLAIN
	kindWrite                  // DDL, ALTER, OPTIMIZE, DELETE, TRUNCATE, SYSTEM, …
	kindInsert                 // INSERT … (with inline data or … SELECT)
	kindSet                    // SET: changes session state
	kindUse                    // USE: changes the current database
)

// statement is one SQL statement split from its inline data.
type statement struct {
	Kind stmtKind
	// SQL is the statement to run. For an INSERT with data it stops before
	// FORMAT (or VALUES): chDB's streaming insert takes the format apart.
	SQL string
	// Format is the FORMAT clause's format name ("Values" for INSERT …
	// VALUES); empty when there is none.
	Format string
	// Data is the inline data of an INSERT, HasData says whether there is a
	// data part at all (FORMAT or VALUES seen). Data aliases the input.
	Data    []byte
	HasData bool
	// formatAt is the byte offset of the FORMAT keyword of a read, or -1.
	formatAt int
	// Select is set for SELECT/WITH reads, the ones chDB can stream.
	Select bool
}

// token kinds of the lexer.
type tokKind int

const (
	tokEOF tokKind = iota
	tokWord
	tokQuotedIdent
	tokString
	tokNumber
	tokOpen
	tokClose
	tokSemicolon
	tokOther
)

type token struct {
	kind       tokKind
	start, end int
}

// lexer splits ClickHouse SQL into tokens, enough to find statement
// boundaries, the FORMAT clause and the start of INSERT data. It never looks
// past the point where inline data starts.
type lexer struct {
	src []byte
	pos int
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isWordStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c >= 0x80
}

func isWordChar(c byte) bool {
	return isWordStart(c) || (c >= '0' && c <= '9') || c == '$'
}

// skip skips white space and comments.
func (l *lexer) skip() {
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case isSpace(c):
			l.pos++
		case c == '-' && l.pos+1 < len(l.src) && l.src[l.pos+1] == '-',
			c == '#' && l.pos+1 < len(l.src) && (l.src[l.pos+1] == ' ' || l.src[l.pos+1] == '!'):
			i := bytes.IndexByte(l.src[l.pos:], '\n')
			if i < 0 {
				l.pos = len(l.src)
			} else {
				l.pos += i + 1
			}
		case c == '/' && l.pos+1 < len(l.src) && l.src[l.pos+1] == '*':
			i := bytes.Index(l.src[l.pos+2:], []byte("*/"))
			if i < 0 {
				l.pos = len(l.src)
			} else {
				l.pos += 2 + i + 2
			}
		default:
			return
		}
	}
}

// quoted scans a quoted run starting at pos (the quote char), honouring
// backslash escapes and doubled quotes; unterminated runs end at EOF.
func (l *lexer) quoted(q byte) {
	l.pos++
	for l.pos < len(l.src) {
		c := l.src[l.pos]
		switch {
		case c == '\\':
			l.pos += 2
		case c == q && l.pos+1 < len(l.src) && l.src[l.pos+1] == q:
			l.pos += 2
		case c == q:
			l.pos++
			return
		default:
			l.pos++
		}
	}
	l.pos = len(l.src)
}

func (l *lexer) next() token {
	l.skip()
	start := l.pos
	if l.pos >= len(l.src) {
		return token{kind: tokEOF, start: start, end: start}
	}
	c := l.src[l.pos]
	kind := tokOther
	switch {
	case c == '\'':
		l.quoted('\'')
		kind = tokString
	case c == '"' || c == '`':
		l.quoted(c)
		kind = tokQuotedIdent
	case c == '$':
		// Heredoc $tag$…$tag$ (tag may be empty).
		j := l.pos + 1
		for j < len(l.src) && isWordChar(l.src[j]) && l.src[j] != '$' {
			j++
		}
		if j < len(l.src) && l.src[j] == '$' {
			tag := l.src[l.pos : j+1]
			k := bytes.Index(l.src[j+1:], tag)
			if k < 0 {
				l.pos = len(l.src)
			} else {
				l.pos = j + 1 + k + len(tag)
			}
			kind = tokString
		} else {
			l.pos++
		}
	case isWordStart(c):
		for l.pos < len(l.src) && isWordChar(l.src[l.pos]) {
			l.pos++
		}
		kind = tokWord
	case c >= '0' && c <= '9':
		for l.pos < len(l.src) && (isWordChar(l.src[l.pos]) || l.src[l.pos] == '.') {
			l.pos++
		}
		kind = tokNumber
	case c == '(' || c == '[' || c == '{':
		l.pos++
		kind = tokOpen
	case c == ')' || c == ']' || c == '}':
		l.pos++
		kind = tokClose
	case c == ';':
		l.pos++
		kind = tokSemicolon
	default:
		l.pos++
	}
	return token{kind: kind, start: start, end: l.pos}
}

func (l *lexer) word(t token) string {
	if t.kind != tokWord {
		return ""
	}
	return strings.ToUpper(string(l.src[t.start:t.end]))
}

// identText returns an identifier token's name, unquoting "…" and `…`.
func (l *lexer) identText(t token) string {
	s := string(l.src[t.start:t.end])
	if t.kind == tokQuotedIdent && len(s) >= 2 {
		return s[1 : len(s)-1]
	}
	return s
}

var readKeywords = map[string]bool{
	"SELECT": true, "WITH": true, "SHOW": true, "DESCRIBE": true, "DESC": true,
	"EXISTS": true, "EXPLAIN": true, "CHECK": true,
}

var writeKeywords = map[string]bool{
	"CREATE": true, "DROP": true, "ALTER": true, "DELETE": true, "UPDATE": true,
	"TRUNCATE": true, "OPTIMIZE": true, "RENAME": true, "EXCHANGE": true,
	"ATTACH": true, "DETACH": true, "UNDROP": true, "SYSTEM": true, "KILL": true,
	"GRANT": true, "REVOKE": true, "BACKUP": true, "RESTORE": true, "REPLACE": true,
	"MOVE": true,
}

// parseStatement splits text into one statement and its inline data. It
// returns a SYNTAX_ERROR [*Exception] for an empty text and for more than one
// statement, as ClickHouse's HTTP interface does ("Multi-statements are not
// allowed"). Other syntax errors are left to the engine.
func parseStatement(text []byte) (statement, error) {
	l := &lexer{src: text}
	st := statement{formatAt: -1}
	first := l.next()
	for first.kind == tokOpen { // "(SELECT …)"
		first = l.next()
	}
	if first.kind == tokEOF {
		return st, newException(codeSyntaxError, "Empty query")
	}
	switch kw := l.word(first); {
	case readKeywords[kw]:
		st.Kind = kindRead
		st.Select = kw == "SELECT" || kw == "WITH"
	case kw == "INSERT":
		st.Kind = kindInsert
	case writeKeywords[kw]:
		st.Kind = kindWrite
	case kw == "SET":
		st.Kind = kindSet
	case kw == "USE":
		st.Kind = kindUse
	}
	l.pos = 0
	depth := 0
	end := len(text)   // end of the statement proper (before ';')
	sawSelect := false // INSERT … SELECT has no inline data
	for {
		t := l.next()
		switch t.kind {
		case tokEOF:
			return st.finish(text[:end])
		case tokOpen:
			depth++
		case tokClose:
			if depth > 0 {
				depth--
			}
		case tokSemicolon:
			if depth > 0 {
				break
			}
			end = t.start
			rest := l.next()
			if rest.kind != tokEOF {
				return st, multiStatement(text, t.start)
			}
			return st.finish(text[:end])
		case tokWord:
			if depth > 0 {
				break
			}
			kw := l.word(t)
			if st.Kind == kindInsert && (kw == "SELECT" || kw == "WITH") {
				sawSelect = true
			}
			if st.Kind == kindInsert && !sawSelect && kw == "VALUES" {
				st.SQL = strings.TrimSpace(string(text[:t.start]))
				st.Format = "Values"
				st.HasData = true
				end, err := valuesEnd(l, text)
				if err != nil {
					return st, err
				}
				st.Data = text[t.end:end]
				return st, nil
			}
			if kw != "FORMAT" {
				break
			}
			save := l.pos
			name := l.next()
			if name.kind != tokWord && name.kind != tokQuotedIdent {
				l.pos = save
				break
			}
			if st.Kind == kindInsert && !sawSelect {
				st.SQL = strings.TrimSpace(string(text[:t.start]))
				st.Format = l.identText(name)
				st.HasData = true
				st.Data = text[dataStart(text, name.end):]
				return st, nil
			}
			// A read's FORMAT clause is followed by the end, ';' or SETTINGS.
			after := l.next()
			if after.kind == tokEOF || after.kind == tokSemicolon || l.word(after) == "SETTINGS" {
				st.Format = l.identText(name)
				st.formatAt = t.start
			}
			l.pos = save
		}
	}
}

// finish sets the statement text; a text of only ';' and comments is empty.
func (st statement) finish(text []byte) (statement, error) {
	st.SQL = strings.TrimSpace(string(text))
	l := &lexer{src: text}
	if l.next().kind == tokEOF {
		return st, newException(codeSyntaxError, "Empty query")
	}
	return st, nil
}

// valuesEnd scans VALUES data (SQL literals) from the lexer position to its
// end: the end of text or a top-level ';' after which only blanks follow.
func valuesEnd(l *lexer, text []byte) (int, error) {
	depth := 0
	for {
		t := l.next()
		switch t.kind {
		case tokEOF:
			return len(text), nil
		case tokOpen:
			depth++
		case tokClose:
			if depth > 0 {
				depth--
			}
		case tokSemicolon:
			if depth > 0 {
				continue
			}
			if l.next().kind != tokEOF {
				return 0, multiStatement(text, t.start)
			}
			return t.start, nil
		}
	}
}

func multiStatement(text []byte, at int) error {
	return newException(codeSyntaxError,
		"Syntax error (Multi-statements are not allowed): failed at position %d (end of query): %s",
		at+1, truncate(string(text[at:]), 64))
}

// dataStart returns where INSERT data begins after the format name ending at
// i: ClickHouse skips blanks, then one line break.
func dataStart(text []byte, i int) int {
	for i < len(text) && (text[i] == ' ' || text[i] == '\t' || text[i] == '\f') {
		i++
	}
	if i < len(text) && text[i] == '\r' {
		i++
	}
	if i < len(text) && text[i] == '\n' {
		i++
	}
	return i
}

// withoutFormat returns a read statement's SQL without its FORMAT clause
// (keeping a SETTINGS clause), for wrapping in DESCRIBE (…).
func (st statement) withoutFormat() string {
	if st.formatAt < 0 {
		return st.SQL
	}
	head := st.SQL[:st.formatAt]
	l := &lexer{src: []byte(st.SQL), pos: st.formatAt}
	l.next() // FORMAT
	l.next() // name
	return strings.TrimSpace(head) + " " + strings.TrimSpace(st.SQL[l.pos:])
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
