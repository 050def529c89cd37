package bus_test

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
)

// Start the embedded server (fsync before every PubAck), open the bus and
// publish a tokenized message; publishing it again is a duplicate.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "vigil-example")
	defer os.RemoveAll(dir)

	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedConfig{DataDir: dir, Port: -1})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Shutdown(ctx)
	nc, err := bus.Connect(ctx, srv.ClientURL(), bus.ConnectOptions{Name: "example"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()
	b, err := bus.Open(ctx, nc, bus.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	m := &vigil.Message{ID: "m-1", Tenant: "acme", ConversationID: "deal.room",
		Sender: vigil.Participant{ID: "u-1"}, Text: "hello", SentAt: time.Now()}
	for range 2 {
		ack, err := b.PublishMessage(ctx, m)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println(ack.Stream, ack.Sequence, ack.Duplicate)
	}
	fmt.Println(bus.StoredMessageSubject("acme", "deal.room", b.Partitions()))
	// Output:
	// MESSAGES 1 false
	// MESSAGES 1 true
	// msg.7.YWNtZQ.ZGVhbC5yb29t
}
