package chlocal_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/google/uuid"
)

// event is one row of the typed round-trip table.
type event struct {
	ID      uint64
	TS      time.Time // DateTime64(3, 'UTC')
	LocalTS time.Time // DateTime64(3): server time zone
	TokyoTS time.Time // DateTime('Asia/Tokyo')
	Kind    string    // LowCardinality(String)
	Attrs   map[string]string
	Tags    []string
	Note    *string // Nullable(String)
	UID     uuid.UUID
	Ver     uint64
}

const eventColumns = `
	id UInt64,
	ts DateTime64(3, 'UTC'),
	local_ts DateTime64(3),
	tokyo_ts DateTime('Asia/Tokyo'),
	kind LowCardinality(String),
	attrs Map(String, String),
	tags Array(String),
	note Nullable(String),
	uid UUID,
	ver UInt64`

var tokyo = mustLoadLocation("Asia/Tokyo")

func mustLoadLocation(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return loc
}

var eventBase = time.Date(2026, 3, 29, 0, 59, 58, 0, time.UTC) // near a DST switch in Europe

// makeEvent builds row i deterministically. Notes contain blank lines and
// SQL so that a body cut at "\n\n" or run as SQL would show.
func makeEvent(i int) event {
	ev := event{
		ID:      uint64(i),
		TS:      eventBase.Add(time.Duration(i) * time.Millisecond),
		LocalTS: eventBase.Add(time.Duration(i)*time.Millisecond + time.Hour),
		TokyoTS: eventBase.Add(time.Duration(i) * time.Second).In(tokyo),
		Kind:    []string{"chat", "email", "voice", "sms", "teams"}[i%5],
		Attrs:   map[string]string{},
		Tags:    []string{},
		UID:     uuid.NewSHA1(uuid.NameSpaceOID, fmt.Appendf(nil, "%d", i)),
		Ver:     uint64(i % 3),
	}
	for j := range i % 3 {
		ev.Attrs[fmt.Sprintf("k%d", j)] = fmt.Sprintf("v%d", i+j)
		ev.Tags = append(ev.Tags, fmt.Sprintf("tag-%d", (i+j)%11))
	}
	if i%2 == 1 {
		s := fmt.Sprintf("note %d\n\nDROP TABLE events;\n\n", i)
		ev.Note = &s
	}
	return ev
}

func insertEvents(tb testing.TB, conn driver.Conn, table string, from, n int) {
	tb.Helper()
	ctx := context.Background()
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+table)
	if err != nil {
		tb.Fatalf("PrepareBatch: %v", err)
	}
	for i := from; i < from+n; i++ {
		ev := makeEvent(i)
		if err := batch.Append(ev.ID, ev.TS, ev.LocalTS, ev.TokyoTS, ev.Kind, ev.Attrs, ev.Tags, ev.Note, ev.UID, ev.Ver); err != nil {
			tb.Fatalf("Append row %d: %v", i, err)
		}
	}
	if err := batch.Send(); err != nil {
		tb.Fatalf("Send: %v", err)
	}
}

func countRows(tb testing.TB, conn driver.Conn, query string) uint64 {
	tb.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), query).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestBatchInsertTypedRoundTrip(t *testing.T) {
	const rows = 100_000
	tests := []struct {
		name   string
		engine string
	}{
		{name: "MergeTree", engine: "MergeTree ORDER BY id"},
		{name: "ReplacingMergeTree", engine: "ReplacingMergeTree(ver) ORDER BY id"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := newDatabase(t)
			conn := connect(t, testServer.Addr(), db)
			ctx := context.Background()
			if err := conn.Exec(ctx, "CREATE TABLE events ("+eventColumns+") ENGINE = "+tc.engine); err != nil {
				t.Fatalf("create table: %v", err)
			}
			insertEvents(t, conn, "events", 0, rows)
			if got := countRows(t, conn, "SELECT count() FROM events"); got != rows {
				t.Fatalf("count() after insert = %d, want %d", got, rows)
			}

			var serverTZ string
			if err := conn.QueryRow(ctx, "SELECT timezone()").Scan(&serverTZ); err != nil {
				t.Fatal(err)
			}
			r, err := conn.Query(ctx, "SELECT id, ts, local_ts, tokyo_ts, kind, attrs, tags, note, uid, ver FROM events ORDER BY id")
			if err != nil {
				t.Fatalf("select: %v", err)
			}
			defer r.Close()
			i := 0
			for r.Next() {
				var got event
				if err := r.Scan(&got.ID, &got.TS, &got.LocalTS, &got.TokyoTS, &got.Kind, &got.Attrs, &got.Tags, &got.Note, &got.UID, &got.Ver); err != nil {
					t.Fatalf("scan row %d: %v", i, err)
				}
				if err := sameEvent(makeEvent(i), got); err != nil {
					t.Fatalf("row %d: %v", i, err)
				}
				if i == 0 && got.LocalTS.Location().String() != serverTZ {
					t.Fatalf("local_ts location = %s, want the server time zone %s", got.LocalTS.Location(), serverTZ)
				}
				i++
			}
			if err := r.Err(); err != nil {
				t.Fatalf("rows: %v", err)
			}
			if i != rows {
				t.Fatalf("scanned %d rows, want %d", i, rows)
			}
		})
	}
}

