package bus_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/bus/bustest"
)

// TestAppendContext covers both ways appends are stored (one atomic batch,
// or pipelined publishes when atomic batches are off): revisions come back
// in order, the history reads back oldest first, and a stale revision is
// ErrContextBatchRefused.
func TestAppendContext(t *testing.T) {
	for _, noAtomic := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoAtomicBatches=%v", noAtomic), func(t *testing.T) {
			ctx := testCtx(t)
			b := bustest.New(t).Bus(t, bus.Config{NoAtomicBatches: noAtomic, MinAtomicBatch: 2})
			keys := []string{"win.a", "win.b", "win.c"}
			revs := make([]uint64, len(keys))
			for round := range 3 {
				appends := make([]bus.ContextAppend, len(keys))
				for i, k := range keys {
					appends[i] = bus.ContextAppend{Key: k, Value: fmt.Appendf(nil, "%s-%d", k, round), Revision: revs[i]}
				}
				got, err := b.AppendContext(ctx, appends)
				if err != nil {
					t.Fatalf("round %d: %v", round, err)
				}
				for i := range got {
					if got[i] <= revs[i] || (i > 0 && got[i] <= got[i-1]) {
						t.Fatalf("round %d: revisions %v after %v", round, got, revs)
					}
				}
				revs = got
			}
			entries, latest, err := b.ContextEntries(ctx, "win.b")
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 3 || latest != revs[1] || entries[2].Revision != latest {
				t.Fatalf("history of win.b: %d entries, latest %d; want 3 ending at %d", len(entries), latest, revs[1])
			}
			for i, e := range entries {
				if want := fmt.Sprintf("win.b-%d", i); string(e.Value) != want {
					t.Errorf("entry %d = %q, want %q", i, e.Value, want)
				}
			}
			// A stale revision for one key refuses the append.
			stale := []bus.ContextAppend{
				{Key: "win.a", Value: []byte("x"), Revision: revs[0]},
				{Key: "win.b", Value: []byte("x"), Revision: revs[1] - 1},
			}
			if _, err := b.AppendContext(ctx, stale); !errors.Is(err, bus.ErrContextBatchRefused) {
				t.Fatalf("stale append = %v, want ErrContextBatchRefused", err)
			}
			if entries, _, err := b.ContextEntries(ctx, "win.never"); err != nil || len(entries) != 0 {
				t.Fatalf("unwritten key = %d entries, %v; want none", len(entries), err)
			}
			dup := []bus.ContextAppend{{Key: "win.d", Value: []byte("1")}, {Key: "win.d", Value: []byte("2")}}
			if _, err := b.AppendContext(ctx, dup); !errors.Is(err, bus.ErrContextBatchRefused) {
				t.Fatalf("duplicate key = %v, want ErrContextBatchRefused", err)
			}
		})
	}
}
