package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/bench"
)

// Defaults of `vigil simulate`.
const (
	DefaultSimulateTarget   = "http://127.0.0.1:8080"
	DefaultSimulateRate     = 10.0
	DefaultSimulateDuration = 30 * time.Second
	DefaultSimulateSeed     = 1
)

const simulateUsage = `Generate realistic chat traffic against a running Vigil: advisors and
clients (with off-channel requests, promissory language, MNPI hints and
complaints), support chats, a gaming community (banter and the occasional
real threat) and a clinic (MRNs, dates of birth), with a small rate of
rule-worthy and PII-bearing lines (Luhn-valid cards, mod-97-valid IBANs,
emails, phone numbers, participants' names). Traffic is deterministic for a
seed; message ids get a fresh prefix per run so reruns are not deduplicated.

Usage:
  vigil simulate [--target URL | --transport nats --nats URL] [--rate N] [--duration D | --count N] [flags]

Examples:
  vigil simulate --rate 5 --duration 0 --wait 1m    # gentle traffic beside 'vigil dev' until Ctrl-C
  vigil simulate --transport ws --rate 500 --sessions 50 --duration 1m --json

It prints the achieved rate, ack latency (p50/p90/p99/p99.9), errors by
kind (429/503 are retried after Retry-After) and, over WebSocket and NATS,
verdict latency (ack → first verdict). --duration 0 with --count 0 runs
until interrupted; the first Ctrl-C stops sending and prints the summary.

Exit codes:
  0  the run finished and at least one message was acked (or none was sent)
  1  the run could not start, or every message failed
  2  bad flags
`

func runSimulate(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flagSet("simulate", simulateUsage, stdout)
	target := fs.String("target", DefaultSimulateTarget, "Base URL of Vigil's HTTP API (http and ws transports).")
	transport := fs.String("transport", string(bench.TransportHTTP), "How to send: http, ws or nats.")
	natsURL := fs.String("nats", DefaultNATSURL, "NATS server URL (nats transport).")
	rate := fs.Float64("rate", DefaultSimulateRate, "Target messages per second over all sessions; 0 sends as fast as possible.")
	sessions := fs.Int("sessions", bench.DefaultSessions, "Concurrent senders (HTTP clients, WebSocket sessions or NATS requesters).")
	duration := fs.Duration("duration", DefaultSimulateDuration, "How long to send; 0 with --count 0 runs until interrupted.")
	count := fs.Int64("count", 0, "Stop after this many messages (0: no limit).")
	convs := fs.Int("conversations", bench.DefaultConversationsPerSession, "Conversations each session keeps open (each message goes to one at random).")
	batch := fs.Int("batch", bench.DefaultBatch, "Messages per request (>1 uses /v1/messages/batch or a JSON array).")
	tenant := fs.String("tenant", bench.DefaultTenant, "Tenant of the messages (must match the token's tenant).")
	token := fs.String("token", "", "Bearer token for HTTP and WebSocket (prefer VIGIL_TOKEN).")
	seed := fs.Int64("seed", DefaultSimulateSeed, "Seed of the traffic generator.")
	mix := fs.String("mix", "advisory=4,support=3,gaming=2,clinic=1", "Relative weights of conversation kinds.")
	ruleRate := fs.Float64("rule-rate", bench.DefaultMix.RuleRate, "Fraction of rule-worthy messages (0..1).")
	piiRate := fs.Float64("pii-rate", bench.DefaultMix.PIIRate, "Fraction of PII-bearing messages (0..1).")
	verdictWait := fs.Duration("verdict-wait", bench.DefaultVerdictWait, "How long to await verdicts after an ack and after the last send.")
	noVerdicts := fs.Bool("no-verdicts", false, "Do not track verdicts (ws, nats).")
	wait := fs.Duration("wait", 0, "Wait up to this long for the target's /readyz before sending (http, ws); for starting beside 'vigil dev'.")
	jsonOut := fs.Bool("json", false, "Print the result as JSON.")
	logLevel := fs.String("log-level", "warn", "Log level: debug, info, warn, error.")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	// No --config: a VIGIL_CONFIG meant for serve must not leak in. Flags
	// still fall back to VIGIL_* variables (VIGIL_NATS, VIGIL_TOKEN…).
	if _, err := applyConfig(fs, lookupEnv); err != nil {
		fmt.Fprintf(stderr, "Error: %v\nTry: vigil simulate --help\n", err)
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "Error: unexpected argument %q\nTry: vigil simulate --help\n", fs.Arg(0))
		return exitUsage
	}
	m, err := parseMix(*mix)
	if err != nil {
		fmt.Fprintf(stderr, "Error: --mix: %v\nTry: --mix advisory=4,support=3,gaming=2,clinic=1\n", err)
		return exitUsage
	}
	m.RuleRate, m.PIIRate = *ruleRate, *piiRate
	logger, err := newLogger(stderr, *logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return exitUsage
	}
	cfg := bench.RunConfig{
		Transport: bench.Transport(*transport), Target: *target, NATSURL: *natsURL, Token: *token,
		Tenant: *tenant, Rate: *rate, Sessions: *sessions, Duration: *duration, Count: *count,
		Batch: *batch, ConversationsPerSession: *convs, Seed: *seed, Mix: m, VerdictWait: *verdictWait, NoVerdicts: *noVerdicts,
		Logger: logger,
	}
	if *wait > 0 && cfg.Transport != bench.TransportNATS {
		wctx, cancel := context.WithTimeout(ctx, *wait)
		err := bench.WaitReady(wctx, cfg.Target, nil)
		cancel()
		if err != nil {
			return fail(stderr, err, "start 'vigil dev' (or pass --target), or raise --wait")
		}
	}
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		hint := "check --target (is 'vigil dev' running?) and --token"
		if cfg.Transport == bench.TransportNATS {
			hint = "check --nats (is 'vigil dev' running?)"
		}
		if isUsageErr(err) {
			fmt.Fprintf(stderr, "Error: %v\nTry: vigil simulate --help\n", err)
			return exitUsage
		}
		return fail(stderr, err, hint)
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return fail(stderr, err, "")
		}
	} else {
		printSimulation(stdout, cfg, res)
	}
	if res.Sent > 0 && res.Acked == 0 {
		fmt.Fprintf(stderr, "Error: none of %d messages was acked\n", res.Sent)
		if res.Errors["401"] > 0 || res.Errors["403"] > 0 {
			fmt.Fprintln(stderr, "Try: pass --token (or VIGIL_TOKEN) for the --tenant")
		}
		return exitFailure
	}
	return exitOK
}