// sameEvent compares values and time zones.
func sameEvent(want, got event) error {
	switch {
	case got.ID != want.ID:
		return fmt.Errorf("id = %d, want %d", got.ID, want.ID)
	case !got.TS.Equal(want.TS) || got.TS.Location().String() != "UTC":
		return fmt.Errorf("ts = %v (%s), want %v (UTC)", got.TS, got.TS.Location(), want.TS)
	case !got.LocalTS.Equal(want.LocalTS):
		return fmt.Errorf("local_ts = %v, want %v", got.LocalTS, want.LocalTS)
	case !got.TokyoTS.Equal(want.TokyoTS) || got.TokyoTS.Location().String() != "Asia/Tokyo":
		return fmt.Errorf("tokyo_ts = %v (%s), want %v (Asia/Tokyo)", got.TokyoTS, got.TokyoTS.Location(), want.TokyoTS)
	case got.Kind != want.Kind:
		return fmt.Errorf("kind = %q, want %q", got.Kind, want.Kind)
	case !maps.Equal(got.Attrs, want.Attrs):
		return fmt.Errorf("attrs = %v, want %v", got.Attrs, want.Attrs)
	case !slices.Equal(got.Tags, want.Tags):
		return fmt.Errorf("tags = %v, want %v", got.Tags, want.Tags)
	case (got.Note == nil) != (want.Note == nil) || (got.Note != nil && *got.Note != *want.Note):
		return fmt.Errorf("note = %v, want %v", deref(got.Note), deref(want.Note))
	case got.UID != want.UID:
		return fmt.Errorf("uid = %v, want %v", got.UID, want.UID)
	case got.Ver != want.Ver:
		return fmt.Errorf("ver = %d, want %d", got.Ver, want.Ver)
	}
	return nil
}

func deref(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return fmt.Sprintf("%q", *s)
}

func TestReplacingMergeTreeDeduplicates(t *testing.T) {
	db := newDatabase(t)
	conn := connect(t, testServer.Addr(), db)
	ctx := context.Background()
	if err := conn.Exec(ctx, "CREATE TABLE events ("+eventColumns+") ENGINE = ReplacingMergeTree(ver) ORDER BY id"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	insertEvents(t, conn, "events", 0, 1000)
	insertEvents(t, conn, "events", 500, 1000) // 500 ids again
	if got := countRows(t, conn, "SELECT count() FROM events"); got != 2000 {
		t.Fatalf("count() before merge = %d, want 2000", got)
	}
	if got := countRows(t, conn, "SELECT count() FROM events FINAL"); got != 1500 {
		t.Fatalf("count() FINAL = %d, want 1500", got)
	}
}

func TestSQLErrorsAreExceptions(t *testing.T) {
	db := newDatabase(t)
	conn := connect(t, testServer.Addr(), db)
	tests := []struct {
		name     string
		query    string
		wantCode int32
		wantHTTP int
	}{
		{name: "syntax", query: "SELEC 1", wantCode: 62, wantHTTP: 400},
		{name: "unknown table", query: "SELECT * FROM no_such_table", wantCode: 60, wantHTTP: 404},
		{name: "unknown identifier", query: "SELECT no_such_column FROM system.one", wantCode: 47, wantHTTP: 404},
		{name: "unknown function", query: "SELECT no_such_function(1)", wantCode: 46, wantHTTP: 404},
		{name: "throwIf", query: "SELECT throwIf(1)", wantCode: 395, wantHTTP: 500},
		{name: "multi-statement", query: "SELECT 1; SELECT 2", wantCode: 62, wantHTTP: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := conn.Exec(context.Background(), tc.query)
			var ex *clickhouse.Exception
			if !errors.As(err, &ex) {
				t.Fatalf("Exec(%q) = %v, want *clickhouse.Exception", tc.query, err)
			}
			if ex.Code != tc.wantCode {
				t.Fatalf("Exec(%q) code = %d (%s), want %d", tc.query, ex.Code, ex.Message, tc.wantCode)
			}
			var he *clickhouse.HTTPError
			if !errors.As(err, &he) || he.StatusCode != tc.wantHTTP {
				t.Fatalf("Exec(%q) = %v, want HTTP status %d", tc.query, err, tc.wantHTTP)
			}
			// Errors through Query (Native, compressed or not) too.
			_, qerr := conn.Query(context.Background(), tc.query)
			if !errors.As(qerr, &ex) || ex.Code != tc.wantCode {
				t.Fatalf("Query(%q) = %v, want code %d", tc.query, qerr, tc.wantCode)
			}
		})
	}
}

