package evaluator

// Log attribute keys. Values are ids, counts and error classes, never
// message text (messages are tokenized, and still stay out of logs).
const (
	logKeyComponent  = "component"
	logKeyErr        = "err"
	logKeyPartition  = "partition"
	logKeyPartitions = "partitions"
	logKeyDurable    = "durable"
	logKeyRuleset    = "ruleset"
	logKeyHard       = "hard"
	logKeySeq        = "seq"
	logKeyReason     = "reason"
	logKeyRule       = "rule"
	logKeyKind       = "kind"
	logKeyMessage    = "message"
	logKeyVersion    = "version"
	logKeyPrevious   = "previous"
	logKeyRules      = "rules"
	logKeyEndpoint   = "endpoint"
	logKeyTenant     = "tenant"
	logKeyVerdict    = "verdict"
	logKeyStatus     = "status"
	logKeyAttempts   = "attempts"
)
