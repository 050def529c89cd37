package warehouse

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Governance: the ClickHouse side of legal holds, retention policy
// assignments, erasure records and the physical deletion of archived rows.
// Package retention decides what to hold, keep, restrict or delete; this
// file only reads and writes the tables (legal_holds, retention_policies,
// erasures, messages, verdicts) and never decides.

// Hold scopes ([Hold.Scope]).
const (
	// HoldScopeTenant holds every message of the tenant.
	HoldScopeTenant = "tenant"
	// HoldScopeConversation holds one conversation ([Hold.ConversationID]).
	HoldScopeConversation = "conversation"
	// HoldScopeSubject holds every message sent by or linked to one data
	// subject ([Hold.Subject]).
	HoldScopeSubject = "subject"
	// HoldScopeTimeRange holds every message of the tenant sent in
	// [Hold.From, Hold.To).
	HoldScopeTimeRange = "time_range"
)

// ErrRowsRemain is returned by [DeleteMessages] when rows matching the
// filter are still readable after the mutation finished: the erasure is
// not complete and must be retried.
var ErrRowsRemain = errors.New("rows remain after delete")

// ErrNoErasure is returned by [GetErasure] when no erasure record exists
// for the request.
var ErrNoErasure = errors.New("no erasure record")

// Hold is one legal hold as stored in legal_holds; the latest version of
// (Tenant, CaseID) wins. From and To narrow any scope to a time range of
// sent_at; a zero time is open.
type Hold struct {
	Tenant         string
	CaseID         string
	Scope          string
	ConversationID string
	Subject        string
	From, To       time.Time
	Reason         string
	CreatedBy      string
	CreatedAt      time.Time
	// ReleasedAt is zero while the hold is active.
	ReleasedAt time.Time
	ReleasedBy string
}

// Active reports whether the hold has not been released.
func (h Hold) Active() bool { return h.ReleasedAt.IsZero() }

// predicate renders the hold as a SQL condition over the messages table
// that is true for every row the hold covers.
func (h Hold) predicate() string {
	conds := []string{"tenant = " + quoteString(h.Tenant)}
	switch h.Scope {
	case HoldScopeConversation:
		conds = append(conds, "conversation_id = "+quoteString(h.ConversationID))
	case HoldScopeSubject:
		s := quoteString(h.Subject)
		conds = append(conds, "(sender_id = "+s+" OR has(subjects, "+s+"))")
	}
	if !h.From.IsZero() {
		conds = append(conds, "sent_at >= "+timeLiteral(h.From))
	}
	if !h.To.IsZero() {
		conds = append(conds, "sent_at < "+timeLiteral(h.To))
	}
	return "(" + strings.Join(conds, " AND ") + ")"
}

