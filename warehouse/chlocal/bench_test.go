package chlocal_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"syscall"
	"testing"
	"time"

	chproto "github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/ClickHouse/clickhouse-go/v2/lib/proto"
)

// benchBatch is the batch size of the insert benchmarks.
const benchBatch = 100_000

// narrow is the benchmark table: five columns, as the verdict sink writes.
const narrowColumns = "id UInt64, ts DateTime64(3, 'UTC'), tenant LowCardinality(String), score Float64, rule String"

type narrowRow struct {
	id     uint64
	ts     time.Time
	tenant string
	score  float64
	rule   string
}

func narrowRowAt(i int) narrowRow {
	return narrowRow{
		id:     uint64(i),
		ts:     eventBase.Add(time.Duration(i) * time.Millisecond),
		tenant: fmt.Sprintf("tenant-%d", i%16),
		score:  float64(i%1000) / 1000,
		rule:   fmt.Sprintf("finance.guarantee.%d", i%50),
	}
}

// encodeNarrow encodes rows as clickhouse-go does for an HTTP batch: Native
// at revision 0.
func encodeNarrow(tb testing.TB, n int) []byte {
	tb.Helper()
	block := proto.NewBlock()
	for _, c := range []struct{ name, typ string }{
		{"id", "UInt64"}, {"ts", "DateTime64(3, 'UTC')"}, {"tenant", "LowCardinality(String)"},
		{"score", "Float64"}, {"rule", "String"},
	} {
		if err := block.AddColumn(c.name, column.Type(c.typ)); err != nil {
			tb.Fatal(err)
		}
	}
	for i := range n {
		r := narrowRowAt(i)
		if err := block.Append(r.id, r.ts, r.tenant, r.score, r.rule); err != nil {
			tb.Fatal(err)
		}
	}
	var buf chproto.Buffer
	if err := block.Encode(&buf, 0); err != nil {
		tb.Fatal(err)
	}
	return buf.Buf
}

func newNarrowTable(b *testing.B) (db string) {
	b.Helper()
	db = newDatabase(b)
	if err := testEngine.Exec(context.Background(), "CREATE TABLE "+db+".narrow ("+narrowColumns+") ENGINE = MergeTree ORDER BY (tenant, id)"); err != nil {
		b.Fatal(err)
	}
	return db
}

