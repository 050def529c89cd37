// Package review turns verdicts into review alerts and runs the review
// workflow of Vigil's surveillance reviewers: it sits after the evaluator
// (ingest → pii → bus → evaluator → review) and beside the warehouse, which
// projects its REVIEW stream into the review_events table.
//
// The service consumes VERDICTS with its own durable consumer and folds the
// verdicts of one rule on one conversation within an aggregation window
// into one alert with a count (alerts of action alert or escalate, and
// tier-2 results). Alert state lives in a JetStream KV bucket, one key per
// alert, updated with compare-and-set so concurrent claims of one alert
// have exactly one winner; every transition is also an event on the REVIEW
// stream, the source of truth for review history. An in-memory index of
// the bucket, rebuilt on start and kept current by a watcher, serves the
// queue.
//
// [Service.Handler] serves the JSON API under /v1/review/ and the reviewer
// console under /console/ (package review/console). Principals come from
// bearer tokens in [Config] (or OIDC ID tokens); roles are those of package
// review/workflow. Detokenize needs a privileged reviewer, a reason, an
// audit event on the AUDIT stream written first, and passes a per-reviewer
// rate limit.
//
// # API
//
// Every request carries "Authorization: Bearer <token>"; refusals are 4xx
// with {"error": {"code": "...", "message": "..."}} and change nothing.
//
//	GET  /v1/review/alerts?state=&rule=&severity=&assignee=&min_age=&tenant=&page=&per_page=
//	GET  /v1/review/alerts/{id}
//	GET  /v1/review/alerts/{id}/context                  the conversation around the flagged message
//	POST /v1/review/alerts/{id}/claim|release             {}
//	POST /v1/review/alerts/{id}/assign                    {"assignee"}            (admin)
//	POST /v1/review/alerts/{id}/comments                  {"text"}
//	POST /v1/review/alerts/{id}/close                     {"disposition","reason"}
//	POST /v1/review/alerts/{id}/reopen                    {"reason"}
//	POST /v1/review/alerts/{id}/detokenize                {"message_id","reason"} (privileged)
//	POST /v1/review/bulk/close                            {"ids","disposition","reason"} (privileged, admin)
//	GET  /v1/review/stats?tenant=
//	GET  /v1/review/events                                server-sent events "alert"
//
// # Review events
//
// Each transition is published on [bus.StreamReview] under
// [bus.ReviewSubject] as a [workflow.Event] (the columns of the warehouse
// table review_events). The event is written into the alert record with
// the state change, in one compare-and-set, and published after it; an
// event left pending by a failed publish goes out before the alert's next
// transition and from a sweeper, so history is complete and in order.
package review

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/time/rate"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/review/console"
	"github.com/vigilhq/vigil/review/workflow"
)

// Errors of the service lifecycle.
var (
	// ErrStarted is returned by Start on a service already started.
	ErrStarted = errors.New("review: already started")
	// ErrClosed is returned by Start after Close.
	ErrClosed = errors.New("review: closed")
)

// Detokenizer reveals the value behind a token for an actor with a reason.
// pii.Vault satisfies it through a small adapter in cmd/vigil:
//
//	review.DetokenizeFunc(func(ctx context.Context, tenant, token, actor, reason string) (string, error) {
//		return vault.Detokenize(ctx, tenant, token, pii.Request{Actor: actor, Reason: reason})
//	})
type Detokenizer interface {
	Detokenize(ctx context.Context, tenant, token, actor, reason string) (string, error)
}

// DetokenizeFunc adapts a function to [Detokenizer].
type DetokenizeFunc func(ctx context.Context, tenant, token, actor, reason string) (string, error)

// Detokenize calls f.
func (f DetokenizeFunc) Detokenize(ctx context.Context, tenant, token, actor, reason string) (string, error) {
	return f(ctx, tenant, token, actor, reason)
}

// ConversationReader returns the messages of a conversation around one
// message: up to before messages preceding it, the message, and up to
// after following it, in order. A message that cannot be found returns
// an empty slice and no error.
type ConversationReader interface {
	Conversation(ctx context.Context, tenant, conversation, messageID string, before, after int) ([]vigil.Message, error)
}

