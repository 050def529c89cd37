package retention_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/bus/bustest"
	"github.com/vigilhq/vigil/pii"
	"github.com/vigilhq/vigil/retention"
	"github.com/vigilhq/vigil/warehouse"
	"github.com/vigilhq/vigil/warehouse/warehousetest"
)

func TestMain(m *testing.M) { os.Exit(warehousetest.Main(m)) }

// now is the clock of every test service.
var now = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

const tenant = "acme"

// env is a real embedded NATS (bus, vault) and a real embedded ClickHouse
// database fed by the real sink.
type env struct {
	srv   *bustest.Server
	bus   *bus.Bus
	db    *warehousetest.DB
	vault *pii.Vault
	tok   *pii.Tokenizer
	svc   *retention.Service
	clock time.Time
	// tokens of each subject as tokenized, kept to "replay" later.
	msgs []*vigil.Message
}

func randomKey(t testing.TB) string {
	t.Helper()
	b := make([]byte, pii.KeySize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func newEnv(t testing.TB) *env {
	t.Helper()
	ctx := ctxT(t)
	e := &env{srv: bustest.New(t), db: warehousetest.New(t), clock: now}
	e.bus = e.srv.Bus(t, bus.Config{})
	keys, err := pii.NewStaticKeys(pii.StaticKeysConfig{Default: &pii.StaticTenantKeys{KEK: randomKey(t), TokenKey: randomKey(t)}})
	if err != nil {
		t.Fatal(err)
	}
	if e.vault, err = retention.NewVault(e.bus, keys); err != nil {
		t.Fatal(err)
	}
	if e.tok, err = pii.NewTokenizer(e.vault); err != nil {
		t.Fatal(err)
	}
	if e.svc, err = retention.New(e.db.Conn, e.bus, e.vault, retention.WithClock(func() time.Time { return e.clock })); err != nil {
		t.Fatal(err)
	}
	sink, err := warehouse.NewSink(e.bus, e.db.Conn, warehouse.SinkConfig{BatchRows: 200, FlushInterval: 50 * time.Millisecond,
		Durable: "rt", Streams: []string{bus.StreamMessages, bus.StreamVerdicts}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close(context.Background()) })
	return e
}

// seed publishes the standard story, tokenized, and waits for ClickHouse:
//
//	c1 (teams): alice sends 3 messages (with her e-mail), bob 2; both take part.
//	c2 (sms):   carol sends 1 message alone.
//
// Every message of alice and the first of bob gets a verdict. Messages are
// sent age before the clock.
func (e *env) seed(t testing.TB, age time.Duration) {
	t.Helper()
	ctx := ctxT(t)
	alice := vigil.Participant{ID: "alice", DisplayName: "Alice Archer", Role: "customer"}
	bob := vigil.Participant{ID: "bob", DisplayName: "Bob Broker", Role: "advisor"}
	carol := vigil.Participant{ID: "carol", DisplayName: "Carol Client", Role: "customer"}
	sent := e.clock.Add(-age)
	type spec struct {
		sender  vigil.Participant
		conv    string
		channel string
		text    string
		others  []vigil.Participant
		verdict bool
	}
	specs := []spec{
		{alice, "c1", "teams", "hi, reach me at alice.archer@example.com", []vigil.Participant{bob}, true},
		{bob, "c1", "teams", "will do, thanks", []vigil.Participant{alice}, true},
		{alice, "c1", "teams", "my card is 4111 1111 1111 1111", []vigil.Participant{bob}, true},
		{bob, "c1", "teams", "guaranteed returns, trust me", []vigil.Participant{alice}, false},
		{alice, "c1", "teams", "ok, call +1 415 555 0100", []vigil.Participant{bob}, true},
		{carol, "c2", "sms", "write to carol@example.org", nil, false},
	}
	var verdicts int
	for i, s := range specs {
		m := &vigil.Message{
			ID: fmt.Sprintf("m-%d", i), Tenant: tenant, ConversationID: s.conv, Sender: s.sender,
			Participants: append([]vigil.Participant{s.sender}, s.others...), Channel: s.channel, Text: s.text,
			SentAt: sent.Add(time.Duration(i) * time.Minute), ReceivedAt: sent.Add(time.Duration(i) * time.Minute),
		}
		if err := e.tok.TokenizeMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
		if _, err := e.bus.PublishMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
		e.msgs = append(e.msgs, m)
		if s.verdict {
			verdicts++
			v := &vigil.Verdict{ID: vigil.VerdictID(m.ID, "r1", "v1"), MessageID: m.ID, Tenant: tenant, ConversationID: m.ConversationID,
				SenderID: m.Sender.ID, RuleID: "r1", RulesetVersion: "v1", Severity: vigil.SeverityHigh, Action: vigil.ActionFlag, Tier: 1,
				MessageSentAt: m.SentAt, EvaluatedAt: m.SentAt}
			if _, err := e.bus.PublishVerdict(ctx, v); err != nil {
				t.Fatal(err)
			}
		}
	}
	e.waitRows(t, "messages", uint64(len(specs)))
	e.waitRows(t, "verdicts", uint64(verdicts))
}

func (e *env) waitRows(t testing.TB, table string, want uint64) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var got uint64
	for time.Now().Before(deadline) {
		if got = e.db.Count(t, table); got == want {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: %d rows, want %d", table, got, want)
}

// tokensOf returns the tokens in the seeded messages sent by subject.
func (e *env) tokensOf(subject string) []string {
	var out []string
	for _, m := range e.msgs {
		if m.Sender.ID != subject {
			continue
		}
		for _, tk := range pii.FindTokens(m.Text + " " + m.Sender.DisplayName) {
			out = append(out, tk.String())
		}
	}
	return out
}

// detokenizeAll returns the first error of detokenizing every token, or
// nil when all read.
func (e *env) detokenizeAll(t *testing.T, tokens []string) error {
	t.Helper()
	if len(tokens) == 0 {
		t.Fatal("no tokens to detokenize")
	}
	for _, tk := range tokens {
		if _, err := e.vault.Detokenize(ctxT(t), tenant, tk, pii.Request{Actor: "test", Reason: "verify"}); err != nil {
			return err
		}
	}
	return nil
}

func (e *env) count(t *testing.T, q string) uint64 {
	t.Helper()
	var n uint64
	if err := e.db.Conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// streamHas reports how many of the seeded messages sent by subject are
// still stored in MESSAGES (looked up by their Nats-Msg-Id).
func (e *env) streamHas(t *testing.T, subject string) int {
	t.Helper()
	ctx := ctxT(t)
	st, err := e.srv.JS.Stream(ctx, bus.StreamMessages)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for seq := uint64(1); seq <= uint64(len(e.msgs)); seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range e.msgs {
			if m.ID == raw.Header.Get("Nats-Msg-Id") && m.Sender.ID == subject {
				n++
			}
		}
	}
	return n
}
