package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/pii"
	"github.com/vigilhq/vigil/retention"
	"github.com/vigilhq/vigil/warehouse"
)

// adminFlags are the connection flags shared by the privacy and retention
// commands (erase, access, hold, retention).
type adminFlags struct {
	config     string
	clickhouse string
	nats       string
	natsCreds  string
	piiKeys    string
	replicas   int
	partitions int
}

func (f *adminFlags) register(fs *flag.FlagSet, withNATS bool) {
	fs.StringVar(&f.config, "config", "", "YAML config file (keys are flag names in snake_case).")
	fs.StringVar(&f.clickhouse, "clickhouse", DefaultClickHouse, "ClickHouse address: http://host:8123/db or clickhouse://host:9000/db.")
	if !withNATS {
		return
	}
	// Commands that change data reach the running vigil's streams and vault.
	fs.StringVar(&f.nats, "nats", DefaultNATSURL, "NATS server URL(s) of the running vigil, comma-separated.")
	fs.StringVar(&f.natsCreds, "nats-creds", "", "NATS credentials file (JWT + NKey).")
	fs.StringVar(&f.piiKeys, "pii-keys", "", "JSON file of the PII vault keys (tenants/default with kek and token_key). Default: $"+pii.EnvKEK+" and $"+pii.EnvTokenKey+".")
	fs.IntVar(&f.replicas, "replicas", 0, "Replicas of the streams; 0 reads them from the running vigil's MESSAGES stream, so the command never reconfigures it.")
	fs.IntVar(&f.partitions, "partitions", 0, "Partitions of MESSAGES; 0 reads them from the running vigil's MESSAGES stream.")
}

// adminEnv is an open connection to ClickHouse and, for commands that
// change data, NATS with the vault and the retention service.
type adminEnv struct {
	ch  driver.Conn
	nc  *nats.Conn
	svc *retention.Service
}

func (a *adminEnv) close() {
	if a.nc != nil {
		a.nc.Close()
	}
	if a.ch != nil {
		a.ch.Close()
	}
}

// openAdmin connects to ClickHouse and, with withNATS, to NATS, and builds
// the retention service. The returned hint says what to try on error.
func openAdmin(ctx context.Context, f *adminFlags, withNATS bool, name string) (*adminEnv, string, error) {
	a := &adminEnv{}
	ch, _, err := warehouse.Connect(ctx, f.clickhouse)
	if err != nil {
		return nil, "start 'vigil dev' or pass --clickhouse", err
	}
	a.ch = ch
	if !withNATS {
		return a, "", nil
	}
	var keys *pii.StaticKeys
	if f.piiKeys != "" {
		keys, err = pii.LoadStaticKeysFile(f.piiKeys)
	} else {
		keys, err = pii.StaticKeysFromEnv(func(k string) string { v, _ := lookupEnv(k); return v })
	}
	if err != nil {
		a.close()
		return nil, "pass --pii-keys FILE or set " + pii.EnvKEK + " and " + pii.EnvTokenKey + " as the running vigil has them", err
	}
	nc, b, hint, err := openRunningBus(ctx, f.nats, f.natsCreds, "vigil "+name, f.replicas, f.partitions)
	if err != nil {
		a.close()
		return nil, hint, err
	}
	a.nc = nc
	v, err := retention.NewVault(b, keys)
	if err != nil {
		a.close()
		return nil, "", err
	}
	if a.svc, err = retention.New(ch, b, v); err != nil {
		a.close()
		return nil, "", err
	}
	return a, "", nil
}

// openRunningBus connects to the NATS of a running vigil and opens its
// streams with their running layout (see streamLayout). On error the
// connection is closed and hint says what to try.
func openRunningBus(ctx context.Context, url, creds, name string, replicas, partitions int) (*nats.Conn, *bus.Bus, string, error) {
	quiet := slog.New(slog.DiscardHandler)
	nc, err := bus.Connect(ctx, url, bus.ConnectOptions{Name: name, CredsFile: creds, Logger: quiet})
	if err != nil {
		return nil, nil, "start 'vigil dev' or pass --nats", fmt.Errorf("connect to NATS: %w", err)
	}
	cfg, err := streamLayout(ctx, nc, replicas, partitions)
	if err != nil {
		nc.Close()
		return nil, nil, "pass --replicas and --partitions as the running vigil uses them", err
	}
	// bus.Open applies cfg with CreateOrUpdate: it must be the running
	// layout, or an admin command would re-replicate the archive.
	b, err := bus.Open(ctx, nc, cfg, bus.WithLogger(quiet))
	if err != nil {
		nc.Close()
		return nil, nil, "pass --replicas and --partitions as the running vigil uses them", fmt.Errorf("open streams: %w", err)
	}
	return nc, b, "", nil
}

