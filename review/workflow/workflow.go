// Package workflow is the review state machine of Vigil: the alert record
// kept in the alerts KV bucket, its states (open → claimed → closed, with
// reopen), dispositions, reviewer roles and the transition events published
// on the REVIEW stream. It has no I/O: [Apply] turns an alert, an operation
// and the acting principal into the next alert and its event, or refuses
// with an [*Error] that names the HTTP status the API answers with.
//
// Package review stores alerts and publishes events; package
// review/console renders them. Both speak these types.
package workflow

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil"
)

// State is where an alert is in the review workflow.
type State string

// States of an alert.
const (
	StateOpen    State = "open"
	StateClaimed State = "claimed"
	StateClosed  State = "closed"
)

// Disposition is the outcome recorded when an alert is closed.
type Disposition string

// Dispositions a reviewer may close an alert with.
const (
	FalsePositive   Disposition = "false_positive"
	NoAction        Disposition = "no_action"
	Coached         Disposition = "coached"
	EscalatedToCase Disposition = "escalated_to_case"
	Reported        Disposition = "reported"
)

// Dispositions lists every valid disposition in display order.
var Dispositions = []Disposition{FalsePositive, NoAction, Coached, EscalatedToCase, Reported}

// Valid reports whether d is a known disposition.
func (d Disposition) Valid() bool {
	for _, x := range Dispositions {
		if d == x {
			return true
		}
	}
	return false
}

// Role is what a principal may do.
type Role string

// Roles.
const (
	// RoleReviewer sees tokens only, claims, comments and closes.
	RoleReviewer Role = "reviewer"
	// RolePrivileged is a reviewer who may also detokenize a message with a
	// mandatory reason (audited, rate-limited) and bulk-close.
	RolePrivileged Role = "privileged"
	// RoleAdmin may also assign alerts and close alerts claimed by others.
	// An admin does not detokenize: reading personal data is a separate
	// privilege.
	RoleAdmin Role = "admin"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleReviewer || r == RolePrivileged || r == RoleAdmin }

// AllTenants as a principal's tenant lets an admin see every tenant.
const AllTenants = "*"

// Principal is an authenticated reviewer.
type Principal struct {
	// Name identifies the reviewer in events and assignments.
	Name string `json:"name"`
	// Tenant the principal may see; [AllTenants] only for admins.
	Tenant string `json:"tenant"`
	Role   Role   `json:"role"`
}

// Sees reports whether p may see alerts of tenant.
func (p Principal) Sees(tenant string) bool {
	return p.Tenant == tenant || (p.Role == RoleAdmin && p.Tenant == AllTenants)
}

// CanDetokenize reports whether p may reveal tokenized values.
func (p Principal) CanDetokenize() bool { return p.Role == RolePrivileged }

// Kind says why an alert exists.
type Kind string

// Alert kinds.
const (
	// KindVerdict: verdicts of one rule on one conversation within a window.
	KindVerdict Kind = "verdict"
	// KindSample: a non-flagged conversation picked by supervisory sampling.
	KindSample Kind = "sample"
)

// SampleRuleID is the rule id of sampled alerts.
const SampleRuleID = "supervisory_sample"

// Caps on the lists an alert record carries, so a noisy conversation keeps
// the record small: older entries are dropped from the list (never from
// Count).
const (
	MaxRecentMessages = 20
	MaxRecentVerdicts = 64
	MaxComments       = 100
	MaxCommentBytes   = 4000
	MaxReasonBytes    = 1000
)

// Comment is a reviewer's note on an alert.
type Comment struct {
	Author string    `json:"author"`
	At     time.Time `json:"at"`
	Text   string    `json:"text"`
}

