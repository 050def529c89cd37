package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil/bench"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/warehouse"
)

// Defaults of `vigil bench`, quoted in its --help.
const (
	DefaultBenchOut          = "bench/results/e2e.md"
	DefaultBenchDuration     = 8 * time.Second
	DefaultBenchQuickPhase   = time.Second
	DefaultBenchSessions     = 64
	DefaultBenchSyncInterval = "always,2m"
	// DefaultBenchMaxProfile is the largest CPU profile kept beside the
	// report; a bigger one is summarised only.
	DefaultBenchMaxProfile = 2 << 20
	// benchDrain bounds the wait for the pipeline to catch up after a
	// phase.
	benchDrain = 30 * time.Second
	// benchVerdictWait is how long verdicts are awaited after the last
	// send of a latency phase; only ~2 % of messages get one, so the
	// others would hold the full wait.
	benchVerdictWait = 2 * time.Second
	// benchPhaseRuleRate is the rule-worthy share in latency phases, so
	// that enough messages get a verdict to time.
	benchPhaseRuleRate = 0.2
	// benchWarmRate is the rate of the unmeasured warm-up.
	benchWarmRate = 50
)

// benchShares are the latency phases, as fractions of the max rate.
var benchShares = []float64{0.25, 0.5, 0.9}

// benchProfileShare is the phase profiled.
const benchProfileShare = 0.9

const benchUsage = `End-to-end benchmark: bare JetStream as the baseline, then the whole
embedded pipeline (ingest → PII → MESSAGES → rule packs → VERDICTS →
ClickHouse) in this process, on a fresh data directory. For each fsync
policy in --sync-interval it measures:

  1. the baseline: async publish + pull consume (Fetch) of the same
     generated messages on a bare embedded JetStream, msgs/s;
  2. the maximum sustained end-to-end rate, by an open-loop ramp (the
     evaluator and the sink must keep up with what was acked), and its
     ratio to the baseline;
  3. ack and ack→verdict latency p50/p99/p99.9 at 25/50/90 % of that rate,
     with a CPU profile of the 90 % phase.

It writes a Markdown report (machine, date, commit, command, numbers) to
--out and prints it (or JSON with --json). A full run takes about 4-5
minutes; --quick is a smoke run of 20-30 s (one policy, 1-second phases).

Usage:
  vigil bench [flags]

Examples:
  vigil bench                                   # the published report
  vigil bench --quick --out /tmp/e2e.md
  vigil bench --sync-interval always --transport http --duration 20s

Exit codes:
  0  the benchmark ran (goals missed are reported, not failures)
  1  it could not run (engines did not start, load failed)
  2  bad flags
`

