// Package evaluator evaluates every message of the MESSAGES stream against
// the compliance rules and publishes what it finds. It sits after bus in the
// flow ingest → pii → bus → evaluator → warehouse.
//
// An [Evaluator] reads messages with durable pull consumers, one per
// partition of the stream (a conversation always maps to one partition).
// Within a partition, messages are spread over lanes by conversation, so the
// messages of a conversation are evaluated in order while other
// conversations run in parallel. For each message it
//
//   - appends the message to the conversation's context window ([Window]),
//     kept in a JetStream KV bucket with compare-and-set updates and a
//     bounded in-memory cache;
//   - runs tier 1, the current rules.Set held by [Rules], which hot-reloads
//     from a directory or the rules KV bucket and keeps the previous set
//     when a new one is rejected;
//   - asks tier 2, a [Classifier] speaking the OpenAI chat-completions
//     protocol (or a plain HTTP classifier), when a tier-1 match asks for it,
//     within a per-tenant budget, a timeout and a circuit breaker;
//   - publishes verdicts with deterministic ids ([vigil.VerdictID]) and the
//     evaluation record, sends actions to the actions stream and to signed
//     tenant [Webhooks], and only then acknowledges the message, so a crash
//     re-evaluates and the ids deduplicate.
//
// A message that keeps failing is dead-lettered with a reason after
// [DefaultMaxAttempts] attempts in place (a single one once it has been
// delivered [DefaultMaxDeliver] times), and each attempt is bounded by a
// deadline, so one poisoned or slow conversation never stalls the others.
// Failures of the bus itself (unavailable, slow, full) are not the
// message's fault: the message is retried in place, keeping its place in
// its conversation. Partition consumers are pinned to one client, so among
// several replicas one evaluates a partition; [Evaluator.Drain] and
// [Evaluator.Close] release the pins for the next owner.
//
// Tier 2 runs on an in-process worker pool: the message stays unacked until
// its tier-2 work is done and is redone after a crash. (A durable TIER2
// work stream in bus would let the message be acked earlier.)
package evaluator
