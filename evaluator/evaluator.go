package evaluator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/rules"
)

// Bus is what the evaluator uses of [bus.Bus].
type Bus interface {
	// Partitions is the number of MESSAGES partitions.
	Partitions() int
	// MessageConsumer returns the durable pull consumer of one partition.
	MessageConsumer(ctx context.Context, durable string, partition int) (jetstream.Consumer, error)
	// ContextStore holds the context windows.
	ContextStore
	PublishVerdict(ctx context.Context, v *vigil.Verdict) (bus.Ack, error)
	PublishAction(ctx context.Context, v *vigil.Verdict) (bus.Ack, error)
	PublishEvaluation(ctx context.Context, e *vigil.Evaluation) (bus.Ack, error)
	// The batch path stores a lane batch's records with one publish per
	// stream: under SyncAlways one fsync per batch instead of one per record.
	PublishVerdicts(ctx context.Context, vs []*vigil.Verdict) ([]bus.Ack, error)
	PublishActions(ctx context.Context, vs []*vigil.Verdict) ([]bus.Ack, error)
	PublishEvaluations(ctx context.Context, es []*vigil.Evaluation) ([]bus.Ack, error)
	PublishDeadLetter(ctx context.Context, stream string, seq uint64, reason string) (bus.Ack, error)
}

var _ Bus = (*bus.Bus)(nil)

// jetStreamer is implemented by *bus.Bus: the evaluator uses the handle
// only to release its pinned partitions on Drain and Close.
type jetStreamer interface {
	JetStream() jetstream.JetStream
}

// Dead-letter reasons (the reason label of vigil_evaluator_dead_letters_total
// and the reason of the dead-letter record).
const (
	ReasonDecode  = "decode"
	ReasonInvalid = "invalid"
	ReasonWindow  = "window"
	ReasonTimeout = "timeout"
	ReasonPublish = "publish"
	ReasonPanic   = "panic"
	ReasonTier2   = "tier2"
	ReasonOther   = "error"
)

// Evaluator consumes MESSAGES and publishes verdicts, actions and
// evaluations. Build it with [New], run it with [Evaluator.Start], stop it
// with [Evaluator.Drain] (finish in-flight work) or [Evaluator.Close]
// (abandon it; unacked messages are redelivered).
//
// Each owned partition has one goroutine that fetches batches
// (Fetch with a short max wait, never Consumer.Messages: see DESIGN.md) and
// evaluates them one after the other, so a conversation's messages — always
// in one partition — are evaluated in order. Tier-2 work runs on a bounded
// worker pool; a message with tier-2 work is acked when that work is done.
type Evaluator struct {
	b      Bus
	rules  *Rules
	o      options
	window *Window
	log    *slog.Logger
	m      *Metrics

	// maxDeliver is the consumers' MaxDeliver, read at Start.
	maxDeliver int

	mu      sync.Mutex
	started bool
	stopped bool
	stop    chan struct{} // closed by Drain: partitions finish their batch
	ctx     context.Context
	cancel  context.CancelFunc // hard stop
	parts   sync.WaitGroup
	jobs    chan *tier2Job
	workers sync.WaitGroup
	closed  chan struct{}
}

// New returns an evaluator reading from b with the rule sets of r; the
// caller opens and closes r (its watchers) itself. Options:
// [WithWindow], [WithWindowCacheSize], [WithDurable], [WithPartitions],
// [WithFetch], [WithLanes], [WithMessageTimeout], [WithMaxAttempts], [WithClassifier],
// [WithTier2], [WithWebhooks], [WithLogger], [WithMetrics]; [Config.Options]
// builds the serialisable ones from a [Config]. It returns
// ErrInvalidOption for a nil bus or rules, a bad option, or a partition
// the bus does not have.
func New(b Bus, r *Rules, opts ...Option) (*Evaluator, error) {
	if b == nil || r == nil {
		return nil, fmt.Errorf("%w: nil bus or rules", ErrInvalidOption)
	}
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.metrics == nil {
		o.metrics = NewMetrics(nil)
	}
	if o.partitions == nil {
		for p := range b.Partitions() {
			o.partitions = append(o.partitions, p)
		}
	}
	for _, p := range o.partitions {
		if p < 0 || p >= b.Partitions() {
			return nil, fmt.Errorf("%w: partition %d outside 0..%d", ErrInvalidOption, p, b.Partitions()-1)
		}
	}
	w, err := NewWindow(b, o.windowN, o.windowD, o.windowCache, o.metrics)
	if err != nil {
		return nil, err
	}
	return &Evaluator{
		b: b, rules: r, o: o, window: w, m: o.metrics,
		log:    o.log.With(logKeyComponent, "evaluator"),
		stop:   make(chan struct{}),
		closed: make(chan struct{}),
	}, nil
}

