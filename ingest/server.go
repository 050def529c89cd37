// Package ingest is Vigil's front door: it accepts chat messages over HTTP
// (POST /v1/messages, POST /v1/messages/batch), WebSocket sessions
// (GET /v1/ws) and NATS request/reply (vigil.ingest.<tenant>), validates
// them against documented limits, authenticates the tenant, has the PII
// tokenizer replace personal data, publishes them to the MESSAGES stream
// and acknowledges only after the JetStream PubAck. WebSocket sessions
// also receive the actions (retract, flag…) the evaluator later publishes
// for the conversations they sent into.
//
// Flow: ingest → pii → bus → evaluator → warehouse.
//
// Backpressure is explicit: more than Config.MaxInFlight unacked messages
// gives 429, a full stream or a publish timeout gives 503, both with
// Retry-After. Nothing is ever acked that JetStream did not store. An
// invalid request stores nothing; a batch is published as one atomic
// JetStream batch (all or nothing; one fsync under SyncAlways), except a
// retried batch holding already stored ids, which is published message by
// message — so after a 503 some of a batch may be stored, and retrying the
// whole batch is safe because ids deduplicate.
package ingest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
)

// Tokenizer replaces personal data in a message before it is stored: in
// m.Text, m.Sender.DisplayName and m.Participants[].DisplayName it puts
// tokens, fills m.PII (kind → count) and m.Subjects, and stores the
// originals in the vault before returning. pii.Tokenizer implements it.
type Tokenizer interface {
	TokenizeMessage(ctx context.Context, m *vigil.Message) error
}

// Publisher stores tokenized messages; *bus.Bus implements it.
type Publisher interface {
	PublishMessage(ctx context.Context, m *vigil.Message) (bus.Ack, error)
	PublishMessages(ctx context.Context, ms []*vigil.Message) ([]bus.Ack, error)
}

var _ Publisher = (*bus.Bus)(nil)

// Ack is the acknowledgement of one stored message.
type Ack struct {
	// ID is the message id (client-supplied or derived).
	ID string `json:"id"`
	// Sequence is the MESSAGES stream sequence.
	Sequence uint64 `json:"seq"`
	// Duplicate reports that the id was already stored; nothing new was
	// written and Sequence is the first copy's.
	Duplicate bool `json:"duplicate"`
	// Conflict reports a duplicate id whose stored message differs from
	// this one (tenant, conversation, sender, sent_at or text): the client
	// reused an id for another message. The stored message is kept; this
	// one was not stored.
	Conflict bool `json:"conflict,omitempty"`
}

// BatchAck is the answer to a batch: one Ack per message, in order.
type BatchAck struct {
	Acks []Ack `json:"acks"`
}

// Server is the ingest front door. Create it with [New], mount
// [Server.Handler], start [Server.ServeNATS] if wanted, and stop with
// [Server.Close].
type Server struct {
	bus     *bus.Bus
	pub     Publisher
	tok     Tokenizer
	cfg     Config
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time
	tokens  map[[32]byte]string

	inFlight atomic.Int64
	closed   atomic.Bool
	// life orders wg.Add of new sessions before Close's wg.Wait: a
	// session registers under RLock only while closed is false.
	life sync.RWMutex

	// ctx is cancelled by Close; sessions and workers stop on it.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	router *router
	commit *committer

	natsMu  sync.Mutex
	natsSub *nats.Subscription
	natsCh  chan *nats.Msg
	natsWG  sync.WaitGroup // NATS workers, also counted in wg
}

// Option configures [New].
type Option func(*options) error

