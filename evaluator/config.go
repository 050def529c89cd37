package evaluator

import (
	"cmp"
	"time"
)

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
		opts = append(opts, WithWindow(cmp.Or(c.WindowMessages, DefaultWindowMessages), cmp.Or(c.WindowDuration, DefaultWindowDuration)))
	}
	if c.WindowCacheSize != 0 {
		opts = append(opts, WithWindowCacheSize(c.WindowCacheSize))
	}
	if c.Lanes != 0 {
		opts = append(opts, WithLanes(c.Lanes))
	}
	if c.FetchBatch != 0 || c.FetchWait != 0 {
		opts = append(opts, WithFetch(cmp.Or(c.FetchBatch, DefaultFetchBatch), cmp.Or(c.FetchWait, DefaultFetchWait)))
	}
	if c.MessageTimeout != 0 {
		opts = append(opts, WithMessageTimeout(c.MessageTimeout))
	}
	if c.MaxAttempts != 0 {
		opts = append(opts, WithMaxAttempts(c.MaxAttempts))
	}
	if c.Tier2Workers != 0 || c.Tier2Timeout != 0 {
		opts = append(opts, WithTier2(cmp.Or(c.Tier2Workers, DefaultTier2Workers), cmp.Or(c.Tier2Timeout, DefaultTier2Timeout)))
	}
	return opts
}
