package warehouse_test

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/go-cmp/cmp"

	"github.com/vigilhq/vigil/warehouse"
	"github.com/vigilhq/vigil/warehouse/warehousetest"
)

// seedGovernance inserts 100 messages of tenant acme (senders u0..u4,
// conversations c0..c9, channels teams/sms, one per hour from base) and a
// verdict for every even message, plus 10 messages of tenant other sent by
// u1.
func seedGovernance(t testing.TB, conn driver.Conn) {
	t.Helper()
	ctx := context.Background()
	stmts := []string{
		`INSERT INTO messages (id, tenant, conversation_id, sender_id, channel, text, sent_at, received_at, subjects, stream_seq)
SELECT concat('m', toString(number)), 'acme', concat('c', toString(number % 10)), concat('u', toString(number % 5)),
       if(number % 2 = 0, 'teams', 'sms'), 'hello', toDateTime64('2020-01-01 00:00:00', 3, 'UTC') + toIntervalHour(number),
       toDateTime64('2020-01-01 00:00:00', 3, 'UTC') + toIntervalHour(number),
       [concat('u', toString(number % 5)), if(number % 7 = 0, 'u9', '')], number + 1
FROM numbers(100)`,
		`INSERT INTO verdicts (id, message_id, tenant, conversation_id, sender_id, rule_id, message_sent_at, evaluated_at, stream_seq)
SELECT concat('v', toString(number)), concat('m', toString(number)), 'acme', concat('c', toString(number % 10)),
       concat('u', toString(number % 5)), 'r1', toDateTime64('2020-01-01 00:00:00', 3, 'UTC') + toIntervalHour(number),
       toDateTime64('2020-01-01 00:00:00', 3, 'UTC') + toIntervalHour(number), number + 1
FROM numbers(100) WHERE number % 2 = 0`,
		`INSERT INTO messages (id, tenant, conversation_id, sender_id, channel, text, sent_at, received_at, subjects, stream_seq)
SELECT concat('o', toString(number)), 'other', 'c0', 'u1', 'teams', 'hi', toDateTime64('2020-01-01 00:00:00', 3, 'UTC'),
       toDateTime64('2020-01-01 00:00:00', 3, 'UTC'), ['u1'], 1000 + number
FROM numbers(10)`,
	}
	for _, s := range stmts {
		if err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("seed: %v", err)
		}
	}
}

var base = time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)

func TestMessageFilters(t *testing.T) {
	db := warehousetest.New(t)
	seedGovernance(t, db.Conn)
	ctx := context.Background()
	holdC3 := warehouse.Hold{Tenant: "acme", CaseID: "K1", Scope: warehouse.HoldScopeConversation, ConversationID: "c3"}
	holdU9 := warehouse.Hold{Tenant: "acme", CaseID: "K2", Scope: warehouse.HoldScopeSubject, Subject: "u9"}
	released := holdC3
	released.ReleasedAt = base
	tests := []struct {
		name   string
		f      warehouse.MessageFilter
		want   warehouse.Removal
		wantOK bool
	}{
		{"sender", warehouse.MessageFilter{Tenant: "acme", Sender: "u1"}, warehouse.Removal{Messages: 20, Verdicts: 10}, true},
		// u9 is only linked (subjects), never a sender: m0, m7, … m98.
		{"linked", warehouse.MessageFilter{Tenant: "acme", Linked: "u9"}, warehouse.Removal{Messages: 15, Verdicts: 8}, true},
		{"ids", warehouse.MessageFilter{Tenant: "acme", IDs: []string{"m1", "m2", "nope"}}, warehouse.Removal{Messages: 2, Verdicts: 1}, true},
		{"empty ids select nothing", warehouse.MessageFilter{Tenant: "acme", IDs: []string{}}, warehouse.Removal{}, true},
		{"channel", warehouse.MessageFilter{Tenant: "acme", Channels: []string{"sms"}}, warehouse.Removal{Messages: 50}, true},
		{"exclude channel", warehouse.MessageFilter{Tenant: "acme", ExcludeChannels: []string{"sms"}}, warehouse.Removal{Messages: 50, Verdicts: 50}, true},
		{"sent before", warehouse.MessageFilter{Tenant: "acme", SentBefore: base.Add(10 * time.Hour)}, warehouse.Removal{Messages: 10, Verdicts: 5}, true},
		{"except holds", warehouse.MessageFilter{Tenant: "acme", SentBefore: base.Add(10 * time.Hour), ExceptHolds: []warehouse.Hold{holdC3, holdU9}},
			// m0..m9 minus m3 (c3) and m0, m7 (u9).
			warehouse.Removal{Messages: 7, Verdicts: 4}, true},
		{"released hold ignored", warehouse.MessageFilter{Tenant: "acme", SentBefore: base.Add(10 * time.Hour), ExceptHolds: []warehouse.Hold{released}},
			warehouse.Removal{Messages: 10, Verdicts: 5}, true},
		{"time range hold", warehouse.MessageFilter{Tenant: "acme", ExceptHolds: []warehouse.Hold{{Tenant: "acme", Scope: warehouse.HoldScopeTimeRange, From: base.Add(10 * time.Hour), To: base.Add(100 * time.Hour)}}},
			warehouse.Removal{Messages: 10, Verdicts: 5}, true},
		{"other tenant", warehouse.MessageFilter{Tenant: "other", Sender: "u1"}, warehouse.Removal{Messages: 10}, true},
		{"no tenant", warehouse.MessageFilter{Sender: "u1"}, warehouse.Removal{}, false},
		{"quotes are data", warehouse.MessageFilter{Tenant: "acme", Sender: `u1' OR 1=1 --`}, warehouse.Removal{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := warehouse.CountMessages(ctx, db.Conn, tc.f)
			if (err == nil) != tc.wantOK {
				t.Fatalf("CountMessages(%+v) error = %v, want ok %v", tc.f, err, tc.wantOK)
			}
			if got != tc.want {
				t.Errorf("CountMessages(%+v) = %+v, want %+v", tc.f, got, tc.want)
			}
		})
	}
}