// Service is the review service. Create it with [New], then [Service.Start].
type Service struct {
	bus     *bus.Bus
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	cfg     Config
	rules   workflow.Rules
	log     *slog.Logger
	metrics *Metrics
	detok   Detokenizer
	reader  ConversationReader
	now     func() time.Time
	auth    *tokenAuth
	idx     *index
	hub     *hub
	console http.Handler

	limMu    sync.Mutex
	limiters map[string]*rate.Limiter

	mu      sync.Mutex
	started bool
	closed  bool
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	ready   chan struct{}
}

var _ console.Backend = (*Service)(nil)

// New creates the REVIEW stream and the alerts bucket (CreateOrUpdate:
// idempotent) and returns a service that is not yet consuming.
//
// Available options:
//   - [WithLogger]
//   - [WithMetrics]
//   - [WithDetokenizer]
//   - [WithConversationReader]
//   - [WithClock]
//
// An invalid cfg returns [ErrInvalidConfig].
func New(ctx context.Context, b *bus.Bus, cfg Config, opts ...Option) (*Service, error) {
	if b == nil {
		return nil, fmt.Errorf("%w: nil bus", ErrInvalidOption)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	o := options{log: slog.Default(), now: time.Now}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.metrics == nil {
		o.metrics = NewMetrics(nil)
	}
	js := b.JetStream()
	if _, err := js.CreateOrUpdateStream(ctx, bus.ReviewStreamConfig(b.Config())); err != nil {
		return nil, fmt.Errorf("create or update stream %s: %w", bus.StreamReview, err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, bus.AlertsKeyValueConfig(b.Config()))
	if err != nil {
		return nil, fmt.Errorf("create or update bucket %s: %w", bus.BucketAlerts, err)
	}
	s := &Service{
		bus:      b,
		js:       js,
		kv:       kv,
		cfg:      cfg,
		rules:    workflow.Rules{RequireClaim: !cfg.AllowCloseUnclaimed},
		log:      o.log.With("component", "review"),
		metrics:  o.metrics,
		detok:    o.detokenizer,
		reader:   o.reader,
		now:      o.now,
		auth:     newTokenAuth(cfg.Tokens),
		idx:      newIndex(),
		hub:      newHub(),
		limiters: make(map[string]*rate.Limiter),
		ready:    make(chan struct{}),
	}
	if s.reader == nil {
		s.reader = &streamReader{js: js, partitions: b.Partitions(), maxScan: DefaultMaxConversationScan}
	}
	if cfg.OIDC.IssuerURL != "" {
		if s.auth.oidc, err = newOIDCAuth(ctx, cfg.OIDC); err != nil {
			return nil, err
		}
	}
	key := cfg.SessionKey
	if len(key) == 0 {
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	s.console, err = console.New(s, console.Options{
		SessionKey:    key,
		SessionTTL:    cfg.SessionTTL,
		SecureCookies: cfg.SecureCookies,
		Logger:        s.log,
		Now:           s.now,
	})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	return s, nil
}

// Start loads every alert from the bucket into the index, then consumes
// VERDICTS with the durable consumer cfg.Durable (and MESSAGES for
// sampling when SampleRate > 0) until [Service.Close]. It returns once the
// index is loaded.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case s.started:
		return ErrStarted
	}
	// The loops outlive Start's ctx: Close stops them.
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	w, err := s.kv.WatchAll(runCtx)
	if err != nil {
		cancel()
		return fmt.Errorf("watch bucket %s: %w", bus.BucketAlerts, err)
	}
	// The initial values end with a nil entry; load them before serving.
loading:
	for {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				cancel()
				return fmt.Errorf("watch bucket %s: closed while loading", bus.BucketAlerts)
			}
			if e == nil {
				break loading
			}
			s.applyEntry(e, false)
		case <-ctx.Done():
			_ = w.Stop()
			cancel()
			return fmt.Errorf("load alerts: %w", ctx.Err())
		}
	}
	verdicts, err := s.bus.SinkConsumer(ctx, bus.StreamVerdicts, s.cfg.Durable)
	if err != nil {
		_ = w.Stop()
		cancel()
		return err
	}
	var sample jetstream.Consumer
	if s.cfg.SampleRate > 0 {
		if sample, err = s.bus.SinkConsumer(ctx, bus.StreamMessages, s.cfg.Durable+"_sample"); err != nil {
			_ = w.Stop()
			cancel()
			return err
		}
	}
	s.started = true
	s.cancel = cancel
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { _ = w.Stop() }()
		s.watch(runCtx, w)
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.consume(runCtx, verdicts, "verdicts", s.handleVerdict)
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.sweep(runCtx)
		s.sweepLoop(runCtx, DefaultSweepInterval)
	}()
	if sample != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.consume(runCtx, sample, "sampling", s.handleSampleMessage)
		}()
	}
	close(s.ready)
	s.log.Info("review started", "alerts", s.idx.len(), "durable", s.cfg.Durable)
	return nil
}

