-- Reviewer dispositions and review transitions.
CREATE TABLE IF NOT EXISTS review_events {{onCluster}} (
    id           String,
    alert_id     String,
    tenant       LowCardinality(String),
    reviewer     String,
    at           DateTime64(3, 'UTC'),
    from_state   LowCardinality(String),
    to_state     LowCardinality(String),
    disposition  LowCardinality(String),
    reason       String,
    stream_seq   UInt64
) ENGINE = {{engine "ReplacingMergeTree" "stream_seq"}}
ORDER BY (tenant, alert_id, at, id)
SETTINGS non_replicated_deduplication_window = 10000;

-- Legal holds; the latest version of a case wins.
CREATE TABLE IF NOT EXISTS legal_holds {{onCluster}} (
    tenant           LowCardinality(String),
    case_id          String,
    scope            LowCardinality(String),
    conversation_id  String,
    subject          String,
    from_time        Nullable(DateTime64(3, 'UTC')),
    to_time          Nullable(DateTime64(3, 'UTC')),
    reason           String,
    created_by       String,
    created_at       DateTime64(3, 'UTC'),
    released_at      Nullable(DateTime64(3, 'UTC')),
    released_by      String,
    version          UInt64
) ENGINE = {{engine "ReplacingMergeTree" "version"}}
ORDER BY (tenant, case_id);

-- Erasure and restriction requests and their outcome.
CREATE TABLE IF NOT EXISTS erasures {{onCluster}} (
    tenant        LowCardinality(String),
    request_ref   String,
    subject_hash  String,
    outcome       LowCardinality(String),
    basis         String,
    delete_after  Nullable(DateTime64(3, 'UTC')),
    found         Map(String, UInt64),
    removed       Map(String, UInt64),
    requested_by  String,
    at            DateTime64(3, 'UTC'),
    certificate   String,
    version       UInt64
) ENGINE = {{engine "ReplacingMergeTree" "version"}}
ORDER BY (tenant, request_ref);

-- Retention policy classes and their assignment per tenant/channel.
CREATE TABLE IF NOT EXISTS retention_policies {{onCluster}} (
    tenant        LowCardinality(String),
    channel       LowCardinality(String),
    policy_class  LowCardinality(String),
    keep_days     UInt32,
    rewritable    UInt8,
    updated_at    DateTime64(3, 'UTC'),
    version       UInt64
) ENGINE = {{engine "ReplacingMergeTree" "version"}}
ORDER BY (tenant, channel);
