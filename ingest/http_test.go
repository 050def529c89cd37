package ingest_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/ingest"
)

func TestSingleMessageAckedAndTokenized(t *testing.T) {
	e := newEnv(t, envOpts{})
	const email = "alice.smith@example.com"
	resp, body := e.post(t, "/v1/messages", tokenAcme, mustJSON(t, wireMsg("m-1", "acme", "c.1", "mail me at "+email+" today")))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	ack := decode[ingest.Ack](t, body)
	if ack.ID != "m-1" || ack.Sequence != 1 || ack.Duplicate {
		t.Fatalf("ack = %+v, want m-1 seq 1 not duplicate", ack)
	}
	got := e.stored(t, ack.Sequence)
	if strings.Contains(got.Text, email) || strings.Contains(got.Sender.DisplayName, "Alice") {
		t.Fatalf("raw PII stored: text %q sender %q", got.Text, got.Sender.DisplayName)
	}
	if got.PII["email"] != 1 {
		t.Fatalf("PII counts = %v, want one email", got.PII)
	}
	if got.ReceivedAt.IsZero() || !got.SentAt.Equal(time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)) {
		t.Fatalf("times: sent %v received %v", got.SentAt, got.ReceivedAt)
	}
	if n := testutil.ToFloat64(e.metrics.Requests.WithLabelValues(ingest.TransportHTTP, ingest.ResultAccepted)); n != 1 {
		t.Fatalf("accepted requests metric = %v, want 1", n)
	}
}

func TestBatchAckedInOrder(t *testing.T) {
	e := newEnv(t, envOpts{})
	const n = 250
	resp, body := e.post(t, "/v1/messages/batch", tokenAcme, batchOf(t, n, "acme"))
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	acks := decode[ingest.BatchAck](t, body).Acks
	if len(acks) != n {
		t.Fatalf("%d acks, want %d", len(acks), n)
	}
	seen := map[uint64]bool{}
	for i, a := range acks {
		if a.ID != fmt.Sprintf("b-%d", i) || a.Sequence == 0 || a.Duplicate || seen[a.Sequence] {
			t.Fatalf("ack %d = %+v", i, a)
		}
		seen[a.Sequence] = true
		if got := e.stored(t, a.Sequence); got.ID != a.ID {
			t.Fatalf("seq %d holds %s, ack says %s", a.Sequence, got.ID, a.ID)
		}
	}
	if got := e.streamMsgs(t); got != n {
		t.Fatalf("stream holds %d, want %d", got, n)
	}
}

func TestDuplicateStoredOnce(t *testing.T) {
	e := newEnv(t, envOpts{})
	tests := []struct {
		name string
		msg  map[string]any
	}{
		{"client id", wireMsg("dup-1", "acme", "c", "same")},
		{"derived id", wireMsg("", "acme", "c2", "same text")},
	}
	var total uint64
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var acks []ingest.Ack
			for range 2 {
				resp, body := e.post(t, "/v1/messages", tokenAcme, mustJSON(t, tt.msg))
				if resp.StatusCode != http.StatusAccepted {
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				acks = append(acks, decode[ingest.Ack](t, body))
			}
			if acks[0].Duplicate || !acks[1].Duplicate || acks[0].Sequence != acks[1].Sequence || acks[0].ID != acks[1].ID {
				t.Fatalf("acks = %+v, want the second a duplicate of the first", acks)
			}
			if tt.msg["id"] == nil {
				want := vigil.DeriveMessageID("acme", "c2", "u-1", time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC), "same text")
				if acks[0].ID != want {
					t.Fatalf("derived id %s, want %s", acks[0].ID, want)
				}
			}
			total++
			if got := e.streamMsgs(t); got != total {
				t.Fatalf("stream holds %d, want %d", got, total)
			}
		})
	}
}

