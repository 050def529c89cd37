package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/bus/bustest"
)

func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func msg(id, tenant, conv, text string) *vigil.Message {
	return &vigil.Message{
		ID: id, Tenant: tenant, ConversationID: conv,
		Sender: vigil.Participant{ID: "u1"}, Text: text,
		SentAt: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC),
	}
}

func TestOpenIsIdempotent(t *testing.T) {
	s := bustest.New(t)
	ctx := testCtx(t)
	cfg := bus.Config{Partitions: 4}
	b1 := s.Bus(t, cfg)
	if _, err := b1.PublishMessage(ctx, msg("m1", "t", "c", "hello")); err != nil {
		t.Fatal(err)
	}
	b2 := s.Bus(t, cfg)
	for _, sc := range bus.StreamConfigs(b2.Config()) {
		info, err := s.JS.Stream(ctx, sc.Name)
		if err != nil {
			t.Fatalf("Stream(%s): %v", sc.Name, err)
		}
		ci, err := info.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if ci.Config.Discard != sc.Discard || ci.Config.DenyPurge != sc.DenyPurge || ci.Config.DenyDelete != sc.DenyDelete {
			t.Errorf("%s: discard/deny = %v/%v/%v, want %v/%v/%v", sc.Name,
				ci.Config.Discard, ci.Config.DenyPurge, ci.Config.DenyDelete, sc.Discard, sc.DenyPurge, sc.DenyDelete)
		}
		if sc.Name == bus.StreamMessages && ci.State.Msgs != 1 {
			t.Errorf("MESSAGES has %d messages after second Open, want 1", ci.State.Msgs)
		}
	}
	for _, kv := range []jetstream.KeyValue{b2.ContextKV(), b2.VaultKV(), b2.RulesKV()} {
		if kv == nil {
			t.Fatal("nil bucket after Open")
		}
	}
	// Consumers are idempotent too.
	for range 2 {
		if _, err := b2.MessageConsumer(ctx, "evaluator", 3); err != nil {
			t.Fatal(err)
		}
		if _, err := b2.SinkConsumer(ctx, bus.StreamVerdicts, "sink"); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenRejectsInvalidConfig(t *testing.T) {
	s := bustest.New(t)
	for _, cfg := range []bus.Config{
		{Partitions: -1},
		{Partitions: 5000},
		{Replicas: 9},
		{AckWait: -time.Second},
		{MessagesMaxAge: time.Minute, DuplicateWindow: time.Hour},
	} {
		if _, err := bus.Open(testCtx(t), s.Conn, cfg); !errors.Is(err, bus.ErrInvalidConfig) {
			t.Errorf("Open(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
}

func TestPublishSameIDIsDuplicate(t *testing.T) {
	s := bustest.New(t)
	b := s.Bus(t, bus.Config{})
	ctx := testCtx(t)
	v := &vigil.Verdict{ID: vigil.VerdictID("m1", "r1", "rs1"), MessageID: "m1", Tenant: "t", ConversationID: "c", RuleID: "r1", RulesetVersion: "rs1"}
	tests := []struct {
		stream  string
		publish func() (bus.Ack, error)
	}{
		{bus.StreamMessages, func() (bus.Ack, error) { return b.PublishMessage(ctx, msg("m1", "t", "c", "x")) }},
		{bus.StreamVerdicts, func() (bus.Ack, error) { return b.PublishVerdict(ctx, v) }},
		{bus.StreamActions, func() (bus.Ack, error) { return b.PublishAction(ctx, v) }},
		{bus.StreamEvaluations, func() (bus.Ack, error) {
			return b.PublishEvaluation(ctx, &vigil.Evaluation{MessageID: "m1", Tenant: "t", ConversationID: "c", RulesetVersion: "rs1"})
		}},
		{bus.StreamAudit, func() (bus.Ack, error) {
			return b.PublishAudit(ctx, &vigil.AuditEvent{ID: "a1", Tenant: "t", Actor: "dpo", Action: "erase"})
		}},
		{bus.StreamDeadLetter, func() (bus.Ack, error) { return b.PublishDeadLetter(ctx, bus.StreamMessages, 7, "max deliver") }},
	}
	for _, tt := range tests {
		t.Run(tt.stream, func(t *testing.T) {
			first, err := tt.publish()
			if err != nil {
				t.Fatal(err)
			}
			if first.Duplicate || first.Stream != tt.stream || first.Sequence != 1 {
				t.Fatalf("first ack = %+v, want new record seq 1 in %s", first, tt.stream)
			}
			second, err := tt.publish()
			if err != nil {
				t.Fatal(err)
			}
			if !second.Duplicate || second.Sequence != first.Sequence {
				t.Fatalf("second ack = %+v, want duplicate of seq %d", second, first.Sequence)
			}
			st, err := s.JS.Stream(ctx, tt.stream)
			if err != nil {
				t.Fatal(err)
			}
			if n := st.CachedInfo().State.Msgs; n != 1 {
				t.Fatalf("%s holds %d records, want 1", tt.stream, n)
			}
		})
	}
}

func TestPublishBatch(t *testing.T) {
	for _, atomic := range []bool{true, false} {
		t.Run(fmt.Sprintf("atomic=%v", atomic), func(t *testing.T) {
			testPublishBatch(t, bus.Config{AsyncMaxPending: 16, NoAtomicBatches: !atomic, MinAtomicBatch: 2})
		})
	}
}

func testPublishBatch(t *testing.T, cfg bus.Config) {
	s := bustest.New(t)
	m := bus.NewMetrics(nil)
	b := s.Bus(t, cfg, bus.WithMetrics(m))
	ctx := testCtx(t)
	var ms []*vigil.Message
	for i := range 1200 { // more than one atomic batch
		ms = append(ms, msg(fmt.Sprintf("m%d", i), "t", fmt.Sprintf("c%d", i%7), "text"))
	}
	acks, err := b.PublishMessages(ctx, ms)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	for i, a := range acks {
		if a.Duplicate || a.Sequence == 0 || seen[a.Sequence] {
			t.Fatalf("ack %d = %+v: want a fresh unique sequence", i, a)
		}
		seen[a.Sequence] = true
		if got, err := b.GetMessage(ctx, a.Sequence); err != nil || got.ID != ms[i].ID {
			t.Fatalf("seq %d holds %v (%v), want %s", a.Sequence, got, err, ms[i].ID)
		}
	}
	if n := testutil.ToFloat64(m.AtomicFallbacks); n != 0 {
		t.Fatalf("%v atomic fallbacks for a fresh batch", n)
	}
	// Half new, half already stored: every message acked, the stored ones
	// as duplicates of their first sequence.
	mixed := append([]*vigil.Message{}, ms[:10]...)
	for i := range 10 {
		mixed = append(mixed, msg(fmt.Sprintf("new%d", i), "t", "c", "text"))
	}
	macks, err := b.PublishMessages(ctx, mixed)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range macks {
		if (i < 10) != a.Duplicate || a.Sequence == 0 || (i < 10 && a.Sequence != acks[i].Sequence) {
			t.Fatalf("mixed ack %d = %+v", i, a)
		}
	}
	if want := map[bool]float64{true: 0, false: 1}[cfg.NoAtomicBatches]; testutil.ToFloat64(m.AtomicFallbacks) != want {
		t.Fatalf("%v atomic fallbacks after a retried batch, want %v", testutil.ToFloat64(m.AtomicFallbacks), want)
	}
	// The same batch again: every message is a duplicate of its first ack.
	again, err := b.PublishMessages(ctx, ms)
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		if !again[i].Duplicate || again[i].Sequence != acks[i].Sequence {
			t.Fatalf("repeat ack %d = %+v, want duplicate of %d", i, again[i], acks[i].Sequence)
		}
	}
	// The same id twice inside one batch is stored once.
	twice, err := b.PublishMessages(ctx, []*vigil.Message{msg("twin", "t", "c", "x"), msg("twin", "t", "c", "x")})
	if err != nil {
		t.Fatal(err)
	}
	if twice[0].Duplicate || !twice[1].Duplicate || twice[0].Sequence != twice[1].Sequence {
		t.Fatalf("acks for an id repeated in a batch = %+v", twice)
	}
	// An invalid record refuses the whole batch before anything is sent.
	bad := append([]*vigil.Message{msg("new", "t", "c", "x")}, msg("", "t", "c", "x"))
	if _, err := b.PublishMessages(ctx, bad); !errors.Is(err, bus.ErrInvalidRecord) {
		t.Fatalf("PublishMessages(bad) = %v, want ErrInvalidRecord", err)
	}
	st, _ := s.JS.Stream(ctx, bus.StreamMessages)
	info, _ := st.Info(ctx)
	if info.State.Msgs != 1211 {
		t.Fatalf("MESSAGES holds %d, want 1211", info.State.Msgs)
	}
}

func TestPartitionKeepsConversationTogether(t *testing.T) {
	s := bustest.New(t)
	const parts = 8
	b := s.Bus(t, bus.Config{Partitions: parts, Memory: true})
	ctx := testCtx(t)
	const convs, perConv = 1000, 3
	var ms []*vigil.Message
	for i := range convs {
		for j := range perConv {
			ms = append(ms, msg(fmt.Sprintf("m%d-%d", i, j), "acme", fmt.Sprintf("conv.%d", i), "x"))
		}
	}
	if _, err := b.PublishMessages(ctx, ms); err != nil {
		t.Fatal(err)
	}
	// Every stored subject carries the partition PartitionOf predicts.
	st, err := s.JS.Stream(ctx, bus.StreamMessages)
	if err != nil {
		t.Fatal(err)
	}
	convPart := map[string]int{}
	for seq := uint64(1); seq <= convs*perConv; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		p, tenant, conv, err := bus.ParseMessageSubject(raw.Subject)
		if err != nil {
			t.Fatalf("ParseMessageSubject(%q): %v", raw.Subject, err)
		}
		if tenant != "acme" {
			t.Fatalf("tenant = %q", tenant)
		}
		if want := bus.PartitionOf(tenant, conv, parts); p != want {
			t.Fatalf("%s stored in partition %d, PartitionOf says %d", conv, p, want)
		}
		if prev, ok := convPart[conv]; ok && prev != p {
			t.Fatalf("%s split across partitions %d and %d", conv, prev, p)
		}
		convPart[conv] = p
	}
	// Each partition consumer sees exactly its share, and the share is
	// spread: no partition is empty or holds more than twice its fair share.
	counts := make([]int, parts)
	for _, p := range convPart {
		counts[p]++
	}
	total := 0
	for p := range parts {
		c, err := b.MessageConsumer(ctx, "evaluator", p)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if int(info.NumPending) != counts[p]*perConv {
			t.Errorf("partition %d consumer has %d pending, want %d", p, info.NumPending, counts[p]*perConv)
		}
		if counts[p] < convs/parts/2 || counts[p] > 2*convs/parts {
			t.Errorf("partition %d holds %d of %d conversations: badly spread %v", p, counts[p], convs, counts)
		}
		total += int(info.NumPending)
	}
	if total != convs*perConv {
		t.Fatalf("consumers see %d messages, want %d", total, convs*perConv)
	}
	if _, err := b.MessageConsumer(ctx, "evaluator", parts); !errors.Is(err, bus.ErrInvalidOption) {
		t.Fatalf("MessageConsumer(partition %d) = %v, want ErrInvalidOption", parts, err)
	}
}

func TestAwkwardIDsRoundTrip(t *testing.T) {
	s := bustest.New(t)
	b := s.Bus(t, bus.Config{Partitions: 4, Memory: true})
	ctx := testCtx(t)
	tests := []struct{ name, tenant, conv string }{
		{"dots", "acme.corp", "room.1.2"},
		{"wildcards", "a*", "b>"},
		{"full wildcard token", ">", "*"},
		{"unicode", "银行", "会话-💬"},
		{"dollar", "$JS", "$KV.x"},
		{"long", strings.Repeat("t", vigil.MaxIDBytes), strings.Repeat("ç", vigil.MaxIDBytes/2)},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sub, err := s.Conn.SubscribeSync(b.ActionSubject(tt.tenant, tt.conv))
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Unsubscribe()
			m := msg(fmt.Sprintf("m-%d", i), tt.tenant, tt.conv, "hi")
			ack, err := b.PublishMessage(ctx, m)
			if err != nil {
				t.Fatal(err)
			}
			st, _ := s.JS.Stream(ctx, bus.StreamMessages)
			raw, err := st.GetMsg(ctx, ack.Sequence)
			if err != nil {
				t.Fatal(err)
			}
			_, tenant, conv, err := bus.ParseMessageSubject(raw.Subject)
			if err != nil || tenant != tt.tenant || conv != tt.conv {
				t.Fatalf("ParseMessageSubject(%q) = %q, %q, %v; want %q, %q", raw.Subject, tenant, conv, err, tt.tenant, tt.conv)
			}
			var got vigil.Message
			if err := json.Unmarshal(raw.Data, &got); err != nil || got.Tenant != tt.tenant || got.ConversationID != tt.conv {
				t.Fatalf("stored body = %+v, %v", got, err)
			}
			v := &vigil.Verdict{ID: fmt.Sprintf("v-%d", i), MessageID: m.ID, Tenant: tt.tenant, ConversationID: tt.conv, Action: vigil.ActionRetract}
			if _, err := b.PublishAction(ctx, v); err != nil {
				t.Fatal(err)
			}
			nm, err := sub.NextMsg(5 * time.Second)
			if err != nil {
				t.Fatalf("action not delivered on ActionSubject: %v", err)
			}
			var gotV vigil.Verdict
			if err := json.Unmarshal(nm.Data, &gotV); err != nil || gotV.ID != v.ID {
				t.Fatalf("action body = %+v, %v", gotV, err)
			}
		})
	}
}

func TestPublishRejectsInvalidIDs(t *testing.T) {
	s := bustest.New(t)
	b := s.Bus(t, bus.Config{Memory: true})
	ctx := testCtx(t)
	for _, m := range []*vigil.Message{
		msg("", "t", "c", "x"),
		msg("id", "", "c", "x"),
		msg("id", "t", "", "x"),
		msg("id", "t", "has space", "x"),
		msg("id", "t", strings.Repeat("c", vigil.MaxIDBytes+1), "x"),
	} {
		if _, err := b.PublishMessage(ctx, m); !errors.Is(err, bus.ErrInvalidRecord) || !errors.Is(err, vigil.ErrInvalidID) {
			t.Errorf("PublishMessage(id=%q tenant=%q conv=%q) = %v, want ErrInvalidRecord", m.ID, m.Tenant, m.ConversationID, err)
		}
	}
}

func TestStreamFullIsErrStreamFull(t *testing.T) {
	s := bustest.New(t)
	b := s.Bus(t, bus.Config{MaxMessagesBytes: 4 << 10})
	ctx := testCtx(t)
	var stored int
	var err error
	for i := range 100 {
		if _, err = b.PublishMessage(ctx, msg(fmt.Sprintf("m%d", i), "t", "c", strings.Repeat("x", 200))); err != nil {
			break
		}
		stored++
	}
	if !errors.Is(err, bus.ErrStreamFull) {
		t.Fatalf("publish into full stream = %v, want ErrStreamFull", err)
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		t.Fatalf("ErrStreamFull lost the jetstream APIError: %v", err)
	}
	if stored == 0 {
		t.Fatal("nothing stored before the stream was full")
	}
	// Discard new: the first message is still there.
	st, _ := s.JS.Stream(ctx, bus.StreamMessages)
	if _, err := st.GetMsg(ctx, 1); err != nil {
		t.Fatalf("first message gone from a full stream: %v", err)
	}
	// The batch paths map the same way, and ack nothing.
	for _, n := range []int{1, 3} {
		var batch []*vigil.Message
		for i := range n {
			batch = append(batch, msg(fmt.Sprintf("b%d-%d", n, i), "t", "c", strings.Repeat("y", 200)))
		}
		acks, err := b.PublishMessages(ctx, batch)
		if !errors.Is(err, bus.ErrStreamFull) || acks[0].Sequence != 0 || acks[n-1].Sequence != 0 {
			t.Fatalf("PublishMessages(%d) into full stream = %+v, %v; want ErrStreamFull and no ack", n, acks, err)
		}
	}
}

func TestSinkConsumerUnknownStream(t *testing.T) {
	s := bustest.New(t)
	b := s.Bus(t, bus.Config{Memory: true})
	if _, err := b.SinkConsumer(testCtx(t), "NOPE", "sink"); !errors.Is(err, bus.ErrUnknownStream) {
		t.Fatalf("SinkConsumer(NOPE) = %v, want ErrUnknownStream", err)
	}
	if _, err := b.SinkConsumer(testCtx(t), bus.StreamAudit, "bad.name"); !errors.Is(err, bus.ErrInvalidOption) {
		t.Fatalf("SinkConsumer(bad.name) = %v, want ErrInvalidOption", err)
	}
}

func TestGetMessage(t *testing.T) {
	s := bustest.New(t)
	b := s.Bus(t, bus.Config{Memory: true})
	ctx := testCtx(t)
	want := msg("m1", "t", "c.1", "hello")
	ack, err := b.PublishMessage(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.GetMessage(ctx, ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != want.ID || got.Text != want.Text || !got.SentAt.Equal(want.SentAt) {
		t.Fatalf("GetMessage = %+v, want %+v", got, want)
	}
	if _, err := b.GetMessage(ctx, 99); !errors.Is(err, bus.ErrMessageNotFound) {
		t.Fatalf("GetMessage(99) = %v, want ErrMessageNotFound", err)
	}
}