// Close stops consuming, ends live-update streams and waits for the
// service's goroutines, or until ctx ends. It does not close the bus.
func (s *Service) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	cancel := s.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.hub.close()
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.log.Info("review stopped")
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close review: %w", ctx.Err())
	}
}

// Handler serves the API under /v1/review/ and the console under
// /console/. Mount it at "/".
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	s.routes(mux)
	mux.Handle("/console/", s.console)
	mux.Handle("GET /console", http.RedirectHandler("/console/", http.StatusFound))
	return mux
}

// watch keeps the index current with every replica's writes.
func (s *Service) watch(ctx context.Context, w jetstream.KeyWatcher) {
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() == nil {
					s.log.Error("alerts watcher stopped")
				}
				return
			}
			if e != nil {
				s.applyEntry(e, true)
			}
		}
	}
}

func (s *Service) applyEntry(e jetstream.KeyValueEntry, notify bool) {
	if e.Operation() != jetstream.KeyValuePut {
		s.idx.remove(e.Key())
		return
	}
	var a workflow.Alert
	if err := json.Unmarshal(e.Value(), &a); err != nil {
		s.log.Error("decode alert", "alert", e.Key(), "err", err)
		return
	}
	s.store(&a, e.Revision(), notify)
}

// store puts a in the index and tells live subscribers when it changed.
func (s *Service) store(a *workflow.Alert, rev uint64, notify bool) {
	changed, created := s.idx.apply(a, rev)
	if changed && notify {
		s.hub.publish(workflow.Change{AlertID: a.ID, Tenant: a.Tenant, State: a.State, Severity: string(a.Severity), Created: created})
	}
}

// consumeLanes is how many conversations a consumer handles at once. The
// records of one conversation always share a lane, so they are handled in
// stream order; lanes overlap the KV and publish round trips of different
// conversations.
const consumeLanes = 8

// consume fetches from c until ctx ends. handle returning an error naks
// the message for redelivery; decoding problems are handled (acked) inside.
func (s *Service) consume(ctx context.Context, c jetstream.Consumer, what string, handle func(context.Context, []byte) error) {
	lanes := make([][]jetstream.Msg, consumeLanes)
	var wg sync.WaitGroup
	for ctx.Err() == nil {
		batch, err := c.Fetch(200, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.log.Warn("fetch", "consumer", what, "err", err)
			sleep(ctx, time.Second)
			continue
		}
		for i := range lanes {
			lanes[i] = lanes[i][:0]
		}
		for m := range batch.Messages() {
			l := laneOf(m.Data())
			lanes[l] = append(lanes[l], m)
		}
		for _, lane := range lanes {
			if len(lane) == 0 {
				continue
			}
			wg.Go(func() {
				for _, m := range lane {
					if err := handle(ctx, m.Data()); err != nil {
						if ctx.Err() == nil {
							s.log.Warn("handle", "consumer", what, "err", err)
						}
						_ = m.NakWithDelay(time.Second)
						continue
					}
					if err := m.Ack(); err != nil && ctx.Err() == nil {
						s.log.Warn("ack", "consumer", what, "err", err)
					}
				}
			})
		}
		wg.Wait()
		if err := batch.Error(); err != nil && ctx.Err() == nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
			s.log.Warn("fetch batch", "consumer", what, "err", err)
		}
	}
}

