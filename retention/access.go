package retention

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/pii"
	"github.com/vigilhq/vigil/warehouse"
)

// DefaultAccessMessages bounds the messages of one access export.
const DefaultAccessMessages = 100000

// AccessRequest is a data subject's access request (GDPR Art. 15).
type AccessRequest struct {
	Tenant, Subject string
	// Actor and Reason go to the audit log, and to every detokenization's
	// audit event.
	Actor, Reason string
}

// Token statuses in an [AccessReport].
const (
	TokenValue      = "value"
	TokenShredded   = "shredded"
	TokenRestricted = "restricted"
	TokenMissing    = "not_found"
)

// AccessReport is the export of a data subject's data: their vault values
// and the archived messages linked to them, with their own tokens replaced
// by the values. Other people's tokens stay tokens (Art. 15(4)).
type AccessReport struct {
	Tenant      string          `json:"tenant"`
	Subject     string          `json:"subject"`
	GeneratedAt time.Time       `json:"generated_at"`
	Actor       string          `json:"actor"`
	Reason      string          `json:"reason"`
	Tokens      []AccessToken   `json:"tokens"`
	Messages    []AccessMessage `json:"messages"`
	// Verdicts counts the verdicts about messages they sent.
	Verdicts uint64 `json:"verdicts"`
	// Truncated is set when more messages exist than were exported.
	Truncated bool `json:"truncated,omitempty"`
}

// AccessToken is one vault entry of the subject.
type AccessToken struct {
	Token  string `json:"token"`
	Kind   string `json:"kind"`
	Status string `json:"status"`
	Value  string `json:"value,omitempty"`
}

// AccessMessage is one archived message linked to the subject.
type AccessMessage struct {
	ID             string    `json:"id"`
	ConversationID string    `json:"conversation_id"`
	Channel        string    `json:"channel,omitempty"`
	SentAt         time.Time `json:"sent_at"`
	// Role is "sender" or "linked".
	Role string `json:"role"`
	Text string `json:"text"`
}

// Access exports everything Vigil holds about a data subject, detokenizing
// their tokens (each read audited by the vault) and auditing the export.
// A subject with nothing linked returns [ErrUnknownSubject]. A shredded or
// restricted subject's tokens are listed with that status and no value.
func (s *Service) Access(ctx context.Context, req AccessRequest) (*AccessReport, error) {
	if err := required("actor", req.Actor, "reason", req.Reason); err != nil {
		return nil, fmt.Errorf("access: %w", err)
	}
	if err := validIDs("tenant", req.Tenant, "subject", req.Subject); err != nil {
		return nil, fmt.Errorf("access: %w", err)
	}
	tokens, err := s.vault.SubjectTokens(ctx, req.Tenant, req.Subject)
	if err != nil {
		return nil, fmt.Errorf("access: %w", err)
	}
	f := warehouse.MessageFilter{Tenant: req.Tenant, Linked: req.Subject}
	msgs, err := warehouse.MessageTexts(ctx, s.conn, f, DefaultAccessMessages+1)
	if err != nil {
		return nil, fmt.Errorf("access: %w", err)
	}
	verdicts, err := warehouse.SubjectVerdicts(ctx, s.conn, req.Tenant, req.Subject)
	if err != nil {
		return nil, fmt.Errorf("access: %w", err)
	}
	if len(tokens) == 0 && len(msgs) == 0 && verdicts == 0 {
		return nil, fmt.Errorf("access: %w: nothing is linked to it in tenant %s", ErrUnknownSubject, req.Tenant)
	}
	sh, err := s.vault.SubjectHash(ctx, req.Tenant, req.Subject)
	if err != nil {
		return nil, fmt.Errorf("access: %w", err)
	}
	// Audit the export before any value is read.
	if err := s.audit(ctx, req.Tenant, req.Actor, AuditActionAccess, "subject:"+sh, req.Reason,
		map[string]string{"tokens": strconv.Itoa(len(tokens)), "messages": strconv.Itoa(min(len(msgs), DefaultAccessMessages))},
		s.now().UTC().Format(time.RFC3339Nano)); err != nil {
		return nil, fmt.Errorf("access: %w", err)
	}
	rep := &AccessReport{Tenant: req.Tenant, Subject: req.Subject, GeneratedAt: s.now().UTC().Truncate(time.Millisecond),
		Actor: req.Actor, Reason: req.Reason, Verdicts: verdicts, Tokens: []AccessToken{}, Messages: []AccessMessage{}}
	values := map[string]string{}
	preq := pii.Request{Actor: req.Actor, Reason: req.Reason}
	for _, tok := range tokens {
		at := AccessToken{Token: tok}
		if t, ok := pii.ParseToken(tok); ok {
			at.Kind = string(t.Kind)
		}
		v, err := s.vault.Detokenize(ctx, req.Tenant, tok, preq)
		switch {
		case err == nil:
			at.Status, at.Value = TokenValue, v
			values[tok] = v
		case errors.Is(err, pii.ErrSubjectShredded):
			at.Status = TokenShredded
		case errors.Is(err, pii.ErrSubjectRestricted):
			at.Status = TokenRestricted
		case errors.Is(err, pii.ErrTokenNotFound):
			at.Status = TokenMissing
		default:
			return nil, fmt.Errorf("access: %w", err)
		}
		rep.Tokens = append(rep.Tokens, at)
	}
	if len(msgs) > DefaultAccessMessages {
		msgs, rep.Truncated = msgs[:DefaultAccessMessages], true
	}
	for _, m := range msgs {
		role := "linked"
		if m.SenderID == req.Subject {
			role = "sender"
		}
		rep.Messages = append(rep.Messages, AccessMessage{ID: m.ID, ConversationID: m.ConversationID, Channel: m.Channel,
			SentAt: m.SentAt, Role: role, Text: replaceTokens(m.Text, values)})
	}
	return rep, nil
}

// replaceTokens substitutes the tokens of values in text.
func replaceTokens(text string, values map[string]string) string {
	toks := pii.FindTokens(text)
	if len(toks) == 0 || len(values) == 0 {
		return text
	}
	var b strings.Builder
	last := 0
	for _, t := range toks {
		v, ok := values[t.String()]
		if !ok {
			continue
		}
		b.WriteString(text[last:t.Start])
		b.WriteString(v)
		last = t.End
	}
	b.WriteString(text[last:])
	return b.String()
}