// Start creates the partition consumers and starts consuming. ctx bounds
// start-up only; the evaluator runs until Drain or Close. It returns
// ErrClosed after Drain or Close, and the bus error if a consumer cannot be
// created (nothing is left running then).
func (e *Evaluator) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.stopped {
		return ErrClosed
	}
	if e.started {
		return nil
	}
	cons := make([]jetstream.Consumer, len(e.o.partitions))
	for i, p := range e.o.partitions {
		c, err := e.b.MessageConsumer(ctx, e.o.durable, p)
		if err != nil {
			return fmt.Errorf("start evaluator: partition %d: %w", p, err)
		}
		cons[i] = c
	}
	e.maxDeliver = DefaultMaxDeliver
	if info := cons[0].CachedInfo(); info != nil && info.Config.MaxDeliver > 0 {
		e.maxDeliver = info.Config.MaxDeliver
	}
	if e.o.webhooks != nil {
		if err := e.o.webhooks.Open(); err != nil {
			return fmt.Errorf("start evaluator: %w", err)
		}
	}
	e.started = true
	e.ctx, e.cancel = context.WithCancel(context.WithoutCancel(ctx))
	e.jobs = make(chan *tier2Job, 4*e.o.tier2Workers)
	for range e.o.tier2Workers {
		e.workers.Go(e.runTier2)
	}
	for i, p := range e.o.partitions {
		e.parts.Go(func() { e.runPartition(p, cons[i]) })
	}
	e.log.Info("evaluator started", logKeyPartitions, len(e.o.partitions), logKeyDurable, e.o.durable,
		logKeyRuleset, e.rules.Current().Version())
	return nil
}

// Closed returns a channel closed once the evaluator has stopped and every
// goroutine it owns has exited.
func (e *Evaluator) Closed() <-chan struct{} { return e.closed }

// Drain stops fetching, finishes the messages already fetched and their
// tier-2 work (publishing and acking them), flushes queued webhooks and
// waits. If ctx ends first, the rest is abandoned as by Close (unacked
// messages are redelivered to the next owner) and ctx's error is returned.
func (e *Evaluator) Drain(ctx context.Context) error {
	return e.shutdown(ctx, false)
}

// Close stops at once: in-flight evaluations and tier-2 work are cancelled
// and their messages nak'd, so the next owner of the partitions gets them
// first and in order (what was already published is deduplicated by id).
// It waits for the goroutines to exit (at most about the fetch wait); ctx
// only bounds the webhook flush.
func (e *Evaluator) Close(ctx context.Context) error {
	return e.shutdown(ctx, true)
}

func (e *Evaluator) shutdown(ctx context.Context, hard bool) error {
	e.mu.Lock()
	if e.stopped {
		e.mu.Unlock()
		if hard && e.cancel != nil {
			e.cancel()
		}
		select {
		case <-e.closed:
			return nil
		case <-ctx.Done():
			return fmt.Errorf("close evaluator: %w", ctx.Err())
		}
	}
	e.stopped = true
	started := e.started
	e.mu.Unlock()
	close(e.stop)
	if !started {
		close(e.closed)
		return nil
	}
	e.log.Info("evaluator draining", logKeyHard, hard)
	if hard {
		e.cancel()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.parts.Wait()
		close(e.jobs) // no partition sends any more
		e.workers.Wait()
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("drain evaluator: %w", ctx.Err())
		e.cancel()
		<-done
	}
	e.cancel()
	e.unpin(ctx)
	if e.o.webhooks != nil {
		// Deliver what is queued within what is left of ctx; cleanup that
		// must run uses a context that cannot already be done.
		wctx := ctx
		if ctx.Err() != nil {
			var c context.CancelFunc
			wctx, c = context.WithTimeout(context.WithoutCancel(ctx), time.Second)
			defer c()
		}
		if werr := e.o.webhooks.Close(wctx); werr != nil && err == nil {
			err = werr
		}
	}
	close(e.closed)
	e.log.Info("evaluator stopped")
	return err
}

