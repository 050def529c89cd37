// Package bus owns Vigil's event log: the embedded NATS JetStream server and
// every stream, subject, KV bucket and consumer definition. Ingest publishes
// tokenized messages into MESSAGES through it; the evaluator consumes one
// partition per consumer and publishes verdicts, actions and evaluations;
// the warehouse sink consumes the streams into ClickHouse; pii keeps its
// vault in a bucket opened here. Other packages receive jetstream handles
// from a [Bus] and never name a stream, subject or bucket themselves.
//
// Flow: ingest → pii → bus → evaluator → warehouse.
//
// [Open] applies the configuration with CreateOrUpdate calls, so start-up is
// idempotent and a changed [Config] is rolled out by restarting.
package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors returned by the bus. Publish errors keep the underlying jetstream
// error, so errors.As(err, **jetstream.APIError) still works.
var (
	// ErrInvalidConfig is returned by [Open] for an invalid [Config].
	ErrInvalidConfig = errors.New("bus: invalid config")
	// ErrInvalidOption is returned by [Open] for an invalid [Option].
	ErrInvalidOption = errors.New("bus: invalid option")
	// ErrStreamFull is returned when a stream refuses a message because it
	// reached its limits (discard new) or the server is out of storage.
	// Nothing was stored; the caller should answer 503 and retry later.
	ErrStreamFull = errors.New("bus: stream full")
	// ErrBusy is returned when the window of asynchronous publishes
	// (Config.AsyncMaxPending) stayed full until the publish deadline.
	// That message was not sent; answer 429 and retry later.
	ErrBusy = errors.New("bus: too many publishes in flight")
	// ErrPublishTimeout is returned when no PubAck arrived in time. The
	// message may or may not be stored; retrying with the same id is safe
	// inside the duplicate window.
	ErrPublishTimeout = errors.New("bus: publish timed out")
	// ErrUnavailable is returned when no JetStream server answered (no
	// responders, disconnected).
	ErrUnavailable = errors.New("bus: jetstream unavailable")
	// ErrInvalidRecord is returned for a record whose ids fail
	// vigil.ValidateID; it also wraps vigil.ErrInvalidID.
	ErrInvalidRecord = errors.New("bus: invalid record")
	// ErrUnknownStream is returned by [Bus.SinkConsumer] for a stream that
	// is not a Vigil stream.
	ErrUnknownStream = errors.New("bus: unknown stream")
)

// Bus is a connection to Vigil's streams and buckets. It is safe for
// concurrent use. It does not own the *nats.Conn: close that yourself.
type Bus struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	cfg     Config
	log     *slog.Logger
	metrics *Metrics

	messages jetstream.Stream

	contextKV jetstream.KeyValue
	vaultKV   jetstream.KeyValue
	rulesKV   jetstream.KeyValue
}

// Option configures [Open].
type Option func(*options) error

type options struct {
	log     *slog.Logger
	metrics *Metrics
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		o.log = l
		return nil
	}
}

// WithMetrics records publish metrics in m (see [NewMetrics]).
func WithMetrics(m *Metrics) Option {
	return func(o *options) error {
		if m == nil {
			return fmt.Errorf("%w: nil metrics", ErrInvalidOption)
		}
		o.metrics = m
		return nil
	}
}

// Open ensures every stream and KV bucket of cfg exists with its current
// configuration (CreateOrUpdate: calling Open again is harmless) and returns
// a Bus over nc. If ctx has no deadline, each JetStream API call gets
// cfg.PublishTimeout.
//
// Available options:
//   - [WithLogger]
//   - [WithMetrics]
//
// An invalid cfg returns [ErrInvalidConfig]; a server that rejects a stream
// definition returns its jetstream error wrapped with the stream name.
func Open(ctx context.Context, nc *nats.Conn, cfg Config, opts ...Option) (*Bus, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: nil connection", ErrInvalidOption)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	o := options{log: slog.Default()}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.metrics == nil {
		// Unregistered metrics keep the publish path free of nil checks.
		o.metrics = NewMetrics(nil)
	}
	js, err := jetstream.New(nc,
		jetstream.WithPublishAsyncMaxPending(cfg.AsyncMaxPending),
		jetstream.WithPublishAsyncTimeout(cfg.PublishTimeout),
		jetstream.WithDefaultTimeout(cfg.PublishTimeout),
	)
	if err != nil {
		return nil, fmt.Errorf("open jetstream: %w", err)
	}
	b := &Bus{nc: nc, js: js, cfg: cfg, log: o.log.With("component", "bus"), metrics: o.metrics}
	for _, sc := range StreamConfigs(cfg) {
		st, err := js.CreateOrUpdateStream(ctx, sc)
		if err != nil {
			return nil, fmt.Errorf("create or update stream %s: %w", sc.Name, err)
		}
		if sc.Name == StreamMessages {
			b.messages = st
		}
	}
	vsc := VaultStreamConfig(cfg)
	if _, err := js.CreateOrUpdateStream(ctx, vsc); err != nil {
		return nil, fmt.Errorf("create or update bucket %s: %w", BucketVault, err)
	}
	if b.vaultKV, err = js.KeyValue(ctx, BucketVault); err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", BucketVault, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, ContextStreamConfig(cfg)); err != nil {
		return nil, fmt.Errorf("create or update bucket %s: %w", BucketContext, err)
	}
	if b.contextKV, err = js.KeyValue(ctx, BucketContext); err != nil {
		return nil, fmt.Errorf("open bucket %s: %w", BucketContext, err)
	}
	for _, kc := range KeyValueConfigs(cfg) {
		kv, err := js.CreateOrUpdateKeyValue(ctx, kc)
		if err != nil {
			return nil, fmt.Errorf("create or update bucket %s: %w", kc.Bucket, err)
		}
		switch kc.Bucket {
		case BucketRules:
			b.rulesKV = kv
		}
	}
	return b, nil
}

