package evaluator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vigilhq/vigil/rules"
)

// DefaultRulesPollInterval is how often [WithRulesDir] checks the directory's
// content hash.
const DefaultRulesPollInterval = 5 * time.Second

// RulesOption configures [NewRules].
type RulesOption func(*rulesOptions) error

type rulesOptions struct {
	dir      string
	interval time.Duration
	kv       jetstream.KeyValue
	load     []rules.Option
	log      *slog.Logger
	metrics  *Metrics
}

// WithRulesDir reloads the rule set from dir (recursively, *.yaml and
// *.yml) whenever its content hash changes, checked every interval
// (DefaultRulesPollInterval when zero).
func WithRulesDir(dir string, interval time.Duration) RulesOption {
	return func(o *rulesOptions) error {
		if dir == "" {
			return fmt.Errorf("%w: empty rules directory", ErrInvalidOption)
		}
		if interval < 0 {
			return fmt.Errorf("%w: negative rules poll interval", ErrInvalidOption)
		}
		if interval == 0 {
			interval = DefaultRulesPollInterval
		}
		o.dir, o.interval = dir, interval
		return nil
	}
}

// WithRulesKV reloads the rule set from kv (the bus's rules bucket): every
// key is a rule file name, every value its YAML. A watch reloads the whole
// set on any change.
func WithRulesKV(kv jetstream.KeyValue) RulesOption {
	return func(o *rulesOptions) error {
		if kv == nil {
			return fmt.Errorf("%w: nil rules bucket", ErrInvalidOption)
		}
		o.kv = kv
		return nil
	}
}

// WithRulesLoadOptions passes options to [rules.LoadFiles] on every reload.
func WithRulesLoadOptions(opts ...rules.Option) RulesOption {
	return func(o *rulesOptions) error {
		o.load = append(o.load, opts...)
		return nil
	}
}

// WithRulesLogger sets the logger. Default slog.Default().
func WithRulesLogger(l *slog.Logger) RulesOption {
	return func(o *rulesOptions) error {
		if l == nil {
			return fmt.Errorf("%w: nil logger", ErrInvalidOption)
		}
		o.log = l
		return nil
	}
}

// WithRulesMetrics sets the metrics the holder reports
// vigil_rules_last_reload_successful on.
func WithRulesMetrics(m *Metrics) RulesOption {
	return func(o *rulesOptions) error {
		if m == nil {
			return fmt.Errorf("%w: nil metrics", ErrInvalidOption)
		}
		o.metrics = m
		return nil
	}
}

