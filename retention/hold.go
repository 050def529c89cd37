package retention

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vigilhq/vigil/warehouse"
)

// Hold is a legal hold: while active, the data it covers is never purged
// or erased. Scope is one of the warehouse.HoldScope* values; From and To
// narrow any scope to sent_at in [From, To) (zero: open).
type Hold = warehouse.Hold

// HoldRequest creates a hold with [Service.CreateHold].
type HoldRequest struct {
	Tenant string
	// CaseID names the matter; one active hold per case id and tenant.
	CaseID string
	// Scope is tenant, conversation, subject or time_range.
	Scope          string
	ConversationID string
	Subject        string
	From, To       time.Time
	Reason         string
	Actor          string
}

func (r HoldRequest) validate() error {
	if err := required("actor", r.Actor, "reason", r.Reason); err != nil {
		return err
	}
	if err := validIDs("tenant", r.Tenant, "case id", r.CaseID); err != nil {
		return err
	}
	switch r.Scope {
	case warehouse.HoldScopeTenant:
	case warehouse.HoldScopeConversation:
		if err := validIDs("conversation", r.ConversationID); err != nil {
			return err
		}
	case warehouse.HoldScopeSubject:
		if err := validIDs("subject", r.Subject); err != nil {
			return err
		}
	case warehouse.HoldScopeTimeRange:
		if r.From.IsZero() && r.To.IsZero() {
			return fmt.Errorf("%w: scope time_range needs a start or an end", ErrInvalidRequest)
		}
	default:
		return fmt.Errorf("%w: scope must be tenant, conversation, subject or time_range (got %q)", ErrInvalidRequest, r.Scope)
	}
	if r.Scope != warehouse.HoldScopeConversation && r.ConversationID != "" || r.Scope != warehouse.HoldScopeSubject && r.Subject != "" {
		return fmt.Errorf("%w: conversation and subject only go with their scope", ErrInvalidRequest)
	}
	if !r.From.IsZero() && !r.To.IsZero() && !r.From.Before(r.To) {
		return fmt.Errorf("%w: hold start %s is not before its end %s", ErrInvalidRequest,
			r.From.UTC().Format(time.RFC3339), r.To.UTC().Format(time.RFC3339))
	}
	return nil
}

// CreateHold records a legal hold and audits it. A request with bad fields
// returns [ErrInvalidRequest]; an active hold with the same case id
// [ErrHoldExists]. In both cases nothing is written.
func (s *Service) CreateHold(ctx context.Context, r HoldRequest) (Hold, error) {
	if err := r.validate(); err != nil {
		return Hold{}, fmt.Errorf("create hold: %w", err)
	}
	holds, err := warehouse.ListHolds(ctx, s.conn, r.Tenant)
	if err != nil {
		return Hold{}, fmt.Errorf("create hold %s: %w", r.CaseID, err)
	}
	for _, h := range holds {
		if h.CaseID == r.CaseID && h.Active() {
			return Hold{}, fmt.Errorf("create hold: %w: case %s (tenant %s, since %s by %s); release it first or use another case id",
				ErrHoldExists, h.CaseID, h.Tenant, h.CreatedAt.Format(time.RFC3339), h.CreatedBy)
		}
	}
	h := Hold{Tenant: r.Tenant, CaseID: r.CaseID, Scope: r.Scope, ConversationID: r.ConversationID, Subject: r.Subject,
		From: r.From.UTC(), To: r.To.UTC(), Reason: r.Reason, CreatedBy: r.Actor, CreatedAt: s.now().UTC().Truncate(time.Millisecond)}
	if r.From.IsZero() {
		h.From = time.Time{}
	}
	if r.To.IsZero() {
		h.To = time.Time{}
	}
	if err := warehouse.PutHold(ctx, s.conn, h); err != nil {
		return Hold{}, fmt.Errorf("create hold: %w", err)
	}
	details := map[string]string{"scope": h.Scope}
	if h.ConversationID != "" {
		details["conversation"] = h.ConversationID
	}
	if err := s.audit(ctx, h.Tenant, r.Actor, AuditActionHoldCreate, "case:"+h.CaseID, r.Reason, details,
		h.CreatedAt.Format(time.RFC3339Nano)); err != nil {
		return h, fmt.Errorf("create hold %s: %w", h.CaseID, err)
	}
	s.log.InfoContext(ctx, "legal hold created", "tenant", h.Tenant, "case", h.CaseID, "scope", h.Scope)
	return h, nil
}