// laneOf picks the lane of a verdict or message by its tenant and
// conversation.
func laneOf(data []byte) int {
	var k struct {
		Tenant       string `json:"tenant"`
		Conversation string `json:"conversation_id"`
	}
	_ = json.Unmarshal(data, &k)
	h := fnv.New32a()
	h.Write([]byte(k.Tenant))
	h.Write([]byte{0})
	h.Write([]byte(k.Conversation))
	return int(h.Sum32() % consumeLanes)
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// Alertable reports whether a verdict opens (or joins) a review alert:
// actions alert and escalate, and tier-2 results.
func Alertable(v *vigil.Verdict) bool {
	switch {
	case v.Action == vigil.ActionAlert, v.Action == vigil.ActionEscalate:
		return true
	case v.Tier >= 2 && v.Action != vigil.ActionEscalateTier2:
		return true
	}
	return false
}

// maxGenerations bounds the alerts one conversation and rule can open in
// one window (a new one each time the previous is closed).
const maxGenerations = 64

// maxCASRetries bounds re-reads after a compare-and-set conflict.
const maxCASRetries = 16

func (s *Service) handleVerdict(ctx context.Context, data []byte) error {
	var v vigil.Verdict
	if err := json.Unmarshal(data, &v); err != nil || vigil.ValidateID(v.Tenant) != nil || vigil.ValidateID(v.ConversationID) != nil || v.ID == "" {
		// A malformed record will not improve with redelivery.
		s.metrics.Verdicts.WithLabelValues(resultInvalid).Inc()
		s.log.Warn("skip invalid verdict", "bytes", len(data))
		return nil
	}
	if !Alertable(&v) {
		s.metrics.Verdicts.WithLabelValues(resultIgnored).Inc()
		return nil
	}
	result, err := s.foldVerdict(ctx, &v)
	if err != nil {
		s.metrics.Verdicts.WithLabelValues(resultError).Inc()
		return fmt.Errorf("verdict %s: %w", v.ID, err)
	}
	s.metrics.Verdicts.WithLabelValues(result).Inc()
	return nil
}

// foldVerdict adds v to the open alert of its conversation, rule and
// window, or opens one. Alert ids are deterministic, so every replica
// folds into the same key; CAS conflicts re-read.
func (s *Service) foldVerdict(ctx context.Context, v *vigil.Verdict) (string, error) {
	at := v.MessageSentAt
	if at.IsZero() {
		at = v.EvaluatedAt
	}
	at = at.UTC()
	window := at.Truncate(s.cfg.AggregationWindow)
	gen, tries := 0, 0
	for gen < maxGenerations {
		if tries++; tries > maxGenerations+maxCASRetries {
			break
		}
		id := workflow.AlertID(v.Tenant, v.ConversationID, v.RuleID, window, gen)
		e, err := s.kv.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			now := s.now().UTC()
			a := &workflow.Alert{
				ID: id, Tenant: v.Tenant, ConversationID: v.ConversationID, RuleID: v.RuleID,
				Kind: workflow.KindVerdict, Severity: v.Severity, Action: v.Action, Tier: v.Tier,
				MessageID: v.MessageID, Spans: v.Spans, MessageIDs: []string{v.MessageID},
				VerdictIDs: []string{v.ID}, Count: 1, WindowStart: window, FirstAt: at, LastAt: at,
				CreatedAt: now, UpdatedAt: now, State: workflow.StateOpen, Generation: gen,
			}
			if err := s.create(ctx, a); err != nil {
				if errors.Is(err, jetstream.ErrKeyExists) {
					continue // another replica created it: fold into it
				}
				return "", err
			}
			return resultAlerted, nil
		}
		if err != nil {
			return "", fmt.Errorf("get alert %s: %w", id, err)
		}
		var a workflow.Alert
		if err := json.Unmarshal(e.Value(), &a); err != nil {
			return "", fmt.Errorf("decode alert %s: %w", id, err)
		}
		if slices.Contains(a.VerdictIDs, v.ID) {
			return resultDuplicate, nil
		}
		if a.State == workflow.StateClosed {
			gen++
			continue
		}
		a.Count++
		a.LastAt = maxTime(a.LastAt, at)
		a.FirstAt = minTime(a.FirstAt, at)
		if v.Severity.Rank() > a.Severity.Rank() {
			a.Severity = v.Severity
		}
		a.VerdictIDs = appendCapped(a.VerdictIDs, v.ID, workflow.MaxRecentVerdicts)
		if !slices.Contains(a.MessageIDs, v.MessageID) {
			a.MessageIDs = appendCapped(a.MessageIDs, v.MessageID, workflow.MaxRecentMessages)
		}
		a.UpdatedAt = s.now().UTC()
		data, err := json.Marshal(&a)
		if err != nil {
			return "", fmt.Errorf("encode alert %s: %w", id, err)
		}
		rev, err := s.kv.Update(ctx, id, data, e.Revision())
		if isCASConflict(err) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("update alert %s: %w", id, err)
		}
		s.store(&a, rev, true)
		return resultSuppressed, nil
	}
	return "", fmt.Errorf("alert %s/%s: too many generations or conflicts in one window", v.RuleID, window.Format(time.RFC3339))
}

