package bus

import (
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"

	"github.com/vigilhq/vigil"
)

// Subject layout. Every Vigil subject is built here; other packages ask the
// bus for subjects and never format them themselves.
//
//	msg.<tenant>.<conversation>        published by ingest
//	msg.<partition>.<tenant>.<conv>    stored in MESSAGES (stream subject transform)
//	vrd.<tenant>.<conversation>        VERDICTS
//	act.<tenant>.<conversation>        ACTIONS (WebSocket sessions, webhooks)
//	eval.<tenant>.<conversation>       EVALUATIONS
//	audit.<tenant>                     AUDIT
//	dlq.<stream>                       DEADLETTER
//	vigil.ingest.<tenant>              NATS request/reply front door (core NATS)
//
// Tenant and conversation ids are free-form (see [vigil.ValidateID]): they may
// contain '.', '*', '>' or any Unicode, none of which may appear raw inside a
// subject token. Each id is therefore encoded as one token with unpadded
// base64url (RFC 4648 §5, alphabet A–Z a–z 0–9 '-' '_'): deterministic,
// reversible with [DecodeToken], and always a legal, non-wildcard token.
const (
	subjMessagesPrefix    = "msg"
	subjVerdictsPrefix    = "vrd"
	subjActionsPrefix     = "act"
	subjEvaluationsPrefix = "eval"
	subjAuditPrefix       = "audit"
	subjDeadLetterPrefix  = "dlq"
	// SubjectIngestPrefix prefixes the core-NATS request subject of ingest:
	// vigil.ingest.<tenant token>.
	SubjectIngestPrefix = "vigil.ingest"
)

// ErrBadSubject is returned by [ParseMessageSubject] for a subject that is
// not a stored MESSAGES subject.
var ErrBadSubject = errors.New("bus: not a stored message subject")

// EncodeToken encodes an identifier as a single subject token (unpadded
// base64url). The same id always gives the same token.
func EncodeToken(id string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(id))
}

// DecodeToken reverses [EncodeToken].
func DecodeToken(tok string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", fmt.Errorf("decode subject token: %w", err)
	}
	return string(b), nil
}

// MessageSubject is the subject ingest publishes a message of the
// conversation to: msg.<tenant token>.<conversation token>. MESSAGES stores
// it as msg.<partition>.<tenant token>.<conversation token>.
func MessageSubject(tenant, conversation string) string {
	return subjMessagesPrefix + "." + EncodeToken(tenant) + "." + EncodeToken(conversation)
}

// StoredMessageSubject is the subject under which MESSAGES stores a message
// of the conversation when the stream has n partitions.
func StoredMessageSubject(tenant, conversation string, n int) string {
	return subjMessagesPrefix + "." + strconv.Itoa(PartitionOf(tenant, conversation, n)) + "." +
		EncodeToken(tenant) + "." + EncodeToken(conversation)
}

// PartitionFilter is the consumer filter subject of one partition of
// MESSAGES: msg.<partition>.>.
func PartitionFilter(partition int) string {
	return subjMessagesPrefix + "." + strconv.Itoa(partition) + ".>"
}

// ParseMessageSubject splits a stored MESSAGES subject into its partition,
// tenant and conversation. It returns an error wrapping [ErrBadSubject] for
// anything else.
func ParseMessageSubject(subject string) (partition int, tenant, conversation string, err error) {
	toks := strings.Split(subject, ".")
	if len(toks) != 4 || toks[0] != subjMessagesPrefix {
		return 0, "", "", ErrBadSubject
	}
	if partition, err = strconv.Atoi(toks[1]); err != nil || partition < 0 {
		return 0, "", "", fmt.Errorf("%w: partition token", ErrBadSubject)
	}
	if tenant, err = DecodeToken(toks[2]); err != nil {
		return 0, "", "", fmt.Errorf("%w: tenant token: %w", ErrBadSubject, err)
	}
	if conversation, err = DecodeToken(toks[3]); err != nil {
		return 0, "", "", fmt.Errorf("%w: conversation token: %w", ErrBadSubject, err)
	}
	return partition, tenant, conversation, nil
}