func TestReusedIDIsReportedAsConflict(t *testing.T) {
	e := newEnv(t, envOpts{})
	first := wireMsg("reused", "acme", "c", "the original text")
	second := wireMsg("reused", "acme", "c", "a different text")
	var acks []ingest.Ack
	for _, m := range []map[string]any{first, first, second} {
		resp, body := e.post(t, "/v1/messages", tokenAcme, mustJSON(t, m))
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		acks = append(acks, decode[ingest.Ack](t, body))
	}
	if acks[1].Conflict || !acks[1].Duplicate {
		t.Fatalf("true retry = %+v, want duplicate without conflict", acks[1])
	}
	if !acks[2].Conflict || !acks[2].Duplicate {
		t.Fatalf("reused id = %+v, want duplicate with conflict", acks[2])
	}
	if n := testutil.ToFloat64(e.metrics.IDConflicts); n != 1 {
		t.Fatalf("conflicts metric = %v, want 1", n)
	}
	if got := e.stored(t, acks[0].Sequence); got.Text == "a different text" || e.streamMsgs(t) != 1 {
		t.Fatal("the conflicting message replaced the stored one")
	}
}

func TestBadInputRejectedAndNothingStored(t *testing.T) {
	strictCfg := ingest.Config{Strict: true, MaxBatch: 3, MaxRequestBytes: 200 << 10, MaxTextBytes: 100 << 10}
	e := newEnv(t, envOpts{cfg: strictCfg})
	with := func(k string, v any) []byte {
		m := wireMsg("m", "acme", "c", "hi")
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
		return mustJSON(t, m)
	}
	validBatch := func(n int) []map[string]any {
		var ms []map[string]any
		for i := range n {
			ms = append(ms, wireMsg(fmt.Sprintf("x%d", i), "acme", "c", "hi"))
		}
		return ms
	}
	badElem := validBatch(3)
	badElem[1]["text"] = strings.Repeat("x", 100<<10+1)
	meta := map[string]string{}
	for i := range ingest.DefaultMaxMetadataEntries + 1 {
		meta[fmt.Sprint(i)] = "v"
	}
	tests := []struct {
		name       string
		path       string
		body       []byte
		wantStatus int
		wantField  string
	}{
		{"malformed JSON", "/v1/messages", []byte(`{"tenant":`), 400, ""},
		{"not an object", "/v1/messages", []byte(`"hello"`), 400, ""},
		{"trailing data", "/v1/messages", append(with("id", "a"), []byte(`{}`)...), 400, ""},
		{"invalid UTF-8 in text", "/v1/messages", bytes.Replace(with("text", "héllo"), []byte("é"), []byte{0xff}, 1), 400, "text"},
		{"missing tenant", "/v1/messages", with("tenant", nil), 400, "tenant"},
		{"tenant wrong type", "/v1/messages", with("tenant", 5), 400, "tenant"},
		{"missing conversation", "/v1/messages", with("conversation_id", nil), 400, "conversation_id"},
		{"conversation with space", "/v1/messages", with("conversation_id", "a b"), 400, "conversation_id"},
		{"bad id", "/v1/messages", with("id", strings.Repeat("i", vigil.MaxIDBytes+1)), 400, "id"},
		{"missing sender", "/v1/messages", with("sender", nil), 400, "sender"},
		{"sender without id", "/v1/messages", with("sender", map[string]any{"display_name": "x"}), 400, "sender.id"},
		{"participant without id", "/v1/messages", with("participants", []map[string]any{{"id": "p"}, {"role": "x"}}), 400, "participants[1].id"},
		{"missing text", "/v1/messages", with("text", nil), 400, "text"},
		{"oversize text", "/v1/messages", with("text", strings.Repeat("x", 100<<10+1)), 413, "text"},
		{"missing sent_at", "/v1/messages", with("sent_at", nil), 400, "sent_at"},
		{"bad sent_at", "/v1/messages", with("sent_at", "yesterday"), 400, "sent_at"},
		{"too much metadata", "/v1/messages", with("metadata", meta), 413, "metadata"},
		{"negative attachment size", "/v1/messages", with("attachments", []map[string]any{{"name": "a", "size_bytes": -1}}), 400, "attachments[0].size_bytes"},
		{"unknown field (strict)", "/v1/messages", with("colour", "red"), 400, "colour"},
		{"client sets pii", "/v1/messages", with("pii", map[string]int{"x": 1}), 400, "pii"},
		{"request too large", "/v1/messages", with("channel", strings.Repeat("x", 201<<10)), 413, ""},
		{"batch not an array", "/v1/messages/batch", with("id", "a"), 400, ""},
		{"empty batch", "/v1/messages/batch", []byte(`[]`), 400, ""},
		{"oversize batch", "/v1/messages/batch", mustJSON(t, validBatch(4)), 413, ""},
		{"bad batch element", "/v1/messages/batch", mustJSON(t, badElem), 413, "[1].text"},
		{"invalid UTF-8 in batch element", "/v1/messages/batch", bytes.Replace(mustJSON(t, []map[string]any{wireMsg("a", "acme", "c", "ok"), wireMsg("b", "acme", "c", "héllo")}), []byte("é"), []byte{0xff}, 1), 400, "[1].text"},
		{"batch element missing tenant", "/v1/messages/batch", []byte(`[{"conversation_id":"c"}]`), 400, "[0].tenant"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := e.post(t, tt.path, tokenAcme, tt.body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			eb := decode[errBody](t, body)
			if eb.Field != tt.wantField || eb.Error == "" || eb.Status != tt.wantStatus {
				t.Fatalf("error body %+v, want field %q", eb, tt.wantField)
			}
			if resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("content type %q", resp.Header.Get("Content-Type"))
			}
			if n := e.streamMsgs(t); n != 0 {
				t.Fatalf("stream holds %d after a rejected request", n)
			}
		})
	}
}