// create stores a new alert with its creation event pending, then
// publishes the event.
func (s *Service) create(ctx context.Context, a *workflow.Alert) error {
	a.Pending = workflow.NewEvent(a)
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode alert %s: %w", a.ID, err)
	}
	rev, err := s.kv.Create(ctx, a.ID, data)
	if err != nil {
		return fmt.Errorf("create alert %s: %w", a.ID, err)
	}
	s.store(a, rev, true)
	s.metrics.AlertsCreated.WithLabelValues(string(a.Kind)).Inc()
	if err := s.flush(ctx, a, rev); err != nil {
		// The event stays pending in the record; the sweeper retries.
		s.log.Error("publish review event", "alert", a.ID, "err", err)
	}
	return nil
}

// flush publishes the pending event of a (stored at revision rev) and
// clears it with compare-and-set. A conflict on the clear is harmless: the
// newer writer saw the event pending and published it first.
func (s *Service) flush(ctx context.Context, a *workflow.Alert, rev uint64) error {
	if a.Pending == nil {
		return nil
	}
	if err := s.publishEvent(ctx, a.Pending); err != nil {
		return err
	}
	done := *a
	done.Pending = nil
	data, err := json.Marshal(&done)
	if err != nil {
		return fmt.Errorf("encode alert %s: %w", a.ID, err)
	}
	nrev, err := s.kv.Update(ctx, a.ID, data, rev)
	switch {
	case err == nil:
		s.store(&done, nrev, false)
	case !isCASConflict(err):
		s.log.Warn("clear published review event", "alert", a.ID, "err", err)
	}
	return nil
}

// sweep publishes the events left pending by failed publishes (a REVIEW
// stream outage, a crash between the state change and the publish).
func (s *Service) sweep(ctx context.Context) int {
	n := 0
	for _, e := range s.idx.pending() {
		if ctx.Err() != nil {
			break
		}
		if err := s.flush(ctx, e.alert, e.rev); err != nil {
			s.log.Warn("publish pending review event", "alert", e.alert.ID, "err", err)
			continue
		}
		n++
	}
	return n
}

// sweepLoop runs sweep every interval until ctx ends.
func (s *Service) sweepLoop(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.sweep(ctx)
		}
	}
}

func isCASConflict(err error) bool {
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch)
}

func appendCapped(s []string, v string, n int) []string {
	s = append(s, v)
	if len(s) > n {
		s = slices.Clone(s[len(s)-n:])
	}
	return s
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func minTime(a, b time.Time) time.Time {
	if a.IsZero() || b.Before(a) {
		return b
	}
	return a
}

// publishEvent appends ev to the REVIEW stream. The event id is the
// Nats-Msg-Id, so a retried publish is deduplicated.
func (s *Service) publishEvent(ctx context.Context, ev *workflow.Event) error {
	data, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("encode review event: %w", err)
	}
	msg := &nats.Msg{Subject: bus.ReviewSubject(ev.Tenant, ev.AlertID), Data: data, Header: nats.Header{}}
	msg.Header.Set(jetstream.MsgIDHeader, ev.ID)
	msg.Header.Set(jetstream.ExpectedStreamHeader, bus.StreamReview)
	var last error
	for attempt := range 3 {
		if attempt > 0 {
			sleep(ctx, time.Duration(attempt)*100*time.Millisecond)
		}
		pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bus.DefaultPublishTimeout)
		_, last = s.js.PublishMsg(pctx, msg)
		cancel()
		if last == nil {
			return nil
		}
	}
	s.metrics.EventPublishFailures.Inc()
	return fmt.Errorf("publish review event %s: %w", ev.ID, last)
}

