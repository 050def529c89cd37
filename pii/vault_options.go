package pii

import (
	"fmt"
	"log/slog"
	"time"
)

// Vault defaults.
const (
	// DefaultKeyCacheSize is how many unwrapped subject keys (and shredded
	// subject markers) a vault keeps in memory.
	DefaultKeyCacheSize = 10000
	// DefaultVaultTimeout bounds vault calls whose ctx has no deadline.
	DefaultVaultTimeout = 5 * time.Second
)

type vaultOptions struct {
	auditor      Auditor
	deleter      SecureDeleter
	metrics      *Metrics
	logger       *slog.Logger
	keyCacheSize int
	timeout      time.Duration
}

// VaultOption configures a [Vault].
type VaultOption func(*vaultOptions) error

// WithAuditor sets where detokenization audit events go.
func WithAuditor(a Auditor) VaultOption {
	return func(o *vaultOptions) error {
		if a == nil {
			return fmt.Errorf("%w: nil auditor", ErrInvalidOption)
		}
		o.auditor = a
		return nil
	}
}

// WithSecureDeleter sets how [Vault.Shred] overwrites keys on disk.
func WithSecureDeleter(d SecureDeleter) VaultOption {
	return func(o *vaultOptions) error {
		if d == nil {
			return fmt.Errorf("%w: nil secure deleter", ErrInvalidOption)
		}
		o.deleter = d
		return nil
	}
}

// WithVaultMetrics records vault metrics in m (see [NewMetrics]).
func WithVaultMetrics(m *Metrics) VaultOption {
	return func(o *vaultOptions) error {
		o.metrics = m
		return nil
	}
}

// WithVaultLogger sets the logger; the default discards.
func WithVaultLogger(l *slog.Logger) VaultOption {
	return func(o *vaultOptions) error {
		o.logger = l
		return nil
	}
}

// WithKeyCacheSize sets how many unwrapped subject keys stay in memory
// (0 disables the cache). Default [DefaultKeyCacheSize].
func WithKeyCacheSize(n int) VaultOption {
	return func(o *vaultOptions) error {
		if n < 0 {
			return fmt.Errorf("%w: key cache size %d < 0", ErrInvalidOption, n)
		}
		o.keyCacheSize = n
		return nil
	}
}

// WithVaultTimeout bounds calls whose ctx has no deadline. Default
// [DefaultVaultTimeout].
func WithVaultTimeout(d time.Duration) VaultOption {
	return func(o *vaultOptions) error {
		if d <= 0 {
			return fmt.Errorf("%w: vault timeout %v <= 0", ErrInvalidOption, d)
		}
		o.timeout = d
		return nil
	}
}
