package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigilhq/vigil/bus"
)

// Defaults of [BaselineConfig].
const (
	// DefaultBaselineDuration is how long the baseline publishes.
	DefaultBaselineDuration = 10 * time.Second
	// DefaultBaselinePayloads is the number of distinct generated payloads
	// the baseline cycles through (generated before the clock starts).
	DefaultBaselinePayloads = 20000
	// DefaultBaselineMaxPending bounds asynchronous publishes in flight.
	DefaultBaselineMaxPending = 4096
	// DefaultBaselineFetch is the pull consumer's Fetch batch.
	DefaultBaselineFetch = 1000
	// DefaultBaselineDrain bounds the wait for the consumer to catch up
	// after the last publish.
	DefaultBaselineDrain = 30 * time.Second
)

// baselineStream is the one stream of the baseline server.
const baselineStream = "BASELINE"

// BaselineConfig configures [Baseline]: bare JetStream with no Vigil code
// between the generator and the store.
type BaselineConfig struct {
	// DataDir holds the embedded server's store. Required; Baseline does not
	// remove it.
	DataDir string
	// SyncInterval is the store's fsync policy, as
	// bus.EmbeddedConfig.SyncInterval ([bus.SyncAlways] is 0).
	SyncInterval time.Duration
	// Duration is how long messages are published. Default
	// [DefaultBaselineDuration].
	Duration time.Duration
	// Seed and Mix drive the generator; the zero Mix means [DefaultMix].
	Seed int64
	Mix  Mix
	// Payloads is the number of distinct payloads. Default
	// [DefaultBaselinePayloads].
	Payloads int
	// MaxPending bounds publishes in flight. Default
	// [DefaultBaselineMaxPending].
	MaxPending int
	// Fetch is the pull batch. Default [DefaultBaselineFetch].
	Fetch int
	// Logger receives the server's warnings. nil discards them.
	Logger *slog.Logger
}

// BaselineResult is what [Baseline] measured.
type BaselineResult struct {
	// SyncInterval is "always" or a duration.
	SyncInterval string `json:"sync_interval"`
	// Published and Consumed count messages; Consumed ones were acked.
	Published int64 `json:"published"`
	Consumed  int64 `json:"consumed"`
	// MeanBytes is the mean payload size.
	MeanBytes float64 `json:"mean_bytes"`
	// Elapsed runs from the first publish to the last consumer ack.
	Elapsed time.Duration `json:"-"`
	// ElapsedSeconds is Elapsed for JSON.
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// PublishRate is Published over the publishing time (first publish to
	// last PubAck).
	PublishRate float64 `json:"publish_rate"`
	// Rate is the end-to-end rate: Consumed / Elapsed.
	Rate float64 `json:"rate"`
	// CPUSecondsPerMsg is the process CPU time (user+system) per consumed
	// message; 0 where unknown.
	CPUSecondsPerMsg float64 `json:"cpu_seconds_per_msg"`
}

// SyncLabel names a sync interval as the --sync-interval flag spells it.
func SyncLabel(d time.Duration) string {
	if d == bus.SyncAlways {
		return "always"
	}
	return d.String()
}

