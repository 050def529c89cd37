package workflow

import "github.com/vigilhq/vigil/pii"

// Token is a token found in a message's text.
type Token struct {
	// Kind is lower-case (email, card, …).
	Kind string
	// Text is the whole token, ⟦KIND:id⟧.
	Text string
	// Start and End are byte offsets of Text in the message.
	Start, End int
}

// FindTokens returns the tokens in text, in order ([pii.FindTokens]).
func FindTokens(text string) []Token {
	found := pii.FindTokens(text)
	out := make([]Token, len(found))
	for i, t := range found {
		out[i] = Token{Kind: string(t.Kind), Text: text[t.Start:t.End], Start: t.Start, End: t.End}
	}
	return out
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
