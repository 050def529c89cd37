package evaluator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
)

const (
	// maxLaneBatch bounds the messages a lane evaluates together.
	maxLaneBatch = 256
	// initialBackoff and maxBackoff pace the per-message path's retries in
	// place.
	initialBackoff = 50 * time.Millisecond
	maxBackoff     = 5 * time.Second
)

// batchItem is one message of a lane batch.
type batchItem struct {
	msg  jetstream.Msg
	m    vigil.Message
	seq  uint64
	prev []vigil.Message
	out  outcome
}

// runLane evaluates the messages of its conversations in arrival order.
// What has queued up on the lane is evaluated as one batch ([evaluateBatch]):
// one context revision per conversation, one batch per output stream, then
// the acks. A message the batch
// path cannot finish, and everything after it, goes through the
// per-message path ([Evaluator.handleOne]) in order.
func (e *Evaluator) runLane(log *slog.Logger, ch <-chan jetstream.Msg) {
	batch := make([]jetstream.Msg, 0, maxLaneBatch)
	for msg := range ch {
		batch = append(batch[:0], msg)
	more:
		for len(batch) < maxLaneBatch {
			select {
			case next, ok := <-ch:
				if !ok {
					break more
				}
				batch = append(batch, next)
			default:
				break more
			}
		}
		rest := batch
		if len(batch) > 1 && e.ctx.Err() == nil {
			rest = e.evaluateBatch(log, batch)
		}
		for _, msg := range rest {
			e.handleOne(log, msg)
		}
	}
}

