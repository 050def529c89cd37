package warehouse

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/vigilhq/vigil"
)

// tableBacktestVerdicts holds the verdicts of backtest runs (migration 0004).
const tableBacktestVerdicts = "backtest_verdicts"

// backtestRow is a verdict of one backtest run, as rowValues maps it.
type backtestRow struct {
	runID string
	v     *vigil.Verdict
}

// InsertBacktestVerdicts writes the verdicts of backtest run runID into
// backtest_verdicts, in INSERTs of at most [DefaultBatchRows] rows. It never
// touches the production verdicts table. Inserting the same verdicts again
// for the same run is harmless: rows collapse on (run_id, rule_id, id), and
// [BacktestDiff] reads with FINAL. It returns the first failed INSERT's
// error, wrapped.
func InsertBacktestVerdicts(ctx context.Context, conn driver.Conn, runID string, vs []vigil.Verdict) error {
	if runID == "" {
		return fmt.Errorf("insert backtest verdicts: empty run id")
	}
	// The caller batches; async inserts would return before the rows are
	// in a part, and the diff that follows must see them.
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"async_insert": 0}))
	for len(vs) > 0 {
		n := min(len(vs), DefaultBatchRows)
		recs := make([]any, n)
		for i := range n {
			recs[i] = backtestRow{runID: runID, v: &vs[i]}
		}
		if err := insertRecords(ctx, conn, tableBacktestVerdicts, recs, make([]uint64, n)); err != nil {
			return fmt.Errorf("backtest run %s: %w", runID, err)
		}
		vs = vs[n:]
	}
	return nil
}

// RuleDiff compares, for one rule, production verdicts with those of a
// backtest run over the same messages. Counts are of distinct
// (message, rule) pairs.
type RuleDiff struct {
	RuleID string `json:"rule_id"`
	// Production counts production verdicts of the rule.
	Production uint64 `json:"production"`
	// Backtest counts the run's verdicts of the rule.
	Backtest uint64 `json:"backtest"`
	// New counts messages the run flags with the rule and production does
	// not.
	New uint64 `json:"new"`
	// Removed counts messages production flags with the rule and the run
	// does not.
	Removed uint64 `json:"removed"`
}

// backtestDiffSQL compares production and backtest verdicts of messages
// sent in [from, to) of one tenant (empty for all), matched on message id and
// rule id.
//
// Production is, per message, the verdicts of the latest ruleset that
// evaluated it (the version with the latest evaluated_at in evaluations or
// verdicts): after a rollout or a replay a message may have verdicts of
// several versions, and only what production says now counts. A version
// that evaluated the message and fired nothing therefore also hides older
// verdicts.
const backtestDiffSQL = `
WITH
    in_window AS (
        SELECT DISTINCT message_id FROM verdicts FINAL
        WHERE (tenant = ? OR ? = '') AND message_sent_at >= ? AND message_sent_at < ?
    ),
    latest AS (
        SELECT message_id, argMax(ruleset_version, evaluated_at) AS ruleset_version
        FROM (
            SELECT message_id, ruleset_version, evaluated_at FROM evaluations FINAL
            WHERE message_id IN (SELECT message_id FROM in_window)
            UNION ALL
            SELECT message_id, ruleset_version, evaluated_at FROM verdicts FINAL
            WHERE message_id IN (SELECT message_id FROM in_window)
        )
        GROUP BY message_id
    ),
    pairs AS (
        SELECT message_id, rule_id, max(p) AS in_prod, max(b) AS in_bt
        FROM (
            SELECT message_id, rule_id, toUInt8(1) AS p, toUInt8(0) AS b FROM verdicts FINAL
            WHERE (tenant = ? OR ? = '') AND message_sent_at >= ? AND message_sent_at < ?
              AND (message_id, ruleset_version) IN (SELECT message_id, ruleset_version FROM latest)
            UNION ALL
            SELECT message_id, rule_id, toUInt8(0) AS p, toUInt8(1) AS b FROM backtest_verdicts FINAL
            WHERE run_id = ? AND (tenant = ? OR ? = '') AND message_sent_at >= ? AND message_sent_at < ?
        )
        GROUP BY message_id, rule_id
    )
SELECT toString(rule_id) AS rule_id,
       toUInt64(sum(in_prod)) AS production,
       toUInt64(sum(in_bt)) AS backtest,
       toUInt64(countIf(in_bt = 1 AND in_prod = 0)) AS new,
       toUInt64(countIf(in_prod = 1 AND in_bt = 0)) AS removed
FROM pairs
GROUP BY rule_id
ORDER BY rule_id`

// BacktestDiff compares backtest run runID with production verdicts of
// messages sent in [from, to) of tenant (empty for every tenant), per rule,
// sorted by rule id. A message is matched on message id and rule id, so a
// rule whose severity or action changed is neither new nor removed.
// Production counts, per message, only the verdicts of the latest ruleset
// version that evaluated it (see the query's comment). Rules with no
// verdict on either side are absent. It returns the query's error wrapped.
func BacktestDiff(ctx context.Context, conn driver.Conn, runID, tenant string, from, to time.Time) ([]RuleDiff, error) {
	from, to = from.UTC(), to.UTC()
	args := []any{
		tenant, tenant, from, to,
		tenant, tenant, from, to,
		runID, tenant, tenant, from, to,
	}
	rows, err := conn.Query(ctx, backtestDiffSQL, args...)
	if err != nil {
		return nil, fmt.Errorf("backtest diff of run %s: %w", runID, err)
	}
	defer rows.Close()
	var out []RuleDiff
	for rows.Next() {
		var d RuleDiff
		if err := rows.Scan(&d.RuleID, &d.Production, &d.Backtest, &d.New, &d.Removed); err != nil {
			return nil, fmt.Errorf("backtest diff of run %s: scan: %w", runID, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("backtest diff of run %s: %w", runID, err)
	}
	return out, nil
}