// unpin releases the partitions for the next owner: partition consumers
// are pinned to one client (bus.PartitionPriorityGroup), and without this a
// restarted or rebalanced evaluator would wait for the pin's TTL.
func (e *Evaluator) unpin(ctx context.Context) {
	j, ok := e.b.(jetStreamer)
	if !ok {
		return
	}
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	st, err := j.JetStream().Stream(uctx, bus.StreamMessages)
	if err != nil {
		e.log.Warn("unpin partitions failed; the next owner waits for the pin to expire", logKeyErr, err)
		return
	}
	for _, p := range e.o.partitions {
		name := bus.PartitionConsumerName(e.o.durable, p)
		if err := st.UnpinConsumer(uctx, name, bus.PartitionPriorityGroup); err != nil {
			e.log.Warn("unpin partition failed; the next owner waits for the pin to expire", logKeyPartition, p, logKeyErr, err)
		}
	}
}

// runPartition fetches one partition until Drain or Close and hands each
// message to one of the partition's lanes by its subject (one subject per
// conversation), so a conversation is evaluated in order on one lane while
// other conversations run on the others.
func (e *Evaluator) runPartition(p int, cons jetstream.Consumer) {
	log := e.log.With(logKeyPartition, p)
	lanes := make([]chan jetstream.Msg, e.o.lanes)
	var wg sync.WaitGroup
	for i := range lanes {
		lanes[i] = make(chan jetstream.Msg, e.o.fetchBatch)
		wg.Go(func() { e.runLane(log, lanes[i]) })
	}
	defer func() {
		for _, l := range lanes {
			close(l)
		}
		wg.Wait()
	}()
	backoff := 50 * time.Millisecond
	for {
		select {
		case <-e.stop:
			return
		default:
		}
		batch, err := cons.Fetch(e.o.fetchBatch, jetstream.FetchMaxWait(e.o.fetchWait),
			jetstream.FetchPriorityGroup(bus.PartitionPriorityGroup))
		if err != nil {
			if e.ctx.Err() != nil {
				return
			}
			log.Warn("fetch failed", logKeyErr, err)
			if !e.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		backoff = 50 * time.Millisecond
		for msg := range batch.Messages() {
			l := lanes[laneOf(msg.Subject(), len(lanes))]
			select {
			case l <- msg:
			case <-e.ctx.Done():
				// Hard stop: hand it back at once; JetStream redelivers
				// nak'd messages before new ones, so the next owner sees
				// the conversation in order. Only a crash leaves messages
				// to the AckWait; [Window.Append] covers that case.
				_ = msg.Nak()
			}
		}
		if err := batch.Error(); err != nil && !isQuietFetchEnd(err) && e.ctx.Err() == nil {
			log.Warn("fetch ended with error", logKeyErr, err)
		}
	}
}

// laneOf maps a message subject to a lane with FNV-1a.
func laneOf(subject string, n int) int {
	h := uint32(2166136261)
	for i := 0; i < len(subject); i++ {
		h ^= uint32(subject[i])
		h *= 16777619
	}
	return int(h % uint32(n))
}

// sleep waits d or until a hard stop; it reports whether to go on.
func (e *Evaluator) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-e.ctx.Done():
		return false
	}
}

// isQuietFetchEnd reports fetch outcomes that are routine: nothing to
// fetch, and a pin taken over by another replica (the client forgets its
// pin and the next fetch competes for the partition again).
func isQuietFetchEnd(err error) bool {
	return errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, jetstream.ErrNoHeartbeat) || errors.Is(err, jetstream.ErrPinIDMismatch)
}

// handle evaluates one message, retrying in place, and dead-letters it
// when it keeps failing for a reason of its own (undecodable, invalid ids,
// a rule panicking or running out of time). It returns an error when the
// failure is the bus's (see transient) or the dead letter itself failed:
// the lane then retries the message in place.
func (e *Evaluator) handle(msg jetstream.Msg) error {
	md, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("message metadata: %w", err)
	}
	seq := md.Sequence.Stream
	var m vigil.Message
	if err := json.Unmarshal(msg.Data(), &m); err != nil {
		return e.deadLetter(msg, seq, ReasonDecode, fmt.Errorf("decode message at seq %d: %w", seq, err))
	}
	if err := validateIDs(&m); err != nil {
		return e.deadLetter(msg, seq, ReasonInvalid, fmt.Errorf("message at seq %d: %w", seq, err))
	}
	attempts := e.o.maxAttempts
	if md.NumDelivered >= uint64(e.maxDeliver) {
		attempts = 1 // retried across deliveries already (crashes, timeouts)
	}
	var lastErr error
	for attempt := range attempts {
		if attempt > 0 && !e.sleep(time.Duration(10<<attempt)*time.Millisecond) {
			return e.ctx.Err()
		}
		lastErr = e.evaluate(msg, &m, seq)
		if lastErr == nil || e.ctx.Err() != nil {
			return lastErr
		}
	}
	if transient(lastErr) {
		// The bus, not the message, is the problem: keep the message's
		// place in its conversation and let the lane retry it.
		return lastErr
	}
	return e.deadLetter(msg, seq, reasonOf(lastErr), lastErr)
}

