package ingest_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/bus/bustest"
	"github.com/vigilhq/vigil/ingest"
	"github.com/vigilhq/vigil/pii"
)

const (
	tokenAcme  = "tok-acme-secret"
	tokenOther = "tok-other-secret"
)

type env struct {
	nats    *bustest.Server
	bus     *bus.Bus
	srv     *ingest.Server
	http    *httptest.Server
	metrics *ingest.Metrics
	tok     *gatedTokenizer
}

type envOpts struct {
	cfg        ingest.Config
	busCfg     bus.Config
	syncAlways bool
}

// newEnv starts a real embedded JetStream, the bus, the real pii tokenizer
// with a vault on the bus's bucket, and the ingest server over HTTP.
func newEnv(t testing.TB, o envOpts) *env {
	t.Helper()
	ns := bustest.NewWith(t, bustest.Options{SyncAlways: o.syncAlways})
	b := ns.Bus(t, o.busCfg)
	tok := &gatedTokenizer{next: realTokenizer(t, b)}
	cfg := o.cfg
	if cfg.Tokens == nil && !cfg.Insecure {
		cfg.Tokens = map[string]string{tokenAcme: "acme", tokenOther: "other"}
	}
	m := ingest.NewMetrics(prometheus.NewRegistry())
	srv, err := ingest.New(b, tok, cfg, ingest.WithMetrics(m), ingest.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		hs.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &env{nats: ns, bus: b, srv: srv, http: hs, metrics: m, tok: tok}
}

func realTokenizer(t testing.TB, b *bus.Bus) *pii.Tokenizer {
	t.Helper()
	key := func() string {
		k := make([]byte, pii.KeySize)
		if _, err := rand.Read(k); err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(k)
	}
	keys, err := pii.NewStaticKeys(pii.StaticKeysConfig{Default: &pii.StaticTenantKeys{KEK: key(), TokenKey: key()}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := pii.NewVault(b.VaultKV(), keys)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := pii.NewTokenizer(v)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// gatedTokenizer wraps the real tokenizer so tests can hold requests inside
// it (in-flight bound) or make it fail (vault down).
type gatedTokenizer struct {
	next ingest.Tokenizer
	mu   sync.Mutex
	gate chan struct{} // when set, TokenizeMessage waits for it to close
	in   chan struct{} // signalled when a call is waiting at the gate
	fail error
}

func (g *gatedTokenizer) TokenizeMessage(ctx context.Context, m *vigil.Message) error {
	g.mu.Lock()
	gate, in, fail := g.gate, g.in, g.fail
	g.mu.Unlock()
	if gate != nil {
		in <- struct{}{}
		select {
		case <-gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if fail != nil {
		return fail
	}
	return g.next.TokenizeMessage(ctx, m)
}

// wireMsg is a request message; fields map 1:1 to the ingest JSON.
func wireMsg(id, tenant, conv, text string) map[string]any {
	m := map[string]any{
		"tenant":          tenant,
		"conversation_id": conv,
		"sender":          map[string]any{"id": "u-1", "display_name": "Alice Smith", "role": "advisor"},
		"channel":         "chat",
		"text":            text,
		"sent_at":         "2026-12-04T10:00:00Z",
	}
	if id != "" {
		m["id"] = id
	}
	return m
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (e *env) post(t testing.TB, path, token string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.http.URL+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := e.http.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, out
}

func (e *env) streamMsgs(t testing.TB) uint64 {
	t.Helper()
	st, err := e.nats.JS.Stream(context.Background(), bus.StreamMessages)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func (e *env) stored(t testing.TB, seq uint64) vigil.Message {
	t.Helper()
	st, err := e.nats.JS.Stream(context.Background(), bus.StreamMessages)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := st.GetMsg(context.Background(), seq)
	if err != nil {
		t.Fatalf("GetMsg(%d): %v", seq, err)
	}
	var m vigil.Message
	if err := json.Unmarshal(raw.Data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

type errBody struct {
	Error  string `json:"error"`
	Field  string `json:"field"`
	Status int    `json:"status"`
}

func decode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

func batchOf(t testing.TB, n int, tenant string) []byte {
	t.Helper()
	var ms []map[string]any
	for i := range n {
		ms = append(ms, wireMsg(fmt.Sprintf("b-%d", i), tenant, fmt.Sprintf("conv-%d", i%5), "hello there"))
	}
	return mustJSON(t, ms)
}