// Alert is one review item: the verdicts of one rule on one conversation
// within an aggregation window, or one sampled conversation. It is the
// value stored under its ID in the alerts bucket.
type Alert struct {
	ID             string         `json:"id"`
	Tenant         string         `json:"tenant"`
	ConversationID string         `json:"conversation_id"`
	RuleID         string         `json:"rule_id"`
	Kind           Kind           `json:"kind"`
	Severity       vigil.Severity `json:"severity"`
	Action         vigil.Action   `json:"action,omitempty"`
	Tier           int            `json:"tier,omitempty"`
	// MessageID is the first flagged message; Spans are the matched spans
	// in it.
	MessageID string       `json:"message_id"`
	Spans     []vigil.Span `json:"spans,omitempty"`
	// MessageIDs are the most recent flagged messages (capped).
	MessageIDs []string `json:"message_ids,omitempty"`
	// VerdictIDs are the most recent verdict ids, to ignore redelivery.
	VerdictIDs []string `json:"verdict_ids,omitempty"`
	// Count is the number of verdicts aggregated into this alert; Count-1
	// of them were suppressed as duplicates.
	Count       int         `json:"count"`
	WindowStart time.Time   `json:"window_start"`
	FirstAt     time.Time   `json:"first_at"`
	LastAt      time.Time   `json:"last_at"`
	CreatedAt   time.Time   `json:"created_at"`
	UpdatedAt   time.Time   `json:"updated_at"`
	State       State       `json:"state"`
	Assignee    string      `json:"assignee,omitempty"`
	Disposition Disposition `json:"disposition,omitempty"`
	Reason      string      `json:"reason,omitempty"`
	ClosedAt    time.Time   `json:"closed_at,omitzero"`
	Comments    []Comment   `json:"comments,omitempty"`
	// Generation tells apart alerts of the same conversation, rule and
	// window opened after an earlier one was closed.
	Generation int `json:"generation,omitempty"`
	// Version counts the review transitions of the alert (0 at creation);
	// the event of version n has id [EventID](ID, n).
	Version int `json:"version"`
	// Pending is the event of the latest transition until it is on the
	// REVIEW stream (an outbox in the record itself): the state change and
	// its event are written in one compare-and-set, and a pending event is
	// published before any later transition of the alert.
	Pending *Event `json:"pending_event,omitempty"`
}

// Suppressed is how many verdicts were folded into this alert after the
// first one.
func (a *Alert) Suppressed() int { return max(a.Count-1, 0) }

// Event is one review transition as published on the REVIEW stream. Its
// JSON field names are the columns of the warehouse table review_events
// (stream_seq is added by the projection).
type Event struct {
	ID          string      `json:"id"`
	AlertID     string      `json:"alert_id"`
	Tenant      string      `json:"tenant"`
	Reviewer    string      `json:"reviewer"`
	At          time.Time   `json:"at"`
	FromState   State       `json:"from_state"`
	ToState     State       `json:"to_state"`
	Disposition Disposition `json:"disposition"`
	Reason      string      `json:"reason"`
}

// SystemReviewer is the reviewer named in events Vigil itself causes
// (alert creation).
const SystemReviewer = "vigil"

// OpKind names a review operation.
type OpKind string

// Operations.
const (
	OpClaim   OpKind = "claim"
	OpRelease OpKind = "release"
	OpAssign  OpKind = "assign"
	OpComment OpKind = "comment"
	OpClose   OpKind = "close"
	OpReopen  OpKind = "reopen"
)

// Op is an operation a principal asks for.
type Op struct {
	Kind        OpKind      `json:"kind"`
	Disposition Disposition `json:"disposition,omitempty"`
	Reason      string      `json:"reason,omitempty"`
	// Assignee of OpAssign.
	Assignee string `json:"assignee,omitempty"`
	// Text of OpComment.
	Text string `json:"text,omitempty"`
}

// Rules configures [Apply].
type Rules struct {
	// RequireClaim refuses to close an alert that is not claimed.
	RequireClaim bool
}

