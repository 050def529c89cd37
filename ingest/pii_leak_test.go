package ingest_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/bus/bustest"
	"github.com/vigilhq/vigil/ingest"
)

// syncBuffer is a log sink safe for concurrent handlers.
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

// TestNoPIIInErrorsOrLogs drives seeded personal data through every
// failure path (bad fields, foreign tenant, tokenizer down, store full) and
// checks that neither the answers nor the debug-level logs contain it.
func TestNoPIIInErrorsOrLogs(t *testing.T) {
	const (
		email = "seeded.person.4471@example.net"
		name  = "Zebulon Quartermaine"
	)
	ns := bustest.New(t)
	b := ns.Bus(t, bus.Config{MaxMessagesBytes: 16 << 10})
	var logs syncBuffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tok := &gatedTokenizer{next: realTokenizer(t, b)}
	srv, err := ingest.New(b, tok, ingest.Config{Tokens: map[string]string{tokenAcme: "acme"}, Strict: true}, ingest.WithLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	defer srv.Close(context.Background())
	e := &env{nats: ns, bus: b, srv: srv, http: hs, tok: tok}

	pii := func(id string) map[string]any {
		m := wireMsg(id, "acme", "c", "write to "+email+" please")
		m["sender"] = map[string]any{"id": "u-1", "display_name": name}
		return m
	}
	with := func(id, k string, v any) []byte {
		m := pii(id)
		m[k] = v
		return mustJSON(t, m)
	}
	var answers []string
	post := func(path string, body []byte) int {
		resp, out := e.post(t, path, tokenAcme, body)
		answers = append(answers, string(out))
		return resp.StatusCode
	}
	cases := []struct {
		name string
		path string
		body []byte
	}{
		{"value in wrong type", "/v1/messages", with("a", "tenant", email)},
		{"value as conversation id", "/v1/messages", with("b", "conversation_id", email+" x")},
		{"value as unknown field", "/v1/messages", with("c", email, "x")},
		{"value in bad sent_at", "/v1/messages", with("d", "sent_at", email)},
		{"oversize text", "/v1/messages", with("e", "text", strings.Repeat(email+" ", 10000))},
		{"foreign tenant", "/v1/messages", with("f", "tenant", "other")},
		{"bad batch element", "/v1/messages/batch", mustJSON(t, []any{pii("g"), map[string]any{"text": email}})},
		{"malformed", "/v1/messages", []byte(`{"text":"` + email + `",`)},
	}
	for _, c := range cases {
		if code := post(c.path, c.body); code < 400 || code >= 500 {
			t.Fatalf("%s: status %d", c.name, code)
		}
	}
	// Tokenizer down.
	tok.mu.Lock()
	tok.fail = fmt.Errorf("vault unreachable")
	tok.mu.Unlock()
	if code := post("/v1/messages", mustJSON(t, pii("h"))); code != http.StatusServiceUnavailable {
		t.Fatalf("tokenizer down: status %d", code)
	}
	tok.mu.Lock()
	tok.fail = nil
	tok.mu.Unlock()
	// Store full.
	full := false
	for i := range 200 {
		if code := post("/v1/messages", mustJSON(t, pii(fmt.Sprint("full-", i)))); code == http.StatusServiceUnavailable {
			full = true
			break
		}
	}
	if !full {
		t.Fatal("stream never filled")
	}
	out := strings.Join(answers, "\n") + logs.String()
	for _, s := range []string{email, name, "seeded.person", "Zebulon"} {
		if strings.Contains(out, s) {
			i := strings.Index(out, s)
			t.Fatalf("personal data %q leaked into answers or logs: ...%s...", s, out[max(0, i-200):min(len(out), i+100)])
		}
	}
	if !strings.Contains(logs.String(), "tokenize failed") {
		t.Fatal("the tokenizer failure was not logged; the scan proves nothing")
	}
}
