package warehouse_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/bus/bustest"
	"github.com/vigilhq/vigil/warehouse"
	"github.com/vigilhq/vigil/warehouse/warehousetest"
)

func TestMain(m *testing.M) { os.Exit(warehousetest.Main(m)) }

func openBus(t *testing.T) *bus.Bus {
	t.Helper()
	s := bustest.New(t)
	b, err := bus.Open(context.Background(), s.Conn, bus.Config{})
	if err != nil {
		t.Fatalf("bus.Open: %v", err)
	}
	return b
}

func publishN(t *testing.T, b *bus.Bus, from, to int) {
	t.Helper()
	ctx := context.Background()
	base := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	for i := from; i < to; i++ {
		m := &vigil.Message{
			ID: fmt.Sprintf("m-%06d", i), Tenant: "acme", ConversationID: fmt.Sprintf("c-%d", i%17),
			Sender:  vigil.Participant{ID: "u1", DisplayName: "⟦NAME:0011⟧", Role: "advisor"},
			Channel: "teams", Text: fmt.Sprintf("message %d", i),
			SentAt: base.Add(time.Duration(i) * time.Millisecond), ReceivedAt: base.Add(time.Duration(i)*time.Millisecond + time.Microsecond),
			PII: map[string]int{"email": 1}, Subjects: []string{"u1"},
		}
		if _, err := b.PublishMessage(ctx, m); err != nil {
			t.Fatalf("publish message %d: %v", i, err)
		}
		if i%3 == 0 {
			v := &vigil.Verdict{
				ID: vigil.VerdictID(m.ID, "r1", "v1"), MessageID: m.ID, Tenant: "acme", ConversationID: m.ConversationID,
				RuleID: "r1", RulesetVersion: "v1", Severity: vigil.SeverityHigh, Action: vigil.ActionFlag, Tier: 1,
				MessageSentAt: m.SentAt, EvaluatedAt: m.SentAt.Add(time.Millisecond),
				Spans: []vigil.Span{{Start: 0, End: 7}},
			}
			if _, err := b.PublishVerdict(ctx, v); err != nil {
				t.Fatalf("publish verdict %d: %v", i, err)
			}
		}
		e := &vigil.Evaluation{MessageID: m.ID, Tenant: "acme", ConversationID: m.ConversationID, RulesetVersion: "v1",
			Tiers: []int{1}, RulesEvaluated: 3, EvaluatedAt: m.SentAt.Add(time.Millisecond), StreamSequence: uint64(i + 1)}
		if _, err := b.PublishEvaluation(ctx, e); err != nil {
			t.Fatalf("publish evaluation %d: %v", i, err)
		}
	}
}

