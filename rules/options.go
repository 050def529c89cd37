package rules

import "fmt"

// Defaults of the options.
const (
	// DefaultMaxEstimatedCost is the highest worst-case cost, as estimated
	// by the CEL checker, that a rule may have at load.
	DefaultMaxEstimatedCost = 5_000_000
	// DefaultCostLimit stops one rule evaluation that exceeds this actual
	// cost at run time.
	DefaultCostLimit = 5_000_000
	// DefaultInterruptCheckFrequency is how many comprehension iterations
	// run between checks of the context's cancellation.
	DefaultInterruptCheckFrequency = 100
)

// Option configures [Load], [LoadDir], [LoadFiles] and [Compile].
type Option func(*options) error

type options struct {
	maxEstimatedCost uint64
	costLimit        uint64
	interruptFreq    uint
	maxErrors        int
}

func defaultOptions() options {
	return options{
		maxEstimatedCost: DefaultMaxEstimatedCost,
		costLimit:        DefaultCostLimit,
		interruptFreq:    DefaultInterruptCheckFrequency,
		maxErrors:        DefaultMaxErrors,
	}
}

// WithMaxEstimatedCost rejects at load every rule whose estimated
// worst-case cost exceeds n. Default: [DefaultMaxEstimatedCost].
func WithMaxEstimatedCost(n uint64) Option {
	return func(o *options) error {
		if n == 0 {
			return fmt.Errorf("%w: max estimated cost must be positive", ErrInvalidOption)
		}
		o.maxEstimatedCost = n
		return nil
	}
}

// WithCostLimit stops a rule evaluation whose actual cost exceeds n.
// Default: [DefaultCostLimit].
func WithCostLimit(n uint64) Option {
	return func(o *options) error {
		if n == 0 {
			return fmt.Errorf("%w: cost limit must be positive", ErrInvalidOption)
		}
		o.costLimit = n
		return nil
	}
}

// WithMaxErrors caps how many problems a rejected ruleset reports.
// Default: [DefaultMaxErrors].
func WithMaxErrors(n int) Option {
	return func(o *options) error {
		if n < 1 {
			return fmt.Errorf("%w: max errors must be at least 1", ErrInvalidOption)
		}
		o.maxErrors = n
		return nil
	}
}