func TestDeleteMessages(t *testing.T) {
	db := warehousetest.New(t)
	seedGovernance(t, db.Conn)
	ctx := context.Background()
	f := warehouse.MessageFilter{Tenant: "acme", Sender: "u1"}
	seqs, err := warehouse.MessageStreamSeqs(ctx, db.Conn, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(seqs) != 20 || seqs[0] != 2 || seqs[1] != 7 {
		t.Fatalf("MessageStreamSeqs = %v, want 20 sequences starting 2, 7", seqs)
	}
	vseqs, err := warehouse.VerdictStreamSeqs(ctx, db.Conn, f)
	if err != nil {
		t.Fatal(err)
	}
	// Verdicts of u1's messages: m6, m16, … m96 (even and ≡ 1 mod 5).
	if len(vseqs) != 10 || vseqs[0] != 7 || vseqs[1] != 17 {
		t.Fatalf("VerdictStreamSeqs = %v, want 10 sequences starting 7, 17", vseqs)
	}
	got, err := warehouse.DeleteMessages(ctx, db.Conn, f)
	if err != nil {
		t.Fatalf("DeleteMessages: %v", err)
	}
	if want := (warehouse.Removal{Messages: 20, Verdicts: 10}); got != want {
		t.Fatalf("DeleteMessages = %+v, want %+v", got, want)
	}
	if n := db.Count(t, "messages"); n != 90 {
		t.Errorf("messages after delete = %d, want 90 (80 of acme, 10 of other)", n)
	}
	var left uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM messages WHERE sender_id = 'u1' AND tenant = 'acme'").Scan(&left); err != nil || left != 0 {
		t.Errorf("u1 rows left = %d (%v), want 0", left, err)
	}
	if n := db.Count(t, "verdicts"); n != 40 {
		t.Errorf("verdicts after delete = %d, want 40", n)
	}
	// The other tenant's u1 is someone else.
	if n, _ := warehouse.CountMessages(ctx, db.Conn, warehouse.MessageFilter{Tenant: "other", Sender: "u1"}); n.Messages != 10 {
		t.Errorf("other tenant's u1 messages = %d, want 10", n.Messages)
	}
	// Again: nothing left, nothing to do.
	if got, err := warehouse.DeleteMessages(ctx, db.Conn, f); err != nil || got != (warehouse.Removal{}) {
		t.Errorf("second DeleteMessages = %+v, %v; want zero, nil", got, err)
	}
	if _, err := warehouse.DeleteMessages(ctx, db.Conn, warehouse.MessageFilter{Tenant: "acme", Linked: "u9"}); err == nil {
		t.Error("DeleteMessages with a Linked filter succeeded, want an error")
	}
}

