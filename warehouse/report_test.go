package warehouse_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/warehouse"
	"github.com/vigilhq/vigil/warehouse/warehousetest"
)

func TestReportsRunOnRealData(t *testing.T) {
	b := openBus(t)
	db := warehousetest.New(t)
	publishN(t, b, 0, 300)
	s := startSink(t, b, db, db.DSN)
	waitCount(t, db, "messages", 300, 30*time.Second)
	waitCount(t, db, "verdicts", 100, 30*time.Second)
	waitCount(t, db, "evaluations", 300, 30*time.Second)
	if err := s.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// One archived message that no ruleset evaluated: a coverage gap.
	if err := db.Conn.Exec(context.Background(), `INSERT INTO messages (id, tenant, conversation_id, sent_at, received_at, stream_seq)
		VALUES ('gap-1', 'acme', 'c-x', '2026-12-01 10:00:00.000', '2026-12-01 10:00:00.000', 999999)`); err != nil {
		t.Fatal(err)
	}

	// Review transitions: a1 opened and closed two hours later, a2 still claimed.
	if err := db.Conn.Exec(context.Background(), `INSERT INTO review_events (id, alert_id, tenant, reviewer, at, from_state, to_state, disposition, reason, stream_seq) VALUES
		('e1', 'a1', 'acme', 'vigil', '2026-12-01 10:00:00.000', '', 'open', '', '', 1),
		('e2', 'a1', 'acme', 'rita', '2026-12-01 10:30:00.000', 'open', 'claimed', '', '', 2),
		('e3', 'a1', 'acme', 'rita', '2026-12-01 12:00:00.000', 'claimed', 'closed', 'false_positive', 'ok', 3),
		('e4', 'a2', 'acme', 'vigil', '2026-12-01 11:00:00.000', '', 'open', '', '', 4),
		('e5', 'a2', 'acme', 'sam', '2026-12-01 11:05:00.000', 'open', 'claimed', '', '', 5)`); err != nil {
		t.Fatal(err)
	}

	params := map[string]any{
		"tenant": "acme", "conversation": "c-1",
		"from": time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), "to": time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC),
	}
	reps, err := warehouse.Reports()
	if err != nil {
		t.Fatal(err)
	}
	if len(reps) < 7 {
		t.Fatalf("got %d reports, want at least 7", len(reps))
	}
	got := map[string]*warehouse.Table{}
	for _, r := range reps {
		t.Run(r.Name, func(t *testing.T) {
			if r.Description == "" {
				t.Errorf("report %s has no description comment", r.Name)
			}
			tab, err := warehouse.RunReport(context.Background(), db.Conn, r.Name, params)
			if err != nil {
				t.Fatalf("RunReport(%s) = %v", r.Name, err)
			}
			got[r.Name] = tab
		})
	}

	if t.Failed() {
		t.FailNow()
	}
	// verdicts_by_rule: 100 verdicts of rule r1 on one day.
	var total uint64
	for _, row := range got["verdicts_by_rule"].Rows {
		total += row[col(t, got["verdicts_by_rule"], "verdicts")].(uint64)
	}
	if total != 100 {
		t.Errorf("verdicts_by_rule total = %d, want 100", total)
	}
	// review_turnaround: 2 opened, 1 still open, 1 closed after 2 hours.
	rt := got["review_turnaround"]
	if len(rt.Rows) != 1 {
		t.Fatalf("review_turnaround rows = %v, want one day", rt.Rows)
	}
	r := rt.Rows[0]
	if r[col(t, rt, "alerts_opened")].(uint64) != 2 || r[col(t, rt, "still_open")].(uint64) != 1 ||
		r[col(t, rt, "closed")].(uint64) != 1 || r[col(t, rt, "median_hours_to_close")].(float64) != 2 {
		t.Errorf("review_turnaround = %v (%v), want 2 opened, 1 open, 1 closed, median 2h", r, rt.Columns)
	}
	// coverage_gaps lists exactly the unevaluated message.
	gaps := got["coverage_gaps"]
	if len(gaps.Rows) != 1 || gaps.Rows[0][col(t, gaps, "message_id")] != "gap-1" {
		t.Errorf("coverage_gaps = %v, want exactly gap-1", gaps.Rows)
	}
	// coverage shows the gap as ruleset '(none)'.
	cov := got["coverage"]
	var none uint64
	for _, row := range cov.Rows {
		if row[col(t, cov, "ruleset_version")] == "(none)" {
			none += row[col(t, cov, "messages")].(uint64)
		}
	}
	if none != 1 {
		t.Errorf("coverage (none) = %d, want 1; rows %v", none, cov.Rows)
	}
	// conversation_export keeps tokens and lists the conversation's messages.
	exp := got["conversation_export"]
	if len(exp.Rows) == 0 {
		t.Fatalf("conversation_export returned no rows")
	}
	for _, row := range exp.Rows {
		if !strings.HasPrefix(row[col(t, exp, "text")].(string), "message ") {
			t.Errorf("unexpected text %v", row)
		}
	}
}

func col(t *testing.T, tab *warehouse.Table, name string) int {
	t.Helper()
	for i, c := range tab.Columns {
		if c == name {
			return i
		}
	}
	t.Fatalf("no column %s in %v", name, tab.Columns)
	return -1
}

func TestReportBadInput(t *testing.T) {
	db := warehousetest.New(t)
	_, err := warehouse.RunReport(context.Background(), db.Conn, "nope", nil)
	if !errors.Is(err, warehouse.ErrUnknownReport) {
		t.Errorf("unknown report error = %v, want ErrUnknownReport", err)
	}
	_, err = warehouse.RunReport(context.Background(), db.Conn, "verdicts_by_rule", map[string]any{"tenant": "a"})
	if !errors.Is(err, warehouse.ErrMissingParam) {
		t.Errorf("missing params error = %v, want ErrMissingParam", err)
	}
	// A hostile tenant value is a literal, not SQL.
	_, err = warehouse.RunReport(context.Background(), db.Conn, "verdicts_by_rule", map[string]any{
		"tenant": "x' OR 1=1 --", "from": time.Now().Add(-time.Hour), "to": time.Now()})
	if err != nil {
		t.Errorf("quoted hostile tenant: %v", err)
	}
}