// handleOne evaluates one message. A message that can be neither evaluated
// nor dead-lettered (the bus is unavailable) is retried in place, keeping
// its place in the conversation, with InProgress so JetStream does not
// redeliver it meanwhile.
func (e *Evaluator) handleOne(log *slog.Logger, msg jetstream.Msg) {
	backoff := initialBackoff
	for {
		if e.ctx.Err() != nil {
			_ = msg.Nak()
			return
		}
		err := e.handle(msg)
		if err == nil {
			return
		}
		if e.ctx.Err() == nil {
			log.Error("message evaluation failed, retrying in place", logKeyErr, err)
		}
		_ = msg.InProgress()
		if !e.sleep(backoff) {
			_ = msg.Nak()
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// evaluateBatch evaluates msgs (one lane's, in order) together and returns
// the messages it left for the per-message path: from the first message
// that is not a plain first delivery of a valid message, or from the first
// failure, to the end. Whatever the batch path stored before giving up is
// idempotent (window entries by sequence, records by id), so the
// per-message path redoing it changes nothing.
func (e *Evaluator) evaluateBatch(log *slog.Logger, msgs []jetstream.Msg) []jetstream.Msg {
	ctx, cancel := context.WithTimeout(e.ctx, e.o.msgTimeout)
	defer cancel()
	start := e.o.now()
	items := make([]*batchItem, 0, len(msgs))
	for _, msg := range msgs {
		md, err := msg.Metadata()
		if err != nil || md.NumDelivered > 1 {
			break // redeliveries take the per-message path, with its attempt count
		}
		it := &batchItem{msg: msg, seq: md.Sequence.Stream}
		if err := json.Unmarshal(msg.Data(), &it.m); err != nil || validateIDs(&it.m) != nil {
			break // the per-message path dead-letters it
		}
		items = append(items, it)
	}
	n := e.applyWindows(ctx, log, items)
	set := e.rules.Current()
	for i, it := range items[:n] {
		mctx, mcancel := context.WithTimeout(e.ctx, e.o.msgTimeout)
		out, err := e.tier1(mctx, set, &it.m, it.seq, it.prev)
		mcancel()
		if err != nil {
			n = i // the per-message path retries and dead-letters it
			break
		}
		it.out = out
	}
	if n == 0 {
		return msgs
	}
	done := items[:n]
	if err := e.publishBatch(ctx, done, start); err != nil {
		if e.ctx.Err() == nil {
			log.Warn("batch publish failed, evaluating message by message", logKeyErr, err)
		}
		return msgs
	}
	e.m.BatchSize.Observe(float64(n))
	for i, it := range done {
		if it.out.tier2() {
			job := &tier2Job{msg: it.msg, m: &it.m, seq: it.seq, prev: it.prev, cands: it.out.cands,
				version: set.Version(), ev: it.out.ev, start: start}
			if err := e.queueTier2(job); err != nil {
				return msgs[i:]
			}
			continue
		}
		// A plain ack, as in finish; a lost ack only redelivers the message.
		if err := it.msg.Ack(); err != nil {
			log.Warn("ack failed; the message will be redelivered", logKeySeq, it.seq, logKeyErr, err)
			continue
		}
		e.m.EvalDuration.Observe(it.out.ev.DurationSeconds)
	}
	return msgs[n:]
}

// applyWindows applies items to their windows, one revision per
// conversation holding that conversation's messages of the batch, all of
// them with one commit, and returns how many items (from the start) were
// applied: a prefix that keeps every revision within MaxWindowBytes, or
// none. Each applied item has its context in prev.
func (e *Evaluator) applyWindows(ctx context.Context, log *slog.Logger, items []*batchItem) int {
	groups := make(map[string][]*batchItem)
	sizes := make(map[string]int)
	var order []string
	for i, it := range items {
		key := WindowKey(it.m.Tenant, it.m.ConversationID)
		// A revision stays well under NATS's payload limit: the messages
		// that would make it larger wait for the per-message path.
		size := entrySize(WindowEntry{Message: it.m})
		if sizes[key] > 0 && sizes[key]+size > MaxWindowBytes {
			items = items[:i]
			break
		}
		sizes[key] += size
		if _, ok := groups[key]; !ok {
			order = append(order, key)
		}
		groups[key] = append(groups[key], it)
	}
	ps := make([]*pendingAppend, 0, len(order))
	for _, key := range order {
		g := groups[key]
		ms := make([]*vigil.Message, len(g))
		seqs := make([]uint64, len(g))
		for i, it := range g {
			ms[i], seqs[i] = &it.m, it.seq
		}
		prevs, p, err := e.window.prepare(ctx, ms, seqs, false)
		if err != nil {
			log.Warn("context window read failed, evaluating message by message", logKeyErr, err)
			return 0
		}
		for i, it := range g {
			it.prev = prevs[i]
		}
		if p != nil {
			ps = append(ps, p)
		}
	}
	if err := e.window.commit(ctx, ps); err != nil {
		if !errors.Is(err, bus.ErrContextBatchRefused) {
			log.Warn("context window batch failed, evaluating message by message", logKeyErr, err)
		} else {
			e.m.WindowCASRetries.Inc()
		}
		return 0
	}
	return len(items)
}

// publishBatch stores the verdicts and actions of items, one atomic batch
// per stream, concurrently, and then their evaluation records. Evaluations
// of items with tier-2 work are left to the tier-2 worker.
func (e *Evaluator) publishBatch(ctx context.Context, items []*batchItem, start time.Time) error {
	now := e.o.now()
	var vs, acts []*vigil.Verdict
	var owner []*vigil.Message
	var evs []*vigil.Evaluation
	for _, it := range items {
		for _, v := range it.out.vs {
			vs = append(vs, v)
			owner = append(owner, &it.m)
			if hasAction(v) {
				acts = append(acts, v)
			}
		}
		if !it.out.tier2() {
			it.out.ev.EvaluatedAt = now.UTC()
			it.out.ev.DurationSeconds = now.Sub(start).Seconds()
			evs = append(evs, it.out.ev)
		}
	}
	var (
		wg               sync.WaitGroup
		vacks            []bus.Ack
		verr, aerr, eerr error
	)
	if len(vs) > 0 {
		wg.Go(func() { vacks, verr = e.b.PublishVerdicts(ctx, vs) })
	}
	if len(acts) > 0 {
		wg.Go(func() { _, aerr = e.b.PublishActions(ctx, acts) })
	}
	wg.Wait()
	// Evaluation records are the commit markers: stored only after the
	// verdicts and actions they count (see publishAll).
	if verr == nil && aerr == nil && len(evs) > 0 {
		_, eerr = e.b.PublishEvaluations(ctx, evs)
	}
	if err := errors.Join(stage(ReasonPublish, verr), stage(ReasonPublish, aerr), stage(ReasonPublish, eerr)); err != nil {
		return fmt.Errorf("publish batch of %d messages: %w", len(items), err)
	}
	for i, v := range vs {
		e.stored(owner[i], v, vacks[i])
	}
	return nil
}

// validateIDs returns the error of the first of m's record ids (message,
// tenant, conversation) that is not valid.
func validateIDs(m *vigil.Message) error {
	for _, id := range []string{m.ID, m.Tenant, m.ConversationID} {
		if err := vigil.ValidateID(id); err != nil {
			return err
		}
	}
	return nil
}