func TestUnknownFieldAcceptedWhenNotStrict(t *testing.T) {
	e := newEnv(t, envOpts{})
	m := wireMsg("m", "acme", "c", "hi")
	m["colour"] = "red"
	if resp, body := e.post(t, "/v1/messages", tokenAcme, mustJSON(t, m)); resp.StatusCode != http.StatusAccepted {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t, envOpts{})
	mixed := []map[string]any{wireMsg("a1", "acme", "c", "hi"), wireMsg("a2", "other", "c", "hi")}
	tests := []struct {
		name       string
		token      string
		path       string
		body       []byte
		wantStatus int
		wantField  string
	}{
		{"no token", "", "/v1/messages", mustJSON(t, wireMsg("a", "acme", "c", "hi")), 401, ""},
		{"unknown token", "nope", "/v1/messages", mustJSON(t, wireMsg("a", "acme", "c", "hi")), 401, ""},
		{"other tenant", tokenOther, "/v1/messages", mustJSON(t, wireMsg("a", "acme", "c", "hi")), 403, "tenant"},
		{"one foreign message in batch", tokenAcme, "/v1/messages/batch", mustJSON(t, mixed), 403, "[1].tenant"},
		{"own tenant", tokenOther, "/v1/messages", mustJSON(t, wireMsg("a", "other", "c", "hi")), 202, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.streamMsgs(t)
			resp, body := e.post(t, tt.path, tt.token, tt.body)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			after := e.streamMsgs(t)
			if tt.wantStatus != 202 {
				if eb := decode[errBody](t, body); eb.Field != tt.wantField {
					t.Fatalf("field %q, want %q", eb.Field, tt.wantField)
				}
				if after != before {
					t.Fatalf("rejected request stored %d messages", after-before)
				}
			} else if after != before+1 {
				t.Fatalf("accepted request stored %d messages", after-before)
			}
			if strings.Contains(string(body), "secret") {
				t.Fatalf("response echoes a token: %s", body)
			}
		})
	}
}

func TestConfigRequiresTokensOrInsecure(t *testing.T) {
	e := newEnv(t, envOpts{cfg: ingest.Config{Insecure: true}})
	if _, err := ingest.New(e.bus, e.tok, ingest.Config{}); !errors.Is(err, ingest.ErrInvalidConfig) {
		t.Fatalf("New without tokens = %v, want ErrInvalidConfig", err)
	}
	// Open mode: no token needed, any tenant.
	if resp, body := e.post(t, "/v1/messages", "", mustJSON(t, wireMsg("a", "anyone", "c", "hi"))); resp.StatusCode != 202 {
		t.Fatalf("insecure mode status %d: %s", resp.StatusCode, body)
	}
}

