package evaluator

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/vigilhq/vigil"
)

// Webhook headers. The signature is HMAC-SHA256 with the endpoint's secret
// over "<timestamp>.<body>", hex-encoded: binding the timestamp into the
// MAC lets receivers refuse replays older than their tolerance.
const (
	// HeaderSignature carries "sha256=<hex>".
	HeaderSignature = "X-Vigil-Signature"
	// HeaderTimestamp carries the Unix time in seconds the delivery was signed.
	HeaderTimestamp = "X-Vigil-Timestamp"
	// HeaderDelivery carries the verdict id; receivers deduplicate on it,
	// since a retried delivery repeats it.
	HeaderDelivery = "X-Vigil-Delivery"
)

// Webhook defaults.
const (
	// DefaultWebhookQueueSize bounds each endpoint's queue.
	DefaultWebhookQueueSize = 1024
	// DefaultWebhookAttempts is how many times a delivery is tried.
	DefaultWebhookAttempts = 5
	// DefaultWebhookBackoff is the first retry delay; it doubles up to
	// DefaultWebhookMaxBackoff, with jitter.
	DefaultWebhookBackoff = 200 * time.Millisecond
	// DefaultWebhookMaxBackoff caps the retry delay.
	DefaultWebhookMaxBackoff = 10 * time.Second
	// DefaultWebhookTimeout bounds one delivery attempt.
	DefaultWebhookTimeout = 5 * time.Second
	// DefaultSignatureTolerance is how old a signature [VerifySignature]
	// accepts by default.
	DefaultSignatureTolerance = 5 * time.Minute
)

// ErrBadSignature is returned by [VerifySignature] when a delivery's
// signature is missing, malformed, wrong or too old.
var ErrBadSignature = errors.New("bad webhook signature")

// WebhookEndpoint is one tenant's webhook receiver.
type WebhookEndpoint struct {
	// Tenant whose verdicts go to this endpoint.
	Tenant string
	// URL receives POSTs of the verdict as JSON.
	URL string
	// Secret keys the HMAC signature. Never logged.
	Secret []byte
	// Actions filters what is sent; empty sends every action except
	// escalate_tier2 (which is internal).
	Actions []vigil.Action
}

// WebhookConfig configures [Webhooks]. Zero fields take their Default*.
type WebhookConfig struct {
	// Endpoints to deliver to; several per tenant are allowed.
	Endpoints []WebhookEndpoint
	// QueueSize bounds each endpoint's queue. A full queue drops the
	// delivery and counts it in vigil_evaluator_webhook_drops_total.
	QueueSize int
	// Attempts is how many times a delivery is tried (5xx, 429 and network
	// errors are retried; other statuses are final).
	Attempts int
	// Backoff is the first retry delay; MaxBackoff caps the doubling.
	Backoff, MaxBackoff time.Duration
	// Timeout bounds one attempt.
	Timeout time.Duration
	// HTTPClient sends the requests. Default a new http.Client.
	HTTPClient *http.Client
	// Logger receives delivery failures (endpoint index, tenant, verdict
	// id and status only). Default slog.Default().
	Logger *slog.Logger
}

// Webhooks delivers action verdicts to tenants' signed webhooks. Each
// endpoint has a bounded queue and one goroutine, started by [Webhooks.Open]
// and stopped by [Webhooks.Close].
type Webhooks struct {
	cfg     WebhookConfig
	metrics *Metrics
	log     *slog.Logger
	eps     []*endpoint

	mu     sync.RWMutex
	open   bool
	closed bool
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

type endpoint struct {
	idx   int
	cfg   WebhookEndpoint
	queue chan delivery
}

type delivery struct {
	id   string
	body []byte
}

// NewWebhooks validates cfg and returns unopened webhooks; metrics may be
// nil. It returns ErrInvalidOption for an endpoint without tenant, URL or
// secret.
func NewWebhooks(cfg WebhookConfig, metrics *Metrics) (*Webhooks, error) {
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultWebhookQueueSize
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = DefaultWebhookAttempts
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultWebhookBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultWebhookMaxBackoff
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultWebhookTimeout
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	w := &Webhooks{cfg: cfg, metrics: metrics, log: cfg.Logger.With(logKeyComponent, "evaluator.webhooks")}
	for i, ep := range cfg.Endpoints {
		switch {
		case ep.Tenant == "":
			return nil, fmt.Errorf("%w: webhook endpoint %d: empty tenant", ErrInvalidOption, i)
		case ep.URL == "":
			return nil, fmt.Errorf("%w: webhook endpoint %d: empty url", ErrInvalidOption, i)
		case len(ep.Secret) == 0:
			return nil, fmt.Errorf("%w: webhook endpoint %d: empty secret", ErrInvalidOption, i)
		}
		w.eps = append(w.eps, &endpoint{idx: i, cfg: ep, queue: make(chan delivery, cfg.QueueSize)})
	}
	return w, nil
}

// Open starts one delivery goroutine per endpoint. It returns ErrClosed
// after Close.
func (w *Webhooks) Open() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if w.open {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	w.open, w.cancel = true, cancel
	for _, ep := range w.eps {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			w.run(ctx, ep)
		}()
	}
	return nil
}

