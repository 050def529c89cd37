package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vigilhq/vigil"
)

// Ack confirms that JetStream stored a record (or had already stored a
// record with the same id inside the duplicate window).
type Ack struct {
	// Stream is the stream that stored the record.
	Stream string `json:"stream"`
	// Sequence is the record's stream sequence. For a duplicate it is the
	// sequence of the record stored first.
	Sequence uint64 `json:"seq"`
	// Duplicate reports that the id was already stored and nothing new was
	// written.
	Duplicate bool `json:"duplicate"`
}

// DeadLetter is the record [Bus.PublishDeadLetter] stores: a pointer to the
// poisoned message, which stays in its stream.
type DeadLetter struct {
	Stream   string    `json:"stream"`
	Sequence uint64    `json:"seq"`
	Reason   string    `json:"reason"`
	At       time.Time `json:"at"`
}

// PublishMessage stores a tokenized message in MESSAGES under
// msg.<tenant>.<conversation> with Nats-Msg-Id m.ID and returns after the
// PubAck. m must already be tokenized: the bus never sees raw PII.
//
// Errors: [ErrInvalidRecord] for bad ids, [ErrStreamFull], [ErrPublishTimeout],
// [ErrUnavailable], or the jetstream error.
func (b *Bus) PublishMessage(ctx context.Context, m *vigil.Message) (Ack, error) {
	if err := validRecord(m.ID, m.Tenant, m.ConversationID); err != nil {
		return Ack{}, err
	}
	return b.publish(ctx, StreamMessages, MessageSubject(m.Tenant, m.ConversationID), m.ID, m)
}

// ErrMessageNotFound is returned by [Bus.GetMessage] for a sequence that
// holds no message (never written, erased, or aged out).
var ErrMessageNotFound = errors.New("bus: message not found")

// GetMessage reads the message stored at seq in MESSAGES (a direct get,
// served by any replica).
func (b *Bus) GetMessage(ctx context.Context, seq uint64) (*vigil.Message, error) {
	ctx, cancel := b.withTimeout(ctx)
	defer cancel()
	raw, err := b.messages.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil, fmt.Errorf("get message seq %d: %w", seq, ErrMessageNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get message seq %d: %w", seq, err)
	}
	var m vigil.Message
	if err := json.Unmarshal(raw.Data, &m); err != nil {
		return nil, fmt.Errorf("decode message seq %d: %w", seq, err)
	}
	return &m, nil
}

// PublishVerdict stores a verdict in VERDICTS with Nats-Msg-Id v.ID.
func (b *Bus) PublishVerdict(ctx context.Context, v *vigil.Verdict) (Ack, error) {
	if err := validRecord(v.ID, v.Tenant, v.ConversationID); err != nil {
		return Ack{}, err
	}
	return b.publish(ctx, StreamVerdicts, VerdictSubject(v.Tenant, v.ConversationID), v.ID, v)
}

// PublishAction stores the verdict as an action in ACTIONS under
// [ActionSubject], where WebSocket sessions (core NATS) and webhook
// consumers (JetStream) receive it. Its Nats-Msg-Id is v.ID.
func (b *Bus) PublishAction(ctx context.Context, v *vigil.Verdict) (Ack, error) {
	if err := validRecord(v.ID, v.Tenant, v.ConversationID); err != nil {
		return Ack{}, err
	}
	return b.publish(ctx, StreamActions, ActionSubject(v.Tenant, v.ConversationID), v.ID, v)
}

// PublishEvaluation stores an evaluation record in EVALUATIONS with
// Nats-Msg-Id [EvaluationID](e.MessageID, e.RulesetVersion).
func (b *Bus) PublishEvaluation(ctx context.Context, e *vigil.Evaluation) (Ack, error) {
	if err := validRecord(e.MessageID, e.Tenant, e.ConversationID); err != nil {
		return Ack{}, err
	}
	return b.publish(ctx, StreamEvaluations, EvaluationSubject(e.Tenant, e.ConversationID),
		EvaluationID(e.MessageID, e.RulesetVersion), e)
}

// PublishAudit appends an audit event to AUDIT with Nats-Msg-Id e.ID.
func (b *Bus) PublishAudit(ctx context.Context, e *vigil.AuditEvent) (Ack, error) {
	if err := validIDs(e.ID, e.Tenant); err != nil {
		return Ack{}, err
	}
	return b.publish(ctx, StreamAudit, AuditSubject(e.Tenant), e.ID, e)
}