// PutHold writes a new version of a hold (creation or release). The row
// with the highest version wins, so writing a released copy releases it.
func PutHold(ctx context.Context, conn driver.Conn, h Hold) error {
	err := conn.Exec(ctx, `INSERT INTO legal_holds (tenant, case_id, scope, conversation_id, subject,
    from_time, to_time, reason, created_by, created_at, released_at, released_by, version)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		h.Tenant, h.CaseID, h.Scope, h.ConversationID, h.Subject, nullTime(h.From), nullTime(h.To),
		h.Reason, h.CreatedBy, h.CreatedAt.UTC(), nullTime(h.ReleasedAt), h.ReleasedBy, newVersion())
	if err != nil {
		return fmt.Errorf("write legal hold %s: %w", h.CaseID, err)
	}
	return nil
}

// ListHolds returns the current version of every hold of tenant (all
// tenants when tenant is empty), released ones included, ordered by tenant
// and case id.
func ListHolds(ctx context.Context, conn driver.Conn, tenant string) ([]Hold, error) {
	q := `SELECT tenant, case_id, scope, conversation_id, subject, from_time, to_time, reason,
    created_by, created_at, released_at, released_by
FROM legal_holds FINAL`
	var args []any
	if tenant != "" {
		q += " WHERE tenant = ?"
		args = append(args, tenant)
	}
	q += " ORDER BY tenant, case_id"
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list legal holds: %w", err)
	}
	defer rows.Close()
	var out []Hold
	for rows.Next() {
		var h Hold
		var from, to, rel *time.Time
		if err := rows.Scan(&h.Tenant, &h.CaseID, &h.Scope, &h.ConversationID, &h.Subject, &from, &to,
			&h.Reason, &h.CreatedBy, &h.CreatedAt, &rel, &h.ReleasedBy); err != nil {
			return nil, fmt.Errorf("list legal holds: %w", err)
		}
		h.From, h.To, h.ReleasedAt = derefTime(from), derefTime(to), derefTime(rel)
		h.CreatedAt = h.CreatedAt.UTC()
		out = append(out, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list legal holds: %w", err)
	}
	return out, nil
}

// PolicyAssignment assigns a retention policy class to a tenant's channel
// (Channel empty: the tenant's default), as stored in retention_policies.
type PolicyAssignment struct {
	Tenant     string
	Channel    string
	Class      string
	KeepDays   uint32
	Rewritable bool
	UpdatedAt  time.Time
}

// PutPolicy writes a new version of a policy assignment.
func PutPolicy(ctx context.Context, conn driver.Conn, p PolicyAssignment) error {
	var rw uint8
	if p.Rewritable {
		rw = 1
	}
	err := conn.Exec(ctx, `INSERT INTO retention_policies (tenant, channel, policy_class, keep_days, rewritable, updated_at, version)
VALUES (?, ?, ?, ?, ?, ?, ?)`, p.Tenant, p.Channel, p.Class, p.KeepDays, rw, p.UpdatedAt.UTC(), newVersion())
	if err != nil {
		return fmt.Errorf("write retention policy for %s: %w", p.Tenant, err)
	}
	return nil
}

// ListPolicies returns the current policy assignments of tenant (all
// tenants when empty), ordered by tenant and channel.
func ListPolicies(ctx context.Context, conn driver.Conn, tenant string) ([]PolicyAssignment, error) {
	q := "SELECT tenant, channel, policy_class, keep_days, rewritable, updated_at FROM retention_policies FINAL"
	var args []any
	if tenant != "" {
		q += " WHERE tenant = ?"
		args = append(args, tenant)
	}
	q += " ORDER BY tenant, channel"
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list retention policies: %w", err)
	}
	defer rows.Close()
	var out []PolicyAssignment
	for rows.Next() {
		var p PolicyAssignment
		var rw uint8
		if err := rows.Scan(&p.Tenant, &p.Channel, &p.Class, &p.KeepDays, &rw, &p.UpdatedAt); err != nil {
			return nil, fmt.Errorf("list retention policies: %w", err)
		}
		p.Rewritable = rw != 0
		p.UpdatedAt = p.UpdatedAt.UTC()
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list retention policies: %w", err)
	}
	return out, nil
}

// ErasureRecord is one erasure or restriction request and its outcome, as
// stored in erasures; the latest version of (Tenant, RequestRef) wins, so
// progress is recorded by writing the record again.
type ErasureRecord struct {
	Tenant      string
	RequestRef  string
	SubjectHash string
	// SubjectID is kept only while deletion is pending (restricted or in
	// progress); [ClearErasureSubject] removes it once the subject is gone.
	SubjectID string
	// Outcome is set by package retention (in_progress, erased,
	// restricted…).
	Outcome     string
	Basis       string
	DeleteAfter time.Time
	Found       map[string]uint64
	Removed     map[string]uint64
	RequestedBy string
	At          time.Time
	// Certificate is the JSON erasure certificate (or the plan while in
	// progress).
	Certificate string
}

// PutErasure writes a new version of an erasure record.
func PutErasure(ctx context.Context, conn driver.Conn, r ErasureRecord) error {
	err := conn.Exec(ctx, `INSERT INTO erasures (tenant, request_ref, subject_hash, subject_id, outcome, basis, delete_after,
    found, removed, requested_by, at, certificate, version)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Tenant, r.RequestRef, r.SubjectHash, r.SubjectID, r.Outcome, r.Basis, nullTime(r.DeleteAfter),
		nonNilCounts(r.Found), nonNilCounts(r.Removed), r.RequestedBy, r.At.UTC(), r.Certificate, newVersion())
	if err != nil {
		return fmt.Errorf("write erasure record %s: %w", r.RequestRef, err)
	}
	return nil
}

const erasureColumns = `tenant, request_ref, subject_hash, subject_id, outcome, basis, delete_after, found, removed,
    requested_by, at, certificate`

func scanErasure(rows driver.Rows) (ErasureRecord, error) {
	var r ErasureRecord
	var after *time.Time
	err := rows.Scan(&r.Tenant, &r.RequestRef, &r.SubjectHash, &r.SubjectID, &r.Outcome, &r.Basis, &after, &r.Found, &r.Removed,
		&r.RequestedBy, &r.At, &r.Certificate)
	r.DeleteAfter = derefTime(after)
	r.At = r.At.UTC()
	return r, err
}

