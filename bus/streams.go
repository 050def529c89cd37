package bus

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream names. Every stream Vigil uses is defined in this file.
const (
	// StreamMessages is the tokenized message archive and the source of
	// truth: subjects msg.<partition>.<tenant>.<conversation>.
	StreamMessages = "MESSAGES"
	// StreamVerdicts holds every verdict: vrd.<tenant>.<conversation>.
	StreamVerdicts = "VERDICTS"
	// StreamActions holds the actions pushed to chat platforms:
	// act.<tenant>.<conversation>.
	StreamActions = "ACTIONS"
	// StreamEvaluations records that a ruleset evaluated a message:
	// eval.<tenant>.<conversation>.
	StreamEvaluations = "EVALUATIONS"
	// StreamAudit is the append-only audit log: audit.<tenant>.
	StreamAudit = "AUDIT"
	// StreamDeadLetter records messages a consumer gave up on: dlq.<stream>.
	StreamDeadLetter = "DEADLETTER"
)

// KV bucket names.
const (
	// BucketContext holds the per-conversation context window (one writer
	// per conversation: the partition owner).
	BucketContext = "vigil_context"
	// BucketVault holds the encrypted PII vault. Keys are written once;
	// [Bus.SecureDeleteKey] overwrites every revision on disk.
	BucketVault = "vigil_vault"
	// BucketRules holds rulesets distributed over NATS.
	BucketRules = "vigil_rules"
)

// Defaults for [Config].
const (
	// DefaultReplicas is the replica count of streams and buckets: 1 for
	// the embedded server; production clusters use 3.
	DefaultReplicas = 1
	// DefaultPartitions is the number of MESSAGES partitions.
	DefaultPartitions = 8
	// DefaultDuplicateWindow is the Nats-Msg-Id deduplication window. The
	// server keeps every id of the window in memory (~100 B each), so at
	// 5k msgs/s five minutes cost ~150 MB.
	DefaultDuplicateWindow = 5 * time.Minute
	// DefaultMaxMessagesBytes bounds MESSAGES; 0 leaves it bounded only by
	// the server's JetStream storage limit. When the bound is hit new
	// messages are refused ([ErrStreamFull]) and old ones are kept.
	DefaultMaxMessagesBytes int64 = 0
	// DefaultMessagesMaxAge is the maximum age of MESSAGES: 0, kept until
	// retention deletes them explicitly.
	DefaultMessagesMaxAge time.Duration = 0
	// DefaultActionsMaxAge bounds ACTIONS, which only relay verdicts.
	DefaultActionsMaxAge = 7 * 24 * time.Hour
	// DefaultAckWait is how long a consumer has to ack before redelivery.
	DefaultAckWait = 30 * time.Second
	// DefaultMaxDeliver is how often a message may be delivered to a
	// partition consumer before the evaluator stops retrying it in place
	// and dead-letters a failure. The server-side consumer itself retries
	// forever, so nothing is ever dropped without a dead-letter record.
	DefaultMaxDeliver = 5
	// DefaultMaxAckPending bounds unacked messages per partition consumer.
	DefaultMaxAckPending = 1000
	// DefaultSinkMaxAckPending bounds unacked messages per sink consumer,
	// large enough for one warehouse batch.
	DefaultSinkMaxAckPending = 20000
	// DefaultPublishTimeout bounds one publish when ctx has no deadline.
	DefaultPublishTimeout = 5 * time.Second
	// DefaultMinAtomicBatch is Config.MinAtomicBatch's default on one
	// replica: measured with vigil bench under sync_interval always, lane
	// batches of 2–5 records cost more as atomic batches than as fsynced
	// publishes (bench/results/e2e.md).
	DefaultMinAtomicBatch = 32
	// DefaultAsyncMaxPending bounds in-flight asynchronous publishes
	// (batches) on a Bus.
	DefaultAsyncMaxPending = 4096
	// DefaultVaultHistory keeps every revision of a vault key so that
	// SecureDeleteKey can find and overwrite all of them (a revision pushed
	// out by the history limit would stay on disk until compaction).
	DefaultVaultHistory = 64
	// ContextHistory is how many entries of one conversation the context
	// bucket keeps: each message appends one small entry to its
	// conversation's key (see [ContextStreamConfig]), so a context window
	// holds at most ContextHistory-1 previous messages.
	ContextHistory = 256
	// DefaultRulesHistory keeps a few previous rulesets for rollback.
	DefaultRulesHistory = 10
)