// PublishDeadLetter records that a consumer gave up on message seq of
// stream, with a reason. reason must not contain PII (ids, rule ids and
// error classes only). Its Nats-Msg-Id is stream+seq, so a retried dead
// letter is stored once.
func (b *Bus) PublishDeadLetter(ctx context.Context, stream string, seq uint64, reason string) (Ack, error) {
	if !isVigilStream(stream) {
		return Ack{}, fmt.Errorf("%w: %q", ErrUnknownStream, stream)
	}
	id := "dl-" + stream + "-" + strconv.FormatUint(seq, 10)
	dl := DeadLetter{Stream: stream, Sequence: seq, Reason: reason, At: time.Now().UTC()}
	return b.publish(ctx, StreamDeadLetter, DeadLetterSubject(stream), id, &dl)
}

// PublishMessages stores a batch of tokenized messages in MESSAGES and
// waits for every PubAck. acks[i] belongs to ms[i]; a message that failed
// has a zero Ack. err joins the per-message errors ("record <i>: …"), so
// errors.Is(err, ErrStreamFull) etc. work; when err is not nil the caller
// must treat the unacked messages as not stored. Retrying the whole batch
// is safe: stored ids come back as duplicates.
//
// Unless Config.NoAtomicBatches is set, each chunk of Config.MinAtomicBatch
// to [MaxAtomicBatch] messages is published as one atomic batch: all of it
// is stored or none, and under SyncAlways it costs one fsync. A chunk holding
// an id that is already stored (a retry) is refused atomically by the
// server and then published message by message, so duplicates are still
// acked individually. Without atomic batches every message is an
// asynchronous publish, at most Config.AsyncMaxPending in flight on the Bus.
func (b *Bus) PublishMessages(ctx context.Context, ms []*vigil.Message) ([]Ack, error) {
	recs := make([]record, len(ms))
	for i, m := range ms {
		if err := validRecord(m.ID, m.Tenant, m.ConversationID); err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		recs[i] = record{subject: MessageSubject(m.Tenant, m.ConversationID), id: m.ID, v: m}
	}
	return b.publishBatch(ctx, StreamMessages, recs)
}

// PublishVerdicts stores verdicts in VERDICTS as [Bus.PublishMessages]
// stores messages (atomic batches, per-record acks and errors).
func (b *Bus) PublishVerdicts(ctx context.Context, vs []*vigil.Verdict) ([]Ack, error) {
	recs, err := verdictRecords("verdict", vs, VerdictSubject)
	if err != nil {
		return nil, err
	}
	return b.publishBatch(ctx, StreamVerdicts, recs)
}

// PublishActions stores verdicts as actions in ACTIONS as
// [Bus.PublishVerdicts] stores them in VERDICTS.
func (b *Bus) PublishActions(ctx context.Context, vs []*vigil.Verdict) ([]Ack, error) {
	recs, err := verdictRecords("action", vs, ActionSubject)
	if err != nil {
		return nil, err
	}
	return b.publishBatch(ctx, StreamActions, recs)
}

// verdictRecords checks vs and makes them records under subject, with
// Nats-Msg-Id v.ID.
func verdictRecords(what string, vs []*vigil.Verdict, subject func(tenant, conversation string) string) ([]record, error) {
	recs := make([]record, len(vs))
	for i, v := range vs {
		if err := validRecord(v.ID, v.Tenant, v.ConversationID); err != nil {
			return nil, fmt.Errorf("%s %d: %w", what, i, err)
		}
		recs[i] = record{subject: subject(v.Tenant, v.ConversationID), id: v.ID, v: v}
	}
	return recs, nil
}

// PublishEvaluations stores evaluation records in EVALUATIONS as
// [Bus.PublishMessages] stores messages.
func (b *Bus) PublishEvaluations(ctx context.Context, es []*vigil.Evaluation) ([]Ack, error) {
	recs := make([]record, len(es))
	for i, e := range es {
		if err := validRecord(e.MessageID, e.Tenant, e.ConversationID); err != nil {
			return nil, fmt.Errorf("evaluation %d: %w", i, err)
		}
		recs[i] = record{subject: EvaluationSubject(e.Tenant, e.ConversationID), id: EvaluationID(e.MessageID, e.RulesetVersion), v: e}
	}
	return b.publishBatch(ctx, StreamEvaluations, recs)
}

