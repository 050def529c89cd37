package retention

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/vigilhq/vigil/warehouse"
)

// PolicyRequest assigns a policy class with [Service.SetPolicy].
type PolicyRequest struct {
	Tenant string
	// Channel is empty for the tenant's default.
	Channel string
	Class   string
	// KeepDays is the period; 0 takes the class default.
	KeepDays      int
	Actor, Reason string
}

// SetPolicy assigns a policy class to a tenant's channel (or its default)
// and audits it. An unknown class returns [ErrUnknownPolicy], a period
// outside the class bounds [ErrInvalidRequest]; nothing is written then.
func (s *Service) SetPolicy(ctx context.Context, r PolicyRequest) (warehouse.PolicyAssignment, error) {
	if err := required("actor", r.Actor, "reason", r.Reason); err != nil {
		return warehouse.PolicyAssignment{}, fmt.Errorf("set policy: %w", err)
	}
	if err := validIDs("tenant", r.Tenant); err != nil {
		return warehouse.PolicyAssignment{}, fmt.Errorf("set policy: %w", err)
	}
	if r.Channel != "" {
		if err := validIDs("channel", r.Channel); err != nil {
			return warehouse.PolicyAssignment{}, fmt.Errorf("set policy: %w", err)
		}
	}
	cl, err := LookupClass(r.Class)
	if err != nil {
		return warehouse.PolicyAssignment{}, fmt.Errorf("set policy: %w", err)
	}
	days, err := cl.keepDays(r.KeepDays)
	if err != nil {
		return warehouse.PolicyAssignment{}, fmt.Errorf("set policy: %w", err)
	}
	p := warehouse.PolicyAssignment{Tenant: r.Tenant, Channel: r.Channel, Class: cl.Name, KeepDays: uint32(days),
		Rewritable: cl.Rewritable, UpdatedAt: s.now().UTC().Truncate(time.Millisecond)}
	if err := warehouse.PutPolicy(ctx, s.conn, p); err != nil {
		return warehouse.PolicyAssignment{}, fmt.Errorf("set policy: %w", err)
	}
	target := "policy:" + r.Tenant + "/" + r.Channel
	if err := s.audit(ctx, r.Tenant, r.Actor, AuditActionPolicySet, target, r.Reason,
		map[string]string{"class": cl.Name, "keep_days": strconv.Itoa(days)}, p.UpdatedAt.Format(time.RFC3339Nano)); err != nil {
		return p, fmt.Errorf("set policy: %w", err)
	}
	return p, nil
}

// Policies lists the policy assignments of tenant (all when empty).
func (s *Service) Policies(ctx context.Context, tenant string) ([]warehouse.PolicyAssignment, error) {
	return warehouse.ListPolicies(ctx, s.conn, tenant)
}

// RunOptions configure one [Service.Run].
type RunOptions struct {
	// DryRun reports what would be removed without removing it.
	DryRun bool
	// Actor and Reason go to the audit log.
	Actor, Reason string
}

// RunReport is what a retention run removed (or would remove).
type RunReport struct {
	StartedAt time.Time `json:"started_at"`
	DryRun    bool      `json:"dry_run,omitempty"`
	// Policies has one entry per policy assignment.
	Policies []PolicyRun `json:"policies"`
	// Erasures are restricted requests whose retention expired.
	Erasures []ErasureRun `json:"erasures"`
}

// PolicyRun is the effect of one policy assignment.
type PolicyRun struct {
	Tenant  string    `json:"tenant"`
	Channel string    `json:"channel"`
	Class   string    `json:"class"`
	Cutoff  time.Time `json:"cutoff"`
	// Messages and Verdicts are the rows removed; Held are expired messages
	// kept because a legal hold covers them.
	Messages       uint64 `json:"messages"`
	Verdicts       uint64 `json:"verdicts"`
	StreamMessages int    `json:"stream_messages"`
	StreamVerdicts int    `json:"stream_verdicts"`
	Held           uint64 `json:"held"`
}

// ErasureRun is a deferred erasure the run completed or attempted.
type ErasureRun struct {
	Tenant  string `json:"tenant"`
	Request string `json:"request"`
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
}

// Run applies retention: for every policy assignment it deletes the
// messages older than the period (and their verdicts and stream entries)
// except those an active legal hold covers, explicitly, because ClickHouse
// TTL is applied lazily; then it completes restricted erasure requests
// whose retention expired. Messages of channels without any assignment
// are kept. The run is audited per tenant.
func (s *Service) Run(ctx context.Context, o RunOptions) (*RunReport, error) {
	if err := required("actor", o.Actor, "reason", o.Reason); err != nil {
		return nil, fmt.Errorf("retention run: %w", err)
	}
	start := time.Now()
	rep, err := s.run(ctx, o)
	s.metrics.RunDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		s.metrics.Runs.WithLabelValues("error").Inc()
		return rep, err
	}
	s.metrics.Runs.WithLabelValues("ok").Inc()
	if !o.DryRun {
		s.metrics.LastRun.SetToCurrentTime()
	}
	return rep, nil
}