func isUsageErr(err error) bool {
	return errors.Is(err, bench.ErrInvalidConfig) || errors.Is(err, bench.ErrInvalidMix)
}

// parseMix reads "advisory=4,support=3,…"; kinds left out weigh 0.
func parseMix(s string) (bench.Mix, error) {
	var m bench.Mix
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return m, fmt.Errorf("want kind=weight, got %q", part)
		}
		w, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || !(w >= 0) || math.IsInf(w, 1) {
			return m, fmt.Errorf("weight of %s: want a finite number ≥ 0, got %q", k, v)
		}
		switch bench.Kind(strings.TrimSpace(k)) {
		case bench.KindAdvisory:
			m.Advisory = w
		case bench.KindSupport:
			m.Support = w
		case bench.KindGaming:
			m.Gaming = w
		case bench.KindClinic:
			m.Clinic = w
		default:
			return m, fmt.Errorf("unknown kind %q (want advisory, support, gaming or clinic)", k)
		}
	}
	return m, nil
}

func printSimulation(w io.Writer, cfg bench.RunConfig, r *bench.Result) {
	where := cfg.Target
	if r.Transport == bench.TransportNATS {
		where = cfg.NATSURL
	}
	target := "unlimited"
	if r.TargetRate > 0 {
		target = fmt.Sprintf("%g msgs/s", r.TargetRate)
	}
	fmt.Fprintf(w, "Simulated %d messages over %s to %s in %s\n", r.Sent, r.Transport, where, r.Elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "  sessions %d, target %s, achieved %.1f msgs/s\n", r.Sessions, target, r.Rate)
	fmt.Fprintf(w, "  acked %d, duplicates %d, failed %d; requests %d, retries %d\n", r.Acked, r.Duplicates, r.Failed, r.Requests, r.Retries)
	fmt.Fprintf(w, "  ack latency      %s\n", latencyLine(r.AckLatency))
	if r.VerdictLatency != nil {
		fmt.Fprintf(w, "  verdict latency  %s (%d messages with verdicts, %d verdicts)\n", latencyLine(*r.VerdictLatency), r.VerdictMessages, r.Verdicts)
	}
	if len(r.Errors) > 0 {
		var parts []string
		for _, k := range r.ErrorKinds() {
			parts = append(parts, fmt.Sprintf("%s×%d", k, r.Errors[k]))
		}
		fmt.Fprintf(w, "  errors           %s\n", strings.Join(parts, ", "))
	}
	if len(r.Labels) > 0 {
		ls := make([]string, 0, len(r.Labels))
		for l := range r.Labels {
			ls = append(ls, l)
		}
		sort.Strings(ls)
		var parts []string
		for _, l := range ls {
			parts = append(parts, fmt.Sprintf("%s %d", l, r.Labels[l]))
		}
		fmt.Fprintf(w, "  planted          %s\n", strings.Join(parts, ", "))
	}
}

func latencyLine(l bench.LatencySummary) string {
	if l.Count == 0 {
		return "n/a"
	}
	d := func(x time.Duration) string { return x.Round(10 * time.Microsecond).String() }
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s", d(l.P50), d(l.P90), d(l.P99), d(l.P999), d(l.Max))
}