func waitCount(t *testing.T, db *warehousetest.DB, table string, want uint64, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var got uint64
	for time.Now().Before(deadline) {
		if got = db.Count(t, table); got == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: %d rows after %v, want %d", table, got, within, want)
}

func startSink(t *testing.T, b *bus.Bus, db *warehousetest.DB, dsn string) *warehouse.Sink {
	t.Helper()
	conn, _, err := warehouse.Connect(context.Background(), dsn)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	s, err := warehouse.NewSink(b, conn, warehouse.SinkConfig{BatchRows: 500, FlushInterval: 100 * time.Millisecond,
		RetryBackoff: 50 * time.Millisecond, MaxRetryBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("sink start: %v", err)
	}
	return s
}

func TestSinkProjectsStreams(t *testing.T) {
	b := openBus(t)
	db := warehousetest.New(t)
	publishN(t, b, 0, 3000)
	s := startSink(t, b, db, db.DSN)
	defer s.Close(context.Background())
	waitCount(t, db, "messages", 3000, 30*time.Second)
	waitCount(t, db, "verdicts", 1000, 30*time.Second)
	waitCount(t, db, "evaluations", 3000, 30*time.Second)

	// Review transitions published by the review package land too.
	ev := warehouse.ReviewEvent{ID: "ev-1", AlertID: "a-1", Tenant: "acme", Reviewer: "rita",
		At: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), FromState: "open", ToState: "claimed"}
	body, _ := json.Marshal(ev)
	if _, err := b.JetStream().Publish(context.Background(), bus.ReviewSubject("acme", "a-1"), body); err != nil {
		t.Fatal(err)
	}
	waitCount(t, db, "review_events", 1, 30*time.Second)

	// Types survive the trip: the archive holds what the stream held.
	var text, role string
	var sent time.Time
	var pii map[string]uint32
	err := db.Conn.QueryRow(context.Background(),
		"SELECT text, sender_role, sent_at, pii FROM messages FINAL WHERE id = 'm-000042'").Scan(&text, &role, &sent, &pii)
	if err != nil {
		t.Fatal(err)
	}
	wantSent := time.Date(2026, 12, 1, 9, 0, 0, 42*int(time.Millisecond), time.UTC)
	if text != "message 42" || role != "advisor" || !sent.Equal(wantSent) || pii["email"] != 1 {
		t.Errorf("row m-000042 = %q %q %v %v, want %q advisor %v email:1", text, role, sent, pii, "message 42", wantSent)
	}
}

// TestSinkRestartExactlyOnce stops the sink repeatedly while it works; the
// next sink resumes from the unacked messages and the tables end up with
// every row exactly once.
func TestSinkRestartExactlyOnce(t *testing.T) {
	b := openBus(t)
	db := warehousetest.New(t)
	const total = 4000
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); publishN(t, b, 0, total) }()
	for i := range 6 {
		s := startSink(t, b, db, db.DSN)
		time.Sleep(150 * time.Millisecond)
		// Odd rounds abort at once (an expired deadline cancels the INSERT
		// in flight); even rounds drain gracefully.
		timeout := 5 * time.Second
		if i%2 == 1 {
			timeout = 0
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		if err := s.Close(ctx); err != nil && timeout > 0 {
			t.Fatalf("graceful close of sink: %v", err)
		}
		cancel()
	}
	wg.Wait()
	s := startSink(t, b, db, db.DSN)
	defer s.Close(context.Background())
	waitCount(t, db, "messages", total, 60*time.Second)
	waitCount(t, db, "evaluations", total, 60*time.Second)
	waitCount(t, db, "verdicts", (total+2)/3, 60*time.Second)
	var dup uint64
	if err := db.Conn.QueryRow(context.Background(),
		"SELECT count() FROM (SELECT id FROM messages FINAL GROUP BY id HAVING count() > 1)").Scan(&dup); err != nil {
		t.Fatal(err)
	}
	if dup != 0 {
		t.Errorf("%d message ids appear more than once after FINAL", dup)
	}
}

// TestSinkClickHouseOutage cuts the network path to ClickHouse while
// messages keep arriving; nothing is acked that was not written, and every
// row lands once the path is back.
func TestSinkClickHouseOutage(t *testing.T) {
	b := openBus(t)
	db := warehousetest.New(t)
	p := warehousetest.NewProxy(t, warehousetest.Addr(t))
	dsn := fmt.Sprintf("http://%s/%s", p.Addr(), db.Name)
	s := startSink(t, b, db, dsn)
	defer s.Close(context.Background())

	publishN(t, b, 0, 500)
	waitCount(t, db, "messages", 500, 30*time.Second)

	p.SetDown(true)
	publishN(t, b, 500, 1500)
	time.Sleep(1500 * time.Millisecond)
	if got := db.Count(t, "messages"); got != 500 {
		t.Fatalf("rows written while ClickHouse was unreachable: %d, want 500", got)
	}
	info, err := b.JetStream().Stream(context.Background(), bus.StreamMessages)
	if err != nil {
		t.Fatal(err)
	}
	c, err := info.Consumer(context.Background(), "sink_messages")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if ci.AckFloor.Stream > 500 {
		t.Errorf("sink acked up to stream seq %d during the outage, want ≤ 500", ci.AckFloor.Stream)
	}

	p.SetDown(false)
	waitCount(t, db, "messages", 1500, 60*time.Second)
	waitCount(t, db, "evaluations", 1500, 60*time.Second)
}
