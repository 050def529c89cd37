// Package warehouse is Vigil's ClickHouse side: the versioned schema and its
// migrations, the batched idempotent sink that projects the JetStream
// streams (messages, verdicts, evaluations, audit events) into tables, and
// the report queries auditors run. It talks to ClickHouse only through
// clickhouse-go/v2, so the embedded engine (package chlocal, chDB behind
// ClickHouse's HTTP interface) and a production server or cluster share one
// code path.
//
// Data flow: ingest → pii → bus → evaluator → warehouse.
package warehouse
