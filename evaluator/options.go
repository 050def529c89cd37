package evaluator

import (
	"fmt"
	"log/slog"
	"time"
)

// Evaluator defaults.
const (
	// DefaultDurable names the evaluator's partition consumers
	// (<durable>_p<partition>).
	DefaultDurable = "evaluator"
	// DefaultFetchBatch is how many messages one Fetch asks for.
	DefaultFetchBatch = 256
	// DefaultFetchWait bounds how long one Fetch waits for messages; it is
	// also how quickly Drain notices an idle partition.
	DefaultFetchWait = 250 * time.Millisecond
	// DefaultLanes is how many conversations of one partition are evaluated
	// concurrently (each conversation always on the same lane, in order).
	// Each lane evaluates what queued up on it as one batch, so few lanes
	// suffice; 8 partitions × 4 lanes also stay under nats-server's 50
	// atomic batches in flight per stream.
	DefaultLanes = 4
	// DefaultMessageTimeout bounds the tier-1 evaluation of one message,
	// window update and publication included.
	DefaultMessageTimeout = 5 * time.Second
	// DefaultMaxAttempts is how many times a failing message is evaluated
	// in place before it is dead-lettered.
	DefaultMaxAttempts = 3
	// DefaultMaxDeliver is the redelivery count at which a message that
	// still fails is dead-lettered, whatever its attempts; the bus
	// consumer's own MaxDeliver is used when it is set.
	DefaultMaxDeliver = 5
	// DefaultTier2Workers is the size of the tier-2 worker pool.
	DefaultTier2Workers = 4
	// DefaultTier2Timeout bounds the tier-2 work of one message. Keep it
	// below the consumer's AckWait: the message is acked after it.
	DefaultTier2Timeout = 10 * time.Second
)

// Option configures [New].
type Option func(*options) error

type options struct {
	durable      string
	partitions   []int
	fetchBatch   int
	lanes        int
	fetchWait    time.Duration
	msgTimeout   time.Duration
	maxAttempts  int
	windowN      int
	windowD      time.Duration
	windowCache  int
	classifier   *Classifier
	webhooks     *Webhooks
	tier2Workers int
	tier2Timeout time.Duration
	log          *slog.Logger
	metrics      *Metrics
	now          func() time.Time
}

func defaultOptions() options {
	return options{
		durable: DefaultDurable, fetchBatch: DefaultFetchBatch, lanes: DefaultLanes, fetchWait: DefaultFetchWait,
		msgTimeout: DefaultMessageTimeout, maxAttempts: DefaultMaxAttempts,
		windowN: DefaultWindowMessages, windowD: DefaultWindowDuration, windowCache: DefaultWindowCacheSize,
		tier2Workers: DefaultTier2Workers, tier2Timeout: DefaultTier2Timeout,
		log: slog.Default(), now: time.Now,
	}
}

// WithWindow keeps the last n messages of each conversation, no older than
// d, as context. Default DefaultWindowMessages, DefaultWindowDuration.
func WithWindow(n int, d time.Duration) Option {
	return func(o *options) error {
		if n <= 0 || d <= 0 {
			return fmt.Errorf("%w: window %d messages / %s must be positive", ErrInvalidOption, n, d)
		}
		o.windowN, o.windowD = n, d
		return nil
	}
}

// WithWindowCacheSize bounds how many conversations' windows are cached in
// memory. Default DefaultWindowCacheSize.
func WithWindowCacheSize(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("%w: window cache size %d must be positive", ErrInvalidOption, n)
		}
		o.windowCache = n
		return nil
	}
}

// WithDurable names the partition consumers. Default DefaultDurable.
func WithDurable(name string) Option {
	return func(o *options) error {
		if name == "" {
			return fmt.Errorf("%w: empty durable name", ErrInvalidOption)
		}
		o.durable = name
		return nil
	}
}