// GetErasure returns the current record of a request, or [ErrNoErasure].
func GetErasure(ctx context.Context, conn driver.Conn, tenant, requestRef string) (ErasureRecord, error) {
	rows, err := conn.Query(ctx, "SELECT "+erasureColumns+" FROM erasures FINAL WHERE tenant = ? AND request_ref = ?", tenant, requestRef)
	if err != nil {
		return ErasureRecord{}, fmt.Errorf("read erasure record %s: %w", requestRef, err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return ErasureRecord{}, fmt.Errorf("read erasure record %s: %w", requestRef, err)
		}
		return ErasureRecord{}, fmt.Errorf("%w: %s", ErrNoErasure, requestRef)
	}
	r, err := scanErasure(rows)
	if err != nil {
		return ErasureRecord{}, fmt.Errorf("read erasure record %s: %w", requestRef, err)
	}
	return r, nil
}

// ClearErasureSubject blanks the subject id in every stored version of the
// request's record (a mutation, waited for), so no row of the erasures
// table names an erased subject.
func ClearErasureSubject(ctx context.Context, conn driver.Conn, tenant, requestRef string) error {
	sctx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"mutations_sync": 2}))
	err := conn.Exec(sctx, "ALTER TABLE erasures UPDATE subject_id = '' WHERE tenant = "+quoteString(tenant)+
		" AND request_ref = "+quoteString(requestRef)+" AND subject_id != ''")
	if err != nil {
		return fmt.Errorf("clear erasure subject %s: %w", requestRef, err)
	}
	return nil
}

// ListErasures returns the current records of tenant (all tenants when
// empty) whose outcome is one of outcomes (all when none), oldest first.
func ListErasures(ctx context.Context, conn driver.Conn, tenant string, outcomes ...string) ([]ErasureRecord, error) {
	q := "SELECT " + erasureColumns + " FROM erasures FINAL WHERE 1"
	var args []any
	if tenant != "" {
		q += " AND tenant = ?"
		args = append(args, tenant)
	}
	if len(outcomes) > 0 {
		q += " AND outcome IN (?)"
		args = append(args, outcomes)
	}
	q += " ORDER BY at, tenant, request_ref"
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list erasure records: %w", err)
	}
	defer rows.Close()
	var out []ErasureRecord
	for rows.Next() {
		r, err := scanErasure(rows)
		if err != nil {
			return nil, fmt.Errorf("list erasure records: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list erasure records: %w", err)
	}
	return out, nil
}

// MessageFilter selects archived messages of one tenant. Every set field
// narrows the selection; the zero value of a field does not filter.
type MessageFilter struct {
	// Tenant is required.
	Tenant string
	// Sender selects messages sent by this data subject; their verdicts
	// are selected by sender too.
	Sender string
	// Linked selects messages sent by or linked to this data subject
	// (sender_id or subjects). Only for reads: [DeleteMessages] refuses it,
	// as it would delete other people's messages.
	Linked string
	// IDs selects these message ids.
	IDs []string
	// Channels selects these channels; ExcludeChannels leaves them out.
	Channels, ExcludeChannels []string
	// SentBefore selects messages sent before this instant.
	SentBefore time.Time
	// ExceptHolds leaves out every message an active hold of the list
	// covers.
	ExceptHolds []Hold
}

func (f MessageFilter) where() (string, error) {
	if f.Tenant == "" {
		return "", errors.New("message filter: tenant required")
	}
	conds := []string{"tenant = " + quoteString(f.Tenant)}
	if f.Sender != "" {
		conds = append(conds, "sender_id = "+quoteString(f.Sender))
	}
	if f.Linked != "" {
		s := quoteString(f.Linked)
		conds = append(conds, "(sender_id = "+s+" OR has(subjects, "+s+"))")
	}
	if f.IDs != nil {
		conds = append(conds, "id IN ("+quoteList(f.IDs)+")")
	}
	if f.Channels != nil {
		conds = append(conds, "channel IN ("+quoteList(f.Channels)+")")
	}
	if len(f.ExcludeChannels) > 0 {
		conds = append(conds, "channel NOT IN ("+quoteList(f.ExcludeChannels)+")")
	}
	if !f.SentBefore.IsZero() {
		conds = append(conds, "sent_at < "+timeLiteral(f.SentBefore))
	}
	for _, h := range f.ExceptHolds {
		if h.Active() {
			conds = append(conds, "NOT "+h.predicate())
		}
	}
	return strings.Join(conds, " AND "), nil
}

