package review

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/review/workflow"
)

// sampleWindow is the period of supervisory sampling: a conversation is
// picked (or not) once per UTC day.
const sampleWindow = 24 * time.Hour

// Sampled reports whether supervisory sampling at rate picks the
// conversation on the day of at. The choice is a hash, so every replica
// and every message of the conversation agree.
func Sampled(tenant, conversation string, at time.Time, rate float64) bool {
	if rate <= 0 {
		return false
	}
	day := at.UTC().Truncate(sampleWindow).Unix()
	h := sha256.New()
	h.Write([]byte(tenant))
	h.Write([]byte{0})
	h.Write([]byte(conversation))
	h.Write([]byte{0})
	var d [8]byte
	binary.BigEndian.PutUint64(d[:], uint64(day))
	h.Write(d[:])
	x := binary.BigEndian.Uint64(h.Sum(nil)[:8])
	return float64(x)/float64(math.MaxUint64) < rate
}

// handleSampleMessage puts a sampled, non-flagged conversation into the
// queue, once per day.
func (s *Service) handleSampleMessage(ctx context.Context, data []byte) error {
	var m vigil.Message
	if err := json.Unmarshal(data, &m); err != nil || vigil.ValidateID(m.Tenant) != nil || vigil.ValidateID(m.ConversationID) != nil {
		return nil
	}
	at := m.SentAt
	if at.IsZero() {
		at = m.ReceivedAt
	}
	if !Sampled(m.Tenant, m.ConversationID, at, s.cfg.SampleRate) || s.idx.isFlagged(m.Tenant, m.ConversationID) {
		return nil
	}
	day := at.UTC().Truncate(sampleWindow)
	id := workflow.AlertID(m.Tenant, m.ConversationID, workflow.SampleRuleID, day, 0)
	if _, ok := s.idx.get(id); ok {
		return nil
	}
	now := s.now().UTC()
	a := &workflow.Alert{
		ID: id, Tenant: m.Tenant, ConversationID: m.ConversationID, RuleID: workflow.SampleRuleID,
		Kind: workflow.KindSample, Severity: vigil.SeverityInfo, MessageID: m.ID,
		MessageIDs: []string{m.ID}, Count: 1, WindowStart: day, FirstAt: at.UTC(), LastAt: at.UTC(),
		CreatedAt: now, UpdatedAt: now, State: workflow.StateOpen,
	}
	if err := s.create(ctx, a); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		return err
	}
	return nil
}