// WithPartitions makes the evaluator consume only these partitions, so
// replicas can split them. Default: every partition of the bus.
func WithPartitions(ps ...int) Option {
	return func(o *options) error {
		if len(ps) == 0 {
			return fmt.Errorf("%w: no partitions", ErrInvalidOption)
		}
		o.partitions = append([]int(nil), ps...)
		return nil
	}
}

// WithFetch sets how many messages one Fetch asks for and how long it
// waits. Defaults DefaultFetchBatch, DefaultFetchWait.
func WithFetch(batch int, wait time.Duration) Option {
	return func(o *options) error {
		if batch <= 0 || wait <= 0 {
			return fmt.Errorf("%w: fetch batch %d / wait %s must be positive", ErrInvalidOption, batch, wait)
		}
		o.fetchBatch, o.fetchWait = batch, wait
		return nil
	}
}

// WithLanes sets how many conversations of one partition are evaluated
// concurrently. A conversation always maps to the same lane, so its
// messages stay in order; a slow conversation delays only the others of
// its lane, each by at most the message timeout. Default DefaultLanes.
func WithLanes(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("%w: lanes %d must be positive", ErrInvalidOption, n)
		}
		o.lanes = n
		return nil
	}
}

// WithMessageTimeout bounds the evaluation of one message. Default
// DefaultMessageTimeout.
func WithMessageTimeout(d time.Duration) Option {
	return func(o *options) error {
		if d <= 0 {
			return fmt.Errorf("%w: message timeout %s must be positive", ErrInvalidOption, d)
		}
		o.msgTimeout = d
		return nil
	}
}

// WithMaxAttempts sets how many times a failing message is evaluated in
// place before it is dead-lettered. Default DefaultMaxAttempts.
func WithMaxAttempts(n int) Option {
	return func(o *options) error {
		if n <= 0 {
			return fmt.Errorf("%w: max attempts %d must be positive", ErrInvalidOption, n)
		}
		o.maxAttempts = n
		return nil
	}
}

// WithClassifier enables tier 2: a match of a tier-2 rule, or of a rule
// whose action is escalate_tier2, asks c with the rule's prompt and labels.
// A label other than "none" with enough confidence becomes a verdict with
// Tier 2 and the rule's action (flag for escalate_tier2 rules). Without a
// classifier, candidates are counted
// (vigil_evaluator_tier2_calls_total{result="unconfigured"}) and skipped.
func WithClassifier(c *Classifier) Option {
	return func(o *options) error {
		if c == nil {
			return fmt.Errorf("%w: nil classifier", ErrInvalidOption)
		}
		o.classifier = c
		return nil
	}
}

// WithTier2 sizes the tier-2 worker pool and bounds one message's tier-2
// work. The pool's queue holds 4×workers messages; when it is full, the lane
// that needs tier 2 waits (backpressure) while other lanes go on. Defaults
// DefaultTier2Workers, DefaultTier2Timeout.
func WithTier2(workers int, timeout time.Duration) Option {
	return func(o *options) error {
		if workers <= 0 || timeout <= 0 {
			return fmt.Errorf("%w: tier-2 workers %d / timeout %s must be positive", ErrInvalidOption, workers, timeout)
		}
		o.tier2Workers, o.tier2Timeout = workers, timeout
		return nil
	}
}

// WithWebhooks sends action verdicts to w. The evaluator owns w from then
// on: [Evaluator.Start] opens it and [Evaluator.Close] closes it.
func WithWebhooks(w *Webhooks) Option {
	return func(o *options) error {
		if w == nil {
			return fmt.Errorf("%w: nil webhooks", ErrInvalidOption)
		}
		o.webhooks = w
		return nil
	}
}

// WithLogger sets the logger. Default slog.Default().
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		o.log = l
		return nil
	}
}

// WithMetrics sets the metrics. Default unregistered metrics.
func WithMetrics(m *Metrics) Option {
	return func(o *options) error {
		if m == nil {
			return fmt.Errorf("%w: nil metrics", ErrInvalidOption)
		}
		o.metrics = m
		return nil
	}
}