// Baseline measures bare JetStream on an embedded server with the same
// fsync policy as Vigil's: generated messages (the ingest JSON, the same
// size distribution) published asynchronously with a unique Nats-Msg-Id
// each, as ingest publishes, and consumed concurrently by a durable pull
// consumer with Fetch and an explicit ack per message. Client and server
// talk over loopback TCP in the same process. The rate is consumed
// messages per second.
func Baseline(ctx context.Context, cfg BaselineConfig) (*BaselineResult, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("%w: baseline needs a data directory", ErrInvalidConfig)
	}
	if cfg.Duration <= 0 {
		cfg.Duration = DefaultBaselineDuration
	}
	if cfg.Payloads <= 0 {
		cfg.Payloads = DefaultBaselinePayloads
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = DefaultBaselineMaxPending
	}
	if cfg.Fetch <= 0 {
		cfg.Fetch = DefaultBaselineFetch
	}
	if cfg.Mix == (Mix{}) {
		cfg.Mix = DefaultMix
	}
	payloads, subjects, mean, err := baselinePayloads(cfg)
	if err != nil {
		return nil, err
	}

	srv, err := bus.StartEmbedded(ctx, bus.EmbeddedConfig{
		DataDir: cfg.DataDir, Host: "127.0.0.1", Port: -1,
		SyncInterval: cfg.SyncInterval, ServerName: "baseline", Logger: cfg.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("start baseline NATS: %w", err)
	}
	defer func() { _ = srv.Shutdown(context.WithoutCancel(ctx)) }()
	nc, err := nats.Connect(srv.ClientURL(), nats.Name("vigil bench baseline"))
	if err != nil {
		return nil, fmt.Errorf("connect to baseline NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(cfg.MaxPending))
	if err != nil {
		return nil, fmt.Errorf("baseline jetstream: %w", err)
	}
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: baselineStream, Subjects: []string{"base.>"}, Storage: jetstream.FileStorage,
		Duplicates: bus.DefaultDuplicateWindow, Discard: jetstream.DiscardNew,
	})
	if err != nil {
		return nil, fmt.Errorf("create baseline stream: %w", err)
	}
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: "baseline", AckPolicy: jetstream.AckExplicitPolicy,
		MaxAckPending: 4 * cfg.Fetch,
	})
	if err != nil {
		return nil, fmt.Errorf("create baseline consumer: %w", err)
	}

	var (
		published atomic.Int64
		pubDone   = make(chan struct{})
		pubErr    error
		pubEnd    time.Time
		wg        sync.WaitGroup
	)
	cpu0 := cpuTime()
	start := time.Now()
	wg.Add(1)
	go func() { // publisher, owned by Baseline (waited below)
		defer wg.Done()
		defer close(pubDone)
		pctx, cancel := context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
		for i := 0; pctx.Err() == nil; i++ {
			k := i % len(payloads)
			m := &nats.Msg{Subject: subjects[k], Data: payloads[k], Header: nats.Header{}}
			m.Header.Set(jetstream.MsgIDHeader, strconv.Itoa(i))
			if _, err := js.PublishMsgAsync(m); err != nil {
				if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
					continue
				}
				pubErr = fmt.Errorf("baseline publish: %w", err)
				return
			}
			published.Add(1)
		}
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(DefaultBaselineDrain):
			pubErr = errors.New("baseline publish: pub acks not complete after the drain timeout")
		case <-ctx.Done():
		}
		pubEnd = time.Now()
	}()

	var consumed int64
	var last time.Time
	var consErr error
	pubFinished := false
	var drainBy time.Time
	for ctx.Err() == nil {
		if !pubFinished {
			select {
			case <-pubDone:
				pubFinished = true
				drainBy = time.Now().Add(DefaultBaselineDrain)
			default:
			}
		}
		if pubFinished && (consumed >= published.Load() || time.Now().After(drainBy)) {
			break
		}
		batch, err := cons.Fetch(cfg.Fetch, jetstream.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			consErr = fmt.Errorf("baseline fetch: %w", err)
			break
		}
		for m := range batch.Messages() {
			if err := m.Ack(); err != nil {
				consErr = fmt.Errorf("baseline ack: %w", err)
				break
			}
			consumed++
			last = time.Now()
		}
		if consErr == nil && batch.Error() != nil && !errors.Is(batch.Error(), nats.ErrTimeout) {
			consErr = fmt.Errorf("baseline fetch: %w", batch.Error())
		}
		if consErr != nil {
			break
		}
	}
	cpu := cpuTime() - cpu0
	if !pubFinished {
		<-pubDone
	}
	wg.Wait()
	if pubErr != nil {
		return nil, pubErr
	}
	if consErr != nil {
		return nil, consErr
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	res := &BaselineResult{
		SyncInterval: SyncLabel(cfg.SyncInterval),
		Published:    published.Load(),
		Consumed:     consumed,
		MeanBytes:    mean,
	}
	if last.After(start) {
		res.Elapsed = last.Sub(start)
		res.ElapsedSeconds = res.Elapsed.Seconds()
		res.Rate = float64(consumed) / res.ElapsedSeconds
	}
	if pubEnd.After(start) {
		res.PublishRate = float64(res.Published) / pubEnd.Sub(start).Seconds()
	}
	if consumed > 0 && cpu > 0 {
		res.CPUSecondsPerMsg = cpu.Seconds() / float64(consumed)
	}
	return res, nil
}

// baselinePayloads generates the payloads and their subjects.
func baselinePayloads(cfg BaselineConfig) (payloads [][]byte, subjects []string, mean float64, err error) {
	g, err := NewGenerator(cfg.Seed, cfg.Mix, WithIDPrefix("base"))
	if err != nil {
		return nil, nil, 0, err
	}
	payloads = make([][]byte, cfg.Payloads)
	subjects = make([]string, cfg.Payloads)
	var total int
	for i := range payloads {
		m := g.Next()
		m.SentAt = time.Now().UTC()
		b, err := json.Marshal(m)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("encode baseline payload: %w", err)
		}
		payloads[i] = b
		subjects[i] = "base." + strconv.Itoa(i%bus.DefaultPartitions) + "." + m.Tenant
		total += len(b)
	}
	return payloads, subjects, float64(total) / float64(len(payloads)), nil
}
