package warehouse

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

//go:embed reports/*.sql
var reportFiles embed.FS

// ErrUnknownReport is returned by [RunReport] for a report name that is not
// shipped; [Reports] lists the valid names.
var ErrUnknownReport = errors.New("unknown report")

// ErrMissingParam is returned by [RunReport] when the report's SQL needs a
// parameter the caller did not supply.
var ErrMissingParam = errors.New("missing report parameter")

// Report is one auditor report: plain SQL with ClickHouse query parameters
// ({name:Type}), so the same file runs in clickhouse-client
// (--param_tenant=…) or any BI tool.
type Report struct {
	Name        string
	Description string
	SQL         string
	Params      []string
}

var paramRE = regexp.MustCompile(`\{([a-z_]+):([^}]+)\}`)

// Reports lists the shipped reports by name.
func Reports() ([]Report, error) {
	names, err := fs.Glob(reportFiles, "reports/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	var out []Report
	for _, n := range names {
		raw, err := reportFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		r := Report{Name: strings.TrimSuffix(path.Base(n), ".sql"), SQL: string(raw)}
		for _, l := range strings.Split(r.SQL, "\n") {
			if d, ok := strings.CutPrefix(l, "-- "); ok && r.Description == "" {
				r.Description = strings.TrimSpace(d)
			}
		}
		seen := map[string]bool{}
		for _, m := range paramRE.FindAllStringSubmatch(r.SQL, -1) {
			if !seen[m[1]] {
				seen[m[1]] = true
				r.Params = append(r.Params, m[1])
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// Table is a report result: column names and rows of Go values (nil for
// NULL).
type Table struct {
	Columns []string
	Rows    [][]any
}

// RunReport runs the named report with params. Parameter values are bound
// client-side as properly quoted literals of the declared type, so reports
// run identically on every ClickHouse (server or embedded).
func RunReport(ctx context.Context, conn driver.Conn, name string, params map[string]any) (*Table, error) {
	reps, err := Reports()
	if err != nil {
		return nil, err
	}
	var rep *Report
	for i := range reps {
		if reps[i].Name == name {
			rep = &reps[i]
		}
	}
	if rep == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownReport, name)
	}
	query, err := bindParams(rep.SQL, params)
	if err != nil {
		return nil, fmt.Errorf("report %s: %w", name, err)
	}
	rows, err := conn.Query(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("report %s: %w", name, err)
	}
	defer rows.Close()
	t := &Table{Columns: rows.Columns()}
	types := rows.ColumnTypes()
	for rows.Next() {
		dest := make([]any, len(types))
		for i, ct := range types {
			dest[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			return nil, fmt.Errorf("report %s: scan: %w", name, err)
		}
		row := make([]any, len(dest))
		for i, d := range dest {
			v := reflect.ValueOf(d).Elem()
			// Nullable columns scan into pointers: hand out the value or nil.
			if v.Kind() == reflect.Pointer {
				if v.IsNil() {
					row[i] = nil
					continue
				}
				v = v.Elem()
			}
			row[i] = v.Interface()
		}
		t.Rows = append(t.Rows, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("report %s: %w", name, err)
	}
	return t, nil
}

// bindParams replaces every {name:Type} with a literal of params[name].
func bindParams(sql string, params map[string]any) (string, error) {
	var errs []error
	out := paramRE.ReplaceAllStringFunc(sql, func(m string) string {
		sub := paramRE.FindStringSubmatch(m)
		name, typ := sub[1], sub[2]
		v, ok := params[name]
		if !ok {
			errs = append(errs, fmt.Errorf("%w: %s", ErrMissingParam, name))
			return m
		}
		lit, err := literal(v, typ)
		if err != nil {
			errs = append(errs, fmt.Errorf("parameter %s: %w", name, err))
			return m
		}
		return lit
	})
	return out, errors.Join(errs...)
}

func literal(v any, typ string) (string, error) {
	switch {
	case typ == "String":
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("want a string, got %T", v)
		}
		return quoteString(s), nil
	case strings.HasPrefix(typ, "DateTime64"):
		t, ok := v.(time.Time)
		if !ok {
			return "", fmt.Errorf("want a time, got %T", v)
		}
		return fmt.Sprintf("toDateTime64(%s, 3, 'UTC')", quoteString(t.UTC().Format("2006-01-02 15:04:05.000"))), nil
	}
	return "", fmt.Errorf("unsupported parameter type %s", typ)
}

// quoteString renders s as a ClickHouse string literal.
func quoteString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`, "\r", `\r`, "\t", `\t`, "\x00", `\0`)
	return "'" + r.Replace(s) + "'"
}
