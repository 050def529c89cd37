package warehouse

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// DefaultDatabase is the database Vigil's tables live in.
const DefaultDatabase = "vigil"

// DefaultDialTimeout bounds connecting to ClickHouse.
const DefaultDialTimeout = 10 * time.Second

// ErrUnreachable is returned by [Connect] when ClickHouse does not answer a
// ping. The wrapped error carries the driver's reason.
var ErrUnreachable = errors.New("clickhouse unreachable")

// Connect opens a clickhouse-go/v2 connection for dsn, creates the database
// if needed and pings it. dsn is either a ClickHouse URL
// (clickhouse://host:9000/db for the native protocol, http://host:8123/db
// for HTTP) or host:port, taken as the HTTP interface (as served by the
// embedded engine).
func Connect(ctx context.Context, dsn string) (driver.Conn, string, error) {
	opts, err := parseDSN(dsn)
	if err != nil {
		return nil, "", err
	}
	db := opts.Auth.Database
	if db == "" {
		db = DefaultDatabase
	}
	// Create the database through a connection bound to "default": the
	// target database may not exist yet.
	opts.Auth.Database = "default"
	bootstrap, err := clickhouse.Open(opts)
	if err != nil {
		return nil, "", fmt.Errorf("open clickhouse %s: %w", redactDSN(dsn), err)
	}
	defer bootstrap.Close()
	if err := bootstrap.Ping(ctx); err != nil {
		return nil, "", fmt.Errorf("%w at %s: %w", ErrUnreachable, redactDSN(dsn), err)
	}
	if err := bootstrap.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdent(db)); err != nil {
		return nil, "", fmt.Errorf("create database %s: %w", db, err)
	}
	opts.Auth.Database = db
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, "", fmt.Errorf("open clickhouse %s: %w", redactDSN(dsn), err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, "", fmt.Errorf("%w at %s: %w", ErrUnreachable, redactDSN(dsn), err)
	}
	return conn, db, nil
}

func parseDSN(dsn string) (*clickhouse.Options, error) {
	if dsn == "" {
		return nil, errors.New("empty clickhouse address")
	}
	if !strings.Contains(dsn, "://") {
		dsn = "http://" + dsn
	}
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse clickhouse address %s: %w", redactDSN(dsn), err)
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = DefaultDialTimeout
	}
	return opts, nil
}

// redactDSN drops credentials from a DSN so it can be logged.
func redactDSN(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return dsn
	}
	u.User = url.User(u.User.Username())
	return u.String()
}

func quoteIdent(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "\\`") + "`"
}
