package warehouse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
)

// Sink defaults.
const (
	// DefaultBatchRows bounds the rows of one INSERT.
	DefaultBatchRows = 10000
	// DefaultFlushInterval bounds how long rows wait for a batch to fill.
	DefaultFlushInterval = time.Second
	// DefaultRetryBackoff is the first pause after a failed INSERT; it
	// doubles up to DefaultMaxRetryBackoff while ClickHouse stays down.
	DefaultRetryBackoff    = 250 * time.Millisecond
	DefaultMaxRetryBackoff = 10 * time.Second
)

// SinkConfig tunes a [Sink]. Zero fields take their Default* value.
type SinkConfig struct {
	// BatchRows bounds the rows of one INSERT. It must not exceed the sink
	// consumers' MaxAckPending (bus.Config.SinkMaxAckPending).
	BatchRows int
	// FlushInterval bounds how long a partial batch waits.
	FlushInterval time.Duration
	// RetryBackoff and MaxRetryBackoff pace retries while ClickHouse fails.
	RetryBackoff, MaxRetryBackoff time.Duration
	// Durable prefixes the consumer names, so a second sink (backtest,
	// replay into another database) never steals the production sink's
	// messages. Default "sink".
	Durable string
	// Streams selects the streams to project. Default: MESSAGES, VERDICTS,
	// EVALUATIONS, AUDIT, REVIEW.
	Streams []string
	Logger  *slog.Logger
	Metrics *SinkMetrics
}

// Sink projects JetStream streams into ClickHouse tables. Each stream has
// one goroutine that fetches a batch, inserts it in one INSERT with an
// insert_deduplication_token built from the batch's stream sequences, and
// acks the messages only after ClickHouse accepted the rows. While
// ClickHouse fails the batch is retried, its messages kept in progress, and
// nothing new is fetched: memory stays bounded by one batch per stream and
// JetStream holds the rest.
type Sink struct {
	bus  *bus.Bus
	conn driver.Conn
	cfg  SinkConfig
	log  *slog.Logger
	m    *SinkMetrics

	mu      sync.Mutex
	started bool
	stop    chan struct{}      // closed by Close: finish the batch in hand, fetch no more
	abort   context.CancelFunc // cancels in-flight inserts when Close's ctx expires
	wg      sync.WaitGroup
}

// NewSink returns a sink writing to conn; [Sink.Start] runs it.
func NewSink(b *bus.Bus, conn driver.Conn, cfg SinkConfig) (*Sink, error) {
	if b == nil || conn == nil {
		return nil, errors.New("new sink: bus and clickhouse connection are required")
	}
	if cfg.BatchRows <= 0 {
		cfg.BatchRows = DefaultBatchRows
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = DefaultFlushInterval
	}
	if cfg.RetryBackoff <= 0 {
		cfg.RetryBackoff = DefaultRetryBackoff
	}
	if cfg.MaxRetryBackoff <= 0 {
		cfg.MaxRetryBackoff = DefaultMaxRetryBackoff
	}
	if cfg.Durable == "" {
		cfg.Durable = "sink"
	}
	if len(cfg.Streams) == 0 {
		cfg.Streams = []string{bus.StreamMessages, bus.StreamVerdicts, bus.StreamEvaluations, bus.StreamAudit, bus.StreamReview}
	}
	for _, s := range cfg.Streams {
		if _, ok := tableFor[s]; !ok {
			return nil, fmt.Errorf("new sink: no table for stream %s", s)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewSinkMetrics(nil)
	}
	return &Sink{bus: b, conn: conn, cfg: cfg, log: cfg.Logger, m: cfg.Metrics}, nil
}

// Start creates the durable consumers and starts one writer per stream.
// It returns once the consumers exist; the writers run until [Sink.Close].
func (s *Sink) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("sink already started")
	}
	type job struct {
		stream string
		cons   jetstream.Consumer
	}
	var jobs []job
	for _, stream := range s.cfg.Streams {
		durable := s.cfg.Durable + "_" + strings.ToLower(stream)
		cons, err := s.bus.SinkConsumer(ctx, stream, durable)
		if err != nil {
			return fmt.Errorf("sink consumer for %s: %w", stream, err)
		}
		jobs = append(jobs, job{stream, cons})
	}
	// The writers outlive the start-up ctx: Close stops them.
	runCtx, abort := context.WithCancel(context.WithoutCancel(ctx))
	s.started, s.stop, s.abort = true, make(chan struct{}), abort
	for _, j := range jobs {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.run(runCtx, j.stream, j.cons)
		}()
	}
	return nil
}

