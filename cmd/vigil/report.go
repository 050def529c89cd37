package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/warehouse"
)

// DefaultClickHouse is the ClickHouse that admin commands talk to by
// default: the HTTP interface of a local `vigil dev`.
const DefaultClickHouse = "http://127.0.0.1:8123/" + warehouse.DefaultDatabase

const reportUsage = `Run an auditor report: plain SQL shipped in warehouse/reports/, runnable in any
ClickHouse client with --param_<name>=… as well.

Usage:
  vigil report --list
  vigil report <name> [--tenant T] [--from TIME] [--to TIME] [--format table|csv|json]

TIME is RFC 3339 (2026-12-01T00:00:00Z) or a date (2026-12-01, midnight UTC).
--from defaults to 30 days ago, --to to now.

Exit codes:
  0  report printed
  1  the query failed
  2  bad flags or unknown report
`

func runReport(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flagSet("report", reportUsage, stdout)
	cfgFile := fs.String("config", "", "YAML config file (keys are flag names in snake_case).")
	dsn := fs.String("clickhouse", DefaultClickHouse, "ClickHouse address: http://host:8123/db or clickhouse://host:9000/db.")
	tenant := fs.String("tenant", "", "Only this tenant. Default: all tenants.")
	conversation := fs.String("conversation", "", "Conversation id (conversation_export only).")
	from := fs.String("from", "", "Start of the period (inclusive).")
	to := fs.String("to", "", "End of the period (exclusive).")
	format := fs.String("format", "table", "Output format: table, csv or json.")
	list := fs.Bool("list", false, "List the reports and their parameters.")
	_ = cfgFile
	// Flags may follow the report name: vigil report coverage --tenant acme.
	name, rest := "", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, rest = args[0], args[1:]
	}
	if code := parseFlags(fs, rest, stderr); code >= 0 {
		return code
	}
	if _, err := applyConfig(fs, lookupEnv); err != nil {
		fmt.Fprintf(stderr, "Error: %v\nTry: vigil report --help\n", err)
		return exitUsage
	}
	reps, err := warehouse.Reports()
	if err != nil {
		return fail(stderr, err, "")
	}
	if *list {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "REPORT\tPARAMETERS\tDESCRIPTION")
		for _, r := range reps {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, strings.Join(r.Params, ","), r.Description)
		}
		tw.Flush()
		return exitOK
	}
	if name == "" && fs.NArg() > 0 {
		name = fs.Arg(0)
	}
	if name == "" {
		fmt.Fprintf(stderr, "Error: no report named\nTry: vigil report --list\n")
		return exitUsage
	}
	if *format != "table" && *format != "csv" && *format != "json" {
		fmt.Fprintf(stderr, "Error: --format: want table, csv or json (got %q)\n", *format)
		return exitUsage
	}
	now := time.Now().UTC()
	fromT, err := parseTimeFlag(*from, now.AddDate(0, 0, -30))
	if err != nil {
		fmt.Fprintf(stderr, "Error: --from: %v\n", err)
		return exitUsage
	}
	toT, err := parseTimeFlag(*to, now)
	if err != nil {
		fmt.Fprintf(stderr, "Error: --to: %v\n", err)
		return exitUsage
	}
	if !fromT.Before(toT) {
		fmt.Fprintf(stderr, "Error: --from (%s) must be before --to (%s)\n", fromT.Format(time.RFC3339), toT.Format(time.RFC3339))
		return exitUsage
	}
	conn, _, err := warehouse.Connect(ctx, *dsn)
	if err != nil {
		return fail(stderr, err, "start 'vigil dev' or pass --clickhouse")
	}
	defer conn.Close()
	params := map[string]any{"tenant": *tenant, "from": fromT, "to": toT, "conversation": *conversation}
	t, err := warehouse.RunReport(ctx, conn, name, params)
	switch {
	case errors.Is(err, warehouse.ErrUnknownReport):
		fmt.Fprintf(stderr, "Error: %v\nTry: vigil report --list\n", err)
		return exitUsage
	case err != nil:
		return fail(stderr, err, "")
	}
	if err := writeTable(stdout, t, *format); err != nil {
		return fail(stderr, err, "")
	}
	return exitOK
}

func parseTimeFlag(s string, def time.Time) (time.Time, error) {
	if s == "" {
		return def, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t.UTC(), nil
	}
	return time.Time{}, fmt.Errorf("want RFC 3339 (2026-12-01T00:00:00Z) or a date (2026-12-01), got %q", s)
}

func writeTable(w io.Writer, t *warehouse.Table, format string) error {
	switch format {
	case "json":
		out := make([]map[string]any, 0, len(t.Rows))
		for _, r := range t.Rows {
			m := make(map[string]any, len(r))
			for i, c := range t.Columns {
				m[c] = r[i]
			}
			out = append(out, m)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	case "csv":
		cw := csv.NewWriter(w)
		if err := cw.Write(t.Columns); err != nil {
			return err
		}
		for _, r := range t.Rows {
			rec := make([]string, len(r))
			for i, v := range r {
				rec[i] = cell(v)
			}
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	default:
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, strings.ToUpper(strings.Join(t.Columns, "\t")))
		for _, r := range t.Rows {
			cells := make([]string, len(r))
			for i, v := range r {
				cells[i] = cell(v)
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		}
		if len(t.Rows) == 0 {
			fmt.Fprintln(tw, "(no rows)")
		}
		return tw.Flush()
	}
}

func cell(v any) string {
	switch x := v.(type) {
	case time.Time:
		return x.UTC().Format("2006-01-02 15:04:05.000")
	case *time.Time:
		if x == nil {
			return ""
		}
		return x.UTC().Format("2006-01-02 15:04:05.000")
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}
