package bus_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/bus/bustest"
)

func TestEraseVerdictsLeavesNoBytes(t *testing.T) {
	s := bustest.New(t)
	b := s.Bus(t, bus.Config{})
	ctx := testCtx(t)
	reasons := make([][]byte, 3)
	for i := range reasons {
		reasons[i] = marker(t, fmt.Sprintf("verdict-reason-%d-", i))
		v := &vigil.Verdict{ID: fmt.Sprintf("v-%d", i), MessageID: "m", Tenant: "acme", ConversationID: "c1", RuleID: "r",
			RulesetVersion: "1", Severity: vigil.SeverityLow, Action: vigil.ActionFlag, Reason: string(reasons[i]),
			MessageSentAt: time.Now(), EvaluatedAt: time.Now()}
		if _, err := b.PublishVerdict(ctx, v); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range reasons {
		waitOnDisk(t, s, r)
	}
	// Sequence 99 does not exist: skipped, as is erasing twice.
	for range 2 {
		if err := b.EraseVerdicts(ctx, []uint64{1, 2, 99}); err != nil {
			t.Fatalf("EraseVerdicts: %v", err)
		}
	}
	st, err := s.JS.Stream(ctx, bus.StreamVerdicts)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range reasons {
		_, err := st.GetMsg(ctx, uint64(i+1))
		gone := errors.Is(err, jetstream.ErrMsgNotFound)
		if want := i < 2; gone != want {
			t.Errorf("verdict seq %d gone = %v (%v), want %v", i+1, gone, err, want)
		}
		if hits := s.Contains(t, r); (len(hits) == 0) != (i < 2) {
			t.Errorf("verdict seq %d on disk in %v, want erased %v", i+1, hits, i < 2)
		}
	}
}