type benchFlags struct {
	data         string
	duration     time.Duration
	out          string
	transport    string
	sessions     int
	batch        int
	syncInterval string
	chdbLib      string
	rules        string
	quick        bool
	jsonOut      bool
	logLevel     string
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f benchFlags
	fs := flagSet("bench", benchUsage, stdout)
	fs.StringVar(&f.data, "data", "", "Data directory (kept). Default: a temporary directory, removed afterwards.")
	fs.DurationVar(&f.duration, "duration", DefaultBenchDuration, "Length of the baseline and of each latency phase; ramp steps are half of it.")
	fs.StringVar(&f.out, "out", DefaultBenchOut, "Markdown report to write ('-' for none).")
	fs.StringVar(&f.transport, "transport", string(bench.TransportWS), "Load transport: http or ws (ws also measures ack→verdict latency).")
	fs.IntVar(&f.sessions, "sessions", DefaultBenchSessions, "Concurrent senders, one request in flight each.")
	fs.IntVar(&f.batch, "batch", bench.DefaultBatch, "Messages per request.")
	fs.StringVar(&f.syncInterval, "sync-interval", DefaultBenchSyncInterval, "Comma-separated JetStream fsync policies to benchmark: 'always' (compliance default) and/or durations such as 2m.")
	fs.StringVar(&f.chdbLib, "chdb-lib", "", "Path to libchdb.so. Default: $VIGIL_CHDB_LIB, else the `make deps` cache.")
	fs.StringVar(&f.rules, "rules", "", "Directory of rule files. Default: the packs built into the binary.")
	fs.BoolVar(&f.quick, "quick", false, "Smoke run of 20-30 s: the first --sync-interval only, 1-second phases, no profile.")
	fs.BoolVar(&f.jsonOut, "json", false, "Print the report as JSON instead of Markdown.")
	fs.StringVar(&f.logLevel, "log-level", "warn", "Log level: debug, info, warn, error.")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "Error: unexpected argument %q\nTry: vigil bench --help\n", fs.Arg(0))
		return exitUsage
	}
	if _, err := applyConfig(fs, lookupEnv); err != nil {
		fmt.Fprintf(stderr, "Error: %v\nTry: vigil bench --help\n", err)
		return exitUsage
	}
	tr := bench.Transport(f.transport)
	if tr != bench.TransportHTTP && tr != bench.TransportWS {
		fmt.Fprintf(stderr, "Error: --transport: want http or ws (got %q)\nTry: vigil bench --help\n", f.transport)
		return exitUsage
	}
	if f.duration <= 0 || f.sessions <= 0 || f.batch <= 0 {
		fmt.Fprintf(stderr, "Error: --duration, --sessions and --batch must be positive\nTry: vigil bench --help\n")
		return exitUsage
	}
	var syncs []time.Duration
	for _, s := range strings.Split(f.syncInterval, ",") {
		d, err := parseSyncInterval(strings.TrimSpace(s))
		if err != nil {
			fmt.Fprintf(stderr, "Error: --sync-interval: %v\nTry: vigil bench --help\n", err)
			return exitUsage
		}
		syncs = append(syncs, d)
	}
	if f.out != "-" {
		// Fail now rather than after minutes of load.
		if fi, err := os.Stat(filepath.Dir(f.out)); err != nil || !fi.IsDir() {
			fmt.Fprintf(stderr, "Error: --out: directory %s does not exist\nTry: run from the repository root or pass --out FILE\n", filepath.Dir(f.out))
			return exitUsage
		}
	}
	logger, err := newLogger(stderr, f.logLevel)
	if err != nil {
		fmt.Fprintf(stderr, "Error: %v\n", err)
		return exitUsage
	}
	if f.quick {
		syncs = syncs[:1]
		f.duration = min(f.duration, DefaultBenchQuickPhase)
	}
	data := f.data
	if data == "" {
		data, err = os.MkdirTemp("", "vigil-bench-")
		if err != nil {
			return fail(stderr, fmt.Errorf("create data directory: %w", err), "pass --data")
		}
		defer os.RemoveAll(data)
	}

	b := &benchRunner{f: f, logger: logger, stderr: stderr, data: data, transport: tr}
	rep := b.report(args)
	start := time.Now()
	for i, sync := range syncs {
		run := b.runSync(ctx, sync, i == 0)
		rep.Runs = append(rep.Runs, run)
		if ctx.Err() != nil {
			break
		}
	}
	rep.ElapsedSeconds = time.Since(start).Seconds()
	rep.Machine.LoadEnd = loadAvg()

	if f.out != "-" {
		var buf bytes.Buffer
		if err := bench.WriteMarkdown(&buf, rep); err != nil {
			return fail(stderr, fmt.Errorf("render report: %w", err), "")
		}
		if err := os.WriteFile(f.out, buf.Bytes(), 0o644); err != nil {
			return fail(stderr, fmt.Errorf("write report: %w", err), "pass another --out")
		}
	}
	if f.jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return fail(stderr, fmt.Errorf("encode report: %w", err), "")
		}
	} else if err := bench.WriteMarkdown(stdout, rep); err != nil {
		return fail(stderr, fmt.Errorf("render report: %w", err), "")
	}
	for _, r := range rep.Runs {
		if r.Error != "" {
			fmt.Fprintf(stderr, "Error: sync_interval %s: %s\n", r.SyncInterval, r.Error)
			return exitFailure
		}
	}
	return exitOK
}

// benchRunner holds what every run of one `vigil bench` shares.
type benchRunner struct {
	f         benchFlags
	logger    *slog.Logger
	stderr    io.Writer
	data      string
	transport bench.Transport
	// lastMax seeds the next policy's ramp.
	lastMax float64
}

func (b *benchRunner) report(args []string) *bench.E2EReport {
	step := b.step()
	return &bench.E2EReport{
		Machine: bench.Machine{CPUs: runtime.NumCPU(), CPUModel: cpuModel(), LoadStart: loadAvg(),
			GoVersion: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH},
		Date:         time.Now().UTC(),
		Commit:       gitCommit(),
		Command:      strings.TrimSpace("vigil bench " + strings.Join(args, " ")),
		Transport:    b.transport,
		Sessions:     b.f.sessions,
		Batch:        b.f.batch,
		PhaseSeconds: b.f.duration.Seconds(),
		StepSeconds:  step.Seconds(),
	}
}

