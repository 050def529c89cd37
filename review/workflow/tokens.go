package workflow

import "strings"

// Token text as written by package pii: ⟦KIND:id⟧ with KIND 1–16
// upper-case letters or '_' and id 16 lower-case hex digits. FindTokens
// mirrors pii.FindTokens so the console can render chips without the vault.
const (
	tokenOpen  = "\u27e6"
	tokenClose = "\u27e7"
	tokenIDLen = 16
	maxKindLen = 16
)

// Token is a token found in a message's text.
type Token struct {
	// Kind is lower-case (email, card, …).
	Kind string
	// Text is the whole token, ⟦KIND:id⟧.
	Text string
	// Start and End are byte offsets of Text in the message.
	Start, End int
}

// FindTokens returns the tokens in text, in order.
func FindTokens(text string) []Token {
	var out []Token
	for i := 0; i < len(text); {
		k := strings.Index(text[i:], tokenOpen)
		if k < 0 {
			break
		}
		i += k
		if t, ok := tokenAt(text, i); ok {
			out = append(out, t)
			i = t.End
		} else {
			i += len(tokenOpen)
		}
	}
	return out
}

func tokenAt(s string, i int) (Token, bool) {
	j := i + len(tokenOpen)
	ks := j
	for j < len(s) && j-ks <= maxKindLen && (s[j] >= 'A' && s[j] <= 'Z' || s[j] == '_') {
		j++
	}
	if j == ks || j-ks > maxKindLen || j >= len(s) || s[j] != ':' {
		return Token{}, false
	}
	kind := s[ks:j]
	j++
	is := j
	for j < len(s) && j-is < tokenIDLen && (s[j] >= '0' && s[j] <= '9' || s[j] >= 'a' && s[j] <= 'f') {
		j++
	}
	if j-is != tokenIDLen || !strings.HasPrefix(s[j:], tokenClose) {
		return Token{}, false
	}
	end := j + len(tokenClose)
	return Token{Kind: strings.ToLower(kind), Text: s[i:end], Start: i, End: end}, true
}

// Reveal is one detokenized value, returned only to a privileged reviewer
// and never logged.
type Reveal struct {
	Token string `json:"token"`
	Kind  string `json:"kind"`
	Value string `json:"value,omitempty"`
	// Error says why the value is unavailable (shredded, restricted…).
	Error string `json:"error,omitempty"`
}

// BulkResult is the outcome of one alert of a bulk operation.
type BulkResult struct {
	ID    string `json:"id"`
	State State  `json:"state,omitempty"`
	Error *Error `json:"error,omitempty"`
}

// Change tells live subscribers that an alert was created or changed.
type Change struct {
	AlertID  string `json:"alert_id"`
	Tenant   string `json:"tenant"`
	State    State  `json:"state"`
	Severity string `json:"severity"`
	Created  bool   `json:"created"`
}

// Filter states beyond the three alert states.
const (
	// StateActive (the default) selects open and claimed alerts.
	StateActive State = "active"
	// StateAll selects every alert.
	StateAll State = "all"
)