var partitionsRE = regexp.MustCompile(`partition\((\d+),`)

// streamLayout returns the bus configuration of the running vigil: replicas
// and partitions given as flags, else read from the MESSAGES stream (its
// replica count and the partition count of its subject transform), else
// the bus defaults when no stream exists yet.
func streamLayout(ctx context.Context, nc *nats.Conn, replicas, partitions int) (bus.Config, error) {
	cfg := bus.Config{Replicas: replicas, Partitions: partitions}
	if replicas > 0 && partitions > 0 {
		return cfg, nil
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return cfg, fmt.Errorf("read stream layout: %w", err)
	}
	st, err := js.Stream(ctx, bus.StreamMessages)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return cfg, nil
	}
	if err != nil {
		return cfg, fmt.Errorf("read stream layout: %w", err)
	}
	sc := st.CachedInfo().Config
	if cfg.Replicas == 0 {
		cfg.Replicas = sc.Replicas
	}
	if cfg.Partitions == 0 && sc.SubjectTransform != nil {
		if m := partitionsRE.FindStringSubmatch(sc.SubjectTransform.Destination); m != nil {
			cfg.Partitions, _ = strconv.Atoi(m[1])
		}
	}
	return cfg, nil
}

// adminError prints err and returns exit 2 for bad requests (invalid or
// unknown values) and 1 for everything else.
func adminError(stderr io.Writer, err error, hint string) int {
	if errors.Is(err, retention.ErrInvalidRequest) || errors.Is(err, retention.ErrUnknownPolicy) {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		if hint != "" {
			fmt.Fprintf(stderr, "Try: %s\n", hint)
		}
		return exitUsage
	}
	return fail(stderr, err, hint)
}