func (b *benchRunner) step() time.Duration {
	if b.f.quick {
		return DefaultBenchQuickPhase
	}
	return max(b.f.duration/2, time.Second)
}

func (b *benchRunner) progressf(format string, args ...any) {
	fmt.Fprintf(b.stderr, "bench: "+format+"\n", args...)
}

// runSync benchmarks one fsync policy; a failure ends up in E2ERun.Error
// with whatever was measured before it.
func (b *benchRunner) runSync(ctx context.Context, sync time.Duration, first bool) bench.E2ERun {
	label := bench.SyncLabel(sync)
	run := bench.E2ERun{SyncInterval: label}
	dir := filepath.Join(b.data, "sync-"+strings.ReplaceAll(label, "/", "_"))

	if fl, err := bench.FsyncLatency(dir, bench.DefaultFsyncProbes); err != nil {
		b.logger.Warn("fsync probe failed", "err", err)
	} else {
		run.Fsync = &fl
	}
	b.progressf("sync_interval %s: baseline (bare JetStream) for %v", label, b.f.duration)
	bl, err := bench.Baseline(ctx, bench.BaselineConfig{
		DataDir: filepath.Join(dir, "baseline"), SyncInterval: sync, Duration: b.f.duration, Seed: 1,
	})
	if err != nil {
		run.Error = err.Error()
		return run
	}
	run.Baseline = bl
	b.progressf("sync_interval %s: baseline %.0f msgs/s", label, bl.Rate)

	b.progressf("sync_interval %s: starting the embedded stack", label)
	st, err := startEmbeddedStack(ctx, b.logger, embeddedStackConfig{
		dataDir: filepath.Join(dir, "stack"), natsPort: -1, clickhouseHTTP: "127.0.0.1:0",
		chdbLib: b.f.chdbLib, syncInterval: sync, rulesDir: b.f.rules,
	})
	if err != nil {
		var se *stackError
		if errors.As(err, &se) && se.hint != "" {
			err = fmt.Errorf("%w (try: %s)", err, se.hint)
		}
		run.Error = fmt.Sprintf("start the embedded stack: %v", err)
		return run
	}
	defer st.release()
	defer st.app.shutdown(context.WithoutCancel(ctx))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		run.Error = fmt.Sprintf("listen: %v", err)
		return run
	}
	st.app.serveHTTP(ln)
	target := "http://" + ln.Addr().String()
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = bench.WaitReady(rctx, target, nil)
	cancel()
	if err != nil {
		run.Error = fmt.Sprintf("wait for readiness: %v", err)
		return run
	}
	progress, err := stackProgress(ctx, st)
	if err != nil {
		run.Error = err.Error()
		return run
	}

	rc := bench.RunConfig{
		Transport: b.transport, Target: target, Sessions: b.f.sessions, Batch: b.f.batch,
		Seed: 1, VerdictWait: benchVerdictWait, Logger: b.logger,
	}
	// Warm up (connections, chDB's first inserts, the evaluator's caches)
	// at a gentle rate, unmeasured.
	b.progressf("sync_interval %s: warm-up", label)
	warm := rc
	warm.Rate, warm.Duration, warm.NoVerdicts = benchWarmRate, b.step(), true
	if _, err := bench.RunPhase(ctx, warm, 1, benchWarmRate, progress, benchDrain); err != nil {
		run.Error = "warm-up: " + err.Error()
		return run
	}

	rampCfg := bench.RampConfig{Run: rc, Progress: progress, Step: b.step()}
	if b.f.quick {
		rampCfg.Start, rampCfg.Factor, rampCfg.Steps = 100, 2, 2
	} else if b.lastMax > bench.DefaultRampStart {
		// The previous policy's maximum is a good place to start.
		rampCfg.Start = b.lastMax
	}
	if rampCfg.Start == 0 {
		rampCfg.Start = bench.DefaultRampStart
	}
	b.progressf("sync_interval %s: ramp from %.0f msgs/s, steps of %v", label, rampCfg.Start, rampCfg.Step)
	ramp, err := bench.Ramp(ctx, rampCfg)
	run.Ramp = ramp
	if err != nil {
		run.Error = err.Error()
		return run
	}
	for _, s := range ramp.Steps {
		b.progressf("  target %.0f: acked %.0f evaluated %.0f msgs/s, sustained %v %s", s.TargetRate, s.AckedRate, s.EvaluatedRate, s.Sustained, s.Reason)
	}
	run.Rate = ramp.MaxRate
	if bl.Rate > 0 {
		run.Ratio = run.Rate / bl.Rate
	}
	b.lastMax = ramp.MaxTarget
	if ramp.MaxTarget == 0 {
		run.Error = "no ramp step was sustained"
		return run
	}
	b.progressf("sync_interval %s: e2e %.0f msgs/s (%.2fx baseline)", label, run.Rate, run.Ratio)

	rc.Duration = b.f.duration
	if b.f.quick {
		rc.VerdictWait = DefaultBenchQuickPhase
	}
	rc.Mix = bench.DefaultMix
	rc.Mix.RuleRate = benchPhaseRuleRate
	for _, share := range benchShares {
		b.progressf("sync_interval %s: latency at %.0f%% (%.0f msgs/s) for %v", label, 100*share, share*ramp.MaxTarget, rc.Duration)
		var prof *bytes.Buffer
		if share == benchProfileShare && !b.f.quick {
			prof = new(bytes.Buffer)
			if err := pprof.StartCPUProfile(prof); err != nil {
				b.logger.Warn("cpu profile not taken", "err", err)
				prof = nil
			}
		}
		p, err := bench.RunPhase(ctx, rc, share, ramp.MaxTarget, progress, benchDrain)
		if prof != nil {
			pprof.StopCPUProfile()
			run.ProfileShare = share
			name := "e2e.cpu.pprof"
			if !first {
				name = "e2e." + strings.ReplaceAll(label, "/", "_") + ".cpu.pprof"
			}
			run.ProfileTop, run.ProfileFile = b.keepProfile(prof.Bytes(), name)
		}
		if p != nil {
			run.Phases = append(run.Phases, p)
		}
		if err != nil {
			run.Error = err.Error()
			return run
		}
	}
	return run
}

