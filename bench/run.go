package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"
)

// Defaults of [RunConfig].
const (
	// DefaultSessions is the number of concurrent senders.
	DefaultSessions = 4
	// DefaultBatch is the number of messages per request.
	DefaultBatch = 1
	// DefaultMaxRetries bounds retries of one request refused with 429 or
	// 503.
	DefaultMaxRetries = 5
	// DefaultRetryAfter is the wait after a 429 or 503 without Retry-After.
	DefaultRetryAfter = time.Second
	// DefaultMaxRetryAfter caps the honoured Retry-After.
	DefaultMaxRetryAfter = 30 * time.Second
	// DefaultRequestTimeout bounds one request.
	DefaultRequestTimeout = 10 * time.Second
	// DefaultVerdictWait is how long verdicts are awaited after an ack, and
	// after the last send.
	DefaultVerdictWait = 5 * time.Second
	// DefaultConversationsPerSession is the number of conversations each
	// session keeps open.
	DefaultConversationsPerSession = 16
)

// ErrInvalidConfig is returned by [Run] for an invalid [RunConfig].
var ErrInvalidConfig = errors.New("bench: invalid run config")

// RunConfig configures [Run]. Zero fields take their Default* constant.
type RunConfig struct {
	// Transport is how messages are sent: [TransportHTTP] (default),
	// [TransportWS] or [TransportNATS].
	Transport Transport
	// Target is the base URL of Vigil's HTTP API (HTTP and WebSocket),
	// e.g. http://127.0.0.1:8080.
	Target string
	// NATSURL is the NATS server for [TransportNATS].
	NATSURL string
	// Token is the bearer token (HTTP and WebSocket); empty sends none.
	Token string
	// Tenant of every message. Default [DefaultTenant].
	Tenant string
	// Rate is the target in messages per second over all sessions, paced
	// by a token bucket; 0 sends as fast as the sessions can. Each session
	// has one request in flight, so when Sessions / ack latency is below
	// Rate the run falls behind (compare Result.Rate with TargetRate) and
	// ack latency, measured per request, does not include that queueing.
	Rate float64
	// Sessions is the number of concurrent senders: HTTP clients,
	// WebSocket sessions or NATS requesters, each with one request in
	// flight. Default [DefaultSessions].
	Sessions int
	// Duration stops sending after this long; Count after this many
	// messages. With neither, Run sends until ctx ends.
	Duration time.Duration
	Count    int64
	// Batch is the number of messages per request (/v1/messages/batch, a
	// JSON array on WebSocket and NATS). Default [DefaultBatch].
	Batch int
	// Seed makes the traffic reproducible: session i generates from
	// Seed+i.
	Seed int64
	// Mix is the traffic mix; the zero Mix means [DefaultMix].
	Mix Mix
	// ConversationsPerSession is the number of conversations each session
	// keeps open. Default [DefaultConversationsPerSession].
	ConversationsPerSession int
	// IDPrefix prefixes message and conversation ids; empty picks a random
	// one so that a rerun is not deduplicated against the last run.
	IDPrefix string
	// MaxRetries bounds retries of a request refused with 429 or 503, each
	// after the server's Retry-After. Default [DefaultMaxRetries]; -1
	// disables retries.
	MaxRetries int
	// RequestTimeout bounds one request. Default [DefaultRequestTimeout].
	RequestTimeout time.Duration
	// VerdictWait is how long a verdict is awaited after an ack and after
	// the last send (WebSocket and NATS). Default [DefaultVerdictWait].
	VerdictWait time.Duration
	// NoVerdicts turns verdict tracking off on WebSocket and NATS.
	NoVerdicts bool
	// HTTPClient is used for HTTP and the WebSocket handshake. Default: a
	// client pooling one connection per session.
	HTTPClient *http.Client
	// Logger receives lifecycle messages. Default slog.Default().
	Logger *slog.Logger
}