// Close stops fetching, lets the batch in flight finish (insert and ack)
// until ctx expires, and waits for the writers. Unacked messages are
// redelivered to the next sink; dedup tokens and ReplacingMergeTree keys
// absorb the repeat.
func (s *Sink) Close(ctx context.Context) error {
	s.mu.Lock()
	if !s.started || s.stop == nil {
		s.mu.Unlock()
		return nil
	}
	close(s.stop)
	s.stop = nil
	abort := s.abort
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		abort()
		return nil
	case <-ctx.Done():
		// Give up on the batch in flight; its messages are nak'ed or
		// redelivered after AckWait, and deduplication absorbs a repeat.
		abort()
		<-done
		return fmt.Errorf("close sink: %w", ctx.Err())
	}
}

func (s *Sink) stopping(stop <-chan struct{}) bool {
	select {
	case <-stop:
		return true
	default:
		return false
	}
}

func (s *Sink) run(ctx context.Context, stream string, cons jetstream.Consumer) {
	log := s.log.With("stream", stream)
	s.mu.Lock()
	stop := s.stop
	s.mu.Unlock()
	// Fetching the next batch overlaps writing the current one: the sink
	// is bound by round trips (fetch, INSERT, ack), not CPU. At most one
	// batch waits, so memory stays bounded by two batches per stream, and
	// MaxAckPending must hold two batches.
	batches := make(chan fetched, 1)
	var fetcher sync.WaitGroup
	fetcher.Add(1)
	go func() {
		defer fetcher.Done()
		defer close(batches)
		// A fetch is bounded by FlushInterval and not interrupted: cutting
		// it short would strand the messages it pulled until AckWait.
		for !s.stopping(stop) && ctx.Err() == nil {
			batch, err := cons.Fetch(s.cfg.BatchRows, jetstream.FetchMaxWait(s.cfg.FlushInterval))
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				log.Warn("sink fetch", "err", err)
				sleep(ctx, s.cfg.RetryBackoff)
				continue
			}
			var msgs []jetstream.Msg
			for m := range batch.Messages() {
				msgs = append(msgs, m)
			}
			if err := batch.Error(); err != nil && len(msgs) == 0 && ctx.Err() == nil {
				log.Debug("sink fetch ended", "err", err)
			}
			if len(msgs) == 0 {
				continue
			}
			// Decoding here overlaps it with the writer's INSERT too.
			rows, bad := decodeBatch(stream, msgs)
			select {
			case batches <- fetched{msgs, rows, bad}:
			case <-ctx.Done():
				for _, m := range msgs {
					_ = m.Nak()
				}
				return
			}
		}
	}()
	// On stop the fetcher ends and closes batches; the batch it handed
	// over is still written and acked before run returns.
	for f := range batches {
		s.write(ctx, log, stream, f)
	}
	fetcher.Wait()
}

// write inserts msgs until ClickHouse accepts them, then acks them. It
// gives up only when ctx is cancelled, leaving the messages unacked.
func (s *Sink) write(ctx context.Context, log *slog.Logger, stream string, f fetched) {
	msgs, rows, bad := f.msgs, f.rows, f.bad
	for _, b := range bad {
		// A record that cannot be decoded would block the stream forever;
		// park it in the dead-letter stream with the reason, then drop it
		// from the batch. If that fails the record stays unacked and is
		// redelivered after AckWait.
		if _, err := s.bus.PublishDeadLetter(context.WithoutCancel(ctx), stream, b.seq, b.reason); err != nil {
			log.Error("dead-letter undecodable record", "seq", b.seq, "err", err)
			continue
		}
		_ = b.msg.Term()
		s.m.deadLetters.WithLabelValues(stream).Inc()
	}
	backoff := s.cfg.RetryBackoff
	lastProgress := time.Now()
	for {
		start := time.Now()
		err := s.insert(ctx, stream, rows)
		s.m.insertDuration.WithLabelValues(stream).Observe(time.Since(start).Seconds())
		if err == nil {
			break
		}
		s.m.insertErrors.WithLabelValues(stream).Inc()
		log.Warn("clickhouse insert failed, retrying", "rows", len(rows.seqs), "backoff", backoff, "err", err)
		if time.Since(lastProgress) > 10*time.Second {
			// Keep JetStream from redelivering the batch to anyone else
			// while this writer is still retrying it.
			for _, m := range msgs {
				_ = m.InProgress()
			}
			lastProgress = time.Now()
		}
		if !sleep(ctx, backoff) {
			// Aborted: hand the batch back for immediate redelivery.
			for _, m := range rows.msgs {
				_ = m.Nak()
			}
			return
		}
		backoff = min(2*backoff, s.cfg.MaxRetryBackoff)
	}
	for _, m := range rows.msgs {
		if err := m.Ack(); err != nil {
			// Not fatal: the row is in ClickHouse; a redelivery is
			// absorbed by deduplication.
			log.Debug("sink ack", "err", err)
		}
	}
	s.m.rows.WithLabelValues(stream).Add(float64(len(rows.msgs)))
	s.m.batches.WithLabelValues(stream).Inc()
}