// Send queues v for every endpoint of its tenant that wants its action,
// without blocking. A full queue drops the delivery for that endpoint, counts
// it, and the joined error matches ErrWebhookQueueFull. After Close it
// returns ErrClosed.
func (w *Webhooks) Send(v *vigil.Verdict) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return ErrClosed
	}
	var body []byte
	var errs []error
	for _, ep := range w.eps {
		if ep.cfg.Tenant != v.Tenant || !ep.wants(v.Action) {
			continue
		}
		if body == nil {
			var err error
			if body, err = json.Marshal(v); err != nil {
				return fmt.Errorf("encode verdict %s: %w", v.ID, err)
			}
		}
		select {
		case ep.queue <- delivery{id: v.ID, body: body}:
		default:
			w.metrics.WebhookDrops.WithLabelValues(v.Tenant).Inc()
			w.log.Warn("webhook queue full, delivery dropped", logKeyEndpoint, ep.idx, logKeyTenant, v.Tenant, logKeyVerdict, v.ID)
			errs = append(errs, fmt.Errorf("webhook endpoint %d: verdict %s: %w", ep.idx, v.ID, ErrWebhookQueueFull))
		}
	}
	return errors.Join(errs...)
}

// Close stops accepting deliveries, delivers what is queued until ctx ends,
// then abandons the rest (each abandoned delivery is counted as failed) and
// waits for the goroutines to exit.
func (w *Webhooks) Close(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	for _, ep := range w.eps {
		close(ep.queue)
	}
	cancel := w.cancel
	w.mu.Unlock()
	if cancel == nil {
		return nil
	}
	done := make(chan struct{})
	go func() {
		w.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		cancel()
		return nil
	case <-ctx.Done():
		cancel()
		<-done
		return fmt.Errorf("close webhooks: %w", ctx.Err())
	}
}

func (ep *endpoint) wants(a vigil.Action) bool {
	if len(ep.cfg.Actions) == 0 {
		return a != vigil.ActionEscalateTier2
	}
	return slices.Contains(ep.cfg.Actions, a)
}

func (w *Webhooks) run(ctx context.Context, ep *endpoint) {
	for d := range ep.queue {
		if ctx.Err() != nil {
			w.metrics.WebhookDeliveries.WithLabelValues("failed").Inc()
			continue
		}
		w.deliver(ctx, ep, d)
	}
}

// deliver tries one delivery up to Attempts times.
func (w *Webhooks) deliver(ctx context.Context, ep *endpoint, d delivery) {
	backoff := w.cfg.Backoff
	for attempt := 1; ; attempt++ {
		status, err := w.post(ctx, ep, d)
		if err == nil && status/100 == 2 {
			w.metrics.WebhookDeliveries.WithLabelValues("ok").Inc()
			return
		}
		transient := err != nil || status >= 500 || status == http.StatusTooManyRequests
		if !transient || attempt >= w.cfg.Attempts || ctx.Err() != nil {
			w.metrics.WebhookDeliveries.WithLabelValues("failed").Inc()
			w.log.Warn("webhook delivery failed", logKeyEndpoint, ep.idx, logKeyTenant, ep.cfg.Tenant,
				logKeyVerdict, d.id, logKeyStatus, status, logKeyAttempts, attempt, logKeyErr, err)
			return
		}
		w.metrics.WebhookDeliveries.WithLabelValues("retry").Inc()
		delay := backoff/2 + time.Duration(rand.Int64N(int64(backoff/2)+1))
		backoff = min(2*backoff, w.cfg.MaxBackoff)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
	}
}

func (w *Webhooks) post(ctx context.Context, ep *endpoint, d delivery) (int, error) {
	actx, cancel := context.WithTimeout(ctx, w.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, ep.cfg.URL, bytes.NewReader(d.body))
	if err != nil {
		return 0, fmt.Errorf("build webhook request: %w", err)
	}
	ts := time.Now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(ep.cfg.Secret, ts, d.body))
	req.Header.Set(HeaderDelivery, d.id)
	resp, err := w.cfg.HTTPClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post webhook: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}

// Sign returns the X-Vigil-Signature value for body signed at Unix time ts:
// "sha256=" + hex(HMAC-SHA256(secret, "<ts>.<body>")).
func Sign(secret []byte, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(strconv.FormatInt(ts, 10)))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature checks a delivery the way a receiver should: signature
// and timestamp headers present, timestamp within tolerance of now, and the
// MAC equal in constant time. It returns an error matching ErrBadSignature
// otherwise.
func VerifySignature(secret []byte, h http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	ts, err := strconv.ParseInt(h.Get(HeaderTimestamp), 10, 64)
	if err != nil {
		return fmt.Errorf("%w: bad %s header", ErrBadSignature, HeaderTimestamp)
	}
	if age := now.Sub(time.Unix(ts, 0)); age > tolerance || age < -tolerance {
		return fmt.Errorf("%w: timestamp outside tolerance %s", ErrBadSignature, tolerance)
	}
	if !hmac.Equal([]byte(h.Get(HeaderSignature)), []byte(Sign(secret, ts, body))) {
		return fmt.Errorf("%w: signature mismatch", ErrBadSignature)
	}
	return nil
}