// truncate empties the table outside the timer and checks the row count of
// the batch just inserted (the blank-line pitfall loses rows silently).
func truncateChecked(b *testing.B, db string, want uint64) {
	b.Helper()
	b.StopTimer()
	defer b.StartTimer()
	out, err := testEngine.Query(context.Background(), "SELECT count() FROM "+db+".narrow", "TSV")
	if err != nil {
		b.Fatal(err)
	}
	if got := string(out); got != fmt.Sprintf("%d\n", want) {
		b.Fatalf("count() = %q, want %d", got, want)
	}
	if err := testEngine.Exec(context.Background(), "TRUNCATE TABLE "+db+".narrow"); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkInsert compares batch inserts of benchBatch narrow rows:
//
//   - clickhouse-go: PrepareBatch + Append + Send over the HTTP interface
//     (client-side encoding included);
//   - http-native: the same Native body POSTed by net/http, the HTTP layer
//     alone;
//   - direct: chDB's streaming insert of the same body, no HTTP.
func BenchmarkInsert(b *testing.B) {
	body := encodeNarrow(b, benchBatch)

	b.Run("clickhouse-go", func(b *testing.B) {
		db := newNarrowTable(b)
		conn := connect(b, testServer.Addr(), db)
		ctx := context.Background()
		rows := make([]narrowRow, benchBatch)
		for i := range rows {
			rows[i] = narrowRowAt(i)
		}
		b.SetBytes(int64(len(body)))
		b.ResetTimer()
		for b.Loop() {
			batch, err := conn.PrepareBatch(ctx, "INSERT INTO narrow")
			if err != nil {
				b.Fatal(err)
			}
			for _, r := range rows {
				if err := batch.Append(r.id, r.ts, r.tenant, r.score, r.rule); err != nil {
					b.Fatal(err)
				}
			}
			if err := batch.Send(); err != nil {
				b.Fatal(err)
			}
			truncateChecked(b, db, benchBatch)
		}
		reportRows(b)
	})

	b.Run("http-native", func(b *testing.B) {
		db := newNarrowTable(b)
		u := "http://" + testServer.Addr() + "/?" + url.Values{
			"query": {"INSERT INTO " + db + ".narrow FORMAT Native"},
		}.Encode()
		client := &http.Client{}
		b.SetBytes(int64(len(body)))
		b.ResetTimer()
		for b.Loop() {
			resp, err := client.Post(u, "application/octet-stream", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("status %d", resp.StatusCode)
			}
			truncateChecked(b, db, benchBatch)
		}
		reportRows(b)
	})

	b.Run("direct", func(b *testing.B) {
		db := newNarrowTable(b)
		ctx := context.Background()
		b.SetBytes(int64(len(body)))
		b.ResetTimer()
		for b.Loop() {
			n, err := testEngine.InsertNative(ctx, "INSERT INTO "+db+".narrow", body)
			if err != nil {
				b.Fatal(err)
			}
			if n != benchBatch {
				b.Fatalf("InsertNative wrote %d rows, want %d", n, benchBatch)
			}
			truncateChecked(b, db, benchBatch)
		}
		reportRows(b)
	})
}

func reportRows(b *testing.B) {
	b.ReportMetric(float64(b.N)*benchBatch/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkSelect reads benchBatch narrow rows back through clickhouse-go
// (Native re-framed to the client's protocol revision) and directly.
func BenchmarkSelect(b *testing.B) {
	db := newNarrowTable(b)
	ctx := context.Background()
	if _, err := testEngine.InsertNative(ctx, "INSERT INTO "+db+".narrow", encodeNarrow(b, benchBatch)); err != nil {
		b.Fatal(err)
	}
	const q = "SELECT id, ts, tenant, score, rule FROM narrow"

	b.Run("clickhouse-go", func(b *testing.B) {
		conn := connect(b, testServer.Addr(), db)
		for b.Loop() {
			rows, err := conn.Query(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			var r narrowRow
			for rows.Next() {
				if err := rows.Scan(&r.id, &r.ts, &r.tenant, &r.score, &r.rule); err != nil {
					b.Fatal(err)
				}
				n++
			}
			_ = rows.Close()
			if n != benchBatch {
				b.Fatalf("read %d rows", n)
			}
		}
		reportRows(b)
	})
	b.Run("direct-native", func(b *testing.B) {
		for b.Loop() {
			if _, err := testEngine.Query(ctx, "SELECT id, ts, tenant, score, rule FROM "+db+".narrow", "Native"); err != nil {
				b.Fatal(err)
			}
		}
		reportRows(b)
	})
}

// BenchmarkInsertInterleaved runs the three insert paths one after another
// in every iteration and reports the median throughput of each, so that load
// from other processes on the machine hits all three alike:
//
//   - direct-rows/s: chDB streaming insert, no HTTP;
//   - http-rows/s: Native body POSTed to the HTTP interface;
//   - send-rows/s: clickhouse-go batch.Send (client-side block encoding and
//     HTTP), the Append loop before it excluded;
//   - http/direct and send/direct: throughput ratios (1 = no overhead).
func BenchmarkInsertInterleaved(b *testing.B) {
	body := encodeNarrow(b, benchBatch)
	db := newNarrowTable(b)
	ctx := context.Background()
	conn := connect(b, testServer.Addr(), db)
	client := &http.Client{}
	u := "http://" + testServer.Addr() + "/?" + url.Values{"query": {"INSERT INTO " + db + ".narrow FORMAT Native"}}.Encode()
	rows := make([]narrowRow, benchBatch)
	for i := range rows {
		rows[i] = narrowRowAt(i)
	}
	var direct, viaHTTP, send []time.Duration
	var directCPU, httpCPU, sendCPU []time.Duration
	runDirect := func() {
		start, cpu := time.Now(), cpuTime(b)
		if _, err := testEngine.InsertNative(ctx, "INSERT INTO "+db+".narrow", body); err != nil {
			b.Fatal(err)
		}
		direct = append(direct, time.Since(start))
		directCPU = append(directCPU, cpuTime(b)-cpu)
	}
	runHTTP := func() {
		start, cpu := time.Now(), cpuTime(b)
		resp, err := client.Post(u, "application/octet-stream", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
		viaHTTP = append(viaHTTP, time.Since(start))
		httpCPU = append(httpCPU, cpuTime(b)-cpu)
	}
	runSend := func() {
		b.StopTimer()
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO narrow")
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range rows {
			if err := batch.Append(r.id, r.ts, r.tenant, r.score, r.rule); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		start, cpu := time.Now(), cpuTime(b)
		if err := batch.Send(); err != nil {
			b.Fatal(err)
		}
		send = append(send, time.Since(start))
		sendCPU = append(sendCPU, cpuTime(b)-cpu)
	}
	paths := []func(){runDirect, runHTTP, runSend}
	i := 0
	for b.Loop() {
		// Rotate the order so that no path always runs first after TRUNCATE.
		for j := range paths {
			paths[(i+j)%len(paths)]()
			truncateChecked(b, db, benchBatch)
		}
		i++
	}
	rate := func(d []time.Duration) float64 { return benchBatch / median(d).Seconds() }
	b.ReportMetric(rate(direct), "direct-rows/s")
	b.ReportMetric(rate(viaHTTP), "http-rows/s")
	b.ReportMetric(rate(send), "send-rows/s")
	b.ReportMetric(rate(viaHTTP)/rate(direct), "http/direct")
	b.ReportMetric(rate(send)/rate(direct), "send/direct")
	// CPU time of the whole process per batch (client, HTTP server and chDB
	// threads) is far less sensitive to other load than wall time.
	ms := func(d []time.Duration) float64 { return float64(median(d).Microseconds()) / 1000 }
	b.ReportMetric(ms(directCPU), "direct-cpu-ms")
	b.ReportMetric(ms(httpCPU), "http-cpu-ms")
	b.ReportMetric(ms(sendCPU), "send-cpu-ms")
}

// cpuTime returns the user+system CPU time of the process so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
