// Package warehousetest runs the real embedded ClickHouse (chDB behind the
// HTTP interface, package chlocal) for tests, one engine per test binary,
// and gives each test its own database. Import it only from _test.go files.
package warehousetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigilhq/vigil/warehouse"
	"github.com/vigilhq/vigil/warehouse/chlocal"
)

var (
	once    sync.Once
	engine  *chlocal.Engine
	server  *chlocal.Server
	dataDir string
	openErr error
)

// Main runs a test binary's tests and then stops the shared engine and
// removes its data. Call it from TestMain: os.Exit(warehousetest.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	if server != nil {
		_ = server.Close(context.Background())
	}
	if engine != nil {
		_ = engine.Close(context.Background())
	}
	if dataDir != "" {
		_ = os.RemoveAll(dataDir)
	}
	return code
}

// Addr returns host:port of the shared engine's HTTP interface, starting it
// on first use. It fails the test, naming `make deps`, if libchdb.so is
// missing.
func Addr(tb testing.TB) string {
	tb.Helper()
	once.Do(func() {
		dataDir, openErr = os.MkdirTemp("", "vigil-warehousetest-")
		if openErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		engine, openErr = chlocal.Open(ctx, chlocal.Config{DataDir: dataDir})
		if openErr != nil {
			return
		}
		server, openErr = engine.Serve(ctx, "127.0.0.1:0")
	})
	if openErr != nil {
		tb.Fatalf("warehousetest: embedded ClickHouse: %v (run `make deps` to fetch libchdb.so)", openErr)
	}
	return server.Addr()
}

// DB is a fresh, migrated database on the shared engine.
type DB struct {
	// Conn is a clickhouse-go/v2 connection bound to the database.
	Conn driver.Conn
	// Name is the database name.
	Name string
	// DSN connects to the database (HTTP interface).
	DSN string
}

// New creates a uniquely named database, applies Vigil's migrations and
// drops the database when the test ends.
func New(tb testing.TB) *DB {
	tb.Helper()
	addr := Addr(tb)
	var b [6]byte
	_, _ = rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	dsn := fmt.Sprintf("http://%s/%s", addr, name)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, db, err := warehouse.Connect(ctx, dsn)
	if err != nil {
		tb.Fatalf("warehousetest: connect: %v", err)
	}
	if _, err := warehouse.Migrate(ctx, conn, warehouse.SchemaOptions{}); err != nil {
		conn.Close()
		tb.Fatalf("warehousetest: migrate: %v", err)
	}
	tb.Cleanup(func() {
		_ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
		conn.Close()
	})
	return &DB{Conn: conn, Name: db, DSN: dsn}
}

// Count returns the number of distinct rows of table after deduplication
// (FINAL), the figure every no-loss/no-duplicate test compares.
func (d *DB) Count(tb testing.TB, table string) uint64 {
	tb.Helper()
	var n uint64
	if err := d.Conn.QueryRow(context.Background(), "SELECT count() FROM "+table+" FINAL").Scan(&n); err != nil {
		tb.Fatalf("warehousetest: count %s: %v", table, err)
	}
	return n
}

// RawCount returns the number of rows of table without deduplication.
func (d *DB) RawCount(tb testing.TB, table string) uint64 {
	tb.Helper()
	var n uint64
	if err := d.Conn.QueryRow(context.Background(), "SELECT count() FROM "+table).Scan(&n); err != nil {
		tb.Fatalf("warehousetest: count %s: %v", table, err)
	}
	return n
}
