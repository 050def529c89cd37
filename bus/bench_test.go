package bus_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/bus/bustest"
)

// BenchmarkPublishMessages measures bus.PublishMessages (batches of 1000
// ~300-byte messages) with atomic batches and per-message async publishes,
// on one node with fsync per write (SyncAlways, Vigil's default) or on an
// interval, and on a 3-node cluster with R3 streams (SyncAlways, which
// nats-server relaxes to sync-on-flush because the Raft log is synced).
func BenchmarkPublishMessages(b *testing.B) {
	setups := []struct {
		name     string
		replicas int
		conn     func(b *testing.B) *nats.Conn
	}{
		{"r1-sync-always", 1, func(b *testing.B) *nats.Conn { return bustest.NewWith(b, bustest.Options{SyncAlways: true}).Conn }},
		{"r1-sync-interval", 1, func(b *testing.B) *nats.Conn { return bustest.NewWith(b, bustest.Options{}).Conn }},
		{"r3-sync-always", 3, func(b *testing.B) *nats.Conn {
			return bustest.NewClusterWith(b, 3, bustest.Options{SyncAlways: true}).Conn
		}},
	}
	text := strings.Repeat("let us review the quarterly allocation before the call ", 6)[:300]
	for _, s := range setups {
		for _, atomic := range []bool{true, false} {
			mode := "atomic"
			if !atomic {
				mode = "per-message"
			}
			b.Run(s.name+"/"+mode, func(b *testing.B) {
				nc := s.conn(b)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				bb, err := bus.Open(ctx, nc, bus.Config{Replicas: s.replicas, NoAtomicBatches: !atomic, PublishTimeout: 30 * time.Second})
				if err != nil {
					b.Fatal(err)
				}
				now := time.Now().UTC()
				seq := 0
				b.ResetTimer()
				start := time.Now()
				for range b.N {
					ms := make([]*vigil.Message, 1000)
					for i := range ms {
						seq++
						ms[i] = &vigil.Message{ID: "m" + strconv.Itoa(seq), Tenant: "acme", ConversationID: "c" + strconv.Itoa(seq%100),
							Sender: vigil.Participant{ID: "u"}, Text: text, SentAt: now, ReceivedAt: now}
					}
					if _, err := bb.PublishMessages(context.Background(), ms); err != nil {
						b.Fatal(fmt.Errorf("batch: %w", err))
					}
				}
				b.ReportMetric(float64(b.N*1000)/time.Since(start).Seconds(), "msgs/s")
			})
		}
	}
}