type options struct {
	log     *slog.Logger
	metrics *Metrics
	pub     Publisher
	now     func() time.Time
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

// WithPublisher publishes through p instead of the Bus (for example a
// wrapper that adds tracing). The Bus is still used for subscriptions.
func WithPublisher(p Publisher) Option {
	return func(o *options) error {
		if p == nil {
			return fmt.Errorf("%w: nil publisher", ErrInvalidOption)
		}
		o.pub = p
		return nil
	}
}

// WithClock sets the clock that stamps received_at (tests).
func WithClock(now func() time.Time) Option {
	return func(o *options) error {
		if now == nil {
			return fmt.Errorf("%w: nil clock", ErrInvalidOption)
		}
		o.now = now
		return nil
	}
}

// New returns an ingest server publishing through b after tok has
// tokenized each message. Without Config.Tokens it refuses to start unless
// Config.Insecure is set.
//
// Available options:
//   - [WithLogger]
//   - [WithMetrics]
//   - [WithPublisher]
//   - [WithClock]
func New(b *bus.Bus, tok Tokenizer, cfg Config, opts ...Option) (*Server, error) {
	if b == nil || tok == nil {
		return nil, fmt.Errorf("%w: bus and tokenizer are required", ErrInvalidOption)
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	o := options{log: slog.Default(), pub: b, now: time.Now}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.metrics == nil {
		o.metrics = NewMetrics(nil)
	}
	s := &Server{
		bus: b, pub: o.pub, tok: tok, cfg: cfg, now: o.now,
		log: o.log.With("component", "ingest"), metrics: o.metrics,
		tokens: make(map[[32]byte]string, len(cfg.Tokens)),
	}
	for t, tenant := range cfg.Tokens {
		// Keyed by hash so a lookup does not compare secret bytes.
		s.tokens[sha256.Sum256([]byte(t))] = tenant
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.commit = &committer{pub: s.pub, max: DefaultCommitters, wg: &s.wg}
	s.router = newRouter(s)
	s.wg.Add(1)
	go func() { // stopped by Close (s.ctx)
		defer s.wg.Done()
		s.router.run(s.ctx)
	}()
	return s, nil
}

// Close stops accepting requests, closes WebSocket sessions with "going
// away", drains the NATS responder and waits for every goroutine of the
// server, or until ctx ends. The HTTP listener belongs to the caller:
// shut it down first.
func (s *Server) Close(ctx context.Context) error {
	s.life.Lock()
	s.closed.Store(true)
	s.life.Unlock()
	s.natsMu.Lock()
	sub, ch := s.natsSub, s.natsCh
	s.natsSub, s.natsCh = nil, nil
	s.natsMu.Unlock()
	if sub != nil {
		// Drain stops new requests from arriving while the workers answer
		// the ones already queued; once the subscription is gone nothing
		// writes to ch any more, and closing it lets the workers finish
		// the queue and exit.
		_ = sub.Drain()
		for sub.IsValid() {
			select {
			case <-ctx.Done():
				s.cancel()
				return fmt.Errorf("close ingest: %w", ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
		}
		close(ch)
		done := make(chan struct{})
		go func() { // ends when the workers have answered the queue
			s.natsWG.Wait()
			close(done)
		}()
		select {
		case <-done:
		case <-ctx.Done():
			s.cancel()
			return fmt.Errorf("close ingest: %w", ctx.Err())
		}
	}
	s.cancel()
	done := make(chan struct{})
	go func() { // ends when every server goroutine has
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close ingest: %w", ctx.Err())
	}
}

// register adds a session goroutine to wg unless the server is closing.
func (s *Server) register() bool {
	s.life.RLock()
	defer s.life.RUnlock()
	if s.closed.Load() {
		return false
	}
	s.wg.Add(1)
	return true
}

// authenticate returns the tenant a bearer token may write ("" in open
// mode: any tenant).
func (s *Server) authenticate(authz string) (string, *Error) {
	if len(s.tokens) == 0 && s.cfg.Insecure {
		return "", nil
	}
	tok, ok := strings.CutPrefix(authz, "Bearer ")
	if !ok || tok == "" {
		return "", &Error{Status: http.StatusUnauthorized, Msg: "missing bearer token"}
	}
	tenant, ok := s.tokens[sha256.Sum256([]byte(tok))]
	if !ok {
		return "", &Error{Status: http.StatusUnauthorized, Msg: "unknown bearer token"}
	}
	return tenant, nil
}

// admit reserves n in-flight slots or refuses with 429.
func (s *Server) admit(n int) *Error {
	if s.closed.Load() {
		return &Error{Status: http.StatusServiceUnavailable, Msg: "server shutting down", RetryAfter: s.cfg.RetryAfter, err: ErrClosed}
	}
	if v := s.inFlight.Add(int64(n)); v > int64(s.cfg.MaxInFlight) {
		s.inFlight.Add(-int64(n))
		return &Error{Status: http.StatusTooManyRequests, Msg: "too many messages in flight", RetryAfter: s.cfg.RetryAfter}
	}
	s.metrics.InFlight.Add(float64(n))
	return nil
}

func (s *Server) release(n int) {
	s.inFlight.Add(-int64(n))
	s.metrics.InFlight.Sub(float64(n))
}

// ingest validates, authorizes, tokenizes and publishes ws, returning one
// Ack per message after every PubAck. tenant is the token's tenant ("" =
// any); batch prefixes error fields with the element index. It stores
// nothing unless every message is valid.
func (s *Server) ingest(ctx context.Context, tenant string, ws []*wireMessage, batch bool) ([]Ack, *Error) {
	received := s.now()
	ms := make([]*vigil.Message, len(ws))
	for i, w := range ws {
		m, e := s.toMessage(w, received)
		if e == nil && tenant != "" && m.Tenant != tenant {
			e = &Error{Status: http.StatusForbidden, Field: "tenant", Msg: "token may not write this tenant"}
		}
		if e != nil {
			if batch {
				e = e.at(i)
			}
			return nil, e
		}
		ms[i] = m
	}
	if e := s.admit(len(ms)); e != nil {
		return nil, e
	}
	defer s.release(len(ms))
	ctx, cancel := context.WithTimeout(ctx, s.cfg.AckTimeout)
	defer cancel()
	for _, m := range ms {
		if err := s.tok.TokenizeMessage(ctx, m); err != nil {
			// The error may come from the vault; it carries no message
			// content by the pii package's contract, but log only ids.
			s.log.Error("tokenize failed", "message_id", m.ID, "err", err)
			return nil, &Error{Status: http.StatusServiceUnavailable, Msg: "tokenizer unavailable", RetryAfter: s.cfg.RetryAfter, err: err}
		}
	}
	var (
		backs []bus.Ack
		err   error
	)
	if len(ms) == 1 {
		var a bus.Ack
		a, err = s.commit.publish(ctx, ms[0])
		backs = []bus.Ack{a}
	} else {
		backs, err = s.pub.PublishMessages(ctx, ms)
	}
	if err != nil {
		return nil, s.publishError(err)
	}
	acks := make([]Ack, len(ms))
	for i, m := range ms {
		acks[i] = Ack{ID: m.ID, Sequence: backs[i].Sequence, Duplicate: backs[i].Duplicate}
		if acks[i].Duplicate {
			acks[i].Conflict = s.conflicts(ctx, m, acks[i].Sequence)
		}
	}
	return acks, nil
}

// conflicts reports whether the message stored at seq under m's id is a
// different message. Nats-Msg-Id dedup compares ids only (DESIGN.md), so a
// reused id would otherwise be dropped silently. Tokens are deterministic,
// so the same message tokenizes to the same stored text.
func (s *Server) conflicts(ctx context.Context, m *vigil.Message, seq uint64) bool {
	if s.bus == nil {
		return false
	}
	stored, err := s.bus.GetMessage(ctx, seq)
	if err != nil {
		// Erased or unreadable: the duplicate ack stands; nothing to compare.
		s.log.Debug("duplicate check skipped", "message_id", m.ID, "err", err)
		return false
	}
	same := stored.ID == m.ID && stored.Tenant == m.Tenant && stored.ConversationID == m.ConversationID &&
		stored.Sender.ID == m.Sender.ID && stored.SentAt.Equal(m.SentAt) && stored.Text == m.Text
	if !same {
		s.metrics.IDConflicts.Inc()
		s.log.Warn("message id reused for a different message", "message_id", m.ID, "seq", seq)
	}
	return !same
}

// publishError maps a bus error to the answer: 503 for a full or
// unavailable stream and timeouts, 429 when the publish window is full.
func (s *Server) publishError(err error) *Error {
	e := &Error{Status: http.StatusServiceUnavailable, RetryAfter: s.cfg.RetryAfter, err: err}
	switch {
	case errors.Is(err, bus.ErrStreamFull):
		e.Msg = "message store full"
	case errors.Is(err, bus.ErrBusy):
		e.Status, e.Msg = http.StatusTooManyRequests, "too many messages in flight"
	case errors.Is(err, bus.ErrPublishTimeout), errors.Is(err, context.DeadlineExceeded):
		e.Msg = "message store did not acknowledge in time"
	case errors.Is(err, bus.ErrUnavailable):
		e.Msg = "message store unavailable"
	case errors.Is(err, bus.ErrInvalidRecord):
		return &Error{Status: http.StatusBadRequest, Msg: "invalid identifier", err: err}
	default:
		s.log.Error("publish failed", "err", err)
		e.Status, e.Msg, e.RetryAfter = http.StatusInternalServerError, "could not store message", 0
	}
	return e
}

// result is the metrics label of an answer.
func result(e *Error) string {
	if e == nil {
		return ResultAccepted
	}
	switch e.Status {
	case http.StatusBadRequest:
		return ResultBadRequest
	case http.StatusRequestEntityTooLarge:
		return ResultTooLarge
	case http.StatusUnauthorized:
		return ResultUnauthorized
	case http.StatusForbidden:
		return ResultForbidden
	case http.StatusTooManyRequests:
		return ResultThrottled
	case http.StatusServiceUnavailable:
		return ResultUnavailable
	}
	return ResultError
}

func (s *Server) observe(transport string, start time.Time, msgs int, e *Error) {
	s.metrics.Requests.WithLabelValues(transport, result(e)).Inc()
	if e == nil {
		s.metrics.AckDuration.WithLabelValues(transport).Observe(time.Since(start).Seconds())
		s.metrics.Messages.WithLabelValues(transport).Add(float64(msgs))
	}
}
