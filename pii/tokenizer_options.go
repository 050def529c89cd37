package pii

import (
	"fmt"
	"log/slog"
)

// DefaultCacheSize is how many (token, subject) pairs a tokenizer remembers
// as stored, so repeated values do not write the vault again.
const DefaultCacheSize = 100000

type options struct {
	policy    Policy
	tenants   map[string]Policy
	metrics   *Metrics
	logger    *slog.Logger
	cacheSize int
}

// Option configures a [Tokenizer].
type Option func(*options) error

// WithPolicy sets the policy of tenants without their own. It is validated
// by [NewTokenizer].
func WithPolicy(p Policy) Option {
	return func(o *options) error {
		if _, err := p.compile(); err != nil {
			return err
		}
		o.policy = p
		return nil
	}
}

// WithTenantPolicy sets the policy of one tenant.
func WithTenantPolicy(tenant string, p Policy) Option {
	return func(o *options) error {
		if tenant == "" {
			return fmt.Errorf("%w: empty tenant", ErrInvalidOption)
		}
		if _, err := p.compile(); err != nil {
			return fmt.Errorf("tenant %s: %w", tenant, err)
		}
		o.tenants[tenant] = p
		return nil
	}
}

// WithMetrics records tokenizer metrics in m (see [NewMetrics]).
func WithMetrics(m *Metrics) Option {
	return func(o *options) error {
		o.metrics = m
		return nil
	}
}

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		o.logger = l
		return nil
	}
}

// WithCacheSize sets how many stored (token, subject) pairs are remembered;
// 0 disables the cache (every value is written again). Default
// [DefaultCacheSize].
func WithCacheSize(n int) Option {
	return func(o *options) error {
		if n < 0 {
			return fmt.Errorf("%w: cache size %d < 0", ErrInvalidOption, n)
		}
		o.cacheSize = n
		return nil
	}
}
