package chlocal_test

import (
	"context"
	"reflect"
	"testing"
)

// TestNativeTypes reads many column types through clickhouse-go, each
// followed by a sentinel column over several blocks: the server walks every
// column by type to re-frame chDB's Native output, and a wrong walk shows as
// a decode error or a wrong sentinel.
func TestNativeTypes(t *testing.T) {
	conn := connect(t, testServer.Addr(), "default")
	exprs := []struct{ name, expr string }{
		{"UInt8", "toUInt8(number)"},
		{"Int256", "toInt256(number) - 50"},
		{"Float32", "toFloat32(number) / 3"},
		{"Bool", "number % 2 = 0"},
		{"String", "repeat('x', number)"},
		{"FixedString", "toFixedString(toString(number % 10), 3)"},
		{"Decimal", "toDecimal64(number, 4)"},
		{"Decimal128", "toDecimal128(number, 10)"},
		{"Date", "toDate('2026-01-01') + number"},
		{"Date32", "toDate32('1960-01-01') + number"},
		{"DateTime zone", "toDateTime('2026-01-01 00:00:00', 'Europe/Berlin') + number"},
		{"DateTime64 zone", "toDateTime64('2026-01-01 00:00:00', 6, 'America/New_York') + number"},
		{"Nullable DateTime zone", "if(number % 3 = 0, NULL, toDateTime('2026-01-01 00:00:00', 'Asia/Tokyo'))"},
		{"UUID", "generateUUIDv4(number)"},
		{"IPv4", "toIPv4('10.0.0.1')"},
		{"IPv6", "toIPv6('::1')"},
		{"Enum8", "CAST(number % 2, 'Enum8(\\'a,b\\' = 0, \\'c)\\' = 1)')"},
		{"Nullable", "if(number % 2 = 0, NULL, toString(number))"},
		{"LowCardinality", "toLowCardinality(toString(number % 5))"},
		{"LowCardinality Nullable", "CAST(if(number % 2 = 0, NULL, toString(number % 5)), 'LowCardinality(Nullable(String))')"},
		{"Array", "range(number % 5)"},
		{"Array LowCardinality", "CAST(arrayMap(x -> toString(x), range(number % 4)), 'Array(LowCardinality(String))')"},
		{"Array Nullable", "[NULL, number, NULL]"},
		{"Array Array", "[range(number % 3), [1, 2]]"},
		{"Map", "map('k', toString(number), 'n', 'x')"},
		{"Map LowCardinality", "CAST(map(toString(number % 3), number), 'Map(LowCardinality(String), UInt64)')"},
		{"Tuple", "tuple(number, toString(number), [number])"},
		{"Named tuple", "CAST((number, 'a'), 'Tuple(id UInt64, name String)')"},
		{"Point", "(toFloat64(number), 1.5)::Point"},
		{"Nothing", "NULL"},
		{"Empty array", "[]"},
	}
	ctx := context.Background()
	for _, tc := range exprs {
		t.Run(tc.name, func(t *testing.T) {
			rows, err := conn.Query(ctx, "SELECT "+tc.expr+" AS v, number AS n FROM numbers(100) SETTINGS max_block_size = 7")
			if err != nil {
				t.Fatalf("query %s: %v", tc.expr, err)
			}
			defer rows.Close()
			ct := rows.ColumnTypes()
			var want uint64
			for rows.Next() {
				v := reflect.New(ct[0].ScanType())
				var n uint64
				if err := rows.Scan(v.Interface(), &n); err != nil {
					t.Fatalf("scan row %d (%s): %v", want, ct[0].DatabaseTypeName(), err)
				}
				if n != want {
					t.Fatalf("sentinel = %d, want %d (column %s mis-walked)", n, want, ct[0].DatabaseTypeName())
				}
				want++
			}
			if err := rows.Err(); err != nil {
				t.Fatalf("rows (%s): %v", ct[0].DatabaseTypeName(), err)
			}
			if want != 100 {
				t.Fatalf("read %d rows, want 100", want)
			}
		})
	}
}
