package warehouse_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/warehouse"
	"github.com/vigilhq/vigil/warehouse/warehousetest"
)

func TestBacktestDiff(t *testing.T) {
	db := warehousetest.New(t)
	ctx := context.Background()
	day := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	verdict := func(msg, tenant, rule, version string, sentAt time.Time) vigil.Verdict {
		return vigil.Verdict{
			ID: vigil.VerdictID(msg, rule, version), MessageID: msg, Tenant: tenant, ConversationID: "c-" + msg,
			RuleID: rule, RulesetVersion: version, Severity: vigil.SeverityHigh, Action: vigil.ActionFlag, Tier: 1,
			MessageSentAt: sentAt, EvaluatedAt: sentAt.Add(time.Second),
		}
	}
	// Production: m1 was re-evaluated by v2, whose verdicts alone count;
	// m3 is outside the window; m4 is another tenant's.
	prod := []vigil.Verdict{
		verdict("m1", "acme", "r1", "v1", day),
		verdict("m1", "acme", "r2", "v2", day),
		verdict("m2", "acme", "r1", "v2", day),
		verdict("m3", "acme", "r1", "v2", day.AddDate(0, 0, 5)),
		verdict("m4", "globex", "r3", "v2", day),
	}
	prod[1].EvaluatedAt = day.Add(time.Hour)
	batch, err := db.Conn.PrepareBatch(ctx, "INSERT INTO verdicts (id, message_id, tenant, conversation_id, rule_id, ruleset_version, severity, action, tier, message_sent_at, evaluated_at, stream_seq)")
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range prod {
		if err := batch.Append(v.ID, v.MessageID, v.Tenant, v.ConversationID, v.RuleID, v.RulesetVersion,
			string(v.Severity), string(v.Action), uint8(v.Tier), v.MessageSentAt, v.EvaluatedAt, uint64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	if err := db.Conn.Exec(ctx, `INSERT INTO evaluations (message_id, tenant, conversation_id, ruleset_version, evaluated_at, stream_seq) VALUES
		('m1', 'acme', 'c-m1', 'v1', '2026-12-01 10:00:01.000', 1), ('m1', 'acme', 'c-m1', 'v2', '2026-12-01 11:00:00.000', 2)`); err != nil {
		t.Fatal(err)
	}

	run := []vigil.Verdict{
		verdict("m1", "acme", "r2", "bt", day), // same as production
		verdict("m2", "acme", "r2", "bt", day), // new r2; m2's r1 removed
		verdict("m5", "acme", "r1", "bt", day), // new r1
		verdict("m6", "acme", "r1", "bt", day.AddDate(0, 0, 5)),
	}
	for range 2 { // a retried insert does not double-count
		if err := warehouse.InsertBacktestVerdicts(ctx, db.Conn, "run-1", run); err != nil {
			t.Fatal(err)
		}
	}
	other := []vigil.Verdict{verdict("m2", "acme", "r1", "bt2", day)}
	if err := warehouse.InsertBacktestVerdicts(ctx, db.Conn, "run-2", other); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name, run, tenant string
		want              []warehouse.RuleDiff
	}{
		{"one tenant", "run-1", "acme", []warehouse.RuleDiff{
			{RuleID: "r1", Production: 1, Backtest: 1, New: 1, Removed: 1},
			{RuleID: "r2", Production: 1, Backtest: 2, New: 1, Removed: 0},
		}},
		{"every tenant", "run-1", "", []warehouse.RuleDiff{
			{RuleID: "r1", Production: 1, Backtest: 1, New: 1, Removed: 1},
			{RuleID: "r2", Production: 1, Backtest: 2, New: 1, Removed: 0},
			{RuleID: "r3", Production: 1, Backtest: 0, New: 0, Removed: 1},
		}},
		{"another run", "run-2", "acme", []warehouse.RuleDiff{
			{RuleID: "r1", Production: 1, Backtest: 1, New: 0, Removed: 0},
			{RuleID: "r2", Production: 1, Backtest: 0, New: 0, Removed: 1},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := warehouse.BacktestDiff(ctx, db.Conn, tc.run, tc.tenant, day.Add(-time.Hour), day.AddDate(0, 0, 1))
			if err != nil {
				t.Fatalf("BacktestDiff: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("BacktestDiff (-want +got):\n%s", diff)
			}
		})
	}

	var n uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM verdicts").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != uint64(len(prod)) {
		t.Errorf("verdicts holds %d rows, want the %d production rows only", n, len(prod))
	}
	if err := warehouse.InsertBacktestVerdicts(ctx, db.Conn, "", run); err == nil {
		t.Error("InsertBacktestVerdicts with an empty run id = nil, want an error")
	}
}