// record is one record of a batch publish, before encoding.
type record struct {
	subject, id string
	v           any
}

// publishBatch publishes recs to stream in atomic chunks (falling back to
// asynchronous per-record publishes where the server refuses a chunk) and
// waits for every PubAck; see [Bus.PublishMessages].
func (b *Bus) publishBatch(ctx context.Context, stream string, recs []record) ([]Ack, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	ctx, cancel := b.withTimeout(ctx)
	defer cancel()
	start := time.Now()
	acks := make([]Ack, len(recs))
	errs := make([]error, len(recs))
	datas := make([][]byte, len(recs))
	for i, r := range recs {
		data, err := json.Marshal(r.v)
		if err != nil {
			return nil, fmt.Errorf("record %d: encode: %w", i, err)
		}
		datas[i] = data
	}
	newMsg := func(i int) *nats.Msg {
		msg := &nats.Msg{Subject: recs[i].subject, Data: datas[i], Header: nats.Header{}}
		msg.Header.Set(jetstream.MsgIDHeader, recs[i].id)
		return msg
	}
	for lo := 0; lo < len(recs); lo += MaxAtomicBatch {
		hi := min(lo+MaxAtomicBatch, len(recs))
		if b.atomic(hi - lo) {
			msgs := make([]*nats.Msg, 0, hi-lo)
			for i := lo; i < hi; i++ {
				msgs = append(msgs, newMsg(i))
			}
			chunk, err := b.publishAtomic(ctx, stream, msgs)
			if err == nil {
				copy(acks[lo:hi], chunk)
				continue
			}
			if !errors.Is(err, errAtomicFallback) {
				for i := lo; i < hi; i++ {
					errs[i] = err
				}
				continue
			}
			b.metrics.AtomicFallbacks.Inc()
		}
		b.publishAsync(ctx, stream, newMsg, lo, hi, acks, errs)
	}
	// One observation per batch record keeps the histogram comparable with
	// single publishes: each waited for the whole batch.
	d := since(start)
	var joined []error
	for i := range recs {
		b.observe(stream, d, acks[i], errs[i])
		if errs[i] != nil {
			joined = append(joined, fmt.Errorf("record %d: %w", i, errs[i]))
		}
	}
	return acks, errors.Join(joined...)
}

// atomic reports whether a batch of n records is published atomically.
func (b *Bus) atomic(n int) bool {
	return !b.cfg.NoAtomicBatches && n >= b.cfg.MinAtomicBatch
}

// publishPipelined publishes msgs (headers set by the caller) to stream
// asynchronously, waits for every PubAck and returns the acks, or the
// first error (the other messages may be stored).
func (b *Bus) publishPipelined(ctx context.Context, stream string, msgs []*nats.Msg) ([]Ack, error) {
	acks := make([]Ack, len(msgs))
	errs := make([]error, len(msgs))
	b.publishAsync(ctx, stream, func(i int) *nats.Msg { return msgs[i] }, 0, len(msgs), acks, errs)
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return acks, nil
}

// publishAsync publishes records lo..hi-1 (built by newMsg) asynchronously
// and waits for their PubAcks, filling acks and errs.
func (b *Bus) publishAsync(ctx context.Context, stream string, newMsg func(int) *nats.Msg, lo, hi int, acks []Ack, errs []error) {
	deadline, _ := ctx.Deadline() // set by the caller (withTimeout)
	futs := make([]jetstream.PubAckFuture, hi)
	for i := lo; i < hi; i++ {
		msg := newMsg(i)
		msg.Header.Set(jetstream.ExpectedStreamHeader, stream)
		// A full window waits for room until the deadline rather than the
		// client's 200 ms default: a slow server delays the batch, and only
		// a deadline miss fails it (ErrBusy).
		stall := time.Until(deadline)
		if stall <= 0 {
			errs[i] = b.mapErr(context.DeadlineExceeded)
			continue
		}
		f, err := b.js.PublishMsgAsync(msg, jetstream.WithStallWait(stall))
		if err != nil {
			errs[i] = b.mapErr(err)
			continue
		}
		futs[i] = f
	}
	for i := lo; i < hi; i++ {
		f := futs[i]
		if f == nil {
			continue
		}
		select {
		case pa := <-f.Ok():
			acks[i] = Ack{Stream: pa.Stream, Sequence: pa.Sequence, Duplicate: pa.Duplicate}
		case err := <-f.Err():
			errs[i] = b.mapErr(err)
		case <-ctx.Done():
			errs[i] = b.mapErr(ctx.Err())
		}
	}
}

