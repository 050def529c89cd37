package evaluator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/rules"
)

// ReasonTier2NotCalled is the reason of a backtest verdict whose rule asks
// the tier-2 classifier: [Backtest] records the tier-1 candidate with Tier 2
// and never calls the classifier.
const ReasonTier2NotCalled = "tier2 not called in backtest"

// DefaultBacktestFetchBatch is how many messages a [StreamSource] fetches at
// once.
const DefaultBacktestFetchBatch = 1000

// MessageSource yields stored messages in stream order. Next returns io.EOF
// after the last message.
type MessageSource interface {
	Next(ctx context.Context) (StoredMessage, error)
}

// StoredMessage is a message with the MESSAGES stream sequence and the time
// the stream stored it.
type StoredMessage struct {
	Seq      uint64
	StoredAt time.Time
	Message  *vigil.Message
}

// BacktestConfig selects what [Backtest] evaluates.
type BacktestConfig struct {
	// Since is the first send time evaluated (inclusive). Messages sent
	// before it only fill the context windows.
	Since time.Time
	// Until is the end of the evaluated send times (exclusive); zero is
	// unbounded.
	Until time.Time
	// Tenant restricts evaluation to one tenant; empty is every tenant.
	Tenant string
}

// BacktestResult is the outcome of one evaluated message: its verdicts,
// possibly none.
type BacktestResult struct {
	Seq      uint64
	Message  *vigil.Message
	Verdicts []vigil.Verdict
}

// BacktestStats counts what [Backtest] did.
type BacktestStats struct {
	// Read counts messages read from the source, context included.
	Read int
	// Evaluated counts messages evaluated (inside Since/Until and Tenant).
	Evaluated int
	// Invalid counts messages skipped as undecodable or for a bad tenant,
	// conversation or message id, which the live evaluator dead-letters.
	Invalid int
	// Verdicts counts the verdicts yielded.
	Verdicts int
	// RuleErrors counts messages on which a rule failed (the other rules'
	// matches still count, as in the live evaluator).
	RuleErrors int
}

// Backtest evaluates the messages of src with set, in stream order, and
// calls yield once per evaluated message. It keeps each conversation's
// context window in memory with the live evaluator's semantics ([Window]:
// the last n messages no older than d before the message, see [WithWindow]),
// so a message sees the same context as in production when src starts early
// enough (a window's duration before cfg.Since). It publishes nothing and
// writes no KV: production verdicts and windows are untouched.
//
// Verdict ids are [vigil.VerdictID] of message, rule and set.Version(). A
// rule that asks the tier-2 classifier yields its tier-1 candidate with Tier
// 2 and reason [ReasonTier2NotCalled].
//
// Of the options, [WithWindow] and [WithLogger] apply; the others are
// ignored. An invalid option returns ErrInvalidOption; an error from src
// other than io.EOF, from yield or from ctx ends the backtest and is
// returned wrapped, with the stats so far.
func Backtest(ctx context.Context, src MessageSource, set *rules.Set, cfg BacktestConfig, yield func(BacktestResult) error, opts ...Option) (BacktestStats, error) {
	var st BacktestStats
	if src == nil || set == nil || yield == nil {
		return st, fmt.Errorf("%w: backtest needs a source, a ruleset and a yield function", ErrInvalidOption)
	}
	o := defaultOptions()
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return st, err
		}
	}
	// Only the window's pure helpers (context, insert) are used: no bucket.
	w := &Window{maxMessages: o.windowN, maxAge: o.windowD}
	windows := map[string]windowState{}
	version := set.Version()
	for {
		sm, err := src.Next(ctx)
		if errors.Is(err, io.EOF) {
			return st, nil
		}
		if err != nil {
			return st, fmt.Errorf("backtest: read messages: %w", err)
		}
		st.Read++
		m := sm.Message
		if !validMessage(m) {
			st.Invalid++
			continue
		}
		key := m.Tenant + "\x00" + m.ConversationID
		ws := windows[key]
		prev := w.context(ws, m, sm.Seq)
		if !ws.applied(sm.Seq) {
			windows[key] = w.insert(ws, WindowEntry{Seq: sm.Seq, Message: windowMessage(m)})
		}
		if (cfg.Tenant != "" && m.Tenant != cfg.Tenant) || m.SentAt.Before(cfg.Since) ||
			(!cfg.Until.IsZero() && !m.SentAt.Before(cfg.Until)) {
			continue
		}
		rc := &rules.Context{Messages: prev, Window: o.windowD, ParticipantCounts: participantCounts(prev)}
		matches, err := set.Eval(ctx, m, rc)
		if err != nil {
			if ctx.Err() != nil {
				return st, fmt.Errorf("backtest: evaluate message %s: %w", m.ID, ctx.Err())
			}
			st.RuleErrors++
			o.log.Warn("rule failed on message in backtest", logKeyMessage, m.ID, logKeyErr, err)
		}
		st.Evaluated++
		res := BacktestResult{Seq: sm.Seq, Message: m, Verdicts: make([]vigil.Verdict, 0, len(matches))}
		now := o.now()
		for _, mt := range matches {
			tier, reason := 1, ""
			if needsTier2(mt.Rule) {
				tier, reason = 2, ReasonTier2NotCalled
			}
			res.Verdicts = append(res.Verdicts, *newVerdict(m, version, mt.Rule, mt.Spans, tier, mt.Rule.Action, reason, now))
		}
		st.Verdicts += len(res.Verdicts)
		if err := yield(res); err != nil {
			return st, fmt.Errorf("backtest: message %s: %w", m.ID, err)
		}
	}
}

