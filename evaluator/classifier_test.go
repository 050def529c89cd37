package evaluator_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vigilhq/vigil/evaluator"
)

// fakeLLM is an OpenAI-compatible chat-completions server. Its "model"
// answers label "threat" when the message mentions killing and the recent
// conversation is not about a game, "none" otherwise. Tests script failures
// with fail (status codes for the next calls) and delay.
type fakeLLM struct {
	*httptest.Server
	calls atomic.Int64

	mu      sync.Mutex
	fail    []int
	delay   time.Duration
	label   string        // overrides the model's answer when set
	block   chan struct{} // when set, requests wait until it is closed
	lastReq map[string]any
	lastHdr http.Header
}

func newFakeLLM(t testing.TB) *fakeLLM {
	t.Helper()
	f := &fakeLLM{}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeLLM) script(delay time.Duration, fail ...int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.delay, f.fail = delay, fail
}

func (f *fakeLLM) serve(w http.ResponseWriter, r *http.Request) {
	f.calls.Add(1)
	f.mu.Lock()
	delay := f.delay
	status := 0
	if len(f.fail) > 0 {
		status, f.fail = f.fail[0], f.fail[1:]
	}
	label := f.label
	f.mu.Unlock()
	if block := f.block; block != nil {
		select {
		case <-block:
		case <-r.Context().Done():
			return
		}
	}
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if status != 0 {
		http.Error(w, `{"error":{"message":"scripted failure"}}`, status)
		return
	}
	var req struct {
		Model    string `json:"model"`
		Messages []struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"messages"`
		ResponseFormat struct {
			Type string `json:"type"`
		} `json:"response_format"`
	}
	raw := map[string]any{}
	body := json.NewDecoder(r.Body)
	if err := body.Decode(&raw); err != nil {
		http.Error(w, "bad json", http.StatusBadRequest)
		return
	}
	b, _ := json.Marshal(raw)
	_ = json.Unmarshal(b, &req)
	f.mu.Lock()
	f.lastReq, f.lastHdr = raw, r.Header.Clone()
	f.mu.Unlock()
	if r.URL.Path != "/v1/chat/completions" || r.Method != http.MethodPost || len(req.Messages) != 2 ||
		req.Messages[0].Role != "system" || req.Messages[1].Role != "user" || req.ResponseFormat.Type != "json_schema" {
		http.Error(w, "not a chat-completions request", http.StatusBadRequest)
		return
	}
	user := strings.ToLower(req.Messages[1].Content)
	msg := user[strings.Index(user, "message to classify:"):]
	enum := fmt.Sprint(raw["response_format"])
	ans := map[string]any{"label": "none", "confidence": 0.9, "reason": "nothing found"}
	switch {
	case strings.Contains(msg, "kill") && !strings.Contains(user, "game") && strings.Contains(enum, "threat"):
		ans = map[string]any{"label": "threat", "confidence": 0.93, "reason": "threat of violence"}
	case strings.Contains(msg, "guarantee") && strings.Contains(enum, "promise_of_returns"):
		ans = map[string]any{"label": "promise_of_returns", "confidence": 0.8, "reason": "promises a return"}
	}
	if label != "" {
		ans["label"] = label
	}
	content, _ := json.Marshal(ans)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-1", "object": "chat.completion", "model": req.Model,
		"choices": []map[string]any{{"index": 0, "finish_reason": "stop",
			"message": map[string]any{"role": "assistant", "content": string(content)}}},
	})
}

func threatReq(text string, ctxMsgs ...string) evaluator.ClassifyRequest {
	return evaluator.ClassifyRequest{
		Tenant: "acme", RuleID: "threat.violence", Prompt: "You detect threats of violence.",
		Labels: []string{"threat"}, Text: text, Context: ctxMsgs,
	}
}

func TestClassifierAnswers(t *testing.T) {
	tests := []struct {
		name      string
		req       evaluator.ClassifyRequest
		script    []int
		wantLabel string
		wantFires bool
		wantCalls int64
		wantErr   error
	}{
		{name: "threat fires", req: threatReq("I'm going to kill you"), wantLabel: "threat", wantFires: true, wantCalls: 1},
		{name: "banter after game context", req: threatReq("I'm going to kill you", "ready for the game tonight?", "new map is out"), wantLabel: "none", wantCalls: 1},
		{name: "retried after 500", req: threatReq("I will kill you"), script: []int{500, 503}, wantLabel: "threat", wantFires: true, wantCalls: 3},
		{name: "4xx is not retried", req: threatReq("kill"), script: []int{400}, wantErr: evaluator.ErrClassifier, wantCalls: 1},
		{name: "500 after all retries", req: threatReq("kill"), script: []int{500, 500, 500}, wantErr: evaluator.ErrClassifier, wantCalls: 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			llm := newFakeLLM(t)
			llm.script(0, tc.script...)
			c, err := evaluator.NewClassifier(evaluator.ClassifierConfig{
				URL: llm.URL, Model: "vigil-test", APIKey: "sk-test", Backoff: time.Millisecond,
			}, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := c.Classify(context.Background(), tc.req)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Classify = %v, want %v", err, tc.wantErr)
			}
			if got.Label != tc.wantLabel || got.Fires(c.MinConfidence()) != tc.wantFires {
				t.Errorf("Classify = %+v, want label %q fires %v", got, tc.wantLabel, tc.wantFires)
			}
			if n := llm.calls.Load(); n != tc.wantCalls {
				t.Errorf("server saw %d calls, want %d", n, tc.wantCalls)
			}
		})
	}
}

func TestClassifierRequestShape(t *testing.T) {
	llm := newFakeLLM(t)
	c, err := evaluator.NewClassifier(evaluator.ClassifierConfig{URL: llm.URL + "/", Model: "vigil-test", APIKey: "sk-test"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	req := threatReq("I'm going to kill you")
	req.Labels = []string{"threat", "harassment"}
	if _, err := c.Classify(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	if got := llm.lastHdr.Get("Authorization"); got != "Bearer sk-test" {
		t.Errorf("Authorization = %q, want bearer key", got)
	}
	b, _ := json.Marshal(llm.lastReq)
	for _, want := range []string{`"model":"vigil-test"`, `"enum":["threat","harassment","none"]`, `"required":["label","confidence","reason"]`, `You detect threats of violence.`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("request %s lacks %s", b, want)
		}
	}
}

func TestClassifierTimeout(t *testing.T) {
	llm := newFakeLLM(t)
	llm.script(1500 * time.Millisecond)
	m := evaluator.NewMetrics(nil)
	c, err := evaluator.NewClassifier(evaluator.ClassifierConfig{
		URL: llm.URL, Model: "m", Timeout: 50 * time.Millisecond, Retries: 1, Backoff: time.Millisecond,
	}, m)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = c.Classify(context.Background(), threatReq("kill"))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Classify = %v, want deadline exceeded", err)
	}
	// Two attempts honouring the 50ms timeout; ignoring it would take 3s.
	if d := time.Since(start); d > 1400*time.Millisecond {
		t.Errorf("Classify took %s, want about 2×50ms", d)
	}
	if n := llm.calls.Load(); n != 2 {
		t.Errorf("server saw %d calls, want 2 (one retry)", n)
	}
	if n := testutil.ToFloat64(m.Tier2Calls.WithLabelValues("timeout")); n != 1 {
		t.Errorf("timeout results = %v, want 1", n)
	}
}

func TestClassifierBudget(t *testing.T) {
	llm := newFakeLLM(t)
	m := evaluator.NewMetrics(nil)
	c, err := evaluator.NewClassifier(evaluator.ClassifierConfig{
		URL: llm.URL, Model: "m", BudgetPerMinute: 2, TenantBudgets: map[string]float64{"big": 100},
	}, m)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tests := []struct {
		tenant, text string
		wantErr      error
		wantCached   bool
	}{
		{"acme", "one kill", nil, false},
		{"acme", "two kill", nil, false},
		{"acme", "one kill", nil, true}, // cached: costs no budget
		{"acme", "three kill", evaluator.ErrBudgetExhausted, false},
		{"other", "three kill", nil, false}, // budgets are per tenant
		{"big", "a", nil, false},
		{"big", "b", nil, false},
		{"big", "c", nil, false},
	}
	for i, tc := range tests {
		req := threatReq(tc.text)
		req.Tenant = tc.tenant
		got, err := c.Classify(ctx, req)
		if !errors.Is(err, tc.wantErr) || got.Cached != tc.wantCached {
			t.Errorf("call %d Classify(%s, %q) = %+v, %v; want cached %v, err %v", i, tc.tenant, tc.text, got, err, tc.wantCached, tc.wantErr)
		}
	}
	if n := testutil.ToFloat64(m.BudgetExhausted.WithLabelValues("acme")); n != 1 {
		t.Errorf("budget exhaustions = %v, want 1", n)
	}
	if n := llm.calls.Load(); n != 6 {
		t.Errorf("server saw %d calls, want 6", n)
	}
}

func TestClassifierBreaker(t *testing.T) {
	llm := newFakeLLM(t)
	llm.script(0, 500, 500, 500)
	c, err := evaluator.NewClassifier(evaluator.ClassifierConfig{
		URL: llm.URL, Model: "m", Retries: -1, BreakerFailures: 2, BreakerCooldown: 400 * time.Millisecond,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	steps := []struct {
		wait      time.Duration
		wantErr   error
		wantCalls int64
	}{
		{0, evaluator.ErrClassifier, 1},
		{0, evaluator.ErrClassifier, 2},                      // second failure opens the breaker
		{0, evaluator.ErrCircuitOpen, 2},                     // open: no call
		{500 * time.Millisecond, evaluator.ErrClassifier, 3}, // half-open probe fails: open again
		{0, evaluator.ErrCircuitOpen, 3},
		{500 * time.Millisecond, nil, 4}, // probe succeeds: closed
		{0, nil, 5},
	}
	for i, st := range steps {
		time.Sleep(st.wait)
		_, err := c.Classify(ctx, threatReq(fmt.Sprintf("kill %d", i)))
		if !errors.Is(err, st.wantErr) {
			t.Fatalf("step %d: Classify = %v, want %v", i, err, st.wantErr)
		}
		if n := llm.calls.Load(); n != st.wantCalls {
			t.Fatalf("step %d: server saw %d calls, want %d", i, n, st.wantCalls)
		}
	}
}

func TestClassifierRejectsUnknownLabel(t *testing.T) {
	llm := newFakeLLM(t)
	llm.label = "made-up"
	c, err := evaluator.NewClassifier(evaluator.ClassifierConfig{URL: llm.URL, Model: "m"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Classify(context.Background(), threatReq("kill")); !errors.Is(err, evaluator.ErrClassifier) {
		t.Fatalf("Classify = %v, want ErrClassifier", err)
	}
}

func TestClassifierPlain(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Text   string   `json:"text"`
			Labels []string `json:"labels"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || r.Header.Get("X-Api-Key") != "k" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"label": req.Labels[0], "confidence": 0.7})
	}))
	t.Cleanup(srv.Close)
	c, err := evaluator.NewClassifier(evaluator.ClassifierConfig{URL: srv.URL, Protocol: evaluator.ProtocolPlain, APIKey: "k", APIKeyHeader: "X-Api-Key"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.Classify(context.Background(), threatReq("kill"))
	if err != nil || got.Label != "threat" || got.Confidence != 0.7 {
		t.Fatalf("Classify = %+v, %v; want threat 0.7", got, err)
	}
}

func TestNewClassifierInvalid(t *testing.T) {
	tests := []struct {
		name string
		cfg  evaluator.ClassifierConfig
	}{
		{"no url", evaluator.ClassifierConfig{Model: "m"}},
		{"no model", evaluator.ClassifierConfig{URL: "http://x"}},
		{"bad protocol", evaluator.ClassifierConfig{URL: "http://x", Model: "m", Protocol: "grpc"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := evaluator.NewClassifier(tc.cfg, nil); !errors.Is(err, evaluator.ErrInvalidOption) {
				t.Fatalf("NewClassifier = %v, want ErrInvalidOption", err)
			}
		})
	}
}

// TestClassifierCacheKeepsContextApart asks about the same words after
// different conversations: the cached answer of one must not answer the
// other.
func TestClassifierCacheKeepsContextApart(t *testing.T) {
	llm := newFakeLLM(t)
	c, err := evaluator.NewClassifier(evaluator.ClassifierConfig{URL: llm.URL, Model: "m"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		ctx        []string
		wantLabel  string
		wantCached bool
	}{
		{[]string{"gg, the game was close"}, evaluator.LabelNone, false},
		{[]string{"you ruined my life"}, "threat", false},
		{[]string{"gg, the game was close"}, evaluator.LabelNone, true},
	}
	for i, tc := range tests {
		got, err := c.Classify(context.Background(), threatReq("I'm going to kill you", tc.ctx...))
		if err != nil || got.Label != tc.wantLabel || got.Cached != tc.wantCached {
			t.Errorf("call %d = %+v, %v; want label %s cached %v", i, got, err, tc.wantLabel, tc.wantCached)
		}
	}
}