// Transition applies op by p to alert id with compare-and-set and
// publishes the transition event. Refusals are *workflow.Error values
// (4xx) and change nothing; a concurrent change is re-read and op
// re-checked, so of two concurrent claims exactly one wins and the other
// gets [workflow.ErrAlreadyClaimed].
func (s *Service) Transition(ctx context.Context, p workflow.Principal, id string, op workflow.Op) (*workflow.Alert, error) {
	a, err := s.transition(ctx, p, id, op)
	switch {
	case err == nil:
		s.metrics.Transitions.WithLabelValues(string(op.Kind), resultOK).Inc()
	case isRefusal(err):
		s.metrics.Transitions.WithLabelValues(validOp(op.Kind), resultRefused).Inc()
	default:
		s.metrics.Transitions.WithLabelValues(validOp(op.Kind), resultError).Inc()
	}
	return a, err
}

func validOp(k workflow.OpKind) string {
	switch k {
	case workflow.OpClaim, workflow.OpRelease, workflow.OpAssign, workflow.OpComment, workflow.OpClose, workflow.OpReopen:
		return string(k)
	}
	return "unknown"
}

func isRefusal(err error) bool {
	var we *workflow.Error
	return errors.As(err, &we) && we.Status < 500
}

func notFound(id string) error {
	return workflow.Errorf(http.StatusNotFound, workflow.CodeNotFound, "alert %s not found", id)
}

func (s *Service) transition(ctx context.Context, p workflow.Principal, id string, op workflow.Op) (*workflow.Alert, error) {
	if !validAlertID(id) {
		return nil, notFound(id)
	}
	for range maxCASRetries {
		e, err := s.kv.Get(ctx, id)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, notFound(id)
		}
		if err != nil {
			return nil, unavailable(fmt.Errorf("get alert %s: %w", id, err))
		}
		var a workflow.Alert
		if err := json.Unmarshal(e.Value(), &a); err != nil {
			return nil, fmt.Errorf("decode alert %s: %w", id, err)
		}
		next, ev, err := workflow.Apply(&a, op, p, s.rules, s.now().UTC())
		if err != nil {
			return nil, err
		}
		// History stays in order: an earlier event still pending goes to
		// the stream before this transition is written.
		if a.Pending != nil {
			if err := s.publishEvent(ctx, a.Pending); err != nil {
				return nil, unavailable(fmt.Errorf("alert %s: earlier history event not recorded: %w", id, err))
			}
		}
		data, err := json.Marshal(next)
		if err != nil {
			return nil, fmt.Errorf("encode alert %s: %w", id, err)
		}
		rev, err := s.kv.Update(ctx, id, data, e.Revision())
		if isCASConflict(err) {
			continue
		}
		if err != nil {
			return nil, unavailable(fmt.Errorf("update alert %s: %w", id, err))
		}
		s.store(next, rev, true)
		if err := s.flush(ctx, next, rev); err != nil {
			s.log.Error("publish review event", "alert", id, "op", string(op.Kind), "err", err)
			return next, unavailable(fmt.Errorf("alert %s changed; its history event %s is pending: %w", id, ev.ID, err))
		}
		done := *next
		done.Pending = nil
		return &done, nil
	}
	return nil, workflow.Errorf(http.StatusConflict, workflow.CodeIllegalTransition, "alert %s is changing too often, try again", id)
}

// unavailable wraps a backend failure as a 503 *workflow.Error whose
// message hides the cause (logged by the caller).
func unavailable(err error) error {
	return &unavailableError{err: err}
}

type unavailableError struct{ err error }

func (e *unavailableError) Error() string { return e.err.Error() }
func (e *unavailableError) Unwrap() error { return e.err }

// validAlertID accepts the ids [workflow.AlertID] makes.
func validAlertID(id string) bool {
	if len(id) != 26 || !strings.HasPrefix(id, "a-") {
		return false
	}
	_, err := hex.DecodeString(id[2:])
	return err == nil
}

