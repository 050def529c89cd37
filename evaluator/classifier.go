package evaluator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// Classifier defaults.
const (
	// DefaultClassifierTimeout bounds one classifier HTTP attempt.
	DefaultClassifierTimeout = 2 * time.Second
	// DefaultClassifierRetries is how many times a 5xx or timed-out call is retried.
	DefaultClassifierRetries = 2
	// DefaultClassifierBackoff is the base of the jittered retry backoff.
	DefaultClassifierBackoff = 50 * time.Millisecond
	// DefaultBudgetPerMinute is each tenant's tier-2 call budget.
	DefaultBudgetPerMinute = 60
	// DefaultBreakerFailures opens the circuit breaker after this many
	// consecutive failed calls.
	DefaultBreakerFailures = 5
	// DefaultBreakerCooldown is how long the breaker stays open before it
	// lets one probe call through (half-open).
	DefaultBreakerCooldown = 30 * time.Second
	// DefaultClassifierCacheSize bounds the result cache.
	DefaultClassifierCacheSize = 10_000
	// DefaultMinConfidence is the confidence a label needs to become a verdict.
	DefaultMinConfidence = 0.5
	// maxClassifierResponseBytes bounds what is read of a response body.
	maxClassifierResponseBytes = 1 << 20
)

// LabelNone is the label a classifier answers when no label applies.
const LabelNone = "none"

// MaxReasonBytes bounds the classifier's reason kept on a verdict.
const MaxReasonBytes = 256

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Classifier protocols.
const (
	// ProtocolChatCompletions is the OpenAI-compatible chat-completions API
	// (vLLM, llama.cpp, Ollama, hosted): POST {URL}/v1/chat/completions.
	ProtocolChatCompletions = "chat-completions"
	// ProtocolPlain is a plain HTTP classifier: POST {URL} with
	// {"text", "labels"}, answering {"label", "confidence"}.
	ProtocolPlain = "plain"
)

// ClassifierConfig configures a [Classifier].
type ClassifierConfig struct {
	// URL is the endpoint's base URL (chat-completions) or full URL (plain).
	URL string
	// Protocol is ProtocolChatCompletions (default) or ProtocolPlain.
	Protocol string
	// Model is the chat-completions model name.
	Model string
	// APIKey is sent with every call; empty sends none. Never logged.
	APIKey string
	// APIKeyHeader names the header carrying APIKey. Default
	// "Authorization", sent as "Bearer <key>"; any other header gets the
	// key as is.
	APIKeyHeader string
	// Timeout bounds one attempt. Default DefaultClassifierTimeout.
	Timeout time.Duration
	// Retries is how many times a 5xx, network error or timeout is retried
	// with jittered exponential backoff. Default DefaultClassifierRetries;
	// negative means none.
	Retries int
	// Backoff is the base retry delay. Default DefaultClassifierBackoff.
	Backoff time.Duration
	// BudgetPerMinute is each tenant's call budget, a token bucket refilled
	// continuously with a burst of the same size. Default
	// DefaultBudgetPerMinute.
	BudgetPerMinute float64
	// TenantBudgets overrides BudgetPerMinute per tenant.
	TenantBudgets map[string]float64
	// BreakerFailures opens the breaker after that many consecutive failed
	// calls. Default DefaultBreakerFailures.
	BreakerFailures int
	// BreakerCooldown is how long the breaker stays open. Default
	// DefaultBreakerCooldown.
	BreakerCooldown time.Duration
	// CacheSize bounds the result cache, keyed by a hash of rule, prompt,
	// labels, text and the context messages sent with it.
	// Default DefaultClassifierCacheSize.
	CacheSize int
	// MinConfidence is the confidence a label needs to become a verdict.
	// Default DefaultMinConfidence.
	MinConfidence float64
	// HTTPClient sends the requests. Default a client without timeout
	// (Timeout applies per attempt through the context).
	HTTPClient *http.Client
}

// ClassifyRequest is one tier-2 question: does this rule's classifier put
// this (tokenized) text under one of the labels?
type ClassifyRequest struct {
	// Tenant selects the budget. It is a metric label.
	Tenant string
	// RuleID and Prompt come from the rule that asked.
	RuleID string
	Prompt string
	// Labels are the labels the classifier may answer besides LabelNone.
	Labels []string
	// Text is the tokenized message text.
	Text string
	// Context is the tokenized text of recent messages, oldest first.
	Context []string
}