func (s *Service) run(ctx context.Context, o RunOptions) (*RunReport, error) {
	now := s.now().UTC().Truncate(time.Millisecond)
	rep := &RunReport{StartedAt: now, DryRun: o.DryRun, Policies: []PolicyRun{}, Erasures: []ErasureRun{}}
	policies, err := warehouse.ListPolicies(ctx, s.conn, "")
	if err != nil {
		return rep, fmt.Errorf("retention run: %w", err)
	}
	holds, err := warehouse.ListHolds(ctx, s.conn, "")
	if err != nil {
		return rep, fmt.Errorf("retention run: %w", err)
	}
	byTenant := map[string][]warehouse.PolicyAssignment{}
	for _, p := range policies {
		byTenant[p.Tenant] = append(byTenant[p.Tenant], p)
	}
	tenants := make([]string, 0, len(byTenant))
	for t := range byTenant {
		tenants = append(tenants, t)
	}
	sort.Strings(tenants)
	for _, tenant := range tenants {
		var tenantHolds []Hold
		for _, h := range activeHolds(holds) {
			if h.Tenant == tenant {
				tenantHolds = append(tenantHolds, h)
			}
		}
		var assigned []string
		for _, p := range byTenant[tenant] {
			if p.Channel != "" {
				assigned = append(assigned, p.Channel)
			}
		}
		var removed uint64
		for _, p := range byTenant[tenant] {
			if _, err := LookupClass(p.Class); err != nil {
				return rep, fmt.Errorf("retention run: tenant %s channel %q: %w", tenant, p.Channel, err)
			}
			pr := PolicyRun{Tenant: tenant, Channel: p.Channel, Class: p.Class, Cutoff: now.AddDate(0, 0, -int(p.KeepDays))}
			f := warehouse.MessageFilter{Tenant: tenant, SentBefore: pr.Cutoff}
			if p.Channel != "" {
				f.Channels = []string{p.Channel}
			} else {
				f.ExcludeChannels = assigned
			}
			all, err := warehouse.CountMessages(ctx, s.conn, f)
			if err != nil {
				return rep, fmt.Errorf("retention run: %w", err)
			}
			f.ExceptHolds = tenantHolds
			due, err := warehouse.CountMessages(ctx, s.conn, f)
			if err != nil {
				return rep, fmt.Errorf("retention run: %w", err)
			}
			pr.Held = all.Messages - due.Messages
			pr.Messages, pr.Verdicts = due.Messages, due.Verdicts
			if due.Messages > 0 || due.Verdicts > 0 {
				seqs, err := warehouse.MessageStreamSeqs(ctx, s.conn, f)
				if err != nil {
					return rep, fmt.Errorf("retention run: %w", err)
				}
				vseqs, err := warehouse.VerdictStreamSeqs(ctx, s.conn, f)
				if err != nil {
					return rep, fmt.Errorf("retention run: %w", err)
				}
				pr.StreamMessages, pr.StreamVerdicts = len(seqs), len(vseqs)
				if !o.DryRun {
					if err := s.bus.EraseMessages(ctx, seqs); err != nil {
						return rep, fmt.Errorf("retention run: tenant %s: %w", tenant, err)
					}
					if err := s.bus.EraseVerdicts(ctx, vseqs); err != nil {
						return rep, fmt.Errorf("retention run: tenant %s: %w", tenant, err)
					}
					got, err := warehouse.DeleteMessages(ctx, s.conn, f)
					if err != nil {
						return rep, fmt.Errorf("retention run: tenant %s: %w", tenant, err)
					}
					pr.Messages, pr.Verdicts = got.Messages, got.Verdicts
					removed += got.Messages
					s.metrics.PurgedMessages.Add(float64(got.Messages))
				}
			}
			rep.Policies = append(rep.Policies, pr)
		}
		if !o.DryRun && removed > 0 {
			if err := s.audit(ctx, tenant, o.Actor, AuditActionRun, "tenant:"+tenant, o.Reason,
				map[string]string{"messages_deleted": strconv.FormatUint(removed, 10)}, now.Format(time.RFC3339Nano)); err != nil {
				return rep, fmt.Errorf("retention run: %w", err)
			}
		}
	}

	// Deferred erasures whose retention has expired.
	due, err := warehouse.ListErasures(ctx, s.conn, "", OutcomeRestricted)
	if err != nil {
		return rep, fmt.Errorf("retention run: %w", err)
	}
	var errs []error
	for _, r := range due {
		if r.DeleteAfter.IsZero() || r.DeleteAfter.After(now) || r.SubjectID == "" {
			continue
		}
		er := ErasureRun{Tenant: r.Tenant, Request: r.RequestRef}
		c, err := s.Erase(ctx, EraseRequest{Tenant: r.Tenant, Subject: r.SubjectID, Ref: r.RequestRef,
			Actor: o.Actor, Reason: o.Reason, DryRun: o.DryRun})
		switch {
		case err == nil:
			er.Outcome = c.Outcome
		case errors.Is(err, ErrUnderLegalHold):
			// A hold placed after the request outranks it: keep waiting.
			er.Outcome, er.Error = "held", err.Error()
		default:
			er.Outcome, er.Error = "error", err.Error()
			errs = append(errs, err)
		}
		rep.Erasures = append(rep.Erasures, er)
	}
	if err := errors.Join(errs...); err != nil {
		return rep, fmt.Errorf("retention run: %w", err)
	}
	return rep, nil
}

