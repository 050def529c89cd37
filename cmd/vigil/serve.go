package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/ingest"
	"github.com/vigilhq/vigil/pii"
	"github.com/vigilhq/vigil/review"
	"github.com/vigilhq/vigil/warehouse"
)

// Defaults of `vigil serve`.
const (
	DefaultNATSURL = "nats://127.0.0.1:4222"
)

const serveUsage = `Run Vigil against an external NATS JetStream cluster and ClickHouse server:
the production shape. Run N replicas behind a load balancer; NATS and
ClickHouse carry the distribution.

Usage:
  vigil serve --nats nats://… --clickhouse clickhouse://… [flags]

Ingest requires bearer tokens bound to tenants (tokens: in --config, or
VIGIL_TOKENS="token=tenant,…"); without any, serve refuses to start unless
--insecure is given.

Every flag can also be set as VIGIL_<FLAG> or as a snake_case key in the
--config YAML file. Precedence: flag > env > file. Secrets are never logged.

The first SIGINT/SIGTERM drains (stop accepting, finish in-flight work, flush
the sink) and exits 0; a second one aborts.

Exit codes:
  0  clean shutdown
  1  start-up failed (the error says why and what to do)
  2  bad flags
`

type serveFlags struct {
	config      string
	http        string
	nats        string
	natsCreds   string
	natsNKey    string
	natsTLSCA   string
	natsTLSCert string
	natsTLSKey  string
	clickhouse  string
	onCluster   string
	replicas    int
	partitions  int
	tokens      string
	insecure    bool
	logLevel    string
	rules       string
	piiKeys     string
	retention   bool
	strict      bool
	maxBytes    int64
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f serveFlags
	fs := flagSet("serve", serveUsage, stdout)
	fs.StringVar(&f.config, "config", "", "YAML config file (keys are flag names in snake_case; tokens: a map of token to tenant).")
	fs.StringVar(&f.http, "http", DefaultHTTPAddr, "Address of the HTTP API, health and metrics.")
	fs.StringVar(&f.nats, "nats", DefaultNATSURL, "NATS server URL(s), comma-separated.")
	fs.StringVar(&f.natsCreds, "nats-creds", "", "NATS credentials file (JWT + NKey).")
	fs.StringVar(&f.natsNKey, "nats-nkey", "", "NATS NKey seed file.")
	fs.StringVar(&f.natsTLSCA, "nats-tls-ca", "", "PEM file of CAs that sign the NATS servers' certificates.")
	fs.StringVar(&f.natsTLSCert, "nats-tls-cert", "", "Client certificate for mutual TLS with NATS.")
	fs.StringVar(&f.natsTLSKey, "nats-tls-key", "", "Client key for mutual TLS with NATS.")
	fs.StringVar(&f.clickhouse, "clickhouse", "", "ClickHouse address: clickhouse://user:pass@host:9000/vigil (native) or http://host:8123/vigil. Required.")
	fs.StringVar(&f.onCluster, "on-cluster", "", "ClickHouse cluster name: DDL gets ON CLUSTER and Replicated* engines.")
	fs.IntVar(&f.replicas, "replicas", 3, "Replicas of every JetStream stream and bucket (3 in production).")
	fs.IntVar(&f.partitions, "partitions", bus.DefaultPartitions, "Partitions of the MESSAGES stream (evaluation parallelism).")
	fs.StringVar(&f.tokens, "tokens", "", "Bearer tokens as token=tenant,… (prefer VIGIL_TOKENS or the config file).")
	fs.BoolVar(&f.insecure, "insecure", false, "Allow starting without tokens: any client may write any tenant. Never in production.")
	fs.StringVar(&f.logLevel, "log-level", "info", "Log level: debug, info, warn, error.")
	fs.StringVar(&f.rules, "rules", "", "Directory of rule files (reloaded on change). Default: the finance and healthcare packs built into the binary.")
	fs.StringVar(&f.piiKeys, "pii-keys", "", "JSON file of PII vault keys per tenant ({\"tenants\": {…}, \"default\": {\"kek\": …, \"token_key\": …}}). Default: VIGIL_PII_KEK and VIGIL_PII_TOKEN_KEY.")
	fs.BoolVar(&f.retention, "retention-schedule", true, "Run the retention job daily inside this process.")
	fs.BoolVar(&f.strict, "strict", false, "Reject unknown JSON fields in ingested messages.")
	fs.Int64Var(&f.maxBytes, "messages-max-bytes", 0, "Bound of the MESSAGES stream in bytes; when full, ingest answers 503 with Retry-After and old records are kept. 0: bounded only by the JetStream store.")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	fc, err := applyConfig(fs, lookupEnv)
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\nTry: vigil serve --help\n", err)
		return exitUsage
	}
	logger, err := newLogger(stderr, f.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return exitUsage
	}
	tokens, err := parseTokens(f.tokens, fc.Tokens)
	if err != nil {
		fmt.Fprintf(stderr, "Error: --tokens: %v\n", err)
		return exitUsage
	}
	if f.clickhouse == "" {
		fmt.Fprintf(stderr, "Error: --clickhouse is required\nTry: vigil serve --clickhouse clickhouse://host:9000/vigil (or vigil dev for an embedded one)\n")
		return exitUsage
	}
	if len(tokens) == 0 && !f.insecure {
		fmt.Fprintf(stderr, "Error: no ingest tokens configured\nTry: set VIGIL_TOKENS=\"<token>=<tenant>\" (or tokens: in --config), or pass --insecure for a test deployment\n")
		return exitUsage
	}
	var keys pii.KeyProvider
	if f.piiKeys != "" {
		keys, err = pii.LoadStaticKeysFile(f.piiKeys)
	} else {
		keys, err = pii.StaticKeysFromEnv(os.Getenv)
	}
	if err != nil {
		return fail(stderr, fmt.Errorf("PII vault keys: %w", err),
			"pass --pii-keys FILE or set VIGIL_PII_KEK and VIGIL_PII_TOKEN_KEY (base64, 32 bytes each, different)")
	}
	reportFDLimit(logger)

	a := newApp(logger)
	defer a.close(context.WithoutCancel(ctx))
	co := bus.ConnectOptions{Name: "vigil serve", CredsFile: f.natsCreds, NKeyFile: f.natsNKey,
		TLSCA: f.natsTLSCA, TLSCert: f.natsTLSCert, TLSKey: f.natsTLSKey}
	if err := a.openBus(ctx, f.nats, bus.Config{Replicas: f.replicas, Partitions: f.partitions, MaxMessagesBytes: f.maxBytes}, co); err != nil {
		return fail(stderr, err, "check --nats and its credentials; for a single NATS server pass --replicas 1")
	}
	if err := a.openWarehouse(ctx, f.clickhouse, warehouse.SchemaOptions{OnCluster: f.onCluster}); err != nil {
		hint := ""
		if errors.Is(err, warehouse.ErrUnreachable) {
			hint = "check --clickhouse (host, port, user, password)"
		}
		return fail(stderr, err, hint)
	}
	err = a.startPipeline(ctx, pipelineConfig{
		keys:      keys,
		rulesDir:  f.rules,
		ingest:    ingest.Config{Tokens: tokens, Insecure: len(tokens) == 0, Strict: f.strict},
		review:    review.Config{Tokens: fc.Reviewers},
		retention: f.retention,
	})
	if err != nil {
		return fail(stderr, err, "")
	}
	ln, err := net.Listen("tcp", f.http)
	if err != nil {
		return fail(stderr, fmt.Errorf("listen on %s: %w", f.http, err), "pass another --http address")
	}
	a.serveHTTP(ln)
	if len(tokens) == 0 {
		logger.Warn("vigil serve runs --insecure without tokens: any client may write any tenant")
	}
	logger.Info("vigil serve started", "http", ln.Addr().String(), "tenants", countTenants(tokens))

	a.runUntilDone(ctx)
	return exitOK
}

// parseTokens merges token=tenant pairs from a flag/env value with the
// config file's map. The flag wins for a token present in both.
func parseTokens(s string, file map[string]string) (map[string]string, error) {
	out := map[string]string{}
	for k, v := range file {
		out[k] = v
	}
	for _, pair := range strings.Split(s, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		tok, tenant, ok := strings.Cut(pair, "=")
		if !ok || tok == "" || tenant == "" {
			// Never echo the pair: it holds a secret.
			return nil, errors.New("want token=tenant pairs separated by commas")
		}
		out[tok] = tenant
	}
	return out, nil
}

func countTenants(tokens map[string]string) int {
	seen := map[string]bool{}
	for _, t := range tokens {
		seen[t] = true
	}
	return len(seen)
}

// reportFDLimit logs the open-files limit: each WebSocket session holds one
// descriptor, so the limit caps sessions per replica.
func reportFDLimit(logger interface{ Info(string, ...any) }) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err == nil {
		// Go raises the soft limit to the hard one at start-up (since 1.19).
		logger.Info("file descriptor limit", "soft", rl.Cur, "hard", rl.Max)
	}
}