func (c RunConfig) withDefaults() (RunConfig, error) {
	if c.Transport == "" {
		c.Transport = TransportHTTP
	}
	switch c.Transport {
	case TransportHTTP, TransportWS:
		if c.Target == "" {
			return c, fmt.Errorf("%w: %s needs a target URL", ErrInvalidConfig, c.Transport)
		}
		if _, err := wsURL(c.Target); err != nil {
			return c, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		c.Target = strings.TrimSuffix(c.Target, "/")
	case TransportNATS:
		if c.NATSURL == "" {
			return c, fmt.Errorf("%w: nats needs a NATS URL", ErrInvalidConfig)
		}
	default:
		return c, fmt.Errorf("%w: unknown transport %q (want http, ws or nats)", ErrInvalidConfig, c.Transport)
	}
	if c.Tenant == "" {
		c.Tenant = DefaultTenant
	}
	if !(c.Rate >= 0) || c.Sessions < 0 || c.Duration < 0 || c.Count < 0 || c.Batch < 0 || c.MaxRetries < -1 ||
		c.RequestTimeout < 0 || c.VerdictWait < 0 || c.ConversationsPerSession < 0 {
		return c, fmt.Errorf("%w: negative (or NaN) value", ErrInvalidConfig)
	}
	if c.Sessions == 0 {
		c.Sessions = DefaultSessions
	}
	if c.Batch == 0 {
		c.Batch = DefaultBatch
	}
	if c.MaxRetries == 0 {
		c.MaxRetries = DefaultMaxRetries
	} else if c.MaxRetries == -1 {
		c.MaxRetries = 0
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	if c.VerdictWait == 0 {
		c.VerdictWait = DefaultVerdictWait
	}
	if c.ConversationsPerSession == 0 {
		c.ConversationsPerSession = DefaultConversationsPerSession
	}
	if c.Mix == (Mix{}) {
		c.Mix = DefaultMix
	}
	if err := c.Mix.validate(); err != nil {
		return c, err
	}
	if c.IDPrefix == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		c.IDPrefix = "sim" + hex.EncodeToString(b[:])
	}
	if c.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConnsPerHost = c.Sessions
		c.HTTPClient = &http.Client{Transport: t}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Result is what a run measured.
type Result struct {
	Transport Transport `json:"transport"`
	Sessions  int       `json:"sessions"`
	// TargetRate is the configured rate (0: unlimited).
	TargetRate float64 `json:"target_rate"`
	// Elapsed is the sending time, from the first send to the last ack
	// (verdict waiting excluded).
	Elapsed time.Duration `json:"-"`
	// ElapsedSeconds is Elapsed for JSON.
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// Sent counts messages handed to the transport (a retried message
	// counts once); Acked those acknowledged, Duplicates the acks marked
	// duplicate, Failed those given up on.
	Sent       int64 `json:"sent"`
	Acked      int64 `json:"acked"`
	Duplicates int64 `json:"duplicates"`
	Failed     int64 `json:"failed"`
	// Requests counts requests including retries; Retries the retries.
	Requests int64 `json:"requests"`
	Retries  int64 `json:"retries"`
	// Rate is the achieved rate: Acked / Elapsed.
	Rate float64 `json:"rate"`
	// AckLatency runs from a request's first attempt to its ack, so a
	// Retry-After wait counts.
	AckLatency LatencySummary `json:"ack_latency"`
	// VerdictLatency runs from a message's ack to the first verdict naming
	// it (WebSocket and NATS); nil when not measured.
	VerdictLatency *LatencySummary `json:"verdict_latency,omitempty"`
	// Verdicts counts verdict events received; VerdictMessages the
	// messages with at least one.
	Verdicts        int64 `json:"verdicts"`
	VerdictMessages int64 `json:"verdict_messages"`
	// Errors counts failed attempts by kind: a status ("429", "503", "400"…)
	// or one of the ErrKind* constants.
	Errors map[string]int64 `json:"errors"`
	// Labels counts acked messages by planted label (rule:…, pii:…).
	Labels map[string]int64 `json:"labels"`
}

// ErrorKinds returns the keys of Errors, sorted.
func (r *Result) ErrorKinds() []string {
	ks := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// run is the state shared by the sessions of one Run.
type run struct {
	cfg     RunConfig
	limiter *rate.Limiter
	tracker *verdictTracker
	ackHist *latencyHist
	nc      *nats.Conn

	claimed atomic.Int64 // messages claimed against Count

	mu     sync.Mutex
	res    Result
	first  time.Time
	lastAt time.Time
	warned bool
}

// Run generates traffic per cfg and sends it until Duration or Count is
// reached or ctx ends, then waits up to VerdictWait for outstanding
// verdicts and returns what it measured. When ctx ends, Run stops sending
// but lets requests in flight finish (each bounded by RequestTimeout) and
// skips the verdict wait, so an interrupted run still reports. Refused requests (429, 503) are
// retried after Retry-After; every failure is counted in Result.Errors, not
// returned. Run returns an error only when it cannot start: an invalid
// config (wrapping [ErrInvalidConfig] or [ErrInvalidMix]) or a transport
// it cannot connect (no NATS server, WebSocket handshake refused).
func Run(ctx context.Context, cfg RunConfig) (*Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, ackHist: newLatencyHist(), limiter: rate.NewLimiter(rate.Inf, cfg.Batch)}
	if cfg.Rate > 0 {
		r.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), cfg.Batch)
	}
	r.res = Result{Transport: cfg.Transport, Sessions: cfg.Sessions, TargetRate: cfg.Rate,
		Errors: map[string]int64{}, Labels: map[string]int64{}}
	if cfg.Transport != TransportHTTP && !cfg.NoVerdicts {
		r.tracker = newVerdictTracker(cfg.VerdictWait)
	}
	if cfg.Transport == TransportNATS {
		nc, err := nats.Connect(cfg.NATSURL, nats.Name("vigil simulate"), nats.MaxReconnects(-1))
		if err != nil {
			return nil, fmt.Errorf("connect to NATS %s: %w", cfg.NATSURL, err)
		}
		defer nc.Close()
		r.nc = nc
	}

	sendCtx := ctx
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		sendCtx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	// Open every session first so a refused handshake fails the run
	// instead of being counted per message.
	clients := make([]client, cfg.Sessions)
	for i := range clients {
		c, err := r.dial(ctx)
		if err != nil {
			for _, c := range clients[:i] {
				_ = c.close()
			}
			return nil, err
		}
		clients[i] = c
	}
	cfg.Logger.Info("simulation started", "transport", string(cfg.Transport), "sessions", cfg.Sessions,
		"rate", cfg.Rate, "duration", cfg.Duration.String(), "count", cfg.Count)
	gens := make([]*Generator, len(clients))
	for i := range gens {
		g, err := NewGenerator(cfg.Seed+int64(i), cfg.Mix, WithTenant(cfg.Tenant),
			WithIDPrefix(fmt.Sprintf("%s-s%d", cfg.IDPrefix, i)),
			WithConversations(cfg.ConversationsPerSession))
		if err != nil {
			for _, c := range clients {
				_ = c.close()
			}
			return nil, err
		}
		gens[i] = g
	}
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() { // owned by Run, which waits below
			defer wg.Done()
			clients[i] = r.session(context.WithoutCancel(ctx), sendCtx, clients[i], gens[i])
		}()
	}
	wg.Wait()

	if r.tracker != nil {
		r.awaitVerdicts(ctx)
	}
	for _, c := range clients {
		if c != nil {
			_ = c.close()
		}
	}
	return r.result(), nil
}