func TestLightweightDeleteAndTTL(t *testing.T) {
	db := newDatabase(t)
	conn := connect(t, testServer.Addr(), db)
	ctx := context.Background()
	if err := conn.Exec(ctx, "CREATE TABLE events ("+eventColumns+") ENGINE = MergeTree ORDER BY id"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	insertEvents(t, conn, "events", 0, 1000)
	if got := countRows(t, conn, "SELECT count() FROM events"); got != 1000 {
		t.Fatalf("count() = %d, want 1000", got)
	}
	if err := conn.Exec(ctx, "DELETE FROM events WHERE id < 100"); err != nil {
		t.Fatalf("lightweight DELETE: %v", err)
	}
	if got := countRows(t, conn, "SELECT count() FROM events"); got != 900 {
		t.Fatalf("count() after DELETE = %d, want 900", got)
	}

	// TTL … WHERE: rows of kind 'sms' older than a day expire. A background
	// TTL merge may already have dropped them; OPTIMIZE FINAL makes it sure.
	if err := conn.Exec(ctx, "CREATE TABLE retained ("+eventColumns+") ENGINE = MergeTree ORDER BY id TTL toDateTime(ts) + INTERVAL 1 DAY DELETE WHERE kind = 'sms'"); err != nil {
		t.Fatalf("create TTL table: %v", err)
	}
	insertEvents(t, conn, "retained", 0, 1000)
	if got := countRows(t, conn, "SELECT count() FROM retained"); got != 800 && got != 1000 {
		t.Fatalf("count() after insert = %d, want 1000 (or 800 once merged)", got)
	}
	if err := conn.Exec(ctx, "OPTIMIZE TABLE retained FINAL"); err != nil {
		t.Fatalf("OPTIMIZE FINAL: %v", err)
	}
	if got := countRows(t, conn, "SELECT count() FROM retained"); got != 800 {
		t.Fatalf("count() after OPTIMIZE FINAL = %d, want 800", got)
	}

	// A TTL added later without materializing is applied by OPTIMIZE FINAL.
	if err := conn.Exec(ctx, "CREATE TABLE later ("+eventColumns+") ENGINE = MergeTree ORDER BY id"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	insertEvents(t, conn, "later", 0, 1000)
	noMaterialize := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"materialize_ttl_after_modify": 0}))
	if err := conn.Exec(noMaterialize, "ALTER TABLE later MODIFY TTL toDateTime(ts) + INTERVAL 1 DAY DELETE WHERE kind = 'sms'"); err != nil {
		t.Fatalf("MODIFY TTL: %v", err)
	}
	if err := conn.Exec(ctx, "OPTIMIZE TABLE later FINAL"); err != nil {
		t.Fatalf("OPTIMIZE FINAL: %v", err)
	}
	if got := countRows(t, conn, "SELECT count() FROM later WHERE kind = 'sms'"); got != 0 {
		t.Fatalf("sms rows after OPTIMIZE FINAL = %d, want 0", got)
	}
	if got := countRows(t, conn, "SELECT count() FROM later"); got != 800 {
		t.Fatalf("count() after OPTIMIZE FINAL = %d, want 800", got)
	}
}