// Error codes of [*Error].
const (
	CodeBadRequest        = "bad_request"
	CodeReasonRequired    = "reason_required"
	CodeInvalidDisp       = "invalid_disposition"
	CodeIllegalTransition = "illegal_transition"
	CodeNotClaimed        = "not_claimed"
	CodeAlreadyClaimed    = "already_claimed"
	CodeForbidden         = "forbidden"
	CodeNotFound          = "not_found"
	CodeUnauthorized      = "unauthorized"
	CodeRateLimited       = "rate_limited"
	CodeUnavailable       = "unavailable"
)

// Sentinels matched by errors.Is on an [*Error] of the same code.
var (
	ErrIllegalTransition = &Error{Status: 409, Code: CodeIllegalTransition}
	ErrForbidden         = &Error{Status: 403, Code: CodeForbidden}
	ErrNotFound          = &Error{Status: 404, Code: CodeNotFound}
	ErrReasonRequired    = &Error{Status: 400, Code: CodeReasonRequired}
	ErrAlreadyClaimed    = &Error{Status: 409, Code: CodeAlreadyClaimed}
	ErrNotClaimed        = &Error{Status: 409, Code: CodeNotClaimed}
)

// Error is a refused request: the HTTP status, a stable code and a message
// safe to show (ids and states only, never message text).
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return strings.ReplaceAll(e.Code, "_", " ")
	}
	return e.Message
}

// Is matches another *Error with the same code.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Code == e.Code
}

