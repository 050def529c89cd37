// Package retention enforces how long Vigil keeps communications and what it
// does with a data subject's request: retention policy classes (SEC 17a-4,
// FINRA 4511, MiFID II, HIPAA, GDPR minimization) assigned per tenant and
// channel, legal holds, erasure (crypto-shredding plus physical deletion)
// or restriction when an obligation applies, erasure certificates, access
// exports and the scheduled retention run.
//
// It sits at the end of the flow ingest → pii → bus → evaluator →
// warehouse: it reads and deletes archived rows only through package
// warehouse, erases stream messages and vault keys only through packages
// bus and pii, and records every action in the audit log.
//
// Precedence, highest first: legal hold > regulatory retention > erasure
// request > default minimization. A held subject is never erased
// ([ErrUnderLegalHold]); an erasure request under a retention duty becomes
// a restriction (GDPR Art. 18, 17(3)(b)) with its basis and the date when
// deletion will happen; [Service.Run] completes it then.
package retention

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/pii"
)

// Errors returned by the [Service]. Each is wrapped with the operation and
// ids (case ids, request refs, tenants), never a subject id or a value.
var (
	// ErrUnderLegalHold is returned by [Service.Erase] when an active legal
	// hold covers the subject or any of their messages. Nothing was
	// changed; the message names the case(s). Release the hold first.
	ErrUnderLegalHold = errors.New("under legal hold")
	// ErrUnknownSubject is returned by [Service.Erase] and
	// [Service.Access] when nothing is linked to the subject: no token, no
	// message, no verdict. Nothing was changed.
	ErrUnknownSubject = errors.New("unknown data subject")
	// ErrUnknownPolicy is returned for a policy class name that is not one
	// of [Classes].
	ErrUnknownPolicy = errors.New("unknown retention policy class")
	// ErrHoldExists is returned by [Service.CreateHold] when an active hold
	// with the same case id exists. Nothing was changed.
	ErrHoldExists = errors.New("legal hold already active")
	// ErrHoldNotFound is returned by [Service.ReleaseHold] when no active
	// hold has the case id.
	ErrHoldNotFound = errors.New("no active legal hold")
	// ErrInvalidRequest is returned for a request with missing or malformed
	// fields (ids, actor, reason, dates, scope). Nothing was changed.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrInvalidOption is returned by [New] for a bad option or argument.
	ErrInvalidOption = errors.New("retention: invalid option")
)

// Audit actions written by this package.
const (
	AuditActionErase       = "retention.erase"
	AuditActionAccess      = "retention.access"
	AuditActionHoldCreate  = "retention.hold.create"
	AuditActionHoldRelease = "retention.hold.release"
	AuditActionPolicySet   = "retention.policy.set"
	AuditActionRun         = "retention.run"
)

// Service applies retention, holds and data-subject requests. It is safe
// for concurrent use, but two erasures of one request should not run at
// once (the CLI runs one per process).
type Service struct {
	conn    driver.Conn
	bus     *bus.Bus
	vault   *pii.Vault
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time
}

// Option configures [New].
type Option func(*options) error

type options struct {
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		o.log = l
		return nil
	}
}

// WithMetrics records metrics in m (see [NewMetrics]).
func WithMetrics(m *Metrics) Option {
	return func(o *options) error {
		if m == nil {
			return fmt.Errorf("%w: nil metrics", ErrInvalidOption)
		}
		o.metrics = m
		return nil
	}
}

// WithClock sets the clock deciding expiry (default time.Now), for tests
// and for replaying a run as of a date.
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidOption)
		}
		o.now = now
		return nil
	}
}

// New returns a Service over the warehouse connection conn, the bus b
// (stream erasure and audit log) and the vault v (shred, restrict,
// detokenize; build it with [NewVault] so it audits and securely deletes
// through b).
//
// Available options:
//   - [WithLogger]
//   - [WithMetrics]
//   - [WithClock]
func New(conn driver.Conn, b *bus.Bus, v *pii.Vault, opts ...Option) (*Service, error) {
	if conn == nil || b == nil || v == nil {
		return nil, fmt.Errorf("%w: clickhouse connection, bus and vault are required", ErrInvalidOption)
	}
	o := options{log: slog.New(slog.DiscardHandler), now: time.Now}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.metrics == nil {
		o.metrics = NewMetrics(nil)
	}
	return &Service{conn: conn, bus: b, vault: v, log: o.log.With("component", "retention"), metrics: o.metrics, now: o.now}, nil
}

