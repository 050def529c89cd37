package review

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/vigilhq/vigil/review/workflow"
)

// Defaults for [Config].
const (
	// DefaultDurable is the durable consumer of VERDICTS.
	DefaultDurable = "review"
	// DefaultAggregationWindow folds the verdicts of one rule on one
	// conversation within a window of this length into one alert.
	DefaultAggregationWindow = time.Hour
	// DefaultDetokenizePerMinute bounds detokenize requests per reviewer.
	DefaultDetokenizePerMinute = 10
	// DefaultDetokenizeBurst is the burst of the per-reviewer limiter.
	DefaultDetokenizeBurst = 3
	// DefaultContextMessages is how many messages before and after the
	// flagged one the alert page shows.
	DefaultContextMessages = 10
	// DefaultMaxConversationScan bounds the messages read from MESSAGES to
	// find a flagged message's context.
	DefaultMaxConversationScan = 5000
	// DefaultSweepInterval is how often events left pending by a failed
	// publish are retried.
	DefaultSweepInterval = 30 * time.Second
	// DefaultSessionTTL is the lifetime of a console session.
	DefaultSessionTTL = 8 * time.Hour
)

// ErrInvalidConfig is returned by [New] for an invalid [Config].
var ErrInvalidConfig = errors.New("review: invalid config")

// ErrInvalidOption is returned by [New] for an invalid [Option].
var ErrInvalidOption = errors.New("review: invalid option")

// Config configures the review service. The zero value of a field selects
// its Default* constant.
type Config struct {
	// Tokens maps bearer tokens to principals (tenant, role, name). There
	// is no password store: reviewers present a token (or an OIDC ID token
	// when OIDC is configured).
	Tokens map[string]workflow.Principal `yaml:"tokens"`
	// Durable is the name of the VERDICTS consumer. Default [DefaultDurable].
	Durable string `yaml:"durable"`
	// AggregationWindow. Default [DefaultAggregationWindow].
	AggregationWindow time.Duration `yaml:"aggregation_window"`
	// AllowCloseUnclaimed lets a reviewer close an alert without claiming
	// it first. Default false: claim, then close.
	AllowCloseUnclaimed bool `yaml:"allow_close_unclaimed"`
	// SampleRate is the fraction (0..1) of non-flagged conversations put
	// into the queue each day for supervisory sampling; 0 disables it.
	SampleRate float64 `yaml:"sample_rate"`
	// DetokenizePerMinute and DetokenizeBurst rate-limit detokenize per
	// reviewer. Defaults [DefaultDetokenizePerMinute], [DefaultDetokenizeBurst].
	DetokenizePerMinute float64 `yaml:"detokenize_per_minute"`
	DetokenizeBurst     int     `yaml:"detokenize_burst"`
	// ContextMessages before and after the flagged message.
	// Default [DefaultContextMessages].
	ContextMessages int `yaml:"context_messages"`
	// SessionKey signs console session cookies and CSRF tokens (at least
	// 32 bytes). Empty: a random key, so sessions end on restart and are
	// not shared between replicas.
	SessionKey []byte `yaml:"-"`
	// SessionTTL of console sessions. Default [DefaultSessionTTL].
	SessionTTL time.Duration `yaml:"session_ttl"`
	// SecureCookies sets the Secure attribute on the session cookie
	// (production behind TLS).
	SecureCookies bool `yaml:"secure_cookies"`
	// OIDC, when IssuerURL is set, also accepts ID tokens of that issuer.
	OIDC OIDCConfig `yaml:"oidc"`
}

func (c Config) withDefaults() (Config, error) {
	if c.Durable == "" {
		c.Durable = DefaultDurable
	}
	if c.AggregationWindow == 0 {
		c.AggregationWindow = DefaultAggregationWindow
	}
	if c.DetokenizePerMinute == 0 {
		c.DetokenizePerMinute = DefaultDetokenizePerMinute
	}
	if c.DetokenizeBurst == 0 {
		c.DetokenizeBurst = DefaultDetokenizeBurst
	}
	if c.ContextMessages == 0 {
		c.ContextMessages = DefaultContextMessages
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = DefaultSessionTTL
	}
	switch {
	case c.AggregationWindow < time.Second:
		return c, fmt.Errorf("%w: aggregation_window must be at least 1s (got %s)", ErrInvalidConfig, c.AggregationWindow)
	case c.SampleRate < 0 || c.SampleRate > 1:
		return c, fmt.Errorf("%w: sample_rate must be within 0..1 (got %g)", ErrInvalidConfig, c.SampleRate)
	case c.DetokenizePerMinute < 0 || c.DetokenizeBurst < 0:
		return c, fmt.Errorf("%w: detokenize limits must not be negative", ErrInvalidConfig)
	case c.ContextMessages < 0 || c.ContextMessages > 200:
		return c, fmt.Errorf("%w: context_messages must be within 0..200 (got %d)", ErrInvalidConfig, c.ContextMessages)
	case len(c.SessionKey) > 0 && len(c.SessionKey) < 32:
		return c, fmt.Errorf("%w: session key must be at least 32 bytes", ErrInvalidConfig)
	}
	for _, p := range c.Tokens {
		// Never echo the token: name the principal instead.
		switch {
		case !p.Role.Valid():
			return c, fmt.Errorf("%w: token of %q: unknown role %q", ErrInvalidConfig, p.Name, p.Role)
		case p.Name == "" || p.Tenant == "":
			return c, fmt.Errorf("%w: every token needs a name and a tenant", ErrInvalidConfig)
		case p.Tenant == workflow.AllTenants && p.Role != workflow.RoleAdmin:
			return c, fmt.Errorf("%w: token of %q: only admins may see all tenants", ErrInvalidConfig, p.Name)
		}
	}
	return c, nil
}

// Option configures a [Service].
type Option func(*options) error

type options struct {
	log         *slog.Logger
	metrics     *Metrics
	detokenizer Detokenizer
	reader      ConversationReader
	now         func() time.Time
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

// WithMetrics sets the metrics (default: unregistered).
func WithMetrics(m *Metrics) Option {
	return func(o *options) error {
		if m == nil {
			return fmt.Errorf("%w: nil metrics", ErrInvalidOption)
		}
		o.metrics = m
		return nil
	}
}

// WithDetokenizer enables detokenize for privileged reviewers. Without
// it, detokenize answers 503.
func WithDetokenizer(d Detokenizer) Option {
	return func(o *options) error {
		if d == nil {
			return fmt.Errorf("%w: nil detokenizer", ErrInvalidOption)
		}
		o.detokenizer = d
		return nil
	}
}

// WithConversationReader replaces the default reader of conversation
// context (the MESSAGES stream), e.g. with a ClickHouse-backed one.
func WithConversationReader(r ConversationReader) Option {
	return func(o *options) error {
		if r == nil {
			return fmt.Errorf("%w: nil conversation reader", ErrInvalidOption)
		}
		o.reader = r
		return nil
	}
}

// WithClock sets the clock (tests).
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidOption)
		}
		o.now = now
		return nil
	}
}