// fetched is one fetched batch, decoded.
type fetched struct {
	msgs []jetstream.Msg
	rows decodedBatch
	bad  []badRecord
}

type badRecord struct {
	msg    jetstream.Msg
	seq    uint64
	reason string
}

// decodedBatch holds one batch's records in stream order.
type decodedBatch struct {
	msgs []jetstream.Msg
	seqs []uint64
	recs []any
}

func decodeBatch(stream string, msgs []jetstream.Msg) (decodedBatch, []badRecord) {
	var out decodedBatch
	var bad []badRecord
	for _, m := range msgs {
		md, err := m.Metadata()
		if err != nil {
			bad = append(bad, badRecord{msg: m, reason: "no metadata: " + err.Error()})
			continue
		}
		var rec any
		switch stream {
		case bus.StreamMessages:
			rec = new(vigil.Message)
		case bus.StreamVerdicts:
			rec = new(vigil.Verdict)
		case bus.StreamEvaluations:
			rec = new(vigil.Evaluation)
		case bus.StreamAudit:
			rec = new(vigil.AuditEvent)
		case bus.StreamReview:
			rec = new(ReviewEvent)
		}
		if err := json.Unmarshal(m.Data(), rec); err != nil {
			bad = append(bad, badRecord{msg: m, seq: md.Sequence.Stream, reason: "decode: " + err.Error()})
			continue
		}
		out.msgs = append(out.msgs, m)
		out.seqs = append(out.seqs, md.Sequence.Stream)
		out.recs = append(out.recs, rec)
	}
	return out, bad
}

// tableFor maps a stream to the table it is projected into.
var tableFor = map[string]string{
	bus.StreamMessages:    "messages",
	bus.StreamVerdicts:    "verdicts",
	bus.StreamEvaluations: "evaluations",
	bus.StreamAudit:       "audit_log",
	bus.StreamReview:      "review_events",
}

// ReviewEvent is one review transition as the review package publishes it
// on the REVIEW stream (the JSON shape of its workflow.Event). warehouse
// decodes it itself: the import graph forbids importing review here.
type ReviewEvent struct {
	ID          string    `json:"id"`
	AlertID     string    `json:"alert_id"`
	Tenant      string    `json:"tenant"`
	Reviewer    string    `json:"reviewer"`
	At          time.Time `json:"at"`
	FromState   string    `json:"from_state"`
	ToState     string    `json:"to_state"`
	Disposition string    `json:"disposition"`
	Reason      string    `json:"reason"`
}

// dedupToken names a batch by its stream and sequence range. A retry of the
// same batch carries the same token, so ClickHouse drops the repeat even if
// the first attempt landed and only its answer was lost.
func dedupToken(stream string, seqs []uint64) string {
	return fmt.Sprintf("%s:%d-%d:%d", stream, seqs[0], seqs[len(seqs)-1], len(seqs))
}

func (s *Sink) insert(ctx context.Context, stream string, b decodedBatch) error {
	if len(b.recs) == 0 {
		return nil
	}
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
		"insert_deduplication_token": dedupToken(stream, b.seqs),
		// The sink batches itself; async inserts would ack before the rows
		// are durable in a part.
		"async_insert": 0,
	}))
	return insertRecords(ctx, s.conn, tableFor[stream], b.recs, b.seqs)
}

// insertRecords writes records of one kind into table in one INSERT.
func insertRecords(ctx context.Context, conn driver.Conn, table string, recs []any, seqs []uint64) error {
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+insertColumns[table]+")")
	if err != nil {
		return fmt.Errorf("prepare insert into %s: %w", table, err)
	}
	defer batch.Abort()
	for i, rec := range recs {
		if err := batch.Append(rowValues(rec, seqs[i])...); err != nil {
			return fmt.Errorf("append row to %s: %w", table, err)
		}
	}
	if err := batch.Send(); err != nil {
		return fmt.Errorf("insert %d rows into %s: %w", len(recs), table, err)
	}
	return nil
}