func usageError(stderr io.Writer, cmd, format string, args ...any) int {
	fmt.Fprintf(stderr, "Error: "+format+"\nTry: vigil %s --help\n", append(args, cmd)...)
	return exitUsage
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

const retentionUsage = `Retention policies and the retention run.

Usage:
  vigil retention classes
  vigil retention list [--tenant T] [--json]
  vigil retention set --tenant T [--channel C] --class CLASS [--keep-days N] --actor A --reason R
  vigil retention run --actor A --reason R [--dry-run] [--json]

A policy class is assigned to a tenant's channel, or with no --channel to
the tenant's default. Classes with a legal duty (sec-17a-4, finra-4511,
mifid-ii, hipaa) keep records until expiry: an erasure request for data
they cover becomes a restriction. gdpr-minimization sets the longest time
the firm keeps data (--keep-days is required). Channels without any
assignment are kept.

'run' deletes messages (and their verdicts and stream entries) older than
their policy, except what a legal hold covers, and completes deferred
erasures whose retention expired. It runs daily inside 'vigil serve' too.
ClickHouse TTL is applied lazily, so the run deletes explicitly.

Precedence: legal hold > regulatory retention > erasure request > default
minimization.

Exit codes:
  0  done
  1  the operation failed
  2  bad flags or values (unknown class, period out of bounds)
`

func runRetention(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sub, rest := "", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, rest = args[0], args[1:]
	}
	var f adminFlags
	fs := flagSet("retention", retentionUsage, stdout)
	withNATS := sub == "set" || sub == "run"
	// NATS flags are listed always; only set and run connect to NATS.
	f.register(fs, true)
	tenant := fs.String("tenant", "", "Tenant id.")
	channel := fs.String("channel", "", "Channel (set); empty is the tenant's default.")
	class := fs.String("class", "", "Policy class (set): "+classNames()+".")
	keepDays := fs.Int("keep-days", 0, "Retention period in days (set); 0 takes the class default.")
	actor := fs.String("actor", "", "Who runs the command, for the audit log.")
	reason := fs.String("reason", "", "Why, for the audit log.")
	dryRun := fs.Bool("dry-run", false, "Print what the run would delete; change nothing.")
	asJSON := fs.Bool("json", false, "Print JSON.")
	if code := parseFlags(fs, rest, stderr); code >= 0 {
		return code
	}
	if _, err := applyConfig(fs, lookupEnv); err != nil {
		return usageError(stderr, "retention", "%v", err)
	}
	switch sub {
	case "classes":
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLASS\tDAYS\tDUTY\tRULE")
		for _, c := range retention.Classes() {
			days := fmt.Sprint(c.DefaultKeepDays)
			if c.DefaultKeepDays == 0 {
				days = "set by firm"
			} else if c.MaxKeepDays > 0 {
				days = fmt.Sprintf("%d–%d", c.MinKeepDays, c.MaxKeepDays)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, days, yesNo(c.Duty), c.Title)
		}
		_ = tw.Flush()
		return exitOK
	case "list", "set", "run":
	case "":
		return usageError(stderr, "retention", "no subcommand (classes, list, set or run)")
	default:
		return usageError(stderr, "retention", "unknown subcommand %q", sub)
	}
	if sub != "list" && (strings.TrimSpace(*actor) == "" || strings.TrimSpace(*reason) == "") {
		return usageError(stderr, "retention", "--actor and --reason are required for the audit log")
	}
	if sub == "set" {
		if *tenant == "" || *class == "" {
			return usageError(stderr, "retention", "--tenant and --class are required")
		}
		if _, err := retention.LookupClass(*class); err != nil {
			return usageError(stderr, "retention", "--class: %v", err)
		}
	}
	a, hint, err := openAdmin(ctx, &f, withNATS, "retention")
	if err != nil {
		return fail(stderr, err, hint)
	}
	defer a.close()
	switch sub {
	case "list":
		ps, err := warehouse.ListPolicies(ctx, a.ch, *tenant)
		if err != nil {
			return fail(stderr, err, "")
		}
		if *asJSON {
			if ps == nil {
				ps = []warehouse.PolicyAssignment{}
			}
			if err := printJSON(stdout, ps); err != nil {
				return fail(stderr, err, "")
			}
			return exitOK
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TENANT\tCHANNEL\tCLASS\tKEEP_DAYS\tUPDATED")
		for _, p := range ps {
			ch := p.Channel
			if ch == "" {
				ch = "(default)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", p.Tenant, ch, p.Class, p.KeepDays, p.UpdatedAt.Format(time.RFC3339))
		}
		if len(ps) == 0 {
			fmt.Fprintln(tw, "(no policies: nothing is purged)")
		}
		_ = tw.Flush()
		return exitOK
	case "set":
		p, err := a.svc.SetPolicy(ctx, retention.PolicyRequest{Tenant: *tenant, Channel: *channel, Class: *class, KeepDays: *keepDays,
			Actor: *actor, Reason: *reason})
		if err != nil {
			return adminError(stderr, err, "vigil retention classes")
		}
		fmt.Fprintf(stdout, "policy %s (%d days) assigned to tenant %s channel %s\n", p.Class, p.KeepDays, p.Tenant, orDefault(p.Channel))
		return exitOK
	default: // run
		rep, err := a.svc.Run(ctx, retention.RunOptions{DryRun: *dryRun, Actor: *actor, Reason: *reason})
		if err != nil {
			return adminError(stderr, err, "")
		}
		if *asJSON {
			if err := printJSON(stdout, rep); err != nil {
				return fail(stderr, err, "")
			}
			return exitOK
		}
		writeRunReport(stdout, rep)
		return exitOK
	}
}

func writeRunReport(w io.Writer, rep *retention.RunReport) {
	verb := "removed"
	if rep.DryRun {
		verb = "would remove"
		fmt.Fprintln(w, "Dry run: nothing was changed.")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TENANT\tCHANNEL\tCLASS\tCUTOFF\tMESSAGES\tVERDICTS\tSTREAM\tHELD")
	var total uint64
	for _, p := range rep.Policies {
		total += p.Messages
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\n", p.Tenant, orDefault(p.Channel), p.Class, p.Cutoff.Format(time.RFC3339),
			p.Messages, p.Verdicts, p.StreamMessages, p.Held)
	}
	_ = tw.Flush()
	for _, e := range rep.Erasures {
		fmt.Fprintf(w, "deferred erasure %s (tenant %s): %s\n", e.Request, e.Tenant, e.Outcome)
	}
	fmt.Fprintf(w, "retention run %s %d messages; %d deferred erasures due\n", verb, total, len(rep.Erasures))
}

func classNames() string {
	var n []string
	for _, c := range retention.Classes() {
		n = append(n, c.Name)
	}
	return strings.Join(n, ", ")
}

func orDefault(ch string) string {
	if ch == "" {
		return "(default)"
	}
	return ch
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
