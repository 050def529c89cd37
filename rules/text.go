package rules

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// word is one normalized word of a text with its byte range in the
// original (tokenized) text, so matches can be reported as spans.
type word struct {
	norm       string
	start, end int
}

// Placeholder delimiters that pii.Tokenize writes around a token such as
// ⟦EMAIL:7f3a…⟧. Words never come from inside a placeholder: the kind names
// (EMAIL, PHONE) would otherwise match keyword rules like "personal email".
const (
	tokenOpen  = '⟦'
	tokenClose = '⟧'
)

// leet maps the digits and symbols used in leetspeak to the letters they
// stand for. It applies only inside words that contain a letter, so "1000"
// stays a number while "k1ll" reads "kill".
var leet = [128]byte{
	'0': 'o', '1': 'i', '3': 'e', '4': 'a', '5': 's', '7': 't', '@': 'a', '$': 's',
}

func isWordRune(r rune) bool {
	return r == '@' || r == '$' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r)
}

func isApostrophe(r rune) bool { return r == '\'' || r == '’' }

// tokenize splits text into normalized words: case-folded, diacritics
// removed (NFD, then combining marks dropped), apostrophes inside a word
// removed ("can't" reads "cant") and leetspeak mapped to letters. Word
// boundaries are every other character, so "skill" never matches "kill".
func tokenize(text string) []word {
	var words []word
	i := 0
	for i < len(text) {
		r, sz := utf8.DecodeRuneInString(text[i:])
		if r == tokenOpen {
			j := strings.IndexRune(text[i+sz:], tokenClose)
			if j < 0 {
				break
			}
			i += sz + j + utf8.RuneLen(tokenClose)
			continue
		}
		if !isWordRune(r) {
			i += sz
			continue
		}
		start := i
		end := i
		for i < len(text) {
			r, sz := utf8.DecodeRuneInString(text[i:])
			switch {
			case isWordRune(r):
				i += sz
				end = i
				continue
			case isApostrophe(r) && i+sz < len(text):
				// Keep going only when a word rune follows ("can't").
				nr, _ := utf8.DecodeRuneInString(text[i+sz:])
				if isWordRune(nr) {
					i += sz
					continue
				}
			}
			break
		}
		if n := normalizeWord(text[start:end]); n != "" {
			words = append(words, word{norm: n, start: start, end: end})
		}
	}
	return words
}

// normalizeWord normalizes one word as tokenize does.
func normalizeWord(w string) string {
	ascii, letters := true, false
	for i := 0; i < len(w); i++ {
		c := w[i]
		if c >= utf8.RuneSelf {
			ascii = false
			break
		}
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' {
			letters = true
		}
	}
	if !ascii {
		return normalizeUnicodeWord(w)
	}
	b := make([]byte, 0, len(w))
	for i := 0; i < len(w); i++ {
		c := w[i]
		switch {
		case c == '\'':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		case letters && leet[c] != 0:
			c = leet[c]
		}
		b = append(b, c)
	}
	return string(b)
}

func normalizeUnicodeWord(w string) string {
	d := norm.NFD.String(w)
	letters := false
	for _, r := range d {
		if unicode.IsLetter(r) {
			letters = true
			break
		}
	}
	var b strings.Builder
	b.Grow(len(d))
	for _, r := range d {
		switch {
		case unicode.Is(unicode.Mn, r) || isApostrophe(r):
			continue
		case r < utf8.RuneSelf && letters && leet[r] != 0:
			r = rune(leet[r])
		default:
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// phraseWords normalizes a phrase into the words it must match.
func phraseWords(p string) []string {
	ws := tokenize(p)
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.norm
	}
	return out
}

// findPhrase returns the index of every occurrence of phrase in words.
func findPhrase(words []word, phrase []string, yield func(i int) bool) {
	if len(phrase) == 0 {
		return
	}
	for i := 0; i+len(phrase) <= len(words); i++ {
		if words[i].norm != phrase[0] {
			continue
		}
		ok := true
		for k := 1; k < len(phrase); k++ {
			if words[i+k].norm != phrase[k] {
				ok = false
				break
			}
		}
		if ok && !yield(i) {
			return
		}
	}
}