// Config sizes the streams, buckets and consumers. The zero value of a
// field selects its Default* constant.
type Config struct {
	// Replicas of every stream and bucket. Default [DefaultReplicas].
	Replicas int
	// Partitions of MESSAGES. Changing it re-maps only new messages: drain
	// the partition consumers before changing it. Default [DefaultPartitions].
	Partitions int
	// DuplicateWindow of every stream. Default [DefaultDuplicateWindow].
	DuplicateWindow time.Duration
	// MaxMessagesBytes bounds MESSAGES (discard new); 0 or negative is
	// unbounded. Default [DefaultMaxMessagesBytes].
	MaxMessagesBytes int64
	// MessagesMaxAge bounds the age of MESSAGES; 0 keeps them forever.
	MessagesMaxAge time.Duration
	// ActionsMaxAge bounds ACTIONS. Default [DefaultActionsMaxAge].
	ActionsMaxAge time.Duration
	// AckWait of partition and sink consumers. Default [DefaultAckWait].
	AckWait time.Duration
	// MaxDeliver of partition consumers. Default [DefaultMaxDeliver].
	MaxDeliver int
	// MaxAckPending of partition consumers. Default [DefaultMaxAckPending].
	MaxAckPending int
	// SinkMaxAckPending of sink consumers. Default [DefaultSinkMaxAckPending].
	SinkMaxAckPending int
	// PublishTimeout bounds a publish whose ctx has no deadline.
	// Default [DefaultPublishTimeout].
	PublishTimeout time.Duration
	// AsyncMaxPending bounds in-flight asynchronous publishes.
	// Default [DefaultAsyncMaxPending].
	AsyncMaxPending int
	// Memory stores everything in memory instead of files (tests and
	// benchmarks only: nothing survives a restart).
	Memory bool
	// NoAtomicBatches publishes [Bus.PublishMessages] batches message by
	// message instead of as atomic batches. Atomic batches are staged to
	// disk and then committed, so on a server that fsyncs on an interval
	// (EmbeddedConfig.SyncInterval > 0) they cost ~25–45 % of ingest
	// throughput; under SyncAlways they are 10–30× faster (one fsync per
	// batch). Set it for interval-synced servers and servers older than
	// 2.12. See bench/results/ingest.md.
	NoAtomicBatches bool
	// MinAtomicBatch is the smallest batch published atomically; smaller
	// ones are pipelined asynchronous publishes. A single-node file stream
	// stages every atomic batch in a file store of its own (create, write
	// metadata with fsync, remove), which costs more CPU than a handful of
	// fsynced publishes; replicated streams stage in memory. Default
	// [DefaultMinAtomicBatch] on one replica, 2 on more.
	MinAtomicBatch int
}

