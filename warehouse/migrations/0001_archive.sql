-- The tokenized message archive: one row per message of the MESSAGES stream.
-- Text and names hold PII tokens, never raw values.
CREATE TABLE IF NOT EXISTS messages {{onCluster}} (
    id               String,
    tenant           LowCardinality(String),
    conversation_id  String,
    sender_id        String,
    sender_name      String,
    sender_role      LowCardinality(String),
    participants     Array(String),
    channel          LowCardinality(String),
    text             String,
    sent_at          DateTime64(3, 'UTC'),
    received_at      DateTime64(3, 'UTC'),
    pii              Map(LowCardinality(String), UInt32),
    subjects         Array(String),
    metadata         Map(String, String),
    stream_seq       UInt64,
    retention_class  LowCardinality(String) DEFAULT '',
    INDEX idx_subjects subjects TYPE bloom_filter GRANULARITY 4,
    INDEX idx_id id TYPE bloom_filter GRANULARITY 4
) ENGINE = {{engine "ReplacingMergeTree" "stream_seq"}}
PARTITION BY toYYYYMM(sent_at)
ORDER BY (tenant, conversation_id, sent_at, id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Verdicts: one row per rule firing on a message (id = message+rule+ruleset).
CREATE TABLE IF NOT EXISTS verdicts {{onCluster}} (
    id               String,
    message_id       String,
    tenant           LowCardinality(String),
    conversation_id  String,
    sender_id        String,
    rule_id          LowCardinality(String),
    ruleset_version  LowCardinality(String),
    severity         LowCardinality(String),
    action           LowCardinality(String),
    tier             UInt8,
    tags             Array(LowCardinality(String)),
    spans            String,
    reason           String,
    message_sent_at  DateTime64(3, 'UTC'),
    evaluated_at     DateTime64(3, 'UTC'),
    latency_seconds  Float64,
    stream_seq       UInt64,
    INDEX idx_message message_id TYPE bloom_filter GRANULARITY 4
) ENGINE = {{engine "ReplacingMergeTree" "stream_seq"}}
PARTITION BY toYYYYMM(message_sent_at)
ORDER BY (tenant, rule_id, message_sent_at, id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Evaluations prove coverage: every message evaluated by which ruleset.
CREATE TABLE IF NOT EXISTS evaluations {{onCluster}} (
    message_id        String,
    tenant            LowCardinality(String),
    conversation_id   String,
    ruleset_version   LowCardinality(String),
    tiers             Array(UInt8),
    rules_evaluated   UInt32,
    verdicts          UInt32,
    duration_seconds  Float64,
    evaluated_at      DateTime64(3, 'UTC'),
    message_seq       UInt64,
    stream_seq        UInt64
) ENGINE = {{engine "ReplacingMergeTree" "stream_seq"}}
PARTITION BY toYYYYMM(evaluated_at)
ORDER BY (tenant, ruleset_version, message_id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Append-only audit log of every admin action.
CREATE TABLE IF NOT EXISTS audit_log {{onCluster}} (
    id       String,
    tenant   LowCardinality(String),
    actor    String,
    action   LowCardinality(String),
    target   String,
    reason   String,
    at       DateTime64(3, 'UTC'),
    details  Map(String, String),
    stream_seq UInt64
) ENGINE = {{engine "ReplacingMergeTree" "stream_seq"}}
ORDER BY (tenant, at, id)
SETTINGS non_replicated_deduplication_window = 10000;
