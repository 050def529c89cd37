package bus_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/bus/bustest"
)

// TestPartitionPinnedToOneReplica runs two "replicas" (separate connections)
// pulling the same partition consumer: only one of them may receive the
// partition's messages, or a conversation could be evaluated out of order.
func TestPartitionPinnedToOneReplica(t *testing.T) {
	s := bustest.New(t)
	ctx := context.Background()
	b, err := bus.Open(ctx, s.Conn, bus.Config{Partitions: 1})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	for i := range n {
		m := &vigil.Message{ID: fmt.Sprintf("m%d", i), Tenant: "t", ConversationID: "c", Text: "x",
			SentAt: time.Unix(int64(i), 0)}
		if _, err := b.PublishMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu  sync.Mutex
		got = map[int]int{}
		wg  sync.WaitGroup
	)
	for r := range 2 {
		nc, err := nats.Connect(s.Server.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		rb, err := bus.Open(ctx, nc, bus.Config{Partitions: 1})
		if err != nil {
			t.Fatal(err)
		}
		cons, err := rb.MessageConsumer(ctx, "pin", 0)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				batch, err := cons.Fetch(7, jetstream.FetchMaxWait(100*time.Millisecond),
					jetstream.FetchPriorityGroup(bus.PartitionPriorityGroup))
				if err != nil {
					continue
				}
				for m := range batch.Messages() {
					_ = m.Ack()
					mu.Lock()
					got[r]++
					mu.Unlock()
				}
				mu.Lock()
				done := got[0]+got[1] == n
				mu.Unlock()
				if done {
					return
				}
			}
		}()
	}
	wg.Wait()
	if got[0]+got[1] != n {
		t.Fatalf("received %d messages, want %d", got[0]+got[1], n)
	}
	if got[0] != 0 && got[1] != 0 {
		t.Errorf("both replicas received messages of one partition (%d and %d): ordering per conversation is lost", got[0], got[1])
	}
}
