package chlocal_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// TestStreamedResults reads results larger than one chDB chunk through
// clickhouse-go with every compression, and checks that a failure after the
// first rows were sent still surfaces as a *clickhouse.Exception.
func TestStreamedResults(t *testing.T) {
	const n = 1_000_000
	tests := []struct {
		name     string
		method   clickhouse.CompressionMethod
		settings clickhouse.Settings
	}{
		{name: "none", method: clickhouse.CompressionNone},
		{name: "lz4", method: clickhouse.CompressionLZ4},
		{name: "zstd", method: clickhouse.CompressionZSTD},
		{name: "gzip", method: clickhouse.CompressionGZIP, settings: clickhouse.Settings{"enable_http_compression": 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			conn := connect(t, testServer.Addr(), "default", func(o *clickhouse.Options) {
				o.Compression = &clickhouse.Compression{Method: tc.method}
				o.Settings = tc.settings
			})
			ctx := context.Background()
			rows, err := conn.Query(ctx, "SELECT number, toString(number) FROM numbers(?)", n)
			if err != nil {
				t.Fatalf("query: %v", err)
			}
			var count, sum uint64
			for rows.Next() {
				var v uint64
				var s string
				if err := rows.Scan(&v, &s); err != nil {
					t.Fatalf("scan: %v", err)
				}
				if v != count {
					t.Fatalf("row %d = %d", count, v)
				}
				count++
				sum += v
			}
			if err := rows.Err(); err != nil {
				t.Fatalf("rows: %v", err)
			}
			_ = rows.Close()
			if count != n || sum != n*(n-1)/2 {
				t.Fatalf("read %d rows (sum %d), want %d", count, sum, n)
			}

			rows, err = conn.Query(ctx, "SELECT number, throwIf(number = 800000, 'late failure') FROM numbers(?)", n)
			if err != nil {
				t.Fatalf("query: %v", err)
			}
			count = 0
			for rows.Next() {
				count++
			}
			_ = rows.Close()
			var ex *clickhouse.Exception
			if err := rows.Err(); !errors.As(err, &ex) || ex.Code != 395 {
				t.Fatalf("late failure after %d rows: %v, want code 395", count, err)
			}
		})
	}
}

func TestStreamedRawException(t *testing.T) {
	resp := do(t, query("SELECT number, throwIf(number = 800000, 'late failure') FROM numbers(1000000)"), nil, nil)
	if resp.status != 200 {
		t.Fatalf("status %d, want 200 (rows were sent before the failure); headers %v", resp.status, resp.header)
	}
	i := strings.Index(resp.body, "__exception__\r\nCode: 395. DB::Exception:")
	if i < 0 {
		t.Fatalf("streamed failure not reported in-band; body tail %q", resp.body[max(0, len(resp.body)-300):])
	}
	if !strings.HasPrefix(resp.body, "0\t0\n1\t0\n") {
		t.Fatalf("body head %q", resp.body[:20])
	}
}
