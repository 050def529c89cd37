package bus_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/bus/bustest"
)

// TestReplicatedBus runs the production shape: every stream and bucket R3
// on a 3-node cluster, atomic batches committed through Raft, and a node
// failure that the bus survives.
func TestReplicatedBus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node cluster")
	}
	c := bustest.NewCluster(t, 3)
	ctx := testCtx(t)
	m := bus.NewMetrics(nil)
	b, err := bus.Open(ctx, c.Conn, bus.Config{Replicas: 3}, bus.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	st, err := c.JS.Stream(ctx, bus.StreamMessages)
	if err != nil {
		t.Fatal(err)
	}
	if r := st.CachedInfo().Config.Replicas; r != 3 {
		t.Fatalf("MESSAGES replicas = %d, want 3", r)
	}
	batch := func(prefix string, n int) []*vigil.Message {
		var ms []*vigil.Message
		for i := range n {
			ms = append(ms, msg(fmt.Sprintf("%s%d", prefix, i), "t", fmt.Sprintf("c%d", i%5), "x"))
		}
		return ms
	}
	acks, err := b.PublishMessages(ctx, batch("a", 500))
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range acks {
		if got, err := b.GetMessage(ctx, a.Sequence); err != nil || got.ID != fmt.Sprintf("a%d", i) {
			t.Fatalf("seq %d holds %v (%v), want a%d", a.Sequence, got, err, i)
		}
	}
	if n := testutil.ToFloat64(m.AtomicFallbacks); n != 0 {
		t.Fatalf("%v atomic fallbacks on a fresh batch in a cluster", n)
	}
	// A retried batch in a cluster still acks stored ids as duplicates.
	again, err := b.PublishMessages(ctx, batch("a", 500))
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		if !again[i].Duplicate || again[i].Sequence != acks[i].Sequence {
			t.Fatalf("retry ack %d = %+v, want duplicate of %d", i, again[i], acks[i].Sequence)
		}
	}
	// Lose the MESSAGES leader: the bus keeps publishing after re-election.
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, srv := range c.Servers {
		if srv.Name() == info.Cluster.Leader {
			srv.Shutdown()
		}
	}
	// Re-election takes a moment; "no responders" comes back at once
	// meanwhile, so pace the retries (up to 10 s).
	var last error
	for range 100 {
		if _, last = b.PublishMessages(ctx, batch("b", 10)); last == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if last != nil {
		t.Fatalf("publish after leader loss: %v", last)
	}
}