// Classification is a classifier's answer.
type Classification struct {
	// Label is one of the request's labels or LabelNone.
	Label string `json:"label"`
	// Confidence is in [0, 1].
	Confidence float64 `json:"confidence"`
	// Reason is the classifier's short explanation (chat-completions only).
	Reason string `json:"reason,omitempty"`
	// Cached reports that the answer came from the result cache.
	Cached bool `json:"-"`
}

// Fires reports whether c names a label with at least minConfidence.
func (c Classification) Fires(minConfidence float64) bool {
	return c.Label != "" && c.Label != LabelNone && c.Confidence >= minConfidence
}

// Classifier calls the tier-2 classifier with a per-tenant budget, retries,
// a circuit breaker and a result cache. It is safe for concurrent use and
// owns no goroutines.
type Classifier struct {
	cfg     ClassifierConfig
	metrics *Metrics

	mu       sync.Mutex
	budgets  map[string]*rate.Limiter
	failures int
	openTill time.Time
	probing  bool

	cache *lru.Cache[string, Classification]
	now   func() time.Time
}

// NewClassifier returns a classifier for cfg; metrics may be nil. It
// returns ErrInvalidOption for a missing URL, an unknown protocol or a
// chat-completions config without a model.
func NewClassifier(cfg ClassifierConfig, metrics *Metrics) (*Classifier, error) {
	if cfg.URL == "" {
		return nil, fmt.Errorf("%w: classifier url is empty", ErrInvalidOption)
	}
	switch cfg.Protocol {
	case "":
		cfg.Protocol = ProtocolChatCompletions
	case ProtocolChatCompletions, ProtocolPlain:
	default:
		return nil, fmt.Errorf("%w: classifier protocol %q (want %q or %q)", ErrInvalidOption, cfg.Protocol, ProtocolChatCompletions, ProtocolPlain)
	}
	if cfg.Protocol == ProtocolChatCompletions && cfg.Model == "" {
		return nil, fmt.Errorf("%w: classifier model is empty", ErrInvalidOption)
	}
	if cfg.APIKeyHeader == "" {
		cfg.APIKeyHeader = "Authorization"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultClassifierTimeout
	}
	if cfg.Retries == 0 {
		cfg.Retries = DefaultClassifierRetries
	} else if cfg.Retries < 0 {
		cfg.Retries = 0
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultClassifierBackoff
	}
	if cfg.BudgetPerMinute <= 0 {
		cfg.BudgetPerMinute = DefaultBudgetPerMinute
	}
	if cfg.BreakerFailures <= 0 {
		cfg.BreakerFailures = DefaultBreakerFailures
	}
	if cfg.BreakerCooldown <= 0 {
		cfg.BreakerCooldown = DefaultBreakerCooldown
	}
	if cfg.CacheSize <= 0 {
		cfg.CacheSize = DefaultClassifierCacheSize
	}
	if cfg.MinConfidence <= 0 {
		cfg.MinConfidence = DefaultMinConfidence
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	return &Classifier{
		cfg: cfg, metrics: metrics, budgets: make(map[string]*rate.Limiter),
		cache: newCache[string, Classification](cfg.CacheSize), now: time.Now,
	}, nil
}

// MinConfidence is the confidence a label needs to become a verdict.
func (c *Classifier) MinConfidence() float64 { return c.cfg.MinConfidence }

// Classify asks the classifier about req. A cached answer for the same rule,
// text and context is returned without a call. Otherwise it returns
// ErrCircuitOpen while the breaker is open, ErrBudgetExhausted when the
// tenant's budget is used up (neither waits), ErrClassifier for unusable
// answers, and the context's error when ctx ends. Transient failures (5xx,
// network errors, attempt timeouts) are retried up to Retries times.
func (c *Classifier) Classify(ctx context.Context, req ClassifyRequest) (Classification, error) {
	key := cacheKey(req)
	if res, ok := c.cache.Get(key); ok {
		c.metrics.Tier2Calls.WithLabelValues("cached").Inc()
		res.Cached = true
		return res, nil
	}
	if !c.breakerAllow() {
		c.metrics.Tier2Calls.WithLabelValues("circuit_open").Inc()
		return Classification{}, fmt.Errorf("classify for rule %s: %w", req.RuleID, ErrCircuitOpen)
	}
	if !c.budget(req.Tenant).Allow() {
		c.breakerRelease()
		c.metrics.Tier2Calls.WithLabelValues("budget").Inc()
		c.metrics.BudgetExhausted.WithLabelValues(req.Tenant).Inc()
		return Classification{}, fmt.Errorf("classify for rule %s: %w", req.RuleID, ErrBudgetExhausted)
	}
	res, err := c.call(ctx, req)
	c.breakerDone(err == nil || ctx.Err() != nil && errors.Is(err, ctx.Err()))
	switch {
	case err == nil:
		c.cache.Add(key, res)
		if res.Label == LabelNone {
			c.metrics.Tier2Calls.WithLabelValues("none").Inc()
		} else {
			c.metrics.Tier2Calls.WithLabelValues("ok").Inc()
		}
		return res, nil
	case errors.Is(err, context.DeadlineExceeded):
		c.metrics.Tier2Calls.WithLabelValues("timeout").Inc()
	default:
		c.metrics.Tier2Calls.WithLabelValues("error").Inc()
	}
	return Classification{}, fmt.Errorf("classify for rule %s: %w", req.RuleID, err)
}

// call runs the attempts of one classification.
func (c *Classifier) call(ctx context.Context, req ClassifyRequest) (Classification, error) {
	body, url, err := c.encode(req)
	if err != nil {
		return Classification{}, err
	}
	var lastErr error
	for attempt := 0; attempt <= c.cfg.Retries; attempt++ {
		if attempt > 0 {
			// Full jitter: a random delay in [0, base·2^attempt).
			d := time.Duration(rand.Int64N(int64(c.cfg.Backoff) << attempt))
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return Classification{}, ctx.Err()
			case <-t.C:
			}
		}
		res, retry, err := c.attempt(ctx, url, body, req)
		if err == nil {
			return res, nil
		}
		lastErr = err
		if !retry || ctx.Err() != nil {
			break
		}
	}
	return Classification{}, lastErr
}

