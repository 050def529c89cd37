package pii

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"strings"
	"sync"
)

// Token text: ⟦KIND:id⟧ with KIND the upper-case kind and id TokenIDLen
// lower-case hex digits.
const (
	tokenOpen  = "\u27e6" // ⟦
	tokenClose = "\u27e7" // ⟧
	// TokenIDLen is the number of hex digits of a token id (64 bits of the
	// HMAC).
	TokenIDLen = 16
	// maxTokenKind bounds the kind part of a token.
	maxTokenKind = 16
)

// Token is a token found in text by [FindTokens].
type Token struct {
	// Kind is the kind of the replaced value, lower-case.
	Kind Kind
	// ID is the token id: TokenIDLen lower-case hex digits.
	ID string
	// Start and End are the byte offsets of the whole token in the text.
	Start, End int
}

// String returns the token's text form, ⟦KIND:id⟧.
func (t Token) String() string { return formatToken(t.Kind, t.ID) }

func formatToken(k Kind, id string) string {
	var b strings.Builder
	b.Grow(len(tokenOpen) + len(k) + 1 + len(id) + len(tokenClose))
	b.WriteString(tokenOpen)
	for i := 0; i < len(k); i++ {
		c := k[i]
		if isLower(c) {
			c -= 'a' - 'A'
		}
		b.WriteByte(c)
	}
	b.WriteByte(':')
	b.WriteString(id)
	b.WriteString(tokenClose)
	return b.String()
}

// FindTokens returns the tokens in text, in order. Anything that is not
// exactly ⟦KIND:id⟧ (KIND of 1–16 upper-case letters or '_', id of
// TokenIDLen lower-case hex digits) is not a token.
func FindTokens(text string) []Token {
	var out []Token
	for i := 0; i < len(text); {
		k := strings.Index(text[i:], tokenOpen)
		if k < 0 {
			break
		}
		i += k
		if t, ok := parseTokenAt(text, i); ok {
			out = append(out, t)
			i = t.End
		} else {
			i += len(tokenOpen)
		}
	}
	return out
}

// ParseToken parses s as exactly one token.
func ParseToken(s string) (Token, bool) {
	t, ok := parseTokenAt(s, 0)
	if !ok || t.End != len(s) {
		return Token{}, false
	}
	return t, true
}

func parseTokenAt(s string, i int) (Token, bool) {
	if !strings.HasPrefix(s[i:], tokenOpen) {
		return Token{}, false
	}
	j := i + len(tokenOpen)
	ks := j
	for j < len(s) && j-ks <= maxTokenKind && (isUpper(s[j]) || s[j] == '_') {
		j++
	}
	if j == ks || j-ks > maxTokenKind || j >= len(s) || s[j] != ':' {
		return Token{}, false
	}
	kind := s[ks:j]
	j++
	is := j
	for j < len(s) && j-is < TokenIDLen && (isDigit(s[j]) || (s[j] >= 'a' && s[j] <= 'f')) {
		j++
	}
	if j-is != TokenIDLen || !strings.HasPrefix(s[j:], tokenClose) {
		return Token{}, false
	}
	return Token{Kind: Kind(strings.ToLower(kind)), ID: s[is:j], Start: i, End: j + len(tokenClose)}, true
}

// tokenID computes the id of a normalised value of kind k under a tenant's
// token key: HMAC-SHA256(key, kind 0x00 value), truncated.
func tokenID(key []byte, k Kind, normalized string) string {
	return newTokenHasher(key).id(k, normalized)
}

// tokenHasher computes token ids under one key, reusing HMAC states.
type tokenHasher struct {
	pool sync.Pool
}

func newTokenHasher(key []byte) *tokenHasher {
	key = bytes.Clone(key)
	return &tokenHasher{pool: sync.Pool{New: func() any { return hmac.New(sha256.New, key) }}}
}

func (h *tokenHasher) id(k Kind, normalized string) string {
	m := h.pool.Get().(hash.Hash)
	m.Reset()
	io.WriteString(m, string(k))
	m.Write([]byte{0})
	io.WriteString(m, normalized)
	var sum [sha256.Size]byte
	id := hex.EncodeToString(m.Sum(sum[:0])[:TokenIDLen/2])
	h.pool.Put(m)
	return id
}