// transient reports whether err is a failure of the infrastructure (NATS
// unavailable, slow or full, a window CAS lost repeatedly) rather than of
// the message: such messages are retried in place, never dead-lettered.
func transient(err error) bool {
	switch {
	case errors.Is(err, bus.ErrUnavailable), errors.Is(err, bus.ErrPublishTimeout),
		errors.Is(err, bus.ErrStreamFull), errors.Is(err, bus.ErrBusy),
		errors.Is(err, ErrWindowConflict), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, nats.ErrNoResponders), errors.Is(err, nats.ErrConnectionClosed),
		errors.Is(err, nats.ErrDisconnected), errors.Is(err, jetstream.ErrNoStreamResponse):
		return true
	case errors.Is(err, context.DeadlineExceeded):
		// Out of time while talking to NATS is the bus; out of time in the
		// rules is the message.
		var se *stageError
		return errors.As(err, &se) && (se.reason == ReasonWindow || se.reason == ReasonPublish)
	}
	return false
}

// deadLetter records the message in the dead-letter stream and terminates
// its delivery, so its conversation goes on without it.
func (e *Evaluator) deadLetter(msg jetstream.Msg, seq uint64, reason string, cause error) error {
	ctx, cancel := context.WithTimeout(e.ctx, e.o.msgTimeout)
	defer cancel()
	if _, err := e.b.PublishDeadLetter(ctx, bus.StreamMessages, seq, reason); err != nil {
		return fmt.Errorf("dead-letter seq %d (%s): %w", seq, reason, err)
	}
	e.m.DeadLetters.WithLabelValues(reason).Inc()
	e.log.Warn("message dead-lettered", logKeySeq, seq, logKeyReason, reason, logKeyErr, cause)
	if err := msg.TermWithReason(reason); err != nil {
		return fmt.Errorf("terminate seq %d: %w", seq, err)
	}
	return nil
}

// stageError tags an evaluation error with its dead-letter reason.
type stageError struct {
	reason string
	err    error
}

func (s *stageError) Error() string { return s.err.Error() }
func (s *stageError) Unwrap() error { return s.err }

func stage(reason string, err error) error {
	if err == nil {
		return nil
	}
	return &stageError{reason: reason, err: err}
}

func reasonOf(err error) string {
	var se *stageError
	if errors.As(err, &se) {
		return se.reason
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return ReasonTimeout
	}
	return ReasonOther
}

// evaluate runs tier 1 on m and publishes its outcome; with tier-2
// candidates it queues the tier-2 work, which acks later, otherwise it acks.
func (e *Evaluator) evaluate(msg jetstream.Msg, m *vigil.Message, seq uint64) (err error) {
	ctx, cancel := context.WithTimeout(e.ctx, e.o.msgTimeout)
	defer cancel()
	start := e.o.now()
	set := e.rules.Current()
	prev, err := e.window.Append(ctx, m, seq)
	if err != nil {
		return stage(ReasonWindow, fmt.Errorf("evaluate message %s: %w", m.ID, err))
	}
	// The rules get a budget of their own: time a slow bus took from ctx
	// must not turn into a rule timeout, which dead-letters the message.
	rctx, rcancel := context.WithTimeout(e.ctx, e.o.msgTimeout)
	out, err := e.tier1(rctx, set, m, seq, prev)
	rcancel()
	if err != nil {
		return err
	}
	if out.tier2() {
		if err := e.publishAll(ctx, m, out.vs, nil); err != nil {
			return err
		}
		return e.queueTier2(&tier2Job{msg: msg, m: m, seq: seq, prev: prev, cands: out.cands, version: set.Version(), ev: out.ev, start: start})
	}
	return e.finish(ctx, msg, m, out.vs, out.ev, start)
}