// BulkClose closes every alert of ids with one disposition and reason.
// Only privileged reviewers and admins may; each alert is checked as a
// single close would be, and the results say which were closed.
func (s *Service) BulkClose(ctx context.Context, p workflow.Principal, ids []string, d workflow.Disposition, reason string) ([]workflow.BulkResult, error) {
	if p.Role != workflow.RolePrivileged && p.Role != workflow.RoleAdmin {
		return nil, workflow.Errorf(http.StatusForbidden, workflow.CodeForbidden, "bulk close needs a privileged reviewer or an admin")
	}
	if len(ids) == 0 || len(ids) > workflow.MaxPerPage {
		return nil, workflow.Errorf(http.StatusBadRequest, workflow.CodeBadRequest, "bulk close takes 1 to %d alerts", workflow.MaxPerPage)
	}
	if strings.TrimSpace(reason) == "" {
		return nil, workflow.Errorf(http.StatusBadRequest, workflow.CodeReasonRequired, "closing needs a reason")
	}
	if !d.Valid() {
		return nil, workflow.Errorf(http.StatusBadRequest, workflow.CodeInvalidDisp, "unknown disposition")
	}
	out := make([]workflow.BulkResult, 0, len(ids))
	for _, id := range ids {
		a, err := s.Transition(ctx, p, id, workflow.Op{Kind: workflow.OpClose, Disposition: d, Reason: reason})
		r := workflow.BulkResult{ID: id}
		if err != nil {
			r.Error = toWorkflowError(err)
		} else {
			r.State = a.State
		}
		out = append(out, r)
	}
	return out, nil
}

func toWorkflowError(err error) *workflow.Error {
	var we *workflow.Error
	if errors.As(err, &we) {
		return we
	}
	return workflow.Errorf(http.StatusServiceUnavailable, workflow.CodeUnavailable, "temporarily unavailable")
}

// Alert returns the alert id if p may see it.
func (s *Service) Alert(_ context.Context, p workflow.Principal, id string) (*workflow.Alert, error) {
	a, ok := s.idx.get(id)
	if !ok || !p.Sees(a.Tenant) {
		return nil, notFound(id)
	}
	return a, nil
}

// Queue returns one page of the alerts p may see.
func (s *Service) Queue(_ context.Context, p workflow.Principal, f workflow.Filter) (*workflow.Page, error) {
	start := time.Now()
	pg := s.idx.query(p, f, s.now())
	s.metrics.QueueDuration.Observe(time.Since(start).Seconds())
	return pg, nil
}

// Stats returns the dashboard figures of the tenants p may see (narrowed
// to tenant when not empty).
func (s *Service) Stats(_ context.Context, p workflow.Principal, tenant string) (*workflow.Stats, error) {
	return s.idx.stats(p, tenant, s.now()), nil
}

// Conversation returns the messages around alert a's flagged message.
func (s *Service) Conversation(ctx context.Context, p workflow.Principal, a *workflow.Alert) ([]vigil.Message, error) {
	if !p.Sees(a.Tenant) {
		return nil, notFound(a.ID)
	}
	msgs, err := s.reader.Conversation(ctx, a.Tenant, a.ConversationID, a.MessageID, s.cfg.ContextMessages, s.cfg.ContextMessages)
	if err != nil {
		return nil, unavailable(fmt.Errorf("read conversation of alert %s: %w", a.ID, err))
	}
	return msgs, nil
}

// Authenticate returns the principal of a bearer token (or OIDC ID token).
func (s *Service) Authenticate(ctx context.Context, token string) (workflow.Principal, error) {
	return s.auth.authenticate(ctx, token)
}

// Subscribe returns live changes of alerts p may see until cancel is
// called or the service closes (the channel is then closed). Slow
// subscribers miss changes rather than slow the service.
func (s *Service) Subscribe(p workflow.Principal) (<-chan workflow.Change, func()) {
	return s.hub.subscribe(p)
}

// Ready is closed once Start has loaded the index.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// limiter returns the detokenize rate limiter of one reviewer.
func (s *Service) limiter(name string) *rate.Limiter {
	s.limMu.Lock()
	defer s.limMu.Unlock()
	l, ok := s.limiters[name]
	if !ok {
		l = rate.NewLimiter(rate.Limit(s.cfg.DetokenizePerMinute/60), s.cfg.DetokenizeBurst)
		s.limiters[name] = l
	}
	return l
}

func newEventID(prefix string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}
