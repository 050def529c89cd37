package evaluator

import "time"

// Config is the serialisable part of the evaluator's configuration, for
// flags and config files. A zero field keeps its default; [Config.Options]
// turns the rest into options for [New]. Classifier, webhooks, logger and
// metrics are objects, passed as options.
type Config struct {
	// Durable names the partition consumers. Default DefaultDurable.
	Durable string `yaml:"durable"`
	// Partitions this evaluator consumes. Default: all of the bus's.
	Partitions []int `yaml:"partitions"`
	// WindowMessages and WindowDuration bound each conversation's context.
	// Defaults DefaultWindowMessages, DefaultWindowDuration. WindowMessages
	// is at most bus.ContextHistory-1 (255): the context bucket keeps that
	// many revisions per conversation.
	WindowMessages int           `yaml:"window_messages"`
	WindowDuration time.Duration `yaml:"window_duration"`
	// WindowCacheSize bounds the in-memory window cache. Default
	// DefaultWindowCacheSize.
	WindowCacheSize int `yaml:"window_cache_size"`
	// Lanes per partition. Default DefaultLanes.
	Lanes int `yaml:"lanes"`
	// FetchBatch and FetchWait size one Fetch. Defaults DefaultFetchBatch,
	// DefaultFetchWait.
	FetchBatch int           `yaml:"fetch_batch"`
	FetchWait  time.Duration `yaml:"fetch_wait"`
	// MessageTimeout bounds one message's evaluation. Default
	// DefaultMessageTimeout.
	MessageTimeout time.Duration `yaml:"message_timeout"`
	// MaxAttempts before a failing message is dead-lettered. Default
	// DefaultMaxAttempts.
	MaxAttempts int `yaml:"max_attempts"`
	// Tier2Workers and Tier2Timeout size the tier-2 pool. Defaults
	// DefaultTier2Workers, DefaultTier2Timeout.
	Tier2Workers int           `yaml:"tier2_workers"`
	Tier2Timeout time.Duration `yaml:"tier2_timeout"`
}

// Options returns the options that apply c's non-zero fields. Invalid
// values (negative sizes) are reported by [New] as ErrInvalidOption.
func (c Config) Options() []Option {
	var opts []Option
	if c.Durable != "" {
		opts = append(opts, WithDurable(c.Durable))
	}
	if len(c.Partitions) > 0 {
		opts = append(opts, WithPartitions(c.Partitions...))
	}
	if c.WindowMessages != 0 || c.WindowDuration != 0 {
		n, d := c.WindowMessages, c.WindowDuration
		if n == 0 {
			n = DefaultWindowMessages
		}
		if d == 0 {
			d = DefaultWindowDuration
		}
		opts = append(opts, WithWindow(n, d))
	}
	if c.WindowCacheSize != 0 {
		opts = append(opts, WithWindowCacheSize(c.WindowCacheSize))
	}
	if c.Lanes != 0 {
		opts = append(opts, WithLanes(c.Lanes))
	}
	if c.FetchBatch != 0 || c.FetchWait != 0 {
		b, w := c.FetchBatch, c.FetchWait
		if b == 0 {
			b = DefaultFetchBatch
		}
		if w == 0 {
			w = DefaultFetchWait
		}
		opts = append(opts, WithFetch(b, w))
	}
	if c.MessageTimeout != 0 {
		opts = append(opts, WithMessageTimeout(c.MessageTimeout))
	}
	if c.MaxAttempts != 0 {
		opts = append(opts, WithMaxAttempts(c.MaxAttempts))
	}
	if c.Tier2Workers != 0 || c.Tier2Timeout != 0 {
		w, d := c.Tier2Workers, c.Tier2Timeout
		if w == 0 {
			w = DefaultTier2Workers
		}
		if d == 0 {
			d = DefaultTier2Timeout
		}
		opts = append(opts, WithTier2(w, d))
	}
	return opts
}
