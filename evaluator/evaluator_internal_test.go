package evaluator

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/vigilhq/vigil/bus"
)

func TestTransientAndReason(t *testing.T) {
	tests := []struct {
		name          string
		err           error
		wantTransient bool
		wantReason    string
	}{
		{"bus unavailable while publishing", stage(ReasonPublish, fmt.Errorf("publish verdict v: %w", bus.ErrUnavailable)), true, ReasonPublish},
		{"stream full", stage(ReasonPublish, fmt.Errorf("x: %w", bus.ErrStreamFull)), true, ReasonPublish},
		{"window conflict", stage(ReasonWindow, fmt.Errorf("x: %w", ErrWindowConflict)), true, ReasonWindow},
		{"kv timeout", stage(ReasonWindow, fmt.Errorf("x: %w", nats.ErrTimeout)), true, ReasonWindow},
		{"deadline while publishing", stage(ReasonPublish, fmt.Errorf("x: %w", context.DeadlineExceeded)), true, ReasonPublish},
		{"deadline in the rules", stage(ReasonTimeout, fmt.Errorf("x: %w", context.DeadlineExceeded)), false, ReasonTimeout},
		{"rule panic", stage(ReasonPanic, errors.New("panic: boom")), false, ReasonPanic},
		{"invalid record", stage(ReasonPublish, fmt.Errorf("x: %w", bus.ErrInvalidRecord)), false, ReasonPublish},
		{"joined publish errors", errors.Join(nil, stage(ReasonPublish, fmt.Errorf("x: %w", bus.ErrPublishTimeout))), true, ReasonPublish},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := transient(tc.err); got != tc.wantTransient {
				t.Errorf("transient(%v) = %v, want %v", tc.err, got, tc.wantTransient)
			}
			if got := reasonOf(tc.err); got != tc.wantReason {
				t.Errorf("reasonOf(%v) = %q, want %q", tc.err, got, tc.wantReason)
			}
		})
	}
}

func TestLaneOfIsFNV1a(t *testing.T) {
	for _, subject := range []string{"", "msg.0.acme.c1", "msg.3.YWNtZQ.Y29udg"} {
		for _, n := range []int{1, 7, 16} {
			h := fnv.New32a()
			h.Write([]byte(subject))
			if got, want := laneOf(subject, n), int(h.Sum32()%uint32(n)); got != want {
				t.Errorf("laneOf(%q, %d) = %d, want %d", subject, n, got, want)
			}
		}
	}
}