// outcome is what tier 1 made of one message.
type outcome struct {
	ev *vigil.Evaluation
	vs []*vigil.Verdict
	// cands are the matches that ask the classifier; they are left for
	// tier 2 only when a classifier is configured.
	cands []rules.Match
}

// tier2 reports whether the message has tier-2 work.
func (o *outcome) tier2() bool { return len(o.cands) > 0 }

// tier1 evaluates set on m (at seq, with context prev) and builds its
// verdicts and evaluation record. A rule that fails is counted and logged
// and the others stand; a timeout or panic is returned for the caller's
// retry and dead-letter logic.
func (e *Evaluator) tier1(ctx context.Context, set *rules.Set, m *vigil.Message, seq uint64, prev []vigil.Message) (out outcome, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = stage(ReasonPanic, fmt.Errorf("evaluate seq %d: panic: %v", seq, r))
		}
	}()
	rc := &rules.Context{Messages: prev, Window: e.o.windowD, ParticipantCounts: participantCounts(prev)}
	matches, err := set.Eval(ctx, m, rc)
	e.m.RuleEvaluations.WithLabelValues("*", "1").Inc()
	if err != nil {
		if ctx.Err() != nil {
			return outcome{}, stage(ReasonTimeout, fmt.Errorf("evaluate message %s: %w", m.ID, ctx.Err()))
		}
		e.ruleErrors(m, err)
	}
	out.ev = &vigil.Evaluation{
		MessageID: m.ID, Tenant: m.Tenant, ConversationID: m.ConversationID,
		RulesetVersion: set.Version(), Tiers: []int{1}, RulesEvaluated: len(set.Rules()),
		StreamSequence: seq,
	}
	var cands []rules.Match
	for _, mt := range matches {
		if needsTier2(mt.Rule) {
			cands = append(cands, mt)
			continue
		}
		out.vs = append(out.vs, e.verdict(m, set.Version(), mt.Rule, mt.Spans, 1, mt.Rule.Action, ""))
	}
	out.ev.Verdicts = len(out.vs)
	if len(cands) > 0 {
		if e.o.classifier == nil {
			e.m.Tier2Calls.WithLabelValues("unconfigured").Add(float64(len(cands)))
		} else {
			out.cands = cands
		}
	}
	return out, nil
}

// queueTier2 hands job to the tier-2 workers, which publish its evaluation
// and ack it. A full queue holds the lane back (backpressure) rather than
// failing the message: only a hard stop gives up, and then the message is
// redelivered.
func (e *Evaluator) queueTier2(job *tier2Job) error {
	select {
	case e.jobs <- job:
		return nil
	case <-e.ctx.Done():
		return fmt.Errorf("queue tier-2 work for message %s: %w", job.m.ID, e.ctx.Err())
	}
}

// finish publishes the verdicts and then the evaluation record, and then
// acks the message: nothing is acked before all of it is stored.
func (e *Evaluator) finish(ctx context.Context, msg jetstream.Msg, m *vigil.Message, vs []*vigil.Verdict, ev *vigil.Evaluation, start time.Time) error {
	now := e.o.now()
	ev.EvaluatedAt = now.UTC()
	ev.DurationSeconds = now.Sub(start).Seconds()
	if err := e.publishAll(ctx, m, vs, ev); err != nil {
		return err
	}
	// A plain ack: waiting for the server's confirmation (DoubleAck) costs a
	// round trip per message, and a lost ack only redelivers the message,
	// which the window and the deterministic ids absorb.
	if err := msg.Ack(); err != nil {
		return stage(ReasonPublish, fmt.Errorf("ack message %s: %w", ev.MessageID, err))
	}
	e.m.EvalDuration.Observe(ev.DurationSeconds)
	return nil
}

