package retention_test

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/retention"
)

// BenchmarkErase measures one complete erasure request — plan, hold and
// policy checks, MESSAGES secure delete, vault shred, ClickHouse ALTER
// TABLE … DELETE of messages and verdicts (mutations_sync = 2), verification
// and the certificate — of a subject among N archived messages. The
// background rows are generated inside ClickHouse (INSERT … SELECT FROM
// numbers()); the subject has the 3 tokenized messages of the seed story
// (also in the stream and the vault) plus N/10 000 archived ones.
//
//	go test ./retention -run '^$' -bench Erase -benchtime 1x
func BenchmarkErase(b *testing.B) {
	for _, n := range []int{1_000_000, 10_000_000} {
		b.Run(fmt.Sprintf("rows=%d", n), func(b *testing.B) {
			for i := range b.N {
				b.StopTimer()
				e := newEnv(b)
				e.seed(b, age30d)
				ctx := context.Background()
				// Sender 'alice' for every 10 000th row; stream sequences
				// far beyond the stream's, as for messages archived long ago.
				q := fmt.Sprintf(`INSERT INTO messages (id, tenant, conversation_id, sender_id, channel, text, sent_at, received_at, subjects, stream_seq)
SELECT concat('b', toString(number)), 'acme', concat('c', toString(number %% 40000)),
       if(number %% 10000 = 0, 'alice', concat('s', toString(number %% 10000))), 'teams', 'x',
       toDateTime64('2026-08-01 00:00:00', 3, 'UTC') + toIntervalSecond(number %% 10000000),
       toDateTime64('2026-08-01 00:00:00', 3, 'UTC'), [concat('s', toString(number %% 10000))], 1000000000 + number
FROM numbers(%d)`, n)
				if err := e.db.Conn.Exec(ctx, q); err != nil {
					b.Fatal(err)
				}
				// An archive is settled: merges of the fresh insert are done
				// before the erasure, as they would be for old data.
				if err := e.db.Conn.Exec(ctx, "OPTIMIZE TABLE messages FINAL"); err != nil {
					b.Fatal(err)
				}
				start, cpu := time.Now(), cpuTime()
				b.StartTimer()
				cert, err := e.svc.Erase(ctx, retention.EraseRequest{Tenant: tenant, Subject: "alice", Ref: fmt.Sprintf("B-%d", i),
					Actor: "bench", Reason: "benchmark"})
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				if want := uint64(3 + n/10000); cert.Outcome != retention.OutcomeErased || cert.Deleted.Messages != want {
					b.Fatalf("certificate %s deleted %d messages, want erased and %d", cert.Outcome, cert.Deleted.Messages, want)
				}
				b.ReportMetric(time.Since(start).Seconds(), "s/erasure")
				b.ReportMetric((cpuTime() - cpu).Seconds(), "cpu-s/erasure")
			}
		})
	}
}

// cpuTime is the user+system CPU time of this process: the test binary
// runs NATS and ClickHouse (chDB) in-process, so it is the CPU cost of
// the erasure, stable when other processes load the machine.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