var insertColumns = map[string]string{
	"messages": "id, tenant, conversation_id, sender_id, sender_name, sender_role, participants, channel, text, " +
		"sent_at, received_at, pii, subjects, metadata, stream_seq",
	"verdicts": "id, message_id, tenant, conversation_id, sender_id, rule_id, ruleset_version, severity, action, " +
		"tier, tags, spans, reason, message_sent_at, evaluated_at, latency_seconds, stream_seq",
	"evaluations": "message_id, tenant, conversation_id, ruleset_version, tiers, rules_evaluated, verdicts, " +
		"duration_seconds, evaluated_at, message_seq, stream_seq",
	"audit_log":     "id, tenant, actor, action, target, reason, at, details, stream_seq",
	"review_events": "id, alert_id, tenant, reviewer, at, from_state, to_state, disposition, reason, stream_seq",
	tableBacktestVerdicts: "run_id, ruleset_version, id, message_id, tenant, conversation_id, sender_id, rule_id, " +
		"severity, action, tier, tags, spans, reason, message_sent_at, evaluated_at",
}

func rowValues(rec any, seq uint64) []any {
	switch r := rec.(type) {
	case *vigil.Message:
		participants := make([]string, 0, len(r.Participants))
		for _, p := range r.Participants {
			participants = append(participants, p.ID)
		}
		pii := make(map[string]uint32, len(r.PII))
		for k, v := range r.PII {
			pii[k] = uint32(v)
		}
		return []any{r.ID, r.Tenant, r.ConversationID, r.Sender.ID, r.Sender.DisplayName, r.Sender.Role,
			participants, r.Channel, r.Text, r.SentAt.UTC(), r.ReceivedAt.UTC(), pii, nonNil(r.Subjects),
			nonNilMap(r.Metadata), seq}
	case *vigil.Verdict:
		spans, _ := json.Marshal(r.Spans)
		return []any{r.ID, r.MessageID, r.Tenant, r.ConversationID, r.SenderID, r.RuleID, r.RulesetVersion,
			string(r.Severity), string(r.Action), uint8(r.Tier), nonNil(r.Tags), string(spans), r.Reason,
			r.MessageSentAt.UTC(), r.EvaluatedAt.UTC(), r.LatencySeconds, seq}
	case *vigil.Evaluation:
		tiers := make([]uint8, len(r.Tiers))
		for i, t := range r.Tiers {
			tiers[i] = uint8(t)
		}
		return []any{r.MessageID, r.Tenant, r.ConversationID, r.RulesetVersion, tiers, uint32(r.RulesEvaluated),
			uint32(r.Verdicts), r.DurationSeconds, r.EvaluatedAt.UTC(), r.StreamSequence, seq}
	case *vigil.AuditEvent:
		return []any{r.ID, r.Tenant, r.Actor, r.Action, r.Target, r.Reason, r.At.UTC(), nonNilMap(r.Details), seq}
	case backtestRow:
		spans, _ := json.Marshal(r.v.Spans)
		return []any{r.runID, r.v.RulesetVersion, r.v.ID, r.v.MessageID, r.v.Tenant, r.v.ConversationID, r.v.SenderID,
			r.v.RuleID, string(r.v.Severity), string(r.v.Action), uint8(r.v.Tier), nonNil(r.v.Tags), string(spans),
			r.v.Reason, r.v.MessageSentAt.UTC(), r.v.EvaluatedAt.UTC()}
	case *ReviewEvent:
		return []any{r.ID, r.AlertID, r.Tenant, r.Reviewer, r.At.UTC(), r.FromState, r.ToState, r.Disposition, r.Reason, seq}
	}
	panic(fmt.Sprintf("warehouse: no row mapping for %T", rec))
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// sleep waits d or until ctx is done; it reports whether d elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// SinkMetrics instruments a [Sink].
type SinkMetrics struct {
	rows           *prometheus.CounterVec
	batches        *prometheus.CounterVec
	insertErrors   *prometheus.CounterVec
	deadLetters    *prometheus.CounterVec
	insertDuration *prometheus.HistogramVec
}

// NewSinkMetrics builds sink metrics and registers them with reg when reg
// is not nil.
func NewSinkMetrics(reg prometheus.Registerer) *SinkMetrics {
	m := &SinkMetrics{
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_warehouse_sink_rows_total", Help: "Rows written to ClickHouse and acked, by stream.",
		}, []string{"stream"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_warehouse_sink_batches_total", Help: "Batches written to ClickHouse, by stream.",
		}, []string{"stream"}),
		insertErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_warehouse_sink_insert_errors_total", Help: "Failed INSERT attempts (retried), by stream.",
		}, []string{"stream"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_warehouse_sink_dead_letters_total", Help: "Undecodable records parked in DEADLETTER, by stream.",
		}, []string{"stream"}),
		insertDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "vigil_warehouse_sink_insert_duration_seconds", Help: "Duration of one INSERT attempt, by stream.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, []string{"stream"}),
	}
	if reg != nil {
		reg.MustRegister(m.rows, m.batches, m.insertErrors, m.deadLetters, m.insertDuration)
	}
	return m
}
