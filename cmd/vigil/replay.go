package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/warehouse"
)

const replayUsage = `Rebuild the ClickHouse projections (messages, verdicts, evaluations, audit
log, review events) from the JetStream streams, the source of truth.

Usage:
  vigil replay [--from SEQ | --since TIME] [--stream NAME,...] [flags]

Tables are ReplacingMergeTree keyed by record id, so replaying over rows that
are already there changes nothing a report sees; to rebuild from scratch,
TRUNCATE the tables first. Erased messages are gone from the streams and stay
gone. Production consumers are untouched (replay reads with an ephemeral
ordered consumer). A progress bar is shown when stderr is a terminal.

TIME is RFC 3339 (2026-12-01T00:00:00Z) or a date (2026-12-01).

Exit codes:
  0  replayed
  1  NATS or ClickHouse failed
  2  bad flags
`

func runReplay(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flagSet("replay", replayUsage, stdout)
	var af adminFlags
	af.register(fs, false)
	natsURL := fs.String("nats", DefaultNATSURL, "NATS server URL(s) of the running vigil, comma-separated.")
	natsCreds := fs.String("nats-creds", "", "NATS credentials file (JWT + NKey).")
	from := fs.String("from", "", "Start at this stream sequence (in every stream replayed).")
	since := fs.String("since", "", "Start at the first record stored at or after TIME.")
	streams := fs.String("stream", "", "Comma-separated streams to replay. Default: MESSAGES,VERDICTS,EVALUATIONS,AUDIT,REVIEW.")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if _, err := applyConfig(fs, lookupEnv); err != nil {
		return usageError(stderr, "replay", "%v", err)
	}
	var cfg warehouse.ReplayConfig
	if *from != "" {
		n, err := strconv.ParseUint(*from, 10, 64)
		if err != nil || n == 0 {
			return usageError(stderr, "replay", "--from: want a stream sequence ≥ 1 (got %q)", *from)
		}
		cfg.FromSeq = n
	}
	if *since != "" {
		if *from != "" {
			return usageError(stderr, "replay", "--from and --since are exclusive")
		}
		t, err := parseTimeFlag(*since, cfg.Since)
		if err != nil {
			return usageError(stderr, "replay", "--since: %v", err)
		}
		cfg.Since = t
	}
	if *streams != "" {
		cfg.Streams = strings.Split(*streams, ",")
	}

	ch, _, err := warehouse.Connect(ctx, af.clickhouse)
	if err != nil {
		return fail(stderr, err, "start 'vigil dev' or pass --clickhouse")
	}
	defer ch.Close()
	nc, b, hint, err := openRunningBus(ctx, *natsURL, *natsCreds, "vigil replay", 0, 0)
	if err != nil {
		return fail(stderr, err, hint)
	}
	defer nc.Close()

	var bar *progressbar.ProgressBar
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		cur := ""
		cfg.Progress = func(stream string, done, total uint64) {
			if stream != cur {
				if bar != nil {
					_ = bar.Finish()
				}
				cur = stream
				bar = progressbar.NewOptions64(int64(total), progressbar.OptionSetWriter(stderr),
					progressbar.OptionSetDescription(stream), progressbar.OptionShowCount(), progressbar.OptionThrottle(100_000_000))
			}
			_ = bar.Set64(int64(min(done, total)))
		}
	}
	st, err := warehouse.Replay(ctx, b, ch, cfg)
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return fail(stderr, err, "")
	}
	for _, s := range []string{bus.StreamMessages, bus.StreamVerdicts, bus.StreamEvaluations, bus.StreamAudit, bus.StreamReview} {
		if n, ok := st.Rows[s]; ok || st.Skipped[s] > 0 {
			fmt.Fprintf(stdout, "%-12s %d rows", s, n)
			if st.Skipped[s] > 0 {
				fmt.Fprintf(stdout, " (%d undecodable records skipped)", st.Skipped[s])
			}
			fmt.Fprintln(stdout)
		}
	}
	return exitOK
}