// MessageRef locates one archived message: enough to decide its retention
// and erase it from the stream, no text.
type MessageRef struct {
	ID             string
	ConversationID string
	Channel        string
	SenderID       string
	SentAt         time.Time
	// StreamSeq is the message's sequence in the MESSAGES stream.
	StreamSeq uint64
}

// FindMessages returns the messages matching f (each id once), ordered by
// sent_at, at most limit (0: no limit).
func FindMessages(ctx context.Context, conn driver.Conn, f MessageFilter, limit int) ([]MessageRef, error) {
	where, err := f.where()
	if err != nil {
		return nil, err
	}
	// Filter first, then keep the latest version of each id: FINAL would
	// merge every part of the table before the filter.
	q := "SELECT id, conversation_id, channel, sender_id, sent_at, stream_seq FROM (SELECT * FROM messages WHERE " + where +
		" ORDER BY stream_seq DESC LIMIT 1 BY id) ORDER BY sent_at, id"
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("find messages: %w", err)
	}
	defer rows.Close()
	var out []MessageRef
	for rows.Next() {
		var m MessageRef
		if err := rows.Scan(&m.ID, &m.ConversationID, &m.Channel, &m.SenderID, &m.SentAt, &m.StreamSeq); err != nil {
			return nil, fmt.Errorf("find messages: %w", err)
		}
		m.SentAt = m.SentAt.UTC()
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find messages: %w", err)
	}
	return out, nil
}

// MessageStreamSeqs returns the MESSAGES stream sequences of every row
// (every version) matching f, ascending and distinct.
func MessageStreamSeqs(ctx context.Context, conn driver.Conn, f MessageFilter) ([]uint64, error) {
	where, err := f.where()
	if err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, "SELECT DISTINCT stream_seq FROM messages WHERE "+where+" ORDER BY stream_seq")
	if err != nil {
		return nil, fmt.Errorf("find message sequences: %w", err)
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var s uint64
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("find message sequences: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find message sequences: %w", err)
	}
	return out, nil
}

// VerdictStreamSeqs returns the VERDICTS stream sequences of the verdict
// rows about the messages matching f (see [DeleteMessages]), ascending and
// distinct.
func VerdictStreamSeqs(ctx context.Context, conn driver.Conn, f MessageFilter) ([]uint64, error) {
	where, err := f.where()
	if err != nil {
		return nil, err
	}
	rows, err := conn.Query(ctx, "SELECT DISTINCT stream_seq FROM verdicts WHERE "+verdictWhere(f, where)+" ORDER BY stream_seq")
	if err != nil {
		return nil, fmt.Errorf("find verdict sequences: %w", err)
	}
	defer rows.Close()
	var out []uint64
	for rows.Next() {
		var s uint64
		if err := rows.Scan(&s); err != nil {
			return nil, fmt.Errorf("find verdict sequences: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("find verdict sequences: %w", err)
	}
	return out, nil
}

// Removal counts the rows of each table a filter selects (before a delete)
// or that remain (after one). Counts include every stored version.
type Removal struct {
	Messages uint64 `json:"messages"`
	Verdicts uint64 `json:"verdicts"`
}

// verdictWhere selects the verdicts of the messages matching where, and
// with a Sender filter also every verdict about that sender.
func verdictWhere(f MessageFilter, where string) string {
	w := "tenant = " + quoteString(f.Tenant) + " AND (message_id IN (SELECT id FROM messages WHERE " + where + ")"
	if f.Sender != "" {
		w += " OR sender_id = " + quoteString(f.Sender)
	}
	return w + ")"
}

// CountMessages counts the message rows matching f and the verdict rows
// about them (see [DeleteMessages]), every version included.
func CountMessages(ctx context.Context, conn driver.Conn, f MessageFilter) (Removal, error) {
	where, err := f.where()
	if err != nil {
		return Removal{}, err
	}
	var r Removal
	if err := conn.QueryRow(ctx, "SELECT count() FROM verdicts WHERE "+verdictWhere(f, where)).Scan(&r.Verdicts); err != nil {
		return Removal{}, fmt.Errorf("count verdicts: %w", err)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM messages WHERE "+where).Scan(&r.Messages); err != nil {
		return Removal{}, fmt.Errorf("count messages: %w", err)
	}
	return r, nil
}

// DeleteMessages physically deletes the message rows matching f and the
// verdicts about them (verdicts of those messages, and with f.Sender every
// verdict whose sender is that subject). It uses ALTER TABLE … DELETE
// mutations and waits for them (mutations_sync = 2), because a lightweight
// DELETE only masks rows and leaves their bytes in the parts until a merge.
// Verdicts go first, while the messages that select them still exist.
// Afterwards it counts again: rows still readable return [ErrRowsRemain]
// with the counts. Running it again is harmless.
//
// It returns the counts found before deleting.
func DeleteMessages(ctx context.Context, conn driver.Conn, f MessageFilter) (Removal, error) {
	if f.Linked != "" {
		return Removal{}, errors.New("delete messages: a Linked filter would delete other senders' messages")
	}
	where, err := f.where()
	if err != nil {
		return Removal{}, err
	}
	before, err := CountMessages(ctx, conn, f)
	if err != nil {
		return Removal{}, fmt.Errorf("delete messages: %w", err)
	}
	if before == (Removal{}) {
		return before, nil
	}
	sctx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"mutations_sync": 2}))
	if before.Verdicts > 0 {
		if err := conn.Exec(sctx, "ALTER TABLE verdicts DELETE WHERE "+verdictWhere(f, where)); err != nil {
			return before, fmt.Errorf("delete verdicts: %w", err)
		}
	}
	if before.Messages > 0 {
		if err := conn.Exec(sctx, "ALTER TABLE messages DELETE WHERE "+where); err != nil {
			return before, fmt.Errorf("delete messages: %w", err)
		}
	}
	after, err := CountMessages(ctx, conn, f)
	if err != nil {
		return before, fmt.Errorf("verify delete: %w", err)
	}
	if after != (Removal{}) {
		return before, fmt.Errorf("%w: %d messages, %d verdicts", ErrRowsRemain, after.Messages, after.Verdicts)
	}
	return before, nil
}