func TestStreamFullIs503WithRetryAfter(t *testing.T) {
	e := newEnv(t, envOpts{busCfg: bus.Config{MaxMessagesBytes: 8 << 10}})
	var resp *http.Response
	var body []byte
	accepted := 0
	for i := range 200 {
		resp, body = e.post(t, "/v1/messages", tokenAcme, mustJSON(t, wireMsg(fmt.Sprint("m", i), "acme", "c", strings.Repeat("word ", 60))))
		if resp.StatusCode != http.StatusAccepted {
			break
		}
		accepted++
	}
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("full stream: status %d Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if accepted == 0 || e.streamMsgs(t) != uint64(accepted) {
		t.Fatalf("accepted %d, stream holds %d", accepted, e.streamMsgs(t))
	}
	resp, _ = e.post(t, "/v1/messages/batch", tokenAcme, batchOf(t, 3, "acme"))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("batch into full stream: status %d", resp.StatusCode)
	}
}

func TestTooManyInFlightIs429(t *testing.T) {
	e := newEnv(t, envOpts{cfg: ingest.Config{MaxInFlight: 1}})
	gate, in := make(chan struct{}), make(chan struct{}, 1)
	e.tok.mu.Lock()
	e.tok.gate, e.tok.in = gate, in
	e.tok.mu.Unlock()
	first := make(chan int, 1)
	go func() {
		resp, _ := e.post(t, "/v1/messages", tokenAcme, mustJSON(t, wireMsg("held", "acme", "c", "hi")))
		first <- resp.StatusCode
	}()
	<-in // the first request holds the only in-flight slot
	resp, body := e.post(t, "/v1/messages", tokenAcme, mustJSON(t, wireMsg("second", "acme", "c", "hi")))
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("status %d Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	e.tok.mu.Lock()
	e.tok.gate = nil
	e.tok.mu.Unlock()
	close(gate)
	if code := <-first; code != http.StatusAccepted {
		t.Fatalf("held request finished with %d", code)
	}
	if n := e.streamMsgs(t); n != 1 {
		t.Fatalf("stream holds %d, want only the held message", n)
	}
}

func TestTokenizerFailureIs503NothingStored(t *testing.T) {
	e := newEnv(t, envOpts{})
	e.tok.mu.Lock()
	e.tok.fail = errors.New("vault unavailable")
	e.tok.mu.Unlock()
	resp, body := e.post(t, "/v1/messages", tokenAcme, mustJSON(t, wireMsg("m", "acme", "c", "call 555-0100")))
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if e.streamMsgs(t) != 0 {
		t.Fatal("message stored although tokenizing failed")
	}
}

func TestNoRawPIIAtRest(t *testing.T) {
	e := newEnv(t, envOpts{})
	secrets := []string{"zed.quux.9931@example.org", "4111 1111 1111 1111"}
	m := wireMsg("m", "acme", "c", "card "+secrets[1]+" mail "+secrets[0])
	if resp, body := e.post(t, "/v1/messages", tokenAcme, mustJSON(t, m)); resp.StatusCode != 202 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	// Wait until the stored (tokenized) message is on disk: a scan that
	// runs before the file store flushed would prove nothing.
	stored := e.stored(t, 1)
	if stored.Sender.DisplayName == "" || stored.Sender.DisplayName == "Alice Smith" {
		t.Fatalf("sender name not tokenized: %q", stored.Sender.DisplayName)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(e.nats.Contains(t, []byte(stored.Sender.DisplayName))) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("stored message never reached the store files")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, s := range append(secrets, "Alice Smith") {
		if hits := e.nats.Contains(t, []byte(s)); len(hits) > 0 {
			t.Fatalf("raw value found at rest in %v", hits)
		}
	}
}
