-- Verdicts of `vigil rules backtest` runs, apart from production verdicts:
-- a backtest never writes to verdicts. One run is one run_id; a retried
-- insert of the same run collapses on (run_id, rule_id, id). Runs are
-- scratch data: they expire after 30 days (minimization), so no erasure
-- has to chase them for long.
CREATE TABLE IF NOT EXISTS backtest_verdicts {{onCluster}} (
    run_id           String,
    ruleset_version  LowCardinality(String),
    id               String,
    message_id       String,
    tenant           LowCardinality(String),
    conversation_id  String,
    sender_id        String,
    rule_id          LowCardinality(String),
    severity         LowCardinality(String),
    action           LowCardinality(String),
    tier             UInt8,
    tags             Array(LowCardinality(String)),
    spans            String,
    reason           String,
    message_sent_at  DateTime64(3, 'UTC'),
    evaluated_at     DateTime64(3, 'UTC')
) ENGINE = {{engine "ReplacingMergeTree" "evaluated_at"}}
ORDER BY (run_id, rule_id, id)
TTL toDateTime(evaluated_at) + INTERVAL 30 DAY
SETTINGS non_replicated_deduplication_window = 10000;