// publishAll publishes vs (with their actions) in parallel and then ev,
// when not nil: the evaluation record is the message's commit marker, so
// it is stored only once its verdicts are (a message dead-lettered after a
// failed verdict publish then has no evaluation either). Each record is
// idempotent by id, so a retry after a partial failure is safe.
func (e *Evaluator) publishAll(ctx context.Context, m *vigil.Message, vs []*vigil.Verdict, ev *vigil.Evaluation) error {
	errs := make([]error, len(vs))
	var wg sync.WaitGroup
	for i, v := range vs {
		wg.Go(func() { errs[i] = e.publish(ctx, m, v) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if ev != nil {
		if _, err := e.b.PublishEvaluation(ctx, ev); err != nil {
			return stage(ReasonPublish, fmt.Errorf("publish evaluation of message %s: %w", ev.MessageID, err))
		}
	}
	return nil
}

func (e *Evaluator) ruleErrors(m *vigil.Message, err error) {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else {
		errs = []error{err}
	}
	for _, err := range errs {
		var ee *rules.EvalError
		if errors.As(err, &ee) {
			e.m.RuleErrors.WithLabelValues(ee.RuleID).Inc()
			e.log.Warn("rule failed on message", logKeyRule, ee.RuleID, logKeyKind, ee.Kind, logKeyMessage, m.ID)
			continue
		}
		e.m.RuleErrors.WithLabelValues("").Inc()
		e.log.Warn("rule set failed on message", logKeyMessage, m.ID, logKeyErr, err)
	}
}

// needsTier2 reports whether a match asks the classifier.
func needsTier2(r *rules.Rule) bool {
	return r.Tier == rules.TierClassifier || r.Action == vigil.ActionEscalateTier2
}

// verdict builds the verdict of rule on m.
func (e *Evaluator) verdict(m *vigil.Message, version string, r *rules.Rule, spans []vigil.Span, tier int, action vigil.Action, reason string) *vigil.Verdict {
	return newVerdict(m, version, r, spans, tier, action, reason, e.o.now())
}

// newVerdict builds the verdict of rule on m evaluated at now (shared with
// [Backtest]).
func newVerdict(m *vigil.Message, version string, r *rules.Rule, spans []vigil.Span, tier int, action vigil.Action, reason string, now time.Time) *vigil.Verdict {
	v := &vigil.Verdict{
		ID:        vigil.VerdictID(m.ID, r.ID, version),
		MessageID: m.ID, Tenant: m.Tenant, ConversationID: m.ConversationID, SenderID: m.Sender.ID,
		RuleID: r.ID, RulesetVersion: version, Severity: r.Severity, Action: action, Tier: tier,
		Tags: r.Tags, Spans: spans, Reason: reason,
		MessageSentAt: m.SentAt, EvaluatedAt: now.UTC(),
	}
	if !m.ReceivedAt.IsZero() {
		v.LatencySeconds = now.Sub(m.ReceivedAt).Seconds()
	}
	return v
}

// publish stores v and its action (in parallel), then queues its webhooks. A redelivered message
// republishes the same ids, which the streams deduplicate; webhooks are
// at-least-once (receivers deduplicate on X-Vigil-Delivery).
func (e *Evaluator) publish(ctx context.Context, m *vigil.Message, v *vigil.Verdict) error {
	var actionErr error
	var wg sync.WaitGroup
	if hasAction(v) {
		wg.Go(func() {
			if _, err := e.b.PublishAction(ctx, v); err != nil {
				actionErr = stage(ReasonPublish, fmt.Errorf("publish action %s: %w", v.ID, err))
			}
		})
	}
	ack, err := e.b.PublishVerdict(ctx, v)
	wg.Wait()
	if err != nil {
		return stage(ReasonPublish, fmt.Errorf("publish verdict %s: %w", v.ID, err))
	}
	if actionErr != nil {
		return actionErr
	}
	e.stored(m, v, ack)
	return nil
}

// stored counts v, stored with ack, and queues its webhooks.
func (e *Evaluator) stored(m *vigil.Message, v *vigil.Verdict, ack bus.Ack) {
	if !ack.Duplicate {
		e.m.Verdicts.WithLabelValues(v.RuleID, string(v.Action)).Inc()
		if !m.ReceivedAt.IsZero() {
			e.m.VerdictLatency.WithLabelValues(strconv.Itoa(v.Tier)).Observe(v.LatencySeconds)
		}
	}
	if e.o.webhooks != nil && hasAction(v) {
		// Drops are counted and logged by Send; they do not fail the message.
		_ = e.o.webhooks.Send(v)
	}
}

// hasAction reports whether v is relayed as an action (ACTIONS, webhooks).
func hasAction(v *vigil.Verdict) bool {
	return v.Action != vigil.ActionEscalateTier2 && v.Action.Valid()
}

func participantCounts(prev []vigil.Message) map[string]int {
	if len(prev) == 0 {
		return nil
	}
	c := make(map[string]int)
	for _, m := range prev {
		c[m.Sender.ID]++
	}
	return c
}