// Rules holds the current rule set and swaps it atomically on reload. A
// reload compiles and tests the whole new set; if that fails the previous
// set stays current, the failure is logged ("…, previous rule set kept")
// and vigil_rules_last_reload_successful is set to 0. Readers call
// [Rules.Current] once per message, so a message is evaluated by exactly
// one set. Watching starts with [Rules.Open] and stops with [Rules.Close].
type Rules struct {
	o   rulesOptions
	cur atomic.Pointer[rules.Set]

	mu       sync.Mutex // serialises reloads
	lastHash string     // content version of the last attempted reload

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// NewRules returns a holder whose current set is initial. Available
// options: [WithRulesDir], [WithRulesKV], [WithRulesLoadOptions],
// [WithRulesLogger], [WithRulesMetrics]. Directory and bucket are
// alternatives: configuring both returns ErrInvalidOption, as does a nil
// initial set.
func NewRules(initial *rules.Set, opts ...RulesOption) (*Rules, error) {
	if initial == nil {
		return nil, fmt.Errorf("%w: nil initial rule set", ErrInvalidOption)
	}
	o := rulesOptions{log: slog.Default()}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.dir != "" && o.kv != nil {
		return nil, fmt.Errorf("%w: both a rules directory and a rules bucket are set; choose one", ErrInvalidOption)
	}
	if o.metrics == nil {
		o.metrics = NewMetrics(nil)
	}
	o.log = o.log.With(logKeyComponent, "evaluator.rules")
	r := &Rules{o: o}
	r.cur.Store(initial)
	r.o.metrics.RulesLastReloadSuccessful.Set(1)
	return r, nil
}

// Current returns the current rule set.
func (r *Rules) Current() *rules.Set { return r.cur.Load() }

// Reload compiles files (name → YAML) and, if the set is accepted, makes it
// current. On error (wrapping rules.ErrRulesetRejected for a bad set) the
// previous set stays current.
func (r *Rules) Reload(files map[string][]byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reloadLocked(files)
}

func (r *Rules) reloadLocked(files map[string][]byte) error {
	r.lastHash = rules.Version(files)
	old := r.cur.Load()
	if r.lastHash == old.Version() {
		// The source holds the current set (again): nothing to swap, and a
		// previous rejection no longer applies.
		r.o.metrics.RulesLastReloadSuccessful.Set(1)
		return nil
	}
	set, err := rules.LoadFiles(files, r.o.load...)
	if err != nil {
		r.o.metrics.RulesLastReloadSuccessful.Set(0)
		// The error of a rejected set names files, lines and rule ids, never
		// message text: rule files hold no PII.
		r.o.log.Error("reloading rules failed, previous rule set kept", logKeyVersion, old.Version(), logKeyErr, err)
		return fmt.Errorf("reload rules: %w", err)
	}
	r.cur.Store(set)
	r.o.metrics.RulesLastReloadSuccessful.Set(1)
	r.o.metrics.RulesLastReloadSuccessTimestamp.SetToCurrentTime()
	r.forgetRemoved(old, set)
	r.o.log.Info("rules reloaded", logKeyVersion, set.Version(), logKeyPrevious, old.Version(), logKeyRules, len(set.Rules()))
	return nil
}

// forgetRemoved deletes the metric series of rules that left the set, as
// Prometheus' rules manager does on update.
func (r *Rules) forgetRemoved(old, set *rules.Set) {
	for _, rl := range old.Rules() {
		if set.Rule(rl.ID) == nil {
			r.o.metrics.Verdicts.DeletePartialMatch(map[string]string{labelRule: rl.ID})
			r.o.metrics.RuleEvaluations.DeletePartialMatch(map[string]string{labelRule: rl.ID})
			r.o.metrics.RuleErrors.DeletePartialMatch(map[string]string{labelRule: rl.ID})
		}
	}
}

// reloadDir reads the configured directory and reloads if its content
// changed since the last attempt.
func (r *Rules) reloadDir() error {
	files, err := rules.ReadFiles(r.o.dir, true)
	if err != nil {
		r.o.metrics.RulesLastReloadSuccessful.Set(0)
		r.o.log.Error("reading rules failed, previous rule set kept", logKeyErr, err)
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if rules.Version(files) == r.lastHash {
		return nil
	}
	return r.reloadLocked(files)
}

// Open starts watching the configured directory or bucket. It first
// reloads once, so a set that changed while nothing watched is picked up;
// an error of that first reload is returned but watching still starts
// (the initial set stays current). Without a source Open does nothing.
func (r *Rules) Open(ctx context.Context) error {
	r.mu.Lock()
	if r.cancel != nil {
		r.mu.Unlock()
		return nil
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	r.mu.Unlock()
	switch {
	case r.o.dir != "":
		err := r.reloadDir()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.pollDir(wctx)
		}()
		return err
	case r.o.kv != nil:
		w, err := r.o.kv.WatchAll(wctx)
		if err != nil {
			return fmt.Errorf("watch rules bucket: %w", err)
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			r.watchKV(wctx, w)
		}()
	}
	return nil
}

// Close stops watching and waits for the watcher to exit, or for ctx.
func (r *Rules) Close(ctx context.Context) error {
	r.mu.Lock()
	cancel := r.cancel
	r.mu.Unlock()
	if cancel == nil {
		return nil
	}
	cancel()
	done := make(chan struct{})
	go func() {
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close rules: %w", ctx.Err())
	}
}

func (r *Rules) pollDir(ctx context.Context) {
	t := time.NewTicker(r.o.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = r.reloadDir() // logged and counted inside
		}
	}
}

func (r *Rules) watchKV(ctx context.Context, w jetstream.KeyWatcher) {
	defer func() { _ = w.Stop() }()
	files := map[string][]byte{}
	initial := true
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() == nil {
					r.o.log.Error("rules bucket watch ended")
				}
				return
			}
			if e == nil {
				// All initial values are in: load them once.
				initial = false
			} else {
				switch e.Operation() {
				case jetstream.KeyValuePut:
					files[e.Key()] = e.Value()
				default:
					delete(files, e.Key())
				}
				if initial {
					continue
				}
			}
			if len(files) == 0 {
				continue // an empty bucket never replaces the current set
			}
			if err := r.Reload(maps.Clone(files)); err != nil && !errors.Is(err, rules.ErrRulesetRejected) {
				r.o.log.Error("reloading rules from bucket failed", logKeyErr, err)
			}
		}
	}
}
