package ingest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/bus/bustest"
)

// gatedPublisher is the real bus with a gate in front of it: publishes
// wait until the test opens it, so requests queue up behind the first ones
// and the committer's grouping is deterministic. It counts calls.
type gatedPublisher struct {
	*bus.Bus
	gate chan struct{}

	mu            sync.Mutex
	arrived       int // messages handed to the publisher, gate or not
	singles, sets int
	groupSizes    []int
}

func (g *gatedPublisher) arrive(n int) {
	g.mu.Lock()
	g.arrived += n
	g.mu.Unlock()
}

func (g *gatedPublisher) PublishMessage(ctx context.Context, m *vigil.Message) (bus.Ack, error) {
	g.arrive(1)
	<-g.gate
	g.mu.Lock()
	g.singles++
	g.mu.Unlock()
	return g.Bus.PublishMessage(ctx, m)
}

func (g *gatedPublisher) PublishMessages(ctx context.Context, ms []*vigil.Message) ([]bus.Ack, error) {
	g.arrive(len(ms))
	<-g.gate
	g.mu.Lock()
	g.sets++
	g.groupSizes = append(g.groupSizes, len(ms))
	g.mu.Unlock()
	return g.Bus.PublishMessages(ctx, ms)
}

// TestCommitterGroupsConcurrentRequests: single-message requests that queue
// up while publishes are in flight go out as groups, each request gets its
// own ack (a repeated id inside a group is a duplicate of the first), and
// nothing is lost or stored twice.
func TestCommitterGroupsConcurrentRequests(t *testing.T) {
	for _, syncAlways := range []bool{false, true} {
		t.Run(fmt.Sprintf("SyncAlways=%v", syncAlways), func(t *testing.T) {
			ns := bustest.NewWith(t, bustest.Options{SyncAlways: syncAlways})
			b := ns.Bus(t, bus.Config{})
			g := &gatedPublisher{Bus: b, gate: make(chan struct{})}
			var wg sync.WaitGroup
			c := &committer{pub: g, max: DefaultCommitters, wg: &wg}
			const n = 200
			acks := make([]bus.Ack, n+1)
			errs := make([]error, n+1)
			var reqs sync.WaitGroup
			at := time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)
			for i := range n + 1 {
				id := fmt.Sprintf("m%03d", min(i, n-1)) // the last one repeats m199
				m := &vigil.Message{ID: id, Tenant: "acme", ConversationID: fmt.Sprintf("c%d", i%7),
					Sender: vigil.Participant{ID: "u1"}, Text: "hello", SentAt: at}
				reqs.Go(func() { acks[i], errs[i] = c.publish(context.Background(), m) })
			}
			// Wait until every request is either queued or held at the gate.
			deadline := time.Now().Add(10 * time.Second)
			for {
				c.mu.Lock()
				queued := len(c.queue)
				c.mu.Unlock()
				g.mu.Lock()
				queued += g.arrived
				g.mu.Unlock()
				if queued == n+1 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("only %d requests queued", queued)
				}
				time.Sleep(time.Millisecond)
			}
			close(g.gate)
			reqs.Wait()
			wg.Wait()
			seqs := map[uint64]string{}
			dups := 0
			for i := range n + 1 {
				if errs[i] != nil {
					t.Fatalf("request %d: %v", i, errs[i])
				}
				if acks[i].Duplicate {
					dups++
					continue
				}
				if prev, ok := seqs[acks[i].Sequence]; ok || acks[i].Sequence == 0 {
					t.Fatalf("request %d acked at seq %d, already %s's", i, acks[i].Sequence, prev)
				}
				seqs[acks[i].Sequence] = fmt.Sprint(i)
			}
			if dups != 1 || len(seqs) != n {
				t.Fatalf("%d new acks and %d duplicates, want %d and 1", len(seqs), dups, n)
			}
			if acks[n].Sequence != acks[n-1].Sequence {
				t.Errorf("repeated id acked at seq %d, first copy at %d", acks[n].Sequence, acks[n-1].Sequence)
			}
			st, err := b.JetStream().Stream(context.Background(), bus.StreamMessages)
			if err != nil {
				t.Fatal(err)
			}
			info, err := st.Info(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if info.State.Msgs != n {
				t.Fatalf("MESSAGES holds %d, want %d", info.State.Msgs, n)
			}
			g.mu.Lock()
			defer g.mu.Unlock()
			if calls := g.singles + g.sets; calls > 2*DefaultCommitters+1 {
				t.Errorf("%d publish calls (%d single, groups %v) for %d queued requests: not grouped", calls, g.singles, g.groupSizes, n+1)
			}
		})
	}
}