// ReleaseHold releases the active hold of case caseID, or with dryRun only
// returns the hold it would release. No active hold returns
// [ErrHoldNotFound].
func (s *Service) ReleaseHold(ctx context.Context, tenant, caseID, actor, reason string, dryRun bool) (Hold, error) {
	if err := required("actor", actor, "reason", reason); err != nil {
		return Hold{}, fmt.Errorf("release hold: %w", err)
	}
	if err := validIDs("tenant", tenant, "case id", caseID); err != nil {
		return Hold{}, fmt.Errorf("release hold: %w", err)
	}
	holds, err := warehouse.ListHolds(ctx, s.conn, tenant)
	if err != nil {
		return Hold{}, fmt.Errorf("release hold %s: %w", caseID, err)
	}
	for _, h := range holds {
		if h.CaseID != caseID || !h.Active() {
			continue
		}
		if dryRun {
			return h, nil
		}
		h.ReleasedAt, h.ReleasedBy = s.now().UTC().Truncate(time.Millisecond), actor
		if err := warehouse.PutHold(ctx, s.conn, h); err != nil {
			return Hold{}, fmt.Errorf("release hold: %w", err)
		}
		if err := s.audit(ctx, tenant, actor, AuditActionHoldRelease, "case:"+caseID, reason, map[string]string{"scope": h.Scope},
			h.ReleasedAt.Format(time.RFC3339Nano)); err != nil {
			return h, fmt.Errorf("release hold %s: %w", caseID, err)
		}
		s.log.InfoContext(ctx, "legal hold released", "tenant", tenant, "case", caseID)
		return h, nil
	}
	return Hold{}, fmt.Errorf("release hold: %w: case %s in tenant %s", ErrHoldNotFound, caseID, tenant)
}

// Holds lists the holds of tenant (all tenants when empty); released ones
// only when all is set.
func (s *Service) Holds(ctx context.Context, tenant string, all bool) ([]Hold, error) {
	holds, err := warehouse.ListHolds(ctx, s.conn, tenant)
	if err != nil {
		return nil, err
	}
	out := holds[:0]
	for _, h := range holds {
		if all || h.Active() {
			out = append(out, h)
		}
	}
	return out, nil
}

// holdsCovering returns the case ids of the active holds covering subject
// or any of msgs, sorted.
func holdsCovering(holds []Hold, subject string, msgs []warehouse.MessageRef) []string {
	seen := map[string]bool{}
	for _, h := range holds {
		if !h.Active() {
			continue
		}
		// Unbounded tenant and subject holds also cover the vault values,
		// whether or not any archived message is linked.
		unbounded := h.From.IsZero() && h.To.IsZero()
		if unbounded && (h.Scope == warehouse.HoldScopeTenant || h.Scope == warehouse.HoldScopeSubject && h.Subject == subject) {
			seen[h.CaseID] = true
			continue
		}
		for _, m := range msgs {
			if covers(h, subject, m) {
				seen[h.CaseID] = true
				break
			}
		}
	}
	out := make([]string, 0, len(seen))
	for c := range seen {
		out = append(out, c)
	}
	sort.Strings(out)
	return out
}

// covers reports whether hold h covers message m linked to subject (the
// Go twin of the warehouse's SQL predicate).
func covers(h Hold, subject string, m warehouse.MessageRef) bool {
	if !h.From.IsZero() && m.SentAt.Before(h.From) || !h.To.IsZero() && !m.SentAt.Before(h.To) {
		return false
	}
	switch h.Scope {
	case warehouse.HoldScopeConversation:
		return m.ConversationID == h.ConversationID
	case warehouse.HoldScopeSubject:
		return h.Subject == subject || h.Subject == m.SenderID
	}
	return true // tenant, time_range
}

func activeHolds(holds []Hold) []Hold {
	var out []Hold
	for _, h := range holds {
		if h.Active() {
			out = append(out, h)
		}
	}
	return out
}

func joinCases(cases []string) string { return strings.Join(cases, ", ") }