// PartitionOf returns the partition (0 ≤ p < n) of a conversation. It is
// the function nats-server applies in the MESSAGES subject transform
// {{partition(n,1,2)}}: FNV-1a (32 bit) over the tenant token followed by the
// conversation token, modulo n. Every message of a conversation therefore
// lands in one partition, so one consumer sees the conversation in order.
// A test pins this function to the server's. n < 1 is treated as 1.
func PartitionOf(tenant, conversation string, n int) int {
	if n < 1 {
		return 0
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(EncodeToken(tenant)))
	_, _ = h.Write([]byte(EncodeToken(conversation)))
	return int(h.Sum32() % uint32(n))
}

// ActionSubject is the subject of the actions (retract, flag, escalate…) for
// a conversation: act.<tenant token>.<conversation token>. WebSocket sessions
// subscribe to it with core NATS; the ACTIONS stream keeps the same messages
// durably for webhooks.
func ActionSubject(tenant, conversation string) string {
	return subjActionsPrefix + "." + EncodeToken(tenant) + "." + EncodeToken(conversation)
}

// ActionTenantWildcard subscribes to the actions of every conversation of
// a tenant: act.<tenant token>.*.
func ActionTenantWildcard(tenant string) string {
	return subjActionsPrefix + "." + EncodeToken(tenant) + ".*"
}

// ActionTenantWildcardOf returns [ActionTenantWildcard] of the tenant of an
// action subject, or "" for anything else.
func ActionTenantWildcardOf(subject string) string {
	toks := strings.Split(subject, ".")
	if len(toks) != 3 || toks[0] != subjActionsPrefix {
		return ""
	}
	return subjActionsPrefix + "." + toks[1] + ".*"
}

// VerdictSubject is the subject of the verdicts of a conversation.
func VerdictSubject(tenant, conversation string) string {
	return subjVerdictsPrefix + "." + EncodeToken(tenant) + "." + EncodeToken(conversation)
}

// EvaluationSubject is the subject of the evaluation records of a conversation.
func EvaluationSubject(tenant, conversation string) string {
	return subjEvaluationsPrefix + "." + EncodeToken(tenant) + "." + EncodeToken(conversation)
}

// AuditSubject is the subject of the audit events of a tenant.
func AuditSubject(tenant string) string {
	return subjAuditPrefix + "." + EncodeToken(tenant)
}

// DeadLetterSubject is the subject of dead letters for messages of stream.
func DeadLetterSubject(stream string) string {
	return subjDeadLetterPrefix + "." + EncodeToken(stream)
}

// IngestSubject is the core-NATS request subject of the ingest front door
// for a tenant: vigil.ingest.<tenant token>.
func IngestSubject(tenant string) string {
	return SubjectIngestPrefix + "." + EncodeToken(tenant)
}

// IngestWildcard subscribes to the ingest requests of every tenant.
const IngestWildcard = SubjectIngestPrefix + ".*"

// TenantFromIngestSubject decodes the tenant of an ingest request subject.
func TenantFromIngestSubject(subject string) (string, error) {
	tok, ok := strings.CutPrefix(subject, SubjectIngestPrefix+".")
	if !ok || tok == "" || strings.Contains(tok, ".") {
		return "", fmt.Errorf("%w: not an ingest subject", ErrBadSubject)
	}
	return DecodeToken(tok)
}

// EvaluationID is the deterministic id (and Nats-Msg-Id) of the evaluation
// of a message under a ruleset version.
func EvaluationID(messageID, rulesetVersion string) string {
	return "e-" + strings.TrimPrefix(vigil.VerdictID(messageID, "\x00evaluation", rulesetVersion), "v-")
}