func validMessage(m *vigil.Message) bool {
	return m != nil && validateIDs(m) == nil
}

// StreamSource reads MESSAGES from a start time to the stream's last
// sequence as of [NewStreamSource], with an ordered (ephemeral, unacked)
// consumer: reading it changes no durable consumer and no stored message.
type StreamSource struct {
	cons    jetstream.Consumer
	lastSeq uint64
	batch   int
	wait    time.Duration
	buf     []jetstream.Msg
	done    bool
}

var _ MessageSource = (*StreamSource)(nil)

// NewStreamSource returns a source of the MESSAGES stream from start (the
// stream's storage time) up to its last sequence now; messages stored later
// are not read. It returns the jetstream error if the stream is missing.
func NewStreamSource(ctx context.Context, js jetstream.JetStream, start time.Time) (*StreamSource, error) {
	s, err := js.Stream(ctx, bus.StreamMessages)
	if err != nil {
		return nil, fmt.Errorf("open stream %s: %w", bus.StreamMessages, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("stream %s info: %w", bus.StreamMessages, err)
	}
	src := &StreamSource{lastSeq: info.State.LastSeq, batch: DefaultBacktestFetchBatch, wait: time.Second}
	if info.State.Msgs == 0 || info.State.LastTime.Before(start) {
		src.done = true
		return src, nil
	}
	cc := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if !start.IsZero() {
		t := start.UTC()
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	if src.cons, err = s.OrderedConsumer(ctx, cc); err != nil {
		return nil, fmt.Errorf("ordered consumer on %s: %w", bus.StreamMessages, err)
	}
	return src, nil
}

// Next returns the next message in stream order, or io.EOF after the last
// sequence of the stream as of [NewStreamSource]. A stored message that is
// not valid JSON comes back with a nil Message (the live evaluator
// dead-letters it; [Backtest] counts it as invalid).
func (s *StreamSource) Next(ctx context.Context) (StoredMessage, error) {
	for len(s.buf) == 0 {
		if s.done {
			return StoredMessage{}, io.EOF
		}
		if err := ctx.Err(); err != nil {
			return StoredMessage{}, err
		}
		// Fetch, not Consumer.Messages: see DESIGN.md on in-process stalls.
		b, err := s.cons.Fetch(s.batch, jetstream.FetchMaxWait(s.wait))
		if err != nil {
			return StoredMessage{}, fmt.Errorf("fetch %s: %w", bus.StreamMessages, err)
		}
		for msg := range b.Messages() {
			s.buf = append(s.buf, msg)
		}
		if err := b.Error(); err != nil && !isQuietFetchEnd(err) {
			return StoredMessage{}, fmt.Errorf("fetch %s: %w", bus.StreamMessages, err)
		}
		if len(s.buf) == 0 {
			// Nothing pending within the wait: the last sequence was
			// deleted (erasure) or aged out.
			s.done = true
		}
	}
	msg := s.buf[0]
	s.buf = s.buf[1:]
	md, err := msg.Metadata()
	if err != nil {
		return StoredMessage{}, fmt.Errorf("message metadata: %w", err)
	}
	seq := md.Sequence.Stream
	if seq >= s.lastSeq {
		s.done, s.buf = true, nil
	}
	if seq > s.lastSeq {
		return StoredMessage{}, io.EOF
	}
	sm := StoredMessage{Seq: seq, StoredAt: md.Timestamp}
	var m vigil.Message
	if json.Unmarshal(msg.Data(), &m) == nil {
		sm.Message = &m
	}
	return sm, nil
}
