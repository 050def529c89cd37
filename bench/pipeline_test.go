package bench_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigilhq/vigil/bench"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/bus/bustest"
	"github.com/vigilhq/vigil/evaluator"
	"github.com/vigilhq/vigil/ingest"
	"github.com/vigilhq/vigil/pii"
	"github.com/vigilhq/vigil/rules"
)

const pipelineToken = "tok-bench"

// pipeline is the real front half of Vigil: embedded JetStream, the bus,
// the pii tokenizer with its vault, ingest over HTTP and NATS, and the
// evaluator running the finance rule pack.
type pipeline struct {
	natsURL string
	js      jetstream.JetStream
	target  string
}

// newPipeline starts the pipeline on bustest's JetStream or, with
// syncAlways, on an embedded server that fsyncs every write as production
// does (sync_interval: always).
func newPipeline(t *testing.T, partitions int, syncAlways bool) *pipeline {
	t.Helper()
	quiet := slog.New(slog.DiscardHandler)
	var nc *nats.Conn
	var natsURL string
	if syncAlways {
		e, err := bus.StartEmbedded(context.Background(), bus.EmbeddedConfig{
			DataDir: t.TempDir(), Port: -1, SyncInterval: bus.SyncAlways, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.Shutdown(context.Background()) })
		natsURL = e.ClientURL()
		if nc, err = nats.Connect(natsURL); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
	} else {
		ns := bustest.New(t)
		nc, natsURL = ns.Conn, ns.Server.ClientURL()
	}
	bctx, bcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer bcancel()
	b, err := bus.Open(bctx, nc, bus.Config{Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}

	key := func() string {
		k := make([]byte, pii.KeySize)
		_, _ = rand.Read(k)
		return base64.StdEncoding.EncodeToString(k)
	}
	keys, err := pii.NewStaticKeys(pii.StaticKeysConfig{Default: &pii.StaticTenantKeys{KEK: key(), TokenKey: key()}})
	if err != nil {
		t.Fatal(err)
	}
	vault, err := pii.NewVault(b.VaultKV(), keys)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := pii.NewTokenizer(vault)
	if err != nil {
		t.Fatal(err)
	}

	set, err := rules.LoadDir(filepath.Join("..", "rules", "packs", "finance"))
	if err != nil {
		t.Fatalf("load finance pack: %v", err)
	}
	holder, err := evaluator.NewRules(set, evaluator.WithRulesLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := evaluator.New(b, holder, evaluator.WithLogger(quiet), evaluator.WithFetch(64, 20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ev.Start(ctx); err != nil {
		t.Fatal(err)
	}

	srv, err := ingest.New(b, tok, ingest.Config{Tokens: map[string]string{pipelineToken: "bank"}}, ingest.WithLogger(quiet))
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.ServeNATS(ctx); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hs.Close()
		if err := srv.Close(ctx); err != nil {
			t.Errorf("close ingest: %v", err)
		}
		if err := ev.Close(ctx); err != nil {
			t.Errorf("close evaluator: %v", err)
		}
	})
	return &pipeline{natsURL: natsURL, js: js, target: hs.URL}
}

// TestRunPipeline drives every transport into the real ingest handler and
// evaluator: every message must be acked and stored, and over WebSocket and
// NATS the verdicts on planted rule-worthy lines must come back.
func TestRunPipeline(t *testing.T) {
	if testing.Short() {
		t.Skip("starts JetStream, ingest and the evaluator")
	}
	p := newPipeline(t, 2, false)
	mix := bench.Mix{Advisory: 1, RuleRate: 0.3, PIIRate: 0.2}
	tests := []struct {
		name         string
		cfg          bench.RunConfig
		wantVerdicts bool
	}{
		{"http single", bench.RunConfig{Transport: bench.TransportHTTP, Count: 200, Sessions: 4}, false},
		{"http batch", bench.RunConfig{Transport: bench.TransportHTTP, Count: 400, Batch: 50, Sessions: 2}, false},
		{"ws", bench.RunConfig{Transport: bench.TransportWS, Count: 300, Sessions: 3}, true},
		{"nats", bench.RunConfig{Transport: bench.TransportNATS, Count: 300, Sessions: 3, Batch: 5}, true},
	}
	var total int64
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			cfg.Target, cfg.NATSURL, cfg.Token, cfg.Tenant = p.target, p.natsURL, pipelineToken, "bank"
			cfg.Mix, cfg.Seed, cfg.Rate, cfg.VerdictWait = mix, int64(i), 2000, 3*time.Second
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			res, err := bench.Run(ctx, cfg)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.Acked != cfg.Count || res.Failed != 0 || len(res.Errors) != 0 || res.Duplicates != 0 {
				t.Fatalf("acked %d failed %d duplicates %d errors %v; want %d acked and nothing else",
					res.Acked, res.Failed, res.Duplicates, res.Errors, cfg.Count)
			}
			total += res.Acked
			if res.AckLatency.Count == 0 || res.AckLatency.P50 <= 0 {
				t.Errorf("no ack latency: %+v", res.AckLatency)
			}
			if !tc.wantVerdicts {
				return
			}
			if res.Labels[bench.LabelPromissory]+res.Labels[bench.LabelOffChannel] == 0 {
				t.Fatalf("no rule-worthy lines sent: %v", res.Labels)
			}
			if res.VerdictLatency == nil || res.VerdictMessages == 0 {
				t.Fatalf("no verdicts came back (labels sent %v)", res.Labels)
			}
			if v := res.VerdictLatency; v.P50 <= 0 || v.P50 > 5*time.Second {
				t.Errorf("verdict latency p50 = %v", v.P50)
			}
			t.Logf("%s: %d msgs at %.0f/s, ack p50 %v p99 %v; %d messages with verdicts, verdict p50 %v p99 %v",
				tc.name, res.Acked, res.Rate, res.AckLatency.P50, res.AckLatency.P99,
				res.VerdictMessages, res.VerdictLatency.P50, res.VerdictLatency.P99)
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := p.js.Stream(ctx, bus.StreamMessages)
	if err != nil {
		t.Fatal(err)
	}
	state := st.CachedInfo().State
	if int64(state.Msgs) != total {
		t.Errorf("MESSAGES holds %d messages, want %d", state.Msgs, total)
	}
	// Storage per ingested message, for deploy/README.md's sizing.
	for _, name := range []string{bus.StreamMessages, bus.StreamEvaluations, bus.StreamVerdicts, bus.StreamActions} {
		st, err := p.js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		s := st.CachedInfo().State
		t.Logf("%s: %d records, %d bytes, %.0f B per ingested message", name, s.Msgs, s.Bytes, float64(s.Bytes)/float64(total))
	}
}
