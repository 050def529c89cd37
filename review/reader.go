package review

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
)

// streamReader reads a conversation from the MESSAGES stream with direct
// "next message for subject" gets: no consumer is created per request.
type streamReader struct {
	js         jetstream.JetStream
	partitions int
	maxScan    int
}

var _ ConversationReader = (*streamReader)(nil)

func (r *streamReader) Conversation(ctx context.Context, tenant, conversation, messageID string, before, after int) ([]vigil.Message, error) {
	st, err := r.js.Stream(ctx, bus.StreamMessages)
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", bus.StreamMessages, err)
	}
	subject := bus.StoredMessageSubject(tenant, conversation, r.partitions)
	var (
		ring   []vigil.Message // the last `before` messages seen
		found  = -1
		out    []vigil.Message
		seq    uint64 = 1
		nAfter int
	)
	for scanned := 0; scanned < r.maxScan; scanned++ {
		raw, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("get message of conversation: %w", err)
		}
		seq = raw.Sequence + 1
		var m vigil.Message
		if err := json.Unmarshal(raw.Data, &m); err != nil || m.Tenant != tenant || m.ConversationID != conversation {
			continue
		}
		if found < 0 {
			if m.ID == messageID {
				found = len(ring)
				out = append(ring, m)
				continue
			}
			ring = append(ring, m)
			if len(ring) > before {
				ring = ring[1:]
			}
			continue
		}
		if nAfter >= after {
			break
		}
		out = append(out, m)
		nAfter++
	}
	if found < 0 {
		return []vigil.Message{}, nil
	}
	return out, nil
}
