package warehouse_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/warehouse"
	"github.com/vigilhq/vigil/warehouse/warehousetest"
)

// snapshot renders every projected row of the tables, so two states can be
// compared exactly.
func snapshot(t *testing.T, db *warehousetest.DB) string {
	t.Helper()
	var sb strings.Builder
	for _, q := range []string{
		"SELECT id, tenant, conversation_id, sender_id, sender_name, text, sent_at, received_at, pii, subjects, stream_seq FROM messages FINAL ORDER BY id",
		"SELECT id, message_id, rule_id, ruleset_version, severity, action, tier, spans, message_sent_at, stream_seq FROM verdicts FINAL ORDER BY id",
		"SELECT message_id, ruleset_version, tiers, rules_evaluated, evaluated_at, message_seq, stream_seq FROM evaluations FINAL ORDER BY message_id",
	} {
		rows, err := db.Conn.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		types := rows.ColumnTypes()
		for rows.Next() {
			vals := make([]any, len(types))
			for i, ct := range types {
				vals[i] = newScan(ct.ScanType())
			}
			if err := rows.Scan(vals...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintln(&sb, deref(vals)...)
		}
		rows.Close()
	}
	return sb.String()
}

func TestReplayReproducesProjections(t *testing.T) {
	b := openBus(t)
	db := warehousetest.New(t)
	publishN(t, b, 0, 1200)
	s := startSink(t, b, db, db.DSN)
	waitCount(t, db, "messages", 1200, 30*time.Second)
	waitCount(t, db, "verdicts", 400, 30*time.Second)
	waitCount(t, db, "evaluations", 1200, 30*time.Second)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, db)
	for _, table := range []string{"messages", "verdicts", "evaluations"} {
		if err := db.Conn.Exec(context.Background(), "TRUNCATE TABLE "+table); err != nil {
			t.Fatal(err)
		}
	}
	if n := db.Count(t, "messages"); n != 0 {
		t.Fatalf("messages after truncate = %d", n)
	}
	var progressed bool
	st, err := warehouse.Replay(context.Background(), b, db.Conn, warehouse.ReplayConfig{
		BatchRows: 250,
		Progress:  func(string, uint64, uint64) { progressed = true },
	})
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	if st.Rows["MESSAGES"] != 1200 || st.Rows["VERDICTS"] != 400 || st.Rows["EVALUATIONS"] != 1200 {
		t.Errorf("replayed rows = %v, want 1200/400/1200", st.Rows)
	}
	if !progressed {
		t.Error("progress callback never called")
	}
	if got := snapshot(t, db); got != want {
		t.Errorf("replay into empty tables differs from the sink's projection:\n got %d bytes\nwant %d bytes", len(got), len(want))
	}
	// Replaying again over full tables changes nothing a FINAL query sees.
	if _, err := warehouse.Replay(context.Background(), b, db.Conn, warehouse.ReplayConfig{}); err != nil {
		t.Fatal(err)
	}
	if got := snapshot(t, db); got != want {
		t.Error("second replay changed the projection")
	}
}

func TestReplayFromSequence(t *testing.T) {
	b := openBus(t)
	db := warehousetest.New(t)
	publishN(t, b, 0, 100)
	st, err := warehouse.Replay(context.Background(), b, db.Conn, warehouse.ReplayConfig{
		Streams: []string{"MESSAGES"}, FromSeq: 61})
	if err != nil {
		t.Fatal(err)
	}
	if st.Rows["MESSAGES"] != 40 || db.Count(t, "messages") != 40 {
		t.Errorf("replay from seq 61 wrote %d rows (table %d), want 40", st.Rows["MESSAGES"], db.Count(t, "messages"))
	}
	var minSeq uint64
	if err := db.Conn.QueryRow(context.Background(), "SELECT min(stream_seq) FROM messages").Scan(&minSeq); err != nil {
		t.Fatal(err)
	}
	if minSeq != 61 {
		t.Errorf("first replayed seq = %d, want 61", minSeq)
	}
	_, err = warehouse.Replay(context.Background(), b, db.Conn, warehouse.ReplayConfig{FromSeq: 1, Since: time.Now()})
	if !errors.Is(err, warehouse.ErrReplayConfig) {
		t.Errorf("FromSeq and Since together: %v, want ErrReplayConfig", err)
	}
	_, err = warehouse.Replay(context.Background(), b, db.Conn, warehouse.ReplayConfig{Streams: []string{"NOPE"}})
	if !errors.Is(err, warehouse.ErrReplayConfig) {
		t.Errorf("unknown stream: %v, want ErrReplayConfig", err)
	}
}
