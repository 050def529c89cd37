package warehouse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigilhq/vigil/bus"
)

// ReplayConfig selects what [Replay] rebuilds.
type ReplayConfig struct {
	// Streams to replay. Default: every stream the sink projects.
	Streams []string
	// FromSeq starts each stream at this sequence (0: the beginning).
	FromSeq uint64
	// Since starts each stream at its first message stored at or after
	// Since. FromSeq and Since are exclusive.
	Since time.Time
	// BatchRows bounds one INSERT. Default [DefaultBatchRows].
	BatchRows int
	// Progress, if set, is called after every batch with the stream, the
	// records handled so far and the stream's last sequence at the start
	// (an upper bound: erased records leave gaps).
	Progress func(stream string, done, total uint64)
}

// ReplayStats counts what [Replay] did per stream.
type ReplayStats struct {
	Rows    map[string]uint64
	Skipped map[string]uint64 // records that could not be decoded
}

// ErrReplayConfig is returned by [Replay] for contradictory settings.
var ErrReplayConfig = errors.New("invalid replay")

// Replay rebuilds the ClickHouse projections from the streams, the source
// of truth (event sourcing): it reads each stream with an ordered consumer
// up to the last sequence it had when the replay started and inserts the
// records exactly as the sink would. Tables are ReplacingMergeTree keyed by
// record id, so replaying over rows that are already there adds nothing a
// FINAL query would see. Messages erased from the streams are gone and stay
// gone; the tokens of shredded subjects still point at shredded keys.
// Production consumers are untouched: the ordered consumer is ephemeral.
func Replay(ctx context.Context, b *bus.Bus, conn driver.Conn, cfg ReplayConfig) (ReplayStats, error) {
	st := ReplayStats{Rows: map[string]uint64{}, Skipped: map[string]uint64{}}
	if cfg.FromSeq > 0 && !cfg.Since.IsZero() {
		return st, fmt.Errorf("%w: give a start sequence or a start time, not both", ErrReplayConfig)
	}
	if len(cfg.Streams) == 0 {
		cfg.Streams = []string{bus.StreamMessages, bus.StreamVerdicts, bus.StreamEvaluations, bus.StreamAudit, bus.StreamReview}
	}
	for _, s := range cfg.Streams {
		if _, ok := tableFor[s]; !ok {
			return st, fmt.Errorf("%w: no table for stream %q", ErrReplayConfig, s)
		}
	}
	if cfg.BatchRows <= 0 {
		cfg.BatchRows = DefaultBatchRows
	}
	var nonce [4]byte
	_, _ = rand.Read(nonce[:])
	run := hex.EncodeToString(nonce[:])
	for _, stream := range cfg.Streams {
		if err := replayStream(ctx, b, conn, stream, run, cfg, &st); err != nil {
			return st, err
		}
	}
	return st, nil
}

func replayStream(ctx context.Context, b *bus.Bus, conn driver.Conn, stream, run string, cfg ReplayConfig, st *ReplayStats) error {
	s, err := b.JetStream().Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("replay %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("replay %s: %w", stream, err)
	}
	last := info.State.LastSeq
	if info.State.Msgs == 0 || cfg.FromSeq > last {
		return nil
	}
	occ := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	switch {
	case cfg.FromSeq > 0:
		occ.DeliverPolicy, occ.OptStartSeq = jetstream.DeliverByStartSequencePolicy, cfg.FromSeq
	case !cfg.Since.IsZero():
		since := cfg.Since
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := s.OrderedConsumer(ctx, occ)
	if err != nil {
		return fmt.Errorf("replay %s: %w", stream, err)
	}
	var done uint64
	for {
		batch, err := cons.Fetch(cfg.BatchRows, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			return fmt.Errorf("replay %s: fetch: %w", stream, err)
		}
		var msgs []jetstream.Msg
		reached := false
		for m := range batch.Messages() {
			msgs = append(msgs, m)
			if md, err := m.Metadata(); err == nil && md.Sequence.Stream >= last {
				reached = true
			}
		}
		if len(msgs) > 0 {
			rows, bad := decodeBatch(stream, msgs)
			st.Skipped[stream] += uint64(len(bad))
			if len(rows.recs) > 0 {
				ictx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{
					"insert_deduplication_token": "replay:" + run + ":" + dedupToken(stream, rows.seqs),
					"async_insert":               0,
				}))
				if err := insertRecords(ictx, conn, tableFor[stream], rows.recs, rows.seqs); err != nil {
					return fmt.Errorf("replay %s: %w", stream, err)
				}
				st.Rows[stream] += uint64(len(rows.recs))
			}
			done += uint64(len(msgs))
			if cfg.Progress != nil {
				cfg.Progress(stream, done, last)
			}
		}
		if reached {
			return nil
		}
		if len(msgs) == 0 {
			// Nothing within the wait and the last sequence not seen: the
			// rest was deleted (erasure) or lies before the start point.
			if ctx.Err() != nil {
				return fmt.Errorf("replay %s: %w", stream, ctx.Err())
			}
			return nil
		}
	}
}
