package warehouse

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// ErrMigrationChanged is returned by [Migrate] when a migration that was
// already applied no longer matches the file shipped in this binary: someone
// edited history. Add a new migration instead.
var ErrMigrationChanged = errors.New("applied migration was modified")

// SchemaOptions shape the DDL for the target ClickHouse deployment.
type SchemaOptions struct {
	// OnCluster, when set, emits ON CLUSTER <name> on every statement and
	// Replicated* table engines, for a ClickHouse cluster.
	OnCluster string
}

// Migration is one versioned schema change.
type Migration struct {
	Version    int
	Name       string
	Statements []string
	Checksum   string
}

// Migrations returns the migrations shipped in this binary, rendered for
// opts, in version order.
func Migrations(opts SchemaOptions) ([]Migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Migration
	for _, name := range names {
		base := path.Base(name)
		num, label, ok := strings.Cut(strings.TrimSuffix(base, ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration %s: name must be NNNN_label.sql", base)
		}
		raw, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		stmts, err := render(string(raw), opts)
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", base, err)
		}
		// The checksum covers the source, not the rendering, so switching a
		// deployment to ON CLUSTER does not look like edited history.
		sum := sha256.Sum256(raw)
		out = append(out, Migration{Version: v, Name: label, Statements: stmts, Checksum: hex.EncodeToString(sum[:8])})
	}
	return out, nil
}

func render(src string, opts SchemaOptions) ([]string, error) {
	funcs := template.FuncMap{
		"onCluster": func() string { return onCluster(opts) },
		"engine":    func(name string, args ...string) string { return engine(opts, name, args...) },
	}
	t, err := template.New("migration").Funcs(funcs).Parse(src)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, nil); err != nil {
		return nil, err
	}
	var stmts []string
	for _, s := range strings.Split(buf.String(), ";\n") {
		if s = stripComments(s); s != "" {
			stmts = append(stmts, s)
		}
	}
	return stmts, nil
}

func stripComments(s string) string {
	var lines []string
	for _, l := range strings.Split(s, "\n") {
		if t := strings.TrimSpace(l); t == "" || strings.HasPrefix(t, "--") {
			continue
		}
		lines = append(lines, l)
	}
	return strings.TrimSuffix(strings.TrimSpace(strings.Join(lines, "\n")), ";")
}

// Migrate applies every migration not yet recorded in schema_migrations, in
// order, and returns the versions it applied. Statements are idempotent
// (IF NOT EXISTS), and a version is recorded only after all its statements
// succeeded, so an interrupted run is completed by the next one.
// ClickHouse has no DDL transactions; this is the substitute.
func Migrate(ctx context.Context, conn driver.Conn, opts SchemaOptions) ([]int, error) {
	migs, err := Migrations(opts)
	if err != nil {
		return nil, err
	}
	create := fmt.Sprintf(`CREATE TABLE IF NOT EXISTS schema_migrations %s (
    version    UInt32,
    name       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC')
) ENGINE = %s ORDER BY version`, onCluster(opts), engine(opts, "ReplacingMergeTree", "applied_at"))
	if err := conn.Exec(ctx, create); err != nil {
		return nil, fmt.Errorf("create schema_migrations: %w", err)
	}
	applied := map[int]string{}
	rows, err := conn.Query(ctx, "SELECT version, argMax(checksum, applied_at) FROM schema_migrations GROUP BY version")
	if err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v uint32
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read schema_migrations: %w", err)
		}
		applied[int(v)] = sum
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read schema_migrations: %w", err)
	}
	var done []int
	for _, m := range migs {
		if sum, ok := applied[m.Version]; ok {
			if sum != m.Checksum {
				return done, fmt.Errorf("%w: %04d_%s (recorded %s, shipped %s)", ErrMigrationChanged, m.Version, m.Name, sum, m.Checksum)
			}
			continue
		}
		for i, stmt := range m.Statements {
			if err := conn.Exec(ctx, stmt); err != nil {
				return done, fmt.Errorf("migration %04d_%s statement %d: %w", m.Version, m.Name, i+1, err)
			}
		}
		if err := conn.Exec(ctx, "INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)",
			uint32(m.Version), m.Name, m.Checksum, time.Now().UTC()); err != nil {
			return done, fmt.Errorf("record migration %04d_%s: %w", m.Version, m.Name, err)
		}
		done = append(done, m.Version)
	}
	return done, nil
}

func onCluster(opts SchemaOptions) string {
	if opts.OnCluster == "" {
		return ""
	}
	return "ON CLUSTER " + quoteIdent(opts.OnCluster)
}

func engine(opts SchemaOptions, name string, args ...string) string {
	if opts.OnCluster != "" {
		name = "Replicated" + name
	}
	return name + "(" + strings.Join(args, ", ") + ")"
}