func TestConcurrentQueries(t *testing.T) {
	db := newDatabase(t)
	conn := connect(t, testServer.Addr(), db, func(o *clickhouse.Options) { o.MaxOpenConns = 8 })
	ctx := context.Background()
	if err := conn.Exec(ctx, "CREATE TABLE events ("+eventColumns+") ENGINE = MergeTree ORDER BY id"); err != nil {
		t.Fatalf("create table: %v", err)
	}
	insertEvents(t, conn, "events", 0, 10_000)

	if err := conn.Exec(ctx, "CREATE TABLE sink (id UInt64, w UInt8) ENGINE = MergeTree ORDER BY id"); err != nil {
		t.Fatalf("create table: %v", err)
	}

	const workers, rounds, writers, batches, batchRows = 8, 20, 4, 5, 2000
	var wg sync.WaitGroup
	errs := make(chan error, workers+writers)
	// Batch inserts run beside the queries: chDB refuses anything concurrent
	// with a streaming insert, so this exercises the engine lock.
	for w := range writers {
		wg.Go(func() {
			for bn := range batches {
				batch, err := conn.PrepareBatch(ctx, "INSERT INTO sink")
				if err != nil {
					errs <- fmt.Errorf("writer %d: %w", w, err)
					return
				}
				for i := range batchRows {
					if err := batch.Append(uint64((w*batches+bn)*batchRows+i), uint8(w)); err != nil {
						errs <- fmt.Errorf("writer %d: %w", w, err)
						return
					}
				}
				if err := batch.Send(); err != nil {
					errs <- fmt.Errorf("writer %d batch %d: %w", w, bn, err)
					return
				}
			}
		})
	}
	for w := range workers {
		wg.Go(func() {
			for r := range rounds {
				lo := (w*rounds + r) * 50 % 9_000
				var n, sum uint64
				err := conn.QueryRow(ctx, "SELECT count(), sum(id) FROM events WHERE id >= ? AND id < ?", lo, lo+100).Scan(&n, &sum)
				if err != nil {
					errs <- fmt.Errorf("worker %d round %d: %w", w, r, err)
					return
				}
				wantSum := uint64(100*lo + 99*100/2)
				if n != 100 || sum != wantSum {
					errs <- fmt.Errorf("worker %d round %d: count %d sum %d, want 100 %d", w, r, n, sum, wantSum)
					return
				}
				// Per-request settings must not leak into other requests.
				sctx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_threads": w + 1}))
				var mt string
				if err := conn.QueryRow(sctx, "SELECT toString(getSetting('max_threads'))").Scan(&mt); err != nil {
					errs <- fmt.Errorf("worker %d: getSetting: %w", w, err)
					return
				}
				if want := fmt.Sprint(w + 1); mt != want && mt != fmt.Sprintf("'auto(%d)'", w+1) {
					errs <- fmt.Errorf("worker %d: max_threads = %s, want %s", w, mt, want)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if got := countRows(t, conn, "SELECT count() FROM sink"); got != writers*batches*batchRows {
		t.Fatalf("sink count() = %d, want %d", got, writers*batches*batchRows)
	}
}

func TestQueryParameters(t *testing.T) {
	conn := connect(t, testServer.Addr(), "default")
	ctx := clickhouse.Context(context.Background(), clickhouse.WithParameters(clickhouse.Parameters{
		"name": "o'brien; DROP TABLE x",
		"n":    "41",
		"ts":   "2026-03-29 01:00:00",
	}))
	var (
		name string
		n    uint64
		ts   time.Time
	)
	err := conn.QueryRow(ctx, "SELECT {name:String}, {n:UInt32} + 1, toDateTime({ts:String}, 'Asia/Tokyo')").Scan(&name, &n, &ts)
	if err != nil {
		t.Fatalf("query with parameters: %v", err)
	}
	want := time.Date(2026, 3, 29, 1, 0, 0, 0, tokyo)
	if name != "o'brien; DROP TABLE x" || n != 42 || !ts.Equal(want) || ts.Location().String() != "Asia/Tokyo" {
		t.Fatalf("got %q %d %v, want o'brien… 42 %v", name, n, ts, want)
	}
	// A missing parameter is the engine's error, not a crash.
	var ex *clickhouse.Exception
	if err := conn.QueryRow(context.Background(), "SELECT {missing:String}").Scan(&name); !errors.As(err, &ex) {
		t.Fatalf("missing parameter: %v, want an exception", err)
	}
}
