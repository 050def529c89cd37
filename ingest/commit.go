package ingest

import (
	"context"
	"sync"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
)

// DefaultCommitters bounds the group-commit batches in flight at once.
const DefaultCommitters = 4

// committer groups single-message requests that arrive together (many
// WebSocket sessions and HTTP clients, one message each) into one
// PublishMessages call: one atomic batch under sync_interval always, so one
// fsync for the group instead of one per message (group commit). A request
// arriving while fewer than max batches are in flight starts a drainer
// goroutine; drainers take everything queued, publish it, and exit when the
// queue is empty. With no concurrency a batch is one message, published as
// before. Each request still gets its own ack or error.
type committer struct {
	pub Publisher
	max int
	wg  *sync.WaitGroup // the server's: Close waits for drainers

	mu    sync.Mutex
	queue []*pendingPublish
	busy  int
}

type pendingPublish struct {
	m    *vigil.Message
	ack  bus.Ack
	err  error
	done chan struct{}
}

// publish stores m with the next group and returns its ack. When ctx ends
// first it returns ctx's error; the message may still be stored then (as
// with any publish that timed out), and a retry with the same id is acked
// as a duplicate.
func (c *committer) publish(ctx context.Context, m *vigil.Message) (bus.Ack, error) {
	p := &pendingPublish{m: m, done: make(chan struct{})}
	c.mu.Lock()
	c.queue = append(c.queue, p)
	if c.busy < c.max {
		c.busy++
		c.wg.Add(1)
		go func() { // ends when the queue is empty
			defer c.wg.Done()
			c.drain()
		}()
	}
	c.mu.Unlock()
	select {
	case <-p.done:
		return p.ack, p.err
	case <-ctx.Done():
		return bus.Ack{}, ctx.Err()
	}
}

// drain publishes queued groups until the queue is empty.
func (c *committer) drain() {
	for {
		c.mu.Lock()
		group := c.queue
		if len(group) > bus.MaxAtomicBatch {
			group = group[:bus.MaxAtomicBatch]
		}
		c.queue = c.queue[len(group):]
		if len(group) == 0 {
			c.queue = nil
			c.busy--
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		c.flush(group)
	}
}

// flush publishes group and answers each request. The bus bounds the
// publish with its own timeout; a message of a failed group is retried on
// its own so that it gets its own error (stream full, invalid…) and the
// others of the group their acks.
func (c *committer) flush(group []*pendingPublish) {
	ctx := context.Background()
	if len(group) == 1 {
		p := group[0]
		p.ack, p.err = c.pub.PublishMessage(ctx, p.m)
		close(p.done)
		return
	}
	ms := make([]*vigil.Message, len(group))
	for i, p := range group {
		ms[i] = p.m
	}
	acks, err := c.pub.PublishMessages(ctx, ms)
	for i, p := range group {
		if err == nil || (i < len(acks) && acks[i].Sequence != 0) {
			p.ack = acks[i]
		} else {
			p.ack, p.err = c.pub.PublishMessage(ctx, p.m)
		}
		close(p.done)
	}
}