// keepProfile summarises a CPU profile with `go tool pprof -top` and
// writes it beside the report when it is small enough.
func (b *benchRunner) keepProfile(prof []byte, name string) (top, file string) {
	tmp, err := os.CreateTemp("", "vigil-bench-*.pprof")
	if err != nil {
		return "profile not summarised: " + err.Error(), ""
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(prof)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "profile not summarised: " + err.Error(), ""
	}
	if b.f.out != "-" && len(prof) < DefaultBenchMaxProfile {
		file = filepath.Join(filepath.Dir(b.f.out), name)
		if err := os.WriteFile(file, prof, 0o644); err != nil {
			b.logger.Warn("cpu profile not kept", "err", err)
			file = ""
		}
	}
	exe, _ := os.Executable()
	flat, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=20", exe, tmp.Name()).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("profile not summarised (go tool pprof: %v)", err), file
	}
	// Cumulative time of Vigil's, the NATS server's and chDB's frames says
	// which stage the flat time belongs to.
	cum, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=25",
		"-show=vigilhq|nats-server|chlocal", exe, tmp.Name()).CombinedOutput()
	if err != nil {
		return string(flat), file
	}
	return string(flat) + "\n--- cumulative, Vigil / nats-server / chlocal frames only ---\n" + string(cum), file
}

// stackProgress counts evaluations on the EVALUATIONS stream and in the
// warehouse's evaluations table.
func stackProgress(ctx context.Context, st *embeddedStack) (bench.ProgressFunc, error) {
	s, err := st.app.bus.JetStream().Stream(ctx, bus.StreamEvaluations)
	if err != nil {
		return nil, fmt.Errorf("open the %s stream: %w", bus.StreamEvaluations, err)
	}
	q := "http://" + st.chSrv.Addr() + "/?query=" +
		url.QueryEscape("SELECT count() FROM "+warehouse.DefaultDatabase+".evaluations")
	hc := &http.Client{Timeout: 10 * time.Second}
	return func(ctx context.Context) (bench.Counts, error) {
		info, err := s.Info(ctx)
		if err != nil {
			return bench.Counts{}, fmt.Errorf("%s stream info: %w", bus.StreamEvaluations, err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, q, nil)
		if err != nil {
			return bench.Counts{}, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return bench.Counts{}, fmt.Errorf("count evaluations in ClickHouse: %w", err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			return bench.Counts{}, fmt.Errorf("count evaluations in ClickHouse: status %d: %v", resp.StatusCode, err)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(body)), 10, 64)
		if err != nil {
			return bench.Counts{}, fmt.Errorf("count evaluations in ClickHouse: %w", err)
		}
		return bench.Counts{Evaluated: int64(info.State.Msgs), Sunk: n}, nil
	}, nil
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// gitCommit returns the working tree's commit, else the binary's.
func gitCommit() string {
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		return strings.TrimSpace(string(out))
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 7 {
				return s.Value[:7]
			}
		}
	}
	return "unknown"
}
