package evaluator

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/bus/bustest"
)

// TestApplyWindowsKeepsRevisionsUnderPayloadLimit: 80 messages of 16 KiB
// of one conversation would make one revision past NATS's 1 MiB payload
// limit, which the server refuses; the batch path applies the prefix that
// fits and leaves the rest to the per-message path.
func TestApplyWindowsKeepsRevisionsUnderPayloadLimit(t *testing.T) {
	b := bustest.New(t).Bus(t, bus.Config{Memory: true})
	w, err := NewWindow(b, DefaultWindowMessages, time.Hour, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := &Evaluator{window: w, m: NewMetrics(nil)}
	big := strings.Repeat("quarterly rebalance ", 16<<10/20)
	at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
	var items []*batchItem
	for i := range 80 {
		items = append(items, &batchItem{seq: uint64(i + 1), m: vigil.Message{
			ID: fmt.Sprintf("m%d", i), Tenant: "acme", ConversationID: "big",
			Sender: vigil.Participant{ID: "u1"}, Text: big, SentAt: at.Add(time.Duration(i) * time.Second),
		}})
	}
	ctx := context.Background()
	n := e.applyWindows(ctx, slog.New(slog.DiscardHandler), items)
	if n == 0 || n >= len(items) {
		t.Fatalf("applied %d of %d, want a prefix that fits one revision", n, len(items))
	}
	revs, _, err := b.ContextEntries(ctx, WindowKey("acme", "big"))
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 1 || len(revs[0].Value) > MaxWindowBytes+MaxWindowBytes/4 {
		t.Fatalf("%d revisions, first %d bytes; want one of about MaxWindowBytes", len(revs), len(revs[0].Value))
	}
	for _, it := range items[:n] {
		if it.seq > 1 && len(it.prev) == 0 {
			t.Fatalf("message at seq %d has no context", it.seq)
		}
	}
}