// DefaultRunInterval is how often a [Scheduler] runs retention.
const DefaultRunInterval = 24 * time.Hour

// SchedulerConfig configures a [Scheduler]. Zero fields take defaults.
type SchedulerConfig struct {
	// Interval between runs. Default [DefaultRunInterval].
	Interval time.Duration
	// FirstRun is the delay before the first run. Default: Interval.
	FirstRun time.Duration
	// Actor recorded in the audit log. Default "vigil-retention".
	Actor string
	// Logger receives run results. Default: discard.
	Logger *slog.Logger
}

// Scheduler runs [Service.Run] periodically inside `vigil serve`.
// [Scheduler.Start] starts its goroutine; [Scheduler.Close] stops it and
// waits, letting a run in progress finish until Close's ctx expires.
type Scheduler struct {
	svc *Service
	cfg SchedulerConfig

	mu      sync.Mutex
	started bool
	closed  bool
	stop    chan struct{} // closed by Close; read by the loop only
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// NewScheduler returns a scheduler of svc.
func NewScheduler(svc *Service, cfg SchedulerConfig) (*Scheduler, error) {
	if svc == nil {
		return nil, fmt.Errorf("%w: nil service", ErrInvalidOption)
	}
	if cfg.Interval < 0 || cfg.FirstRun < 0 {
		return nil, fmt.Errorf("%w: negative interval", ErrInvalidOption)
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultRunInterval
	}
	if cfg.FirstRun == 0 {
		cfg.FirstRun = cfg.Interval
	}
	if cfg.Actor == "" {
		cfg.Actor = "vigil-retention"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Logger = cfg.Logger.With("component", "retention.scheduler")
	return &Scheduler{svc: svc, cfg: cfg}, nil
}

// Start starts the periodic runs. ctx bounds the scheduler's lifetime as
// well: cancelling it stops the runs like Close.
func (sc *Scheduler) Start(ctx context.Context) error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if sc.started {
		return errors.New("retention scheduler already started")
	}
	sc.started = true
	stop := make(chan struct{})
	sc.stop = stop
	// Runs get their own context: a run in progress finishes on Close
	// until Close's deadline, even when ctx is already cancelled.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	sc.cancel = cancel
	sc.wg.Add(1)
	go func() {
		defer sc.wg.Done()
		sc.loop(ctx, runCtx, stop)
	}()
	sc.cfg.Logger.Info("retention scheduler started", "interval", sc.cfg.Interval)
	return nil
}

func (sc *Scheduler) loop(parent, runCtx context.Context, stop <-chan struct{}) {
	t := time.NewTimer(sc.cfg.FirstRun)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-parent.Done():
			return
		case <-t.C:
		}
		rep, err := sc.svc.Run(runCtx, RunOptions{Actor: sc.cfg.Actor, Reason: "scheduled retention run"})
		if err != nil {
			sc.cfg.Logger.Error("retention run failed", "err", err)
		} else {
			var msgs uint64
			for _, p := range rep.Policies {
				msgs += p.Messages
			}
			sc.cfg.Logger.Info("retention run done", "messages_deleted", msgs, "erasures_completed", len(rep.Erasures))
		}
		t.Reset(sc.cfg.Interval)
	}
}

// Close stops the scheduler and waits for it; a run in progress is
// cancelled when ctx expires. Closing a scheduler that never started, or
// twice, is harmless.
func (sc *Scheduler) Close(ctx context.Context) error {
	sc.mu.Lock()
	if !sc.started || sc.closed {
		sc.mu.Unlock()
		return nil
	}
	sc.closed = true
	close(sc.stop)
	cancel := sc.cancel
	sc.mu.Unlock()
	done := make(chan struct{})
	go func() {
		sc.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		cancel()
		sc.cfg.Logger.Info("retention scheduler stopped")
		return nil
	case <-ctx.Done():
		cancel()
		<-done
		return fmt.Errorf("close retention scheduler: %w", ctx.Err())
	}
}
