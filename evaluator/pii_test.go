package evaluator_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/evaluator"
)

// syncBuffer is a bytes.Buffer safe for concurrent log writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestNoMessageTextInLogs drives message text through every failure path
// that logs (undecodable message, classifier failure, webhook failure, a
// rejected reload) and checks that no log line carries it.
func TestNoMessageTextInLogs(t *testing.T) {
	const secret = "tok_SECRET_4111111111111111"
	var logs syncBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	llm := newFakeLLM(t)
	llm.script(0, 500, 500, 500)
	rcv := newReceiver(t, "k", 400)
	r := newRig(t, nil, bus.Config{Partitions: 1, Memory: true}, nil, evaluator.WithRulesLogger(logger))
	c, err := evaluator.NewClassifier(evaluator.ClassifierConfig{URL: llm.URL, Model: "m", Retries: -1}, r.m)
	if err != nil {
		t.Fatal(err)
	}
	wh, err := evaluator.NewWebhooks(evaluator.WebhookConfig{
		Endpoints: []evaluator.WebhookEndpoint{{Tenant: "acme", URL: rcv.URL, Secret: []byte("k")}}, Logger: logger,
	}, r.m)
	if err != nil {
		t.Fatal(err)
	}
	r.start(t, evaluator.WithLogger(logger), evaluator.WithClassifier(c), evaluator.WithWebhooks(wh))

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := r.s.JS.Publish(ctx, bus.MessageSubject("acme", "pii"), []byte(`{"id":"x","text":"`+secret+`",`)); err != nil {
		t.Fatal(err)
	}
	r.publish(t, message("pii", 1, "I guarantee I'm going to kill you "+secret))
	r.waitCount(t, bus.StreamEvaluations, 1, 10*time.Second)
	r.waitCount(t, bus.StreamDeadLetter, 1, 10*time.Second)
	waitFor(t, "webhook failure", func() bool { a, _, _ := rcv.counts(); return a == 1 })
	_ = r.rules.Reload(map[string][]byte{"x.yaml": []byte("rules:\n  - id: a\n    expr: msg.text == \"" + secret + "\"\n    bogus: 1\n")})
	if err := r.ev.Drain(ctx); err != nil {
		t.Fatal(err)
	}

	out := logs.String()
	for _, want := range []string{"message dead-lettered", "tier-2 classification failed", "webhook delivery failed", "previous rule set kept"} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %q; the failure path was not exercised:\n%s", want, out)
		}
	}
	if strings.Contains(out, secret) || strings.Contains(out, "4111111111111111") {
		t.Errorf("logs carry message text:\n%s", out)
	}
}
