package chlocal_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vigilhq/vigil/warehouse/chlocal"
)

// The package shares one engine and one HTTP server (chDB runs one engine
// per process); tests isolate themselves in databases with random names.
var (
	testEngine  *chlocal.Engine
	testServer  *chlocal.Server
	testDataDir string
)

func TestMain(m *testing.M) {
	if life := os.Getenv(envChildLife); life != "" {
		os.Exit(runChildLife(life))
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "chlocal-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	testDataDir = dir
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	testEngine, err = chlocal.Open(ctx, chlocal.Config{DataDir: dir})
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: open embedded ClickHouse: %v\n", err)
		if errors.Is(err, chlocal.ErrLibraryNotFound) || errors.Is(err, chlocal.ErrLibraryInvalid) {
			fmt.Fprintln(os.Stderr, "FAIL: run make deps (or set VIGIL_CHDB_LIB to libchdb.so)")
		}
		return 1
	}
	testServer, err = testEngine.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: serve:", err)
		return 1
	}
	code := m.Run()
	closeCtx, cancelClose := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelClose()
	if err := testServer.Close(closeCtx); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: close server:", err)
		code = 1
	}
	if err := testEngine.Close(closeCtx); err != nil {
		fmt.Fprintln(os.Stderr, "FAIL: close engine:", err)
		code = 1
	}
	return code
}

// randomID returns a short random identifier for database and table names.
func randomID(tb testing.TB) string {
	tb.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// newDatabase creates a database unique to the test and drops it on cleanup.
func newDatabase(tb testing.TB) string {
	tb.Helper()
	db := "t_" + randomID(tb)
	ctx := context.Background()
	if err := testEngine.Exec(ctx, "CREATE DATABASE "+db); err != nil {
		tb.Fatalf("create database: %v", err)
	}
	tb.Cleanup(func() {
		if err := testEngine.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db+" SYNC"); err != nil {
			tb.Errorf("drop database %s: %v", db, err)
		}
	})
	return db
}

// connect opens a clickhouse-go HTTP connection to the shared server.
func connect(tb testing.TB, addr, db string, mod ...func(*clickhouse.Options)) driver.Conn {
	tb.Helper()
	opts := &clickhouse.Options{
		Addr:        []string{addr},
		Protocol:    clickhouse.HTTP,
		Auth:        clickhouse.Auth{Database: db},
		DialTimeout: 10 * time.Second,
	}
	for _, f := range mod {
		f(opts)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		tb.Fatalf("clickhouse.Open: %v", err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return conn
}

func TestPingAndVersion(t *testing.T) {
	conn := connect(t, testServer.Addr(), "default")
	ctx := context.Background()
	if err := conn.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	var version string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		t.Fatalf("SELECT version(): %v", err)
	}
	if version != testEngine.Version() || version[:3] != "26." {
		t.Fatalf("version() = %q, want %q (26.x)", version, testEngine.Version())
	}
	sv, err := conn.ServerVersion()
	if err != nil {
		t.Fatalf("ServerVersion: %v", err)
	}
	if sv.Version.Major != 26 {
		t.Fatalf("ServerVersion().Version = %v, want 26.x", sv.Version)
	}
}