// NewVault returns a vault over the bus's vault bucket whose detokenization
// audit events go to the bus's AUDIT stream and whose shreds overwrite keys
// on disk with [bus.Bus.SecureDeleteKey].
func NewVault(b *bus.Bus, keys pii.KeyProvider, opts ...pii.VaultOption) (*pii.Vault, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil bus", ErrInvalidOption)
	}
	opts = append([]pii.VaultOption{pii.WithAuditor(BusAuditor{Bus: b}), pii.WithSecureDeleter(BusDeleter{Bus: b})}, opts...)
	return pii.NewVault(b.VaultKV(), keys, opts...)
}

// BusAuditor writes a vault's audit events to the AUDIT stream.
type BusAuditor struct{ Bus *bus.Bus }

var _ pii.Auditor = BusAuditor{}

// Audit implements [pii.Auditor]: it returns after the PubAck.
func (a BusAuditor) Audit(ctx context.Context, ev vigil.AuditEvent) error {
	_, err := a.Bus.PublishAudit(ctx, &ev)
	return err
}

// BusDeleter overwrites vault keys on disk with [bus.Bus.SecureDeleteKey].
type BusDeleter struct{ Bus *bus.Bus }

var _ pii.SecureDeleter = BusDeleter{}

// SecureDeleteKey implements [pii.SecureDeleter].
func (d BusDeleter) SecureDeleteKey(ctx context.Context, kv jetstream.KeyValue, key string) error {
	err := d.Bus.SecureDeleteKey(ctx, kv, key)
	if errors.Is(err, bus.ErrKeyNotFound) {
		return nil
	}
	return err
}

// audit appends one event to the audit log. Its id is derived from the
// parts, so a retried action inside the duplicate window is stored once.
func (s *Service) audit(ctx context.Context, tenant, actor, action, target, reason string, details map[string]string, idParts ...string) error {
	h := sha256.Sum256([]byte(strings.Join(append([]string{tenant, action, target}, idParts...), "\x00")))
	ev := &vigil.AuditEvent{
		ID: "a-" + hex.EncodeToString(h[:16]), Tenant: tenant, Actor: actor, Action: action,
		Target: target, Reason: reason, At: s.now().UTC(), Details: details,
	}
	if _, err := s.bus.PublishAudit(ctx, ev); err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// validIDs checks named identifiers with vigil.ValidateID; errors wrap
// [ErrInvalidRequest] and name the field, not the value.
func validIDs(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if err := vigil.ValidateID(fields[i+1]); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrInvalidRequest, fields[i], err)
		}
	}
	return nil
}

func required(fields ...string) error {
	for i := 0; i+1 < len(fields); i += 2 {
		if strings.TrimSpace(fields[i+1]) == "" {
			return fmt.Errorf("%w: %s required", ErrInvalidRequest, fields[i])
		}
	}
	return nil
}

// Metrics instruments the [Service] and the [Scheduler].
type Metrics struct {
	// Erasures counts completed erasure requests by outcome
	// (vigil_retention_erasures_total{outcome}).
	Erasures *prometheus.CounterVec
	// PurgedMessages counts messages removed by retention runs
	// (vigil_retention_purged_messages_total).
	PurgedMessages prometheus.Counter
	// Runs counts retention runs by result (vigil_retention_runs_total{result}).
	Runs *prometheus.CounterVec
	// RunDuration observes retention runs (vigil_retention_run_duration_seconds).
	RunDuration prometheus.Histogram
	// LastRun is the end of the last successful run
	// (vigil_retention_last_run_success_timestamp_seconds).
	LastRun prometheus.Gauge
}

// NewMetrics creates the metrics and registers them with reg when reg is
// not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Erasures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_retention_erasures_total", Help: "Erasure requests completed, by outcome (erased, restricted).",
		}, []string{"outcome"}),
		PurgedMessages: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_retention_purged_messages_total", Help: "Archived messages deleted by retention runs after expiry.",
		}),
		Runs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_retention_runs_total", Help: "Retention runs, by result (ok, error).",
		}, []string{"result"}),
		RunDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "vigil_retention_run_duration_seconds", Help: "Duration of retention runs.",
			Buckets: prometheus.ExponentialBuckets(0.1, 2, 14),
		}),
		LastRun: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_retention_last_run_success_timestamp_seconds", Help: "End of the last successful retention run.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Erasures, m.PurgedMessages, m.Runs, m.RunDuration, m.LastRun)
	}
	return m
}