func (b *Bus) publish(ctx context.Context, stream, subject, id string, v any) (Ack, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return Ack{}, fmt.Errorf("encode %s record: %w", stream, err)
	}
	ctx, cancel := b.withTimeout(ctx)
	defer cancel()
	msg := &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, id)
	msg.Header.Set(jetstream.ExpectedStreamHeader, stream)
	start := time.Now()
	pa, err := b.js.PublishMsg(ctx, msg)
	var ack Ack
	if err == nil {
		ack = Ack{Stream: pa.Stream, Sequence: pa.Sequence, Duplicate: pa.Duplicate}
	} else {
		err = b.mapErr(err)
	}
	b.observe(stream, since(start), ack, err)
	if err != nil {
		return Ack{}, fmt.Errorf("publish to %s: %w", stream, err)
	}
	return ack, nil
}

func (b *Bus) observe(stream string, seconds float64, ack Ack, err error) {
	result := ResultOK
	switch {
	case err == nil && ack.Duplicate:
		result = ResultDuplicate
	case err == nil:
	case errors.Is(err, ErrStreamFull):
		result = ResultFull
	case errors.Is(err, ErrBusy):
		result = ResultBusy
	case errors.Is(err, ErrPublishTimeout):
		result = ResultTimeout
	default:
		result = ResultError
	}
	b.metrics.PublishDuration.WithLabelValues(stream).Observe(seconds)
	b.metrics.Publishes.WithLabelValues(stream, result).Inc()
}

// JetStream error codes that mean "no room" (nats-server
// jetstream_errors_generated.go).
const (
	jsInsufficientResources     = 10023
	jsMemoryResourcesExceeded   = 10028
	jsStorageResourcesExceeded  = 10047
	jsStreamStoreFailed         = 10077
	jsStreamStoreFailedMaxBytes = "maximum bytes exceeded"
	jsStreamStoreFailedMaxMsgs  = "maximum messages exceeded"
)

// mapErr maps a publish error to a bus sentinel, keeping the original
// (double %w) so both errors.Is(sentinel) and errors.As(*APIError) work.
func (b *Bus) mapErr(err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr):
		switch apiErr.ErrorCode {
		case jsInsufficientResources, jsMemoryResourcesExceeded, jsStorageResourcesExceeded:
			return fmt.Errorf("%w: %w", ErrStreamFull, err)
		case jsStreamStoreFailed:
			if strings.Contains(apiErr.Description, jsStreamStoreFailedMaxBytes) || strings.Contains(apiErr.Description, jsStreamStoreFailedMaxMsgs) {
				return fmt.Errorf("%w: %w", ErrStreamFull, err)
			}
		}
		return err
	case errors.Is(err, jetstream.ErrTooManyStalledMsgs):
		return fmt.Errorf("%w: %w", ErrBusy, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout), errors.Is(err, jetstream.ErrAsyncPublishTimeout):
		return fmt.Errorf("%w: %w", ErrPublishTimeout, err)
	case errors.Is(err, nats.ErrNoResponders), errors.Is(err, jetstream.ErrNoStreamResponse),
		errors.Is(err, nats.ErrDisconnected), errors.Is(err, nats.ErrConnectionClosed):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return err
}

// validRecord checks the ids that go into a subject and the Nats-Msg-Id.
func validRecord(id, tenant, conversation string) error {
	if err := validIDs(id, tenant); err != nil {
		return err
	}
	if err := vigil.ValidateID(conversation); err != nil {
		return fmt.Errorf("%w: conversation: %w", ErrInvalidRecord, err)
	}
	return nil
}

// validIDs checks a record id and its tenant.
func validIDs(id, tenant string) error {
	if err := vigil.ValidateID(id); err != nil {
		return fmt.Errorf("%w: id: %w", ErrInvalidRecord, err)
	}
	if err := vigil.ValidateID(tenant); err != nil {
		return fmt.Errorf("%w: tenant: %w", ErrInvalidRecord, err)
	}
	return nil
}