func (r *run) dial(ctx context.Context) (client, error) {
	switch r.cfg.Transport {
	case TransportWS:
		dctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
		defer cancel()
		return dialWS(dctx, r.cfg.Target, r.cfg.Token, r.cfg.HTTPClient, r.tracker)
	case TransportNATS:
		return newNATSClient(r.nc, r.cfg.Tenant, r.tracker, r.cfg.VerdictWait), nil
	}
	return &httpClient{hc: r.cfg.HTTPClient, base: r.cfg.Target, token: r.cfg.Token}, nil
}

// claim reserves up to n messages against Count and returns how many.
func (r *run) claim(n int) int {
	if r.cfg.Count == 0 {
		return n
	}
	after := r.claimed.Add(int64(n))
	if over := after - r.cfg.Count; over > 0 {
		return max(0, n-int(over))
	}
	return n
}

// session sends until sendCtx ends or Count is reached, and returns its
// (possibly redialled) client for Run to close. Requests run on reqCtx,
// which outlives sendCtx so that the last ones complete.
func (r *run) session(reqCtx, sendCtx context.Context, c client, g *Generator) client {
	batch := make([]*Message, 0, r.cfg.Batch)
	for sendCtx.Err() == nil {
		n := r.claim(r.cfg.Batch)
		if n == 0 {
			return c
		}
		if err := r.limiter.WaitN(sendCtx, n); err != nil {
			return c // sendCtx ended (or its deadline is closer than the wait)
		}
		batch = batch[:0]
		now := time.Now().UTC()
		for range n {
			m := g.Next()
			m.SentAt = now
			batch = append(batch, m)
		}
		if c == nil {
			var err error
			if c, err = r.dial(reqCtx); err != nil {
				r.fail(batch, classify(err))
				continue
			}
		}
		if !r.send(reqCtx, sendCtx, c, batch) && r.cfg.Transport == TransportWS {
			// A WebSocket session that lost a request is out of step
			// with its acks: start a new one.
			_ = c.close()
			c = nil
		}
	}
	return c
}

