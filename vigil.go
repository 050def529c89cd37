// Package vigil holds the shared vocabulary of the Vigil compliance monitor:
// messages, verdicts, actions, severities, evaluation records and the rules
// for their identifiers. Every other Vigil package speaks these types; this
// package imports nothing of Vigil's own, so it sits at the bottom of the
// one-way import graph (ingest → pii → bus → evaluator → warehouse).
package vigil

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Severity ranks how serious a verdict is. The zero value is SeverityInfo.
type Severity string

// Severities, from least to most serious.
const (
	SeverityInfo     Severity = "info"
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// Rank orders severities: info 0 … critical 4, unknown -1.
func (s Severity) Rank() int {
	switch s {
	case SeverityInfo:
		return 0
	case SeverityLow:
		return 1
	case SeverityMedium:
		return 2
	case SeverityHigh:
		return 3
	case SeverityCritical:
		return 4
	}
	return -1
}

// Valid reports whether s is one of the known severities.
func (s Severity) Valid() bool { return s.Rank() >= 0 }

// Action is what a verdict asks the chat platform or the firm to do.
type Action string

// Actions a rule may request.
const (
	// ActionFlag marks the message for the record; nothing is pushed to users.
	ActionFlag Action = "flag"
	// ActionRetract asks the chat platform to withdraw the message.
	ActionRetract Action = "retract"
	// ActionEscalate sends the message to a supervisor's queue.
	ActionEscalate Action = "escalate"
	// ActionAlert alerts a moderator.
	ActionAlert Action = "alert"
	// ActionEscalateTier2 asks the tier-2 classifier for a second opinion.
	ActionEscalateTier2 Action = "escalate_tier2"
)

// Valid reports whether a is one of the known actions.
func (a Action) Valid() bool {
	switch a {
	case ActionFlag, ActionRetract, ActionEscalate, ActionAlert, ActionEscalateTier2:
		return true
	}
	return false
}

// Participant is a person taking part in a conversation.
type Participant struct {
	// ID is the platform's stable identifier of the person; it names the data
	// subject for erasure and access requests.
	ID string `json:"id"`
	// DisplayName is the name shown in the chat. It is personal data: ingest
	// tokenizes it before the message is stored.
	DisplayName string `json:"display_name,omitempty"`
	// Role is the person's role in the conversation (advisor, customer, patient…).
	Role string `json:"role,omitempty"`
}

// Attachment is metadata about a file sent with a message. Vigil never stores
// attachment contents.
type Attachment struct {
	Name        string `json:"name,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	SizeBytes   int64  `json:"size_bytes,omitempty"`
}

// Span locates matched text inside a (tokenized) message, in bytes.
type Span struct {
	Start int    `json:"start"`
	End   int    `json:"end"`
	Kind  string `json:"kind,omitempty"`
}

// Message is one chat message as stored in the MESSAGES stream: already
// tokenized, so Text, Sender.DisplayName and Participants[].DisplayName hold
// tokens in place of personal data.
type Message struct {
	ID             string            `json:"id"`
	Tenant         string            `json:"tenant"`
	ConversationID string            `json:"conversation_id"`
	Sender         Participant       `json:"sender"`
	Participants   []Participant     `json:"participants,omitempty"`
	Channel        string            `json:"channel,omitempty"`
	Text           string            `json:"text"`
	SentAt         time.Time         `json:"sent_at"`
	ReceivedAt     time.Time         `json:"received_at"`
	Attachments    []Attachment      `json:"attachments,omitempty"`
	Metadata       map[string]string `json:"metadata,omitempty"`
	// PII counts the personal data found per kind (email, card, …). Values are
	// never recorded, only kinds and counts.
	PII map[string]int `json:"pii,omitempty"`
	// Subjects are the data-subject ids this message is linked to (sender,
	// participants, detected identities), so erasure can find it.
	Subjects []string `json:"subjects,omitempty"`
}

// Verdict is the outcome of one rule firing on one message.
type Verdict struct {
	// ID is deterministic: [VerdictID] of message, rule and ruleset version.
	ID             string    `json:"id"`
	MessageID      string    `json:"message_id"`
	Tenant         string    `json:"tenant"`
	ConversationID string    `json:"conversation_id"`
	SenderID       string    `json:"sender_id,omitempty"`
	RuleID         string    `json:"rule_id"`
	RulesetVersion string    `json:"ruleset_version"`
	Severity       Severity  `json:"severity"`
	Action         Action    `json:"action"`
	Tier           int       `json:"tier"`
	Tags           []string  `json:"tags,omitempty"`
	Spans          []Span    `json:"spans,omitempty"`
	Reason         string    `json:"reason,omitempty"`
	MessageSentAt  time.Time `json:"message_sent_at"`
	EvaluatedAt    time.Time `json:"evaluated_at"`
	// LatencySeconds is the time from message receipt to this verdict.
	LatencySeconds float64 `json:"latency_seconds"`
}

// Evaluation records that a ruleset evaluated a message, whether or not
// anything fired, so coverage can be proven.
type Evaluation struct {
	MessageID       string    `json:"message_id"`
	Tenant          string    `json:"tenant"`
	ConversationID  string    `json:"conversation_id"`
	RulesetVersion  string    `json:"ruleset_version"`
	Tiers           []int     `json:"tiers"`
	RulesEvaluated  int       `json:"rules_evaluated"`
	Verdicts        int       `json:"verdicts"`
	DurationSeconds float64   `json:"duration_seconds"`
	EvaluatedAt     time.Time `json:"evaluated_at"`
	StreamSequence  uint64    `json:"stream_sequence"`
}

// AuditEvent is one entry of the append-only audit log: every admin action
// (erase, hold, detokenize, rule change, review transition).
type AuditEvent struct {
	ID      string            `json:"id"`
	Tenant  string            `json:"tenant"`
	Actor   string            `json:"actor"`
	Action  string            `json:"action"`
	Target  string            `json:"target"`
	Reason  string            `json:"reason"`
	At      time.Time         `json:"at"`
	Details map[string]string `json:"details,omitempty"`
}

// Identifier limits shared by every entry point.
const (
	// MaxIDBytes bounds tenant, conversation, sender and message ids.
	MaxIDBytes = 256
)

// ErrInvalidID is returned by [ValidateID] for an empty, oversized or
// non-printable identifier.
var ErrInvalidID = errors.New("invalid identifier")

// ValidateID checks an identifier (tenant, conversation, participant or
// message id): non-empty, at most [MaxIDBytes], valid UTF-8, no control
// characters or whitespace.
func ValidateID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: empty", ErrInvalidID)
	}
	if len(id) > MaxIDBytes {
		return fmt.Errorf("%w: longer than %d bytes", ErrInvalidID, MaxIDBytes)
	}
	if !utf8.ValidString(id) {
		return fmt.Errorf("%w: not valid UTF-8", ErrInvalidID)
	}
	for _, r := range id {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("%w: contains whitespace or control characters", ErrInvalidID)
		}
	}
	return nil
}

// DeriveMessageID returns a stable id for a message whose client sent none:
// the same tenant, conversation, sender, send time and raw text always give
// the same id, so a retried request deduplicates. The raw text only feeds a
// hash; it is not recoverable from the id.
func DeriveMessageID(tenant, conversation, sender string, sentAt time.Time, text string) string {
	h := sha256.New()
	for _, s := range []string{tenant, conversation, sender, sentAt.UTC().Format(time.RFC3339Nano), text} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "m-" + hex.EncodeToString(h.Sum(nil)[:16])
}

// VerdictID returns the deterministic id of the verdict of rule on message
// under a ruleset version, so redelivery never produces a second verdict.
func VerdictID(messageID, ruleID, rulesetVersion string) string {
	h := sha256.Sum256([]byte(strings.Join([]string{messageID, ruleID, rulesetVersion}, "\x00")))
	return "v-" + hex.EncodeToString(h[:16])
}