func TestFindMessagesLatestVersion(t *testing.T) {
	db := warehousetest.New(t)
	seedGovernance(t, db.Conn)
	ctx := context.Background()
	// A redelivered copy of m1 (same id, later stream sequence) and a
	// second verdict row of v0.
	for _, q := range []string{
		`INSERT INTO messages (id, tenant, conversation_id, sender_id, channel, text, sent_at, received_at, subjects, stream_seq)
VALUES ('m1', 'acme', 'c1', 'u1', 'sms', 'hello', '2020-01-01 01:00:00.000', '2020-01-01 01:00:00.000', ['u1'], 5000)`,
		`INSERT INTO verdicts (id, message_id, tenant, sender_id, rule_id, message_sent_at, evaluated_at, stream_seq)
VALUES ('v0', 'm0', 'acme', 'u0', 'r1', '2020-01-01 00:00:00.000', '2020-01-01 00:00:00.000', 6000)`,
	} {
		if err := db.Conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	got, err := warehouse.FindMessages(ctx, db.Conn, warehouse.MessageFilter{Tenant: "acme", Sender: "u1"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 20 || got[0].ID != "m1" || got[0].StreamSeq != 5000 || !got[0].SentAt.Equal(base.Add(time.Hour)) {
		t.Fatalf("FindMessages = %d refs, first %+v; want 20, m1 once at its latest sequence 5000", len(got), got[0])
	}
	texts, err := warehouse.MessageTexts(ctx, db.Conn, warehouse.MessageFilter{Tenant: "acme", IDs: []string{"m1"}}, 0)
	if err != nil || len(texts) != 1 || texts[0].Text != "hello" {
		t.Fatalf("MessageTexts(m1) = %+v, %v; want one row", texts, err)
	}
	seqs, err := warehouse.MessageStreamSeqs(ctx, db.Conn, warehouse.MessageFilter{Tenant: "acme", IDs: []string{"m1"}})
	if err != nil || len(seqs) != 2 || seqs[0] != 2 || seqs[1] != 5000 {
		t.Fatalf("MessageStreamSeqs(m1) = %v, %v; want both stored copies [2 5000]", seqs, err)
	}
	if n, err := warehouse.SubjectVerdicts(ctx, db.Conn, "acme", "u0"); err != nil || n != 10 {
		t.Fatalf("SubjectVerdicts(u0) = %d, %v; want 10 distinct", n, err)
	}
}

func TestGovernanceRecords(t *testing.T) {
	db := warehousetest.New(t)
	ctx := context.Background()
	h := warehouse.Hold{Tenant: "acme", CaseID: "SEC-1", Scope: warehouse.HoldScopeSubject, Subject: "u1",
		From: base, Reason: "subpoena", CreatedBy: "dpo", CreatedAt: base}
	if err := warehouse.PutHold(ctx, db.Conn, h); err != nil {
		t.Fatal(err)
	}
	holds, err := warehouse.ListHolds(ctx, db.Conn, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]warehouse.Hold{h}, holds); diff != "" {
		t.Fatalf("ListHolds (-want +got):\n%s", diff)
	}
	rel := h
	rel.ReleasedAt, rel.ReleasedBy = base.Add(time.Hour), "dpo2"
	if err := warehouse.PutHold(ctx, db.Conn, rel); err != nil {
		t.Fatal(err)
	}
	holds, err = warehouse.ListHolds(ctx, db.Conn, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(holds) != 1 || holds[0].Active() || holds[0].ReleasedBy != "dpo2" {
		t.Fatalf("after release ListHolds = %+v, want one released hold", holds)
	}

	p := warehouse.PolicyAssignment{Tenant: "acme", Channel: "sms", Class: "sec-17a-4", KeepDays: 2192, UpdatedAt: base}
	if err := warehouse.PutPolicy(ctx, db.Conn, p); err != nil {
		t.Fatal(err)
	}
	p.KeepDays = 2200
	if err := warehouse.PutPolicy(ctx, db.Conn, p); err != nil {
		t.Fatal(err)
	}
	ps, err := warehouse.ListPolicies(ctx, db.Conn, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]warehouse.PolicyAssignment{p}, ps); diff != "" {
		t.Fatalf("ListPolicies (-want +got):\n%s", diff)
	}

	if _, err := warehouse.GetErasure(ctx, db.Conn, "acme", "R1"); !errors.Is(err, warehouse.ErrNoErasure) {
		t.Fatalf("GetErasure of nothing = %v, want ErrNoErasure", err)
	}
	r := warehouse.ErasureRecord{Tenant: "acme", RequestRef: "R1", SubjectHash: "abc", SubjectID: "u1", Outcome: "in_progress",
		Found: map[string]uint64{"messages": 3}, Removed: map[string]uint64{}, RequestedBy: "dpo", At: base, Certificate: "{}"}
	if err := warehouse.PutErasure(ctx, db.Conn, r); err != nil {
		t.Fatal(err)
	}
	r.Outcome, r.DeleteAfter, r.Basis = "restricted", base.AddDate(6, 0, 0), "sec-17a-4"
	if err := warehouse.PutErasure(ctx, db.Conn, r); err != nil {
		t.Fatal(err)
	}
	got, err := warehouse.GetErasure(ctx, db.Conn, "acme", "R1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, got); diff != "" {
		t.Fatalf("GetErasure (-want +got):\n%s", diff)
	}
	list, err := warehouse.ListErasures(ctx, db.Conn, "", "restricted")
	if err != nil || len(list) != 1 {
		t.Fatalf("ListErasures(restricted) = %d records, %v; want 1", len(list), err)
	}
	if list, _ := warehouse.ListErasures(ctx, db.Conn, "acme", "erased"); len(list) != 0 {
		t.Fatalf("ListErasures(erased) = %d records, want 0", len(list))
	}
	if err := warehouse.ClearErasureSubject(ctx, db.Conn, "acme", "R1"); err != nil {
		t.Fatal(err)
	}
	var named uint64
	if err := db.Conn.QueryRow(ctx, "SELECT count() FROM erasures WHERE subject_id != ''").Scan(&named); err != nil || named != 0 {
		t.Fatalf("erasure rows still naming the subject = %d (%v), want 0", named, err)
	}
}

// BenchmarkEraseSubject measures erasing one data subject (its messages and
// verdicts, ALTER TABLE … DELETE with mutations_sync = 2, then verified)
// among N narrow archived messages generated inside ClickHouse.
//
//	go test ./warehouse -run '^$' -bench EraseSubject -benchtime 1x
func BenchmarkEraseSubject(b *testing.B) {
	for _, n := range []int{1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			db := warehousetest.New(b)
			ctx := context.Background()
			for i := range b.N {
				b.StopTimer()
				subject := fmt.Sprintf("s%d", i)
				// 10 000 senders, 40 000 conversations over 4 months; the
				// subject sends ~n/10 000 messages spread over every part.
				if err := db.Conn.Exec(ctx, fmt.Sprintf(`INSERT INTO messages (id, tenant, conversation_id, sender_id, channel, text, sent_at, received_at, subjects, stream_seq)
SELECT concat('m', toString(number)), 'acme', concat('c', toString(number %% 40000)), concat('s', toString(number %% 10000)),
       'teams', 'x', toDateTime64('2026-08-01 00:00:00', 3, 'UTC') + toIntervalSecond(number %% 10000000),
       toDateTime64('2026-08-01 00:00:00', 3, 'UTC'), [concat('s', toString(number %% 10000))], number + 1
FROM numbers(%d)`, n)); err != nil {
					b.Fatal(err)
				}
				if err := db.Conn.Exec(ctx, fmt.Sprintf(`INSERT INTO verdicts (id, message_id, tenant, conversation_id, sender_id, rule_id, message_sent_at, evaluated_at, stream_seq)
SELECT concat('v', toString(number)), concat('m', toString(number)), 'acme', 'c', concat('s', toString(number %% 10000)), 'r1',
       toDateTime64('2026-08-01 00:00:00', 3, 'UTC') + toIntervalSecond(number %% 10000000), toDateTime64('2026-08-01 00:00:00', 3, 'UTC'), number + 1
FROM numbers(%d) WHERE number %% 100 = 0`, n)); err != nil {
					b.Fatal(err)
				}
				// An archive is settled: merges of the fresh insert are done
				// before the erasure, as they would be for old data.
				if err := db.Conn.Exec(ctx, "OPTIMIZE TABLE messages FINAL"); err != nil {
					b.Fatal(err)
				}
				f := warehouse.MessageFilter{Tenant: "acme", Sender: subject}
				b.StartTimer()
				start, cpu := time.Now(), cpuTime()
				seqs, err := warehouse.MessageStreamSeqs(ctx, db.Conn, f)
				if err != nil {
					b.Fatal(err)
				}
				got, err := warehouse.DeleteMessages(ctx, db.Conn, f)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(time.Since(start).Seconds(), "s/erasure")
				b.ReportMetric((cpuTime() - cpu).Seconds(), "cpu-s/erasure")
				if want := uint64(n / 10000); got.Messages != want || uint64(len(seqs)) != want {
					b.Fatalf("erased %d messages (%d seqs), want %d", got.Messages, len(seqs), want)
				}
				b.StopTimer()
				if err := db.Conn.Exec(ctx, "TRUNCATE TABLE messages"); err != nil {
					b.Fatal(err)
				}
				if err := db.Conn.Exec(ctx, "TRUNCATE TABLE verdicts"); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}

// cpuTime is the user+system CPU time of this process, which runs chDB
// in-process: the CPU cost of the erasure, stable under machine load.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