// Conn returns the NATS connection the Bus uses.
func (b *Bus) Conn() *nats.Conn { return b.nc }

// JetStream returns the JetStream context the Bus uses.
func (b *Bus) JetStream() jetstream.JetStream { return b.js }

// Config returns the effective configuration (defaults filled in).
func (b *Bus) Config() Config { return b.cfg }

// Partitions returns the number of MESSAGES partitions.
func (b *Bus) Partitions() int { return b.cfg.Partitions }

// ContextKV returns the conversation context bucket ([BucketContext]).
func (b *Bus) ContextKV() jetstream.KeyValue { return b.contextKV }

// VaultKV returns the PII vault bucket ([BucketVault]).
func (b *Bus) VaultKV() jetstream.KeyValue { return b.vaultKV }

// RulesKV returns the rules bucket ([BucketRules]).
func (b *Bus) RulesKV() jetstream.KeyValue { return b.rulesKV }

// ActionSubject returns [ActionSubject] of the conversation, for WebSocket
// sessions to subscribe to with core NATS.
func (b *Bus) ActionSubject(tenant, conversation string) string {
	return ActionSubject(tenant, conversation)
}

// MessageConsumer creates or updates the durable pull consumer of one
// MESSAGES partition (named [PartitionConsumerName](durable, partition)),
// filtered to that partition, with explicit acks and the configured
// AckWait, MaxDeliver and MaxAckPending. Consumers of distinct partitions
// never see the same conversation.
func (b *Bus) MessageConsumer(ctx context.Context, durable string, partition int) (jetstream.Consumer, error) {
	if partition < 0 || partition >= b.cfg.Partitions {
		return nil, fmt.Errorf("%w: partition %d outside 0..%d", ErrInvalidOption, partition, b.cfg.Partitions-1)
	}
	if err := validDurable(durable); err != nil {
		return nil, err
	}
	c, err := b.js.CreateOrUpdateConsumer(ctx, StreamMessages, partitionConsumerConfig(b.cfg, durable, partition))
	if err != nil {
		return nil, fmt.Errorf("create consumer %s: %w", PartitionConsumerName(durable, partition), err)
	}
	return c, nil
}

// SinkConsumer creates or updates a durable pull consumer over a whole
// Vigil stream for a warehouse sink: explicit acks, unlimited redelivery,
// SinkMaxAckPending unacked messages. An unknown stream returns
// [ErrUnknownStream].
func (b *Bus) SinkConsumer(ctx context.Context, stream, durable string) (jetstream.Consumer, error) {
	if !isVigilStream(stream) {
		return nil, fmt.Errorf("%w: %q", ErrUnknownStream, stream)
	}
	if err := validDurable(durable); err != nil {
		return nil, err
	}
	c, err := b.js.CreateOrUpdateConsumer(ctx, stream, sinkConsumerConfig(b.cfg, durable))
	if err != nil {
		return nil, fmt.Errorf("create consumer %s on %s: %w", durable, stream, err)
	}
	return c, nil
}

func isVigilStream(name string) bool {
	switch name {
	case StreamMessages, StreamVerdicts, StreamActions, StreamEvaluations, StreamAudit, StreamDeadLetter, StreamReview:
		return true
	}
	return false
}

func validDurable(d string) error {
	if d == "" || len(d) > 64 {
		return fmt.Errorf("%w: durable name must be 1..64 characters", ErrInvalidOption)
	}
	for _, r := range d {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return fmt.Errorf("%w: durable name may contain only letters, digits, '-' and '_'", ErrInvalidOption)
		}
	}
	return nil
}

// withTimeout applies the default publish timeout to a ctx without deadline.
func (b *Bus) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, b.cfg.PublishTimeout)
}

// since is time.Since in seconds, for histograms.
func since(t time.Time) float64 { return time.Since(t).Seconds() }