// withDefaults fills zero fields and validates the rest.
func (c Config) withDefaults() (Config, error) {
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.Partitions == 0 {
		c.Partitions = DefaultPartitions
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.ActionsMaxAge == 0 {
		c.ActionsMaxAge = DefaultActionsMaxAge
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = DefaultMaxAckPending
	}
	if c.SinkMaxAckPending == 0 {
		c.SinkMaxAckPending = DefaultSinkMaxAckPending
	}
	if c.PublishTimeout == 0 {
		c.PublishTimeout = DefaultPublishTimeout
	}
	if c.MinAtomicBatch == 0 {
		c.MinAtomicBatch = DefaultMinAtomicBatch
		if c.Replicas > 1 {
			c.MinAtomicBatch = 2
		}
	}
	if c.MinAtomicBatch < 2 {
		return c, fmt.Errorf("%w: min atomic batch %d must be at least 2", ErrInvalidConfig, c.MinAtomicBatch)
	}
	if c.AsyncMaxPending == 0 {
		c.AsyncMaxPending = DefaultAsyncMaxPending
	}
	if c.MaxMessagesBytes <= 0 {
		c.MaxMessagesBytes = -1
	}
	switch {
	case c.Replicas < 1 || c.Replicas > 5:
		return c, fmt.Errorf("%w: replicas must be 1..5 (got %d)", ErrInvalidConfig, c.Replicas)
	case c.Partitions < 1 || c.Partitions > 1024:
		return c, fmt.Errorf("%w: partitions must be 1..1024 (got %d)", ErrInvalidConfig, c.Partitions)
	case c.DuplicateWindow < 0, c.MessagesMaxAge < 0, c.ActionsMaxAge < 0, c.AckWait < 0, c.PublishTimeout < 0:
		return c, fmt.Errorf("%w: durations must not be negative", ErrInvalidConfig)
	case c.MaxAckPending < 0 || c.SinkMaxAckPending < 0 || c.AsyncMaxPending < 0:
		return c, fmt.Errorf("%w: pending bounds must not be negative", ErrInvalidConfig)
	case c.MessagesMaxAge > 0 && c.DuplicateWindow > c.MessagesMaxAge:
		return c, fmt.Errorf("%w: duplicate window longer than messages max age", ErrInvalidConfig)
	}
	return c, nil
}

func (c Config) storage() jetstream.StorageType {
	if c.Memory {
		return jetstream.MemoryStorage
	}
	return jetstream.FileStorage
}

// StreamConfigs returns the configuration of every Vigil stream for cfg,
// as [Open] applies it with CreateOrUpdateStream.
//
// Durability choices (DESIGN.md): every archive stream discards new
// messages when full, so a full stream refuses writes ([ErrStreamFull],
// HTTP 503) and never drops old records. MESSAGES, VERDICTS and
// EVALUATIONS deny purge; AUDIT also denies delete (append-only). MESSAGES
// must allow single-message delete because GDPR erasure removes messages
// with SecureDeleteMsg ([Bus.EraseMessages]) and nats-server cannot lift
// DenyDelete once set; restrict $JS.API.STREAM.MSG.DELETE.MESSAGES to the
// retention identity with NATS permissions in production.
func StreamConfigs(cfg Config) []jetstream.StreamConfig {
	st := cfg.storage()
	return []jetstream.StreamConfig{
		{
			Name:        StreamMessages,
			Description: "Vigil tokenized message archive, partitioned by conversation",
			Subjects:    []string{subjMessagesPrefix + ".*.*"},
			SubjectTransform: &jetstream.SubjectTransformConfig{
				Source:      subjMessagesPrefix + ".*.*",
				Destination: fmt.Sprintf("%s.{{partition(%d,1,2)}}.{{wildcard(1)}}.{{wildcard(2)}}", subjMessagesPrefix, cfg.Partitions),
			},
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardNew,
			MaxBytes:    cfg.MaxMessagesBytes,
			MaxMsgs:     -1,
			MaxAge:      cfg.MessagesMaxAge,
			Storage:     st,
			Replicas:    cfg.Replicas,
			Duplicates:  cfg.DuplicateWindow,
			DenyPurge:   true,
			AllowDirect: true,
			// Atomic batches give group commit under SyncAlways and
			// all-or-nothing batches; see atomic.go.
			AllowAtomicPublish: true,
		},
		{
			Name:               StreamVerdicts,
			Description:        "Vigil verdicts",
			Subjects:           []string{subjVerdictsPrefix + ".*.*"},
			Retention:          jetstream.LimitsPolicy,
			Discard:            jetstream.DiscardNew,
			MaxBytes:           -1,
			MaxMsgs:            -1,
			Storage:            st,
			Replicas:           cfg.Replicas,
			Duplicates:         cfg.DuplicateWindow,
			DenyPurge:          true,
			AllowAtomicPublish: true,
		},
		{
			Name:               StreamActions,
			Description:        "Vigil actions for chat platforms (relay of verdicts)",
			Subjects:           []string{subjActionsPrefix + ".*.*"},
			Retention:          jetstream.LimitsPolicy,
			Discard:            jetstream.DiscardOld,
			MaxBytes:           -1,
			MaxMsgs:            -1,
			MaxAge:             cfg.ActionsMaxAge,
			Storage:            st,
			Replicas:           cfg.Replicas,
			Duplicates:         min(cfg.DuplicateWindow, cfg.ActionsMaxAge),
			AllowAtomicPublish: true,
		},
		{
			Name:               StreamEvaluations,
			Description:        "Vigil evaluation records (coverage)",
			Subjects:           []string{subjEvaluationsPrefix + ".*.*"},
			Retention:          jetstream.LimitsPolicy,
			Discard:            jetstream.DiscardNew,
			MaxBytes:           -1,
			MaxMsgs:            -1,
			Storage:            st,
			Replicas:           cfg.Replicas,
			Duplicates:         cfg.DuplicateWindow,
			DenyPurge:          true,
			AllowAtomicPublish: true,
		},
		{
			Name:        StreamAudit,
			Description: "Vigil append-only audit log",
			Subjects:    []string{subjAuditPrefix + ".*"},
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardNew,
			MaxBytes:    -1,
			MaxMsgs:     -1,
			Storage:     st,
			Replicas:    cfg.Replicas,
			Duplicates:  cfg.DuplicateWindow,
			DenyDelete:  true,
			DenyPurge:   true,
		},
		{
			Name:        StreamDeadLetter,
			Description: "Vigil dead letters: stream sequences a consumer gave up on",
			Subjects:    []string{subjDeadLetterPrefix + ".*"},
			Retention:   jetstream.LimitsPolicy,
			Discard:     jetstream.DiscardNew,
			MaxBytes:    -1,
			MaxMsgs:     -1,
			Storage:     st,
			Replicas:    cfg.Replicas,
			Duplicates:  cfg.DuplicateWindow,
		},
		ReviewStreamConfig(cfg),
	}
}

// KeyValueConfigs returns the configuration of the KV buckets created with
// CreateOrUpdateKeyValue. The vault and context buckets are created from
// [VaultStreamConfig] and [ContextStreamConfig] instead.
func KeyValueConfigs(cfg Config) []jetstream.KeyValueConfig {
	st := cfg.storage()
	return []jetstream.KeyValueConfig{
		{
			Bucket:      BucketRules,
			Description: "Vigil rulesets",
			History:     DefaultRulesHistory,
			Storage:     st,
			Replicas:    cfg.Replicas,
		},
		AlertsKeyValueConfig(cfg),
	}
}

// ContextStreamConfig returns the stream behind the context bucket
// ([BucketContext]). It is a KV bucket (see [kvStreamConfig]) whose history
// is not capped at nats.go's 64 and that takes atomic batches: each
// revision of a conversation's key holds only new entries instead of the
// whole window, the key's history is the window, and an evaluator writes a
// batch's revisions with one commit ([Bus.AppendContext]).
func ContextStreamConfig(cfg Config) jetstream.StreamConfig {
	sc := kvStreamConfig(cfg, BucketContext, "Vigil per-conversation context windows", ContextHistory)
	sc.DenyDelete = true
	sc.AllowAtomicPublish = true
	return sc
}

// VaultStreamConfig returns the stream behind the vault bucket
// ([BucketVault]). It is a KV bucket in every respect (see
// [kvStreamConfig]) except that it allows message delete: the jetstream KV
// API always sets DenyDelete, which nats-server never lets an update lift,
// and [Bus.SecureDeleteKey] needs SecureDeleteMsg on the backing stream to
// overwrite a shredded key on disk.
func VaultStreamConfig(cfg Config) jetstream.StreamConfig {
	return kvStreamConfig(cfg, BucketVault, "Vigil PII vault (encrypted values, secure delete)", DefaultVaultHistory)
}

// kvStreamConfig is the stream nats.go's CreateKeyValue builds for bucket
// (KV_<bucket>, $KV.<bucket>.>, rollup, direct get, discard new, history
// as the per-subject limit), without DenyDelete.
func kvStreamConfig(cfg Config, bucket, description string, history int64) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name:              "KV_" + bucket,
		Description:       description,
		Subjects:          []string{"$KV." + bucket + ".>"},
		MaxMsgsPerSubject: history,
		MaxBytes:          -1,
		MaxMsgSize:        -1,
		MaxMsgs:           -1,
		MaxConsumers:      -1,
		Storage:           cfg.storage(),
		Replicas:          cfg.Replicas,
		AllowRollup:       true,
		AllowDirect:       true,
		Discard:           jetstream.DiscardNew,
		Duplicates:        2 * time.Minute,
	}
}