// attempt sends one request; retry reports whether a failure is transient.
func (c *Classifier) attempt(ctx context.Context, url string, body []byte, req ClassifyRequest) (res Classification, retry bool, err error) {
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(actx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return res, false, fmt.Errorf("%w: build request: %w", ErrClassifier, err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if c.cfg.APIKey != "" {
		if strings.EqualFold(c.cfg.APIKeyHeader, "Authorization") {
			hreq.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
		} else {
			hreq.Header.Set(c.cfg.APIKeyHeader, c.cfg.APIKey)
		}
	}
	resp, err := c.cfg.HTTPClient.Do(hreq)
	if err != nil {
		if actx.Err() != nil && ctx.Err() == nil {
			// The attempt's own deadline: transient.
			return res, true, fmt.Errorf("attempt timed out after %s: %w", c.cfg.Timeout, context.DeadlineExceeded)
		}
		if ctx.Err() != nil {
			return res, false, ctx.Err()
		}
		return res, true, fmt.Errorf("%w: %w", ErrClassifier, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxClassifierResponseBytes))
	if err != nil {
		return res, true, fmt.Errorf("%w: read response: %w", ErrClassifier, err)
	}
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		return res, true, fmt.Errorf("%w: status %d", ErrClassifier, resp.StatusCode)
	}
	if resp.StatusCode/100 != 2 {
		return res, false, fmt.Errorf("%w: status %d", ErrClassifier, resp.StatusCode)
	}
	res, err = c.decode(data)
	if err != nil {
		return res, false, err
	}
	if res.Label != LabelNone && !slices.Contains(req.Labels, res.Label) {
		return Classification{}, false, fmt.Errorf("%w: label outside the rule's labels", ErrClassifier)
	}
	if res.Confidence < 0 || res.Confidence > 1 {
		return Classification{}, false, fmt.Errorf("%w: confidence %v outside [0, 1]", ErrClassifier, res.Confidence)
	}
	res.Reason = truncateUTF8(res.Reason, MaxReasonBytes)
	return res, false, nil
}

// Chat-completions wire types (the subset Vigil sends and reads).
type (
	chatRequest struct {
		Model          string         `json:"model"`
		Messages       []chatMessage  `json:"messages"`
		Temperature    float64        `json:"temperature"`
		ResponseFormat responseFormat `json:"response_format"`
	}
	chatMessage struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	}
	responseFormat struct {
		Type       string     `json:"type"`
		JSONSchema jsonSchema `json:"json_schema"`
	}
	jsonSchema struct {
		Name   string         `json:"name"`
		Strict bool           `json:"strict"`
		Schema map[string]any `json:"schema"`
	}
	chatResponse struct {
		Choices []struct {
			Message chatMessage `json:"message"`
		} `json:"choices"`
	}
	plainRequest struct {
		Text   string   `json:"text"`
		Labels []string `json:"labels"`
	}
)

// maxContextMessages bounds how many context messages go into a prompt.
const maxContextMessages = 5

