package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// EraseVerdicts securely deletes the given sequences from VERDICTS, as
// [Bus.EraseMessages] does for MESSAGES: the server overwrites each
// verdict's bytes on disk before removing it, so a replay of VERDICTS into
// the warehouse cannot bring back verdicts about an erased data subject.
// Sequences already gone are skipped. Only retention calls it.
func (b *Bus) EraseVerdicts(ctx context.Context, seqs []uint64) error {
	st, err := b.js.Stream(ctx, StreamVerdicts)
	if err != nil {
		return fmt.Errorf("erase verdicts: %w", err)
	}
	for _, seq := range seqs {
		if err := st.SecureDeleteMsg(ctx, seq); err != nil {
			if errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) && !b.exists(ctx, st, seq) {
				continue
			}
			return fmt.Errorf("erase verdict seq %d: %w", seq, err)
		}
	}
	return nil
}