// partitionConsumerConfig is the durable pull consumer of one partition.
func partitionConsumerConfig(cfg Config, durable string, partition int) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       PartitionConsumerName(durable, partition),
		Description:   fmt.Sprintf("Vigil %s, MESSAGES partition %d", durable, partition),
		FilterSubject: PartitionFilter(partition),
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		// The server never gives up on a message: at MaxDeliver it would
		// drop it silently (no dead letter), which the kill -9 fault suite
		// saw happen to messages redelivered by AckWait while queued in a
		// backlogged evaluator. The evaluator applies Config.MaxDeliver
		// itself and dead-letters with a reason.
		MaxDeliver:    -1,
		MaxAckPending: cfg.MaxAckPending,
		Replicas:      cfg.Replicas,
		// One conversation must be evaluated in order by one process, yet
		// every `vigil serve` replica pulls from every partition. A pinned
		// priority group lets exactly one client receive a partition's
		// messages; another takes over only after the pinned one stopped
		// pulling for PinnedTTL. Pull with FetchPriorityGroup(PartitionPriorityGroup).
		PriorityPolicy: jetstream.PriorityPolicyPinned,
		PriorityGroups: []string{PartitionPriorityGroup},
		PinnedTTL:      DefaultPinnedTTL,
	}
}

// PartitionPriorityGroup is the priority group partition consumers are
// pulled with: jetstream.FetchPriorityGroup(PartitionPriorityGroup).
const PartitionPriorityGroup = "evaluators"

// DefaultPinnedTTL is how long a partition stays pinned to a replica that
// stopped pulling (crashed) before another replica takes it over.
const DefaultPinnedTTL = 15 * time.Second

// sinkConsumerConfig is the durable pull consumer of a warehouse sink. A
// sink never gives up on a message (MaxDeliver -1): the warehouse being
// down must delay rows, not lose them. Acks are explicit, per message:
// cumulative acks (AckAll) would let a restarted sink acknowledge the
// messages a crashed one had fetched but never written (the fault suite
// caught exactly that), because newer messages are delivered before the
// crashed batch is redelivered.
func sinkConsumerConfig(cfg Config, durable string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       durable,
		Description:   "Vigil sink " + durable,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: cfg.SinkMaxAckPending,
		Replicas:      cfg.Replicas,
	}
}

// PartitionConsumerName is the durable name of partition p of the logical
// consumer durable: <durable>_p<p>.
func PartitionConsumerName(durable string, partition int) string {
	return fmt.Sprintf("%s_p%d", durable, partition)
}