func (c *Classifier) encode(req ClassifyRequest) (body []byte, url string, err error) {
	if c.cfg.Protocol == ProtocolPlain {
		body, err = json.Marshal(plainRequest{Text: req.Text, Labels: req.Labels})
		return body, c.cfg.URL, err
	}
	labels := append(slices.Clone(req.Labels), LabelNone)
	system := req.Prompt + "\n\nAnswer with a JSON object: \"label\" is one of " +
		strings.Join(quoteAll(labels), ", ") + " (\"none\" when no label applies), " +
		"\"confidence\" is a number from 0 to 1, \"reason\" is one short sentence."
	var user strings.Builder
	if ctxMsgs := promptContext(req.Context); len(ctxMsgs) > 0 {
		user.WriteString("Recent conversation, oldest first:\n")
		for _, m := range ctxMsgs {
			user.WriteString("- ")
			user.WriteString(m)
			user.WriteString("\n")
		}
		user.WriteString("\n")
	}
	user.WriteString("Message to classify:\n")
	user.WriteString(req.Text)
	cr := chatRequest{
		Model: c.cfg.Model,
		Messages: []chatMessage{
			{Role: "system", Content: system},
			{Role: "user", Content: user.String()},
		},
		ResponseFormat: responseFormat{Type: "json_schema", JSONSchema: jsonSchema{
			Name: "vigil_classification", Strict: true,
			Schema: map[string]any{
				"type": "object",
				"properties": map[string]any{
					"label":      map[string]any{"type": "string", "enum": labels},
					"confidence": map[string]any{"type": "number"},
					"reason":     map[string]any{"type": "string"},
				},
				"required":             []string{"label", "confidence", "reason"},
				"additionalProperties": false,
			},
		}},
	}
	body, err = json.Marshal(cr)
	return body, strings.TrimSuffix(c.cfg.URL, "/") + "/v1/chat/completions", err
}

func (c *Classifier) decode(data []byte) (Classification, error) {
	var res Classification
	if c.cfg.Protocol == ProtocolPlain {
		if err := json.Unmarshal(data, &res); err != nil {
			return res, fmt.Errorf("%w: decode response: %w", ErrClassifier, err)
		}
		return res, nil
	}
	var cr chatResponse
	if err := json.Unmarshal(data, &cr); err != nil {
		return res, fmt.Errorf("%w: decode response: %w", ErrClassifier, err)
	}
	if len(cr.Choices) == 0 {
		return res, fmt.Errorf("%w: response has no choices", ErrClassifier)
	}
	if err := json.Unmarshal([]byte(cr.Choices[0].Message.Content), &res); err != nil {
		return res, fmt.Errorf("%w: decode message content: %w", ErrClassifier, err)
	}
	return res, nil
}

func (c *Classifier) budget(tenant string) *rate.Limiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.budgets[tenant]
	if !ok {
		perMin := c.cfg.BudgetPerMinute
		if b, ok := c.cfg.TenantBudgets[tenant]; ok && b > 0 {
			perMin = b
		}
		burst := max(int(perMin), 1)
		l = rate.NewLimiter(rate.Limit(perMin/60), burst)
		c.budgets[tenant] = l
	}
	return l
}

// breakerAllow reports whether a call may proceed: always when closed, never
// while open, and for exactly one probe once the cool-down has passed.
func (c *Classifier) breakerAllow() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failures < c.cfg.BreakerFailures {
		return true
	}
	if c.probing || c.now().Before(c.openTill) {
		return false
	}
	c.probing = true
	return true
}

// breakerRelease undoes breakerAllow for a call that was not made.
func (c *Classifier) breakerRelease() {
	c.mu.Lock()
	c.probing = false
	c.mu.Unlock()
}

// breakerDone records a call's outcome.
func (c *Classifier) breakerDone(ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.probing = false
	if ok {
		c.failures = 0
		return
	}
	c.failures++
	if c.failures >= c.cfg.BreakerFailures {
		c.openTill = c.now().Add(c.cfg.BreakerCooldown)
	}
}

// cacheKey hashes everything that reaches the prompt: rule, prompt, labels,
// text and the context messages sent with it. The context must be part of
// the key: the same words are a threat in one conversation and banter in
// another.
func cacheKey(req ClassifyRequest) string {
	h := sha256.New()
	write := func(ss ...string) {
		for _, s := range ss {
			h.Write([]byte(s))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	write(req.RuleID, req.Prompt, req.Text)
	write(req.Labels...)
	write(promptContext(req.Context)...)
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// promptContext is the part of the context that goes into a prompt.
func promptContext(msgs []string) []string {
	if len(msgs) > maxContextMessages {
		return msgs[len(msgs)-maxContextMessages:]
	}
	return msgs
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}
