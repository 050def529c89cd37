package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/warehouse/chlocal"
)

// Defaults of `vigil dev`, quoted in its --help.
const (
	DefaultDataDir        = "./data"
	DefaultHTTPAddr       = ":8080"
	DefaultNATSPort       = 4222
	DefaultClickHouseHTTP = "127.0.0.1:8123"
	DefaultShutdownGrace  = 20 * time.Second
)

const devUsage = `Run Vigil with everything embedded: NATS JetStream and ClickHouse (chDB)
in one process, on one data directory. For a laptop, a demo or CI; production
uses 'vigil serve' against a NATS cluster and a ClickHouse server.

Usage:
  vigil dev [flags]

Serves:
  --http            /healthz, /readyz, /metrics and the ingest API (/v1/...)
  --nats-port       NATS clients (nats pub, platforms on NATS)
  --clickhouse-http ClickHouse's HTTP interface (curl, clickhouse-go, BI tools)

Every flag can also be set as VIGIL_<FLAG> (e.g. VIGIL_DATA=/var/lib/vigil) or
as a snake_case key in the --config YAML file. Precedence: flag > env > file.

The first SIGINT/SIGTERM drains and exits 0; a second one aborts.

Exit codes:
  0  clean shutdown
  1  start-up failed (the error says why and what to do)
  2  bad flags
`

type devFlags struct {
	config         string
	data           string
	http           string
	natsPort       int
	clickhouseHTTP string
	chdbLib        string
	syncInterval   string
	logLevel       string
	rules          string
	maxBytes       int64
}

func (f *devFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.config, "config", "", "YAML config file (keys are flag names in snake_case).")
	fs.StringVar(&f.data, "data", DefaultDataDir, "Data directory for the NATS store and the ClickHouse tables.")
	fs.StringVar(&f.http, "http", DefaultHTTPAddr, "Address of the HTTP API, health and metrics.")
	fs.IntVar(&f.natsPort, "nats-port", DefaultNATSPort, "Port of the embedded NATS server (-1 picks a free one).")
	fs.StringVar(&f.clickhouseHTTP, "clickhouse-http", DefaultClickHouseHTTP, "Address (or port) of the embedded ClickHouse HTTP interface.")
	fs.StringVar(&f.chdbLib, "chdb-lib", "", "Path to libchdb.so. Default: $VIGIL_CHDB_LIB, else the `make deps` cache ~/.cache/vigil/chdb/"+chlocal.ChDBVersion+"/libchdb.so.")
	fs.StringVar(&f.syncInterval, "sync-interval", "always", "JetStream fsync policy: 'always' (every write, compliance grade) or a duration such as 2m (faster; a power loss can lose acked messages).")
	fs.StringVar(&f.logLevel, "log-level", "info", "Log level: debug, info, warn, error.")
	fs.Int64Var(&f.maxBytes, "messages-max-bytes", 0, "Bound of the MESSAGES stream in bytes; when full, ingest answers 503 with Retry-After and old records are kept. 0: bounded only by the JetStream store.")
	fs.StringVar(&f.rules, "rules", "", "Directory of rule files (reloaded on change). Default: the finance and healthcare packs built into the binary.")
}

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f devFlags
	fs := flagSet("dev", devUsage, stdout)
	f.register(fs)
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "Error: unexpected argument %q\nTry: vigil dev --help\n", fs.Arg(0))
		return exitUsage
	}
	if _, err := applyConfig(fs, lookupEnv); err != nil {
		fmt.Fprintf(stderr, "Error: %v\nTry: vigil dev --help\n", err)
		return exitUsage
	}
	logger, err := newLogger(stderr, f.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return exitUsage
	}
	sync, err := parseSyncInterval(f.syncInterval)
	if err != nil {
		fmt.Fprintf(stderr, "Error: --sync-interval: %v\n", err)
		return exitUsage
	}
	chAddr := f.clickhouseHTTP
	if _, err := strconv.Atoi(chAddr); err == nil {
		chAddr = "127.0.0.1:" + chAddr
	}

	st, err := startEmbeddedStack(ctx, logger, embeddedStackConfig{
		dataDir:        f.data,
		natsPort:       f.natsPort,
		clickhouseHTTP: chAddr,
		chdbLib:        f.chdbLib,
		syncInterval:   sync,
		rulesDir:       f.rules,
		busConfig:      bus.Config{MaxMessagesBytes: f.maxBytes},
	})
	if err != nil {
		var se *stackError
		if errors.As(err, &se) {
			return fail(stderr, se.err, se.hint)
		}
		return fail(stderr, err, "")
	}
	a, nats, chSrv, engine, console := st.app, st.nats, st.chSrv, st.engine, st.consoleToken
	defer st.release()
	defer a.close(context.WithoutCancel(ctx))

	ln, err := net.Listen("tcp", f.http)
	if err != nil {
		return fail(stderr, fmt.Errorf("listen on %s: %w", f.http, err), "pass another --http address")
	}
	a.serveHTTP(ln)

	logger.Warn("vigil dev runs without authentication: any client may write any tenant; use 'vigil serve' with tokens in production")
	logger.Info("vigil dev started",
		"http", ln.Addr().String(),
		"nats", nats.ClientURL(),
		"clickhouse_http", "http://"+chSrv.Addr(),
		"data", f.data,
		"clickhouse_version", engine.Version())
	base := httpURL(ln.Addr())
	fmt.Fprintf(stderr, `
Vigil is up.
  readiness     curl %[1]s/readyz
  send          curl -XPOST %[1]s/v1/messages -d '{"tenant":"acme","conversation_id":"c1","sender":{"id":"u1","role":"advisor"},"sent_at":"%[4]s","text":"text me on whatsapp, guaranteed returns"}'
  verdicts      curl 'http://%[2]s/?query=SELECT+rule_id,action,count()+FROM+vigil.verdicts+FINAL+GROUP+BY+ALL'
  reports       vigil report --list
  console       %[1]s/console  (token: %[3]s)

`, base, chSrv.Addr(), console, time.Now().UTC().Format(time.RFC3339))

	a.runUntilDone(ctx)
	return exitOK
}

func httpURL(addr net.Addr) string {
	if ta, ok := addr.(*net.TCPAddr); ok && ta.IP.IsUnspecified() {
		return fmt.Sprintf("http://localhost:%d", ta.Port)
	}
	return "http://" + addr.String()
}

func parseSyncInterval(s string) (time.Duration, error) {
	if s == "always" {
		return bus.SyncAlways, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("want 'always' or a positive duration such as 2m (got %q)", s)
	}
	return d, nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: want debug, info, warn or error (got %q)", level)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}