// SubjectVerdicts counts the verdicts whose sender is subject.
func SubjectVerdicts(ctx context.Context, conn driver.Conn, tenant, subject string) (uint64, error) {
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT uniqExact(id) FROM verdicts WHERE tenant = ? AND sender_id = ?", tenant, subject).Scan(&n); err != nil {
		return 0, fmt.Errorf("count subject verdicts: %w", err)
	}
	return n, nil
}

// ArchivedMessage is a message row for a data-subject access export: its
// text still holds tokens.
type ArchivedMessage struct {
	MessageRef
	Text string
}

// MessageTexts returns the rows (with text) of the messages matching f,
// ordered by sent_at, at most limit (0: no limit).
func MessageTexts(ctx context.Context, conn driver.Conn, f MessageFilter, limit int) ([]ArchivedMessage, error) {
	where, err := f.where()
	if err != nil {
		return nil, err
	}
	q := "SELECT id, conversation_id, channel, sender_id, sent_at, stream_seq, text FROM (SELECT * FROM messages WHERE " + where +
		" ORDER BY stream_seq DESC LIMIT 1 BY id) ORDER BY sent_at, id"
	if limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", limit)
	}
	rows, err := conn.Query(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	defer rows.Close()
	var out []ArchivedMessage
	for rows.Next() {
		var m ArchivedMessage
		if err := rows.Scan(&m.ID, &m.ConversationID, &m.Channel, &m.SenderID, &m.SentAt, &m.StreamSeq, &m.Text); err != nil {
			return nil, fmt.Errorf("read messages: %w", err)
		}
		m.SentAt = m.SentAt.UTC()
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	return out, nil
}

func quoteList(ss []string) string {
	if len(ss) == 0 {
		// IN () is a syntax error; an impossible value selects nothing.
		return "NULL"
	}
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = quoteString(s)
	}
	return strings.Join(q, ", ")
}

func timeLiteral(t time.Time) string {
	return fmt.Sprintf("toDateTime64(%s, 3, 'UTC')", quoteString(t.UTC().Format("2006-01-02 15:04:05.000")))
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func derefTime(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func nonNilCounts(m map[string]uint64) map[string]uint64 {
	if m == nil {
		return map[string]uint64{}
	}
	return m
}

// newVersion orders versions of ReplacingMergeTree rows written by this
// process and others: wall-clock nanoseconds.
func newVersion() uint64 { return uint64(time.Now().UnixNano()) }
