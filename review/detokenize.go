package review

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/review/workflow"
)

// AuditActionDetokenize is the action of the audit event written before a
// reviewer sees detokenized values.
const AuditActionDetokenize = "review.detokenize"

// Detokenize reveals the tokens of one message of alert alertID (the
// flagged message when messageID is empty) to privileged reviewer p. It
// refuses, changing nothing and writing nothing, when p is not privileged
// (403), reason is empty (400), the alert or message is not visible (404)
// or p exceeded the rate limit (429). Otherwise it first writes an audit
// event to the AUDIT stream — if that fails nothing is revealed (503) —
// and then asks the [Detokenizer] for each token.
func (s *Service) Detokenize(ctx context.Context, p workflow.Principal, alertID, messageID, reason string) ([]workflow.Reveal, error) {
	out, err := s.detokenize(ctx, p, alertID, messageID, reason)
	switch {
	case err == nil:
		s.metrics.Detokenize.WithLabelValues(resultOK).Inc()
	case isRefusal(err):
		s.metrics.Detokenize.WithLabelValues(resultRefused).Inc()
	default:
		s.metrics.Detokenize.WithLabelValues(resultError).Inc()
	}
	return out, err
}

func (s *Service) detokenize(ctx context.Context, p workflow.Principal, alertID, messageID, reason string) ([]workflow.Reveal, error) {
	if !p.CanDetokenize() {
		return nil, workflow.Errorf(http.StatusForbidden, workflow.CodeForbidden, "detokenize needs a privileged reviewer")
	}
	reason = strings.TrimSpace(reason)
	if reason == "" {
		return nil, workflow.Errorf(http.StatusBadRequest, workflow.CodeReasonRequired, "detokenize needs a reason")
	}
	if len(reason) > workflow.MaxReasonBytes {
		return nil, workflow.Errorf(http.StatusBadRequest, workflow.CodeBadRequest, "reason longer than %d bytes", workflow.MaxReasonBytes)
	}
	a, err := s.Alert(ctx, p, alertID)
	if err != nil {
		return nil, err
	}
	if s.detok == nil {
		return nil, workflow.Errorf(http.StatusServiceUnavailable, workflow.CodeUnavailable, "detokenize is not configured")
	}
	if messageID == "" {
		messageID = a.MessageID
	}
	msg, err := s.findMessage(ctx, a, messageID)
	if err != nil {
		return nil, err
	}
	if !s.limiter(p.Name).Allow() {
		return nil, workflow.Errorf(http.StatusTooManyRequests, workflow.CodeRateLimited, "too many detokenize requests, try again in a minute")
	}
	tokens := workflow.FindTokens(msg.Text)
	ev := &vigil.AuditEvent{
		ID:     newEventID("au-"),
		Tenant: a.Tenant,
		Actor:  p.Name,
		Action: AuditActionDetokenize,
		Target: msg.ID,
		Reason: reason,
		At:     s.now().UTC(),
		Details: map[string]string{
			"alert_id":        a.ID,
			"conversation_id": a.ConversationID,
			"tokens":          fmt.Sprint(len(tokens)),
			"role":            string(p.Role),
		},
	}
	if _, err := s.bus.PublishAudit(ctx, ev); err != nil {
		return nil, unavailable(fmt.Errorf("audit detokenize of %s: %w", msg.ID, err))
	}
	out := make([]workflow.Reveal, 0, len(tokens))
	seen := make(map[string]bool, len(tokens))
	for _, t := range tokens {
		if seen[t.Text] {
			continue
		}
		seen[t.Text] = true
		r := workflow.Reveal{Token: t.Text, Kind: t.Kind}
		v, err := s.detok.Detokenize(ctx, a.Tenant, t.Text, p.Name, reason)
		if err != nil {
			// The cause may be shredding or restriction; the log names the
			// token kind only.
			s.log.Warn("detokenize token", "alert", a.ID, "kind", t.Kind, "err", err)
			r.Error = "value unavailable"
		} else {
			r.Value = v
		}
		out = append(out, r)
	}
	return out, nil
}

// findMessage returns message id of alert a's conversation context.
func (s *Service) findMessage(ctx context.Context, a *workflow.Alert, id string) (*vigil.Message, error) {
	msgs, err := s.reader.Conversation(ctx, a.Tenant, a.ConversationID, a.MessageID, s.cfg.ContextMessages, s.cfg.ContextMessages)
	if err != nil {
		return nil, unavailable(fmt.Errorf("read conversation of alert %s: %w", a.ID, err))
	}
	for i := range msgs {
		if msgs[i].ID == id && msgs[i].Tenant == a.Tenant {
			return &msgs[i], nil
		}
	}
	return nil, workflow.Errorf(http.StatusNotFound, workflow.CodeNotFound, "message %s not found in the context of alert %s", id, a.ID)
}
