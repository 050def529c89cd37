package warehouse_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/bus/bustest"
	"github.com/vigilhq/vigil/warehouse"
	"github.com/vigilhq/vigil/warehouse/warehousetest"
)

// BenchmarkSink measures the sink end to end: N messages already in
// MESSAGES, then the time until all N rows are in ClickHouse and acked.
// Baseline in the same run: the same rows inserted directly with one
// clickhouse-go batch per 10k rows (no JetStream, no acks).
//
//	go test -run '^$' -bench Sink -benchtime 1x ./warehouse/
func BenchmarkSink(b *testing.B) {
	const n = 200_000
	ctx := context.Background()
	srv := bustest.New(b)
	bb, err := bus.Open(ctx, srv.Conn, bus.Config{})
	if err != nil {
		b.Fatal(err)
	}
	msgs := make([]*vigil.Message, 0, 1000)
	base := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		msgs = append(msgs, &vigil.Message{
			ID: fmt.Sprintf("b-%07d", i), Tenant: "acme", ConversationID: fmt.Sprintf("c-%d", i%5000),
			Sender:  vigil.Participant{ID: fmt.Sprintf("u-%d", i%300), DisplayName: "⟦NAME:00112233aabbccdd⟧", Role: "advisor"},
			Channel: "teams", Text: "please call me back about the ⟦EMAIL:0011223344556677⟧ account statement, thanks",
			SentAt: base.Add(time.Duration(i) * time.Millisecond), ReceivedAt: base.Add(time.Duration(i) * time.Millisecond),
			PII: map[string]int{"email": 1}, Subjects: []string{fmt.Sprintf("u-%d", i%300)},
		})
		if len(msgs) == cap(msgs) {
			if _, err := bb.PublishMessages(ctx, msgs); err != nil {
				b.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
	for b.Loop() {
		db := warehousetest.New(b)
		conn, _, err := warehouse.Connect(ctx, db.DSN)
		if err != nil {
			b.Fatal(err)
		}
		s, err := warehouse.NewSink(bb, conn, warehouse.SinkConfig{
			Durable: "bench_" + db.Name, Streams: []string{bus.StreamMessages}, BatchRows: 10_000})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := s.Start(ctx); err != nil {
			b.Fatal(err)
		}
		for db.RawCount(b, "messages") < n {
			time.Sleep(20 * time.Millisecond)
		}
		el := time.Since(start)
		_ = s.Close(ctx)
		conn.Close()
		b.ReportMetric(float64(n)/el.Seconds(), "rows/s")
	}
}

// BenchmarkReportVerdicts10M times the verdicts_by_rule and coverage
// reports over 10M verdict rows (and 10M evaluations, 10M messages for
// coverage) generated inside ClickHouse.
//
//	go test -run '^$' -bench Report -benchtime 3x ./warehouse/
func BenchmarkReportVerdicts10M(b *testing.B) {
	const rows = 10_000_000
	ctx := context.Background()
	db := warehousetest.New(b)
	gen := fmt.Sprintf(`INSERT INTO verdicts (id, message_id, tenant, conversation_id, sender_id, rule_id, ruleset_version,
		severity, action, tier, tags, spans, reason, message_sent_at, evaluated_at, latency_seconds, stream_seq)
		SELECT concat('v-', toString(number)), concat('m-', toString(number)), 'acme', concat('c-', toString(number %% 50000)),
		concat('u-', toString(number %% 3000)), concat('rule.', toString(number %% 40)), 'v1',
		['low','medium','high','critical'][1 + number %% 4], ['flag','alert','escalate','retract'][1 + number %% 4], 1, [], '[]', '',
		toDateTime64('2026-11-01 00:00:00', 3, 'UTC') + toIntervalMillisecond(number * 250),
		toDateTime64('2026-11-01 00:00:00', 3, 'UTC') + toIntervalMillisecond(number * 250 + 5), 0.005, number + 1
		FROM numbers(%d)`, rows)
	start := time.Now()
	if err := db.Conn.Exec(ctx, gen); err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d verdict rows in %v", rows, time.Since(start))
	params := map[string]any{"tenant": "acme", "conversation": "",
		"from": time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), "to": time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)}
	for b.Loop() {
		t, err := warehouse.RunReport(ctx, db.Conn, "verdicts_by_rule", params)
		if err != nil {
			b.Fatal(err)
		}
		if len(t.Rows) == 0 {
			b.Fatal("no rows")
		}
	}
}