// Errorf returns an *Error with status, code and a formatted message.
func Errorf(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Apply checks op by p against a and returns the next alert and the event
// describing the transition, also set as the next alert's Pending event.
// a is not modified; a pending event of a must be published first. Refusals are *Error values
// with a 4xx status; nothing changes on refusal.
func Apply(a *Alert, op Op, p Principal, rules Rules, now time.Time) (*Alert, *Event, error) {
	if !p.Sees(a.Tenant) {
		return nil, nil, Errorf(404, CodeNotFound, "alert %s not found", a.ID)
	}
	next := *a
	next.Comments = append([]Comment(nil), a.Comments...)
	reason := strings.TrimSpace(op.Reason)
	if len(reason) > MaxReasonBytes {
		return nil, nil, Errorf(400, CodeBadRequest, "reason longer than %d bytes", MaxReasonBytes)
	}
	switch op.Kind {
	case OpClaim:
		switch {
		case a.State == StateClaimed && a.Assignee == p.Name:
			return nil, nil, Errorf(409, CodeAlreadyClaimed, "alert %s is already claimed by you", a.ID)
		case a.State == StateClaimed:
			return nil, nil, Errorf(409, CodeAlreadyClaimed, "alert %s is claimed by another reviewer", a.ID)
		case a.State != StateOpen:
			return nil, nil, Errorf(409, CodeIllegalTransition, "cannot claim a %s alert", a.State)
		}
		next.State, next.Assignee = StateClaimed, p.Name
	case OpRelease:
		if a.State != StateClaimed {
			return nil, nil, Errorf(409, CodeNotClaimed, "cannot release a %s alert", a.State)
		}
		if a.Assignee != p.Name && p.Role != RoleAdmin {
			return nil, nil, Errorf(403, CodeForbidden, "alert %s is claimed by another reviewer", a.ID)
		}
		next.State, next.Assignee = StateOpen, ""
	case OpAssign:
		if p.Role != RoleAdmin {
			return nil, nil, Errorf(403, CodeForbidden, "only admins assign alerts")
		}
		if a.State == StateClosed {
			return nil, nil, Errorf(409, CodeIllegalTransition, "cannot assign a closed alert")
		}
		who := strings.TrimSpace(op.Assignee)
		if who == "" || len(who) > 256 {
			return nil, nil, Errorf(400, CodeBadRequest, "assignee required")
		}
		next.State, next.Assignee = StateClaimed, who
		if reason == "" {
			reason = "assigned to " + who
		}
	case OpComment:
		text := strings.TrimSpace(op.Text)
		if text == "" {
			return nil, nil, Errorf(400, CodeBadRequest, "comment text required")
		}
		if len(text) > MaxCommentBytes {
			return nil, nil, Errorf(400, CodeBadRequest, "comment longer than %d bytes", MaxCommentBytes)
		}
		next.Comments = append(next.Comments, Comment{Author: p.Name, At: now, Text: text})
		if n := len(next.Comments); n > MaxComments {
			next.Comments = next.Comments[n-MaxComments:]
		}
		reason = "comment: " + text
	case OpClose:
		if !op.Disposition.Valid() {
			return nil, nil, Errorf(400, CodeInvalidDisp, "disposition must be one of %s", dispList())
		}
		if reason == "" {
			return nil, nil, Errorf(400, CodeReasonRequired, "closing needs a reason")
		}
		switch {
		case a.State == StateClosed:
			return nil, nil, Errorf(409, CodeIllegalTransition, "alert %s is already closed", a.ID)
		case a.State == StateOpen && rules.RequireClaim:
			return nil, nil, Errorf(409, CodeNotClaimed, "claim alert %s before closing it", a.ID)
		case a.State == StateClaimed && a.Assignee != p.Name && p.Role != RoleAdmin:
			return nil, nil, Errorf(403, CodeForbidden, "alert %s is claimed by another reviewer", a.ID)
		}
		next.State, next.Disposition, next.ClosedAt = StateClosed, op.Disposition, now
		if next.Assignee == "" {
			next.Assignee = p.Name
		}
	case OpReopen:
		if a.State != StateClosed {
			return nil, nil, Errorf(409, CodeIllegalTransition, "cannot reopen a %s alert", a.State)
		}
		if reason == "" {
			return nil, nil, Errorf(400, CodeReasonRequired, "reopening needs a reason")
		}
		next.State, next.Disposition, next.Assignee, next.ClosedAt = StateOpen, "", "", time.Time{}
	default:
		return nil, nil, Errorf(400, CodeBadRequest, "unknown operation %q", op.Kind)
	}
	if op.Kind != OpComment {
		next.Reason = reason
	}
	next.UpdatedAt = now
	next.Version = a.Version + 1
	ev := &Event{
		ID:          EventID(a.ID, next.Version),
		AlertID:     a.ID,
		Tenant:      a.Tenant,
		Reviewer:    p.Name,
		At:          now.UTC(),
		FromState:   a.State,
		ToState:     next.State,
		Disposition: next.Disposition,
		Reason:      reason,
	}
	next.Pending = ev
	return &next, ev, nil
}

// NewEvent is the event of alert creation (version 0).
func NewEvent(a *Alert) *Event {
	return &Event{
		ID:       EventID(a.ID, 0),
		AlertID:  a.ID,
		Tenant:   a.Tenant,
		Reviewer: SystemReviewer,
		At:       a.CreatedAt.UTC(),
		ToState:  StateOpen,
		Reason:   fmt.Sprintf("%s %s", a.Kind, a.RuleID),
	}
}

// EventID is the deterministic id of the event that produced version v of
// an alert, so a retried publish deduplicates.
func EventID(alertID string, v int) string {
	return alertID + "-v" + strconv.Itoa(v)
}

// AlertID is the deterministic id of the alert of a conversation and rule
// in the window starting at windowStart, generation gen. Verdicts of any
// replica land in the same alert.
func AlertID(tenant, conversation, rule string, windowStart time.Time, gen int) string {
	h := sha256.Sum256([]byte(strings.Join([]string{tenant, conversation, rule,
		strconv.FormatInt(windowStart.Unix(), 10), strconv.Itoa(gen)}, "\x00")))
	return "a-" + hex.EncodeToString(h[:12])
}

func dispList() string {
	s := make([]string, len(Dispositions))
	for i, d := range Dispositions {
		s[i] = string(d)
	}
	return strings.Join(s, ", ")
}