// send delivers one request with retries and records the outcome; a retry
// wait ends early when stop ends. It returns false when the client should
// be discarded.
func (r *run) send(ctx, stop context.Context, c client, batch []*Message) (healthy bool) {
	start := time.Now()
	r.mu.Lock()
	if r.first.IsZero() {
		r.first = start
	}
	r.res.Sent += int64(len(batch))
	r.mu.Unlock()
	for attempt := 0; ; attempt++ {
		rctx, cancel := context.WithTimeout(ctx, r.cfg.RequestTimeout)
		acks, err := c.send(rctx, batch)
		cancel()
		r.mu.Lock()
		r.res.Requests++
		if attempt > 0 {
			r.res.Retries++
		}
		r.mu.Unlock()
		if err == nil {
			r.ok(batch, acks, start)
			return true
		}
		se := classify(err)
		if !se.Retryable() || attempt >= r.cfg.MaxRetries {
			r.fail(batch, se)
			return se.Status != 0
		}
		r.countError(se)
		wait := se.RetryAfter
		if wait <= 0 {
			wait = DefaultRetryAfter
		}
		wait = min(wait, DefaultMaxRetryAfter)
		t := time.NewTimer(wait)
		select {
		case <-stop.Done():
			t.Stop()
			r.mu.Lock()
			r.res.Failed += int64(len(batch))
			r.mu.Unlock()
			return false
		case <-t.C:
		}
	}
}

func (r *run) ok(batch []*Message, acks []Ack, start time.Time) {
	now := time.Now()
	r.ackHist.record(now.Sub(start))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lastAt = now
	if len(acks) != len(batch) {
		r.res.Errors[ErrKindProtocol]++
		r.res.Failed += int64(len(batch))
		return
	}
	for i, a := range acks {
		if a.ID != batch[i].ID {
			r.res.Errors[ErrKindProtocol]++
			r.res.Failed++
			continue
		}
		r.res.Acked++
		if a.Duplicate {
			r.res.Duplicates++
		}
		for _, l := range batch[i].Labels {
			r.res.Labels[l]++
		}
	}
}

func (r *run) fail(batch []*Message, se *SendError) {
	r.countError(se)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.res.Failed += int64(len(batch))
	r.lastAt = time.Now()
	if !r.warned {
		// Say it once; the summary counts the rest.
		r.warned = true
		r.cfg.Logger.Warn("request failed", "err", se)
	}
}

func (r *run) countError(se *SendError) {
	r.mu.Lock()
	r.res.Errors[se.Kind]++
	r.mu.Unlock()
}

// awaitVerdicts waits until every acked message had a verdict or the
// verdict wait has passed since the last ack, whichever is first.
func (r *run) awaitVerdicts(ctx context.Context) {
	r.mu.Lock()
	deadline := r.lastAt.Add(r.cfg.VerdictWait)
	r.mu.Unlock()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for time.Now().Before(deadline) {
		r.tracker.mu.Lock()
		pending := len(r.tracker.pending)
		r.tracker.mu.Unlock()
		if pending == 0 {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *run) result() *Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := r.res
	if !r.first.IsZero() && r.lastAt.After(r.first) {
		res.Elapsed = r.lastAt.Sub(r.first)
		res.ElapsedSeconds = res.Elapsed.Seconds()
		res.Rate = float64(res.Acked) / res.Elapsed.Seconds()
	}
	res.AckLatency = r.ackHist.summary()
	if r.tracker != nil {
		s := r.tracker.hist.summary()
		res.VerdictLatency = &s
		res.Verdicts, res.VerdictMessages, _ = r.tracker.counts()
	}
	return &res
}
