package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vigilhq/vigil/evaluator"
	"github.com/vigilhq/vigil/ingest"
	"github.com/vigilhq/vigil/pii"
	"github.com/vigilhq/vigil/retention"
	"github.com/vigilhq/vigil/review"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/warehouse"
)

// pipelineConfig is what dev and serve hand to [app.startPipeline].
type pipelineConfig struct {
	keys     pii.KeyProvider
	rulesDir string // "" = the packs embedded in the binary
	ingest   ingest.Config
	review   review.Config
	// retention schedules the daily retention run in-process.
	retention bool
}

// startPipeline starts the data flow on top of an opened bus and warehouse:
// sink, review, evaluator, then ingest last, so nothing is accepted before
// everything downstream runs. Closers are registered in the same order and
// run in reverse: ingest stops first, the sink flushes last.
func (a *app) startPipeline(ctx context.Context, pc pipelineConfig) error {
	log := a.logger

	vault, err := retention.NewVault(a.bus, pc.keys,
		pii.WithVaultLogger(log), pii.WithVaultMetrics(pii.NewMetrics(a.reg)))
	if err != nil {
		return fmt.Errorf("open PII vault: %w", err)
	}
	a.vault = vault
	tok, err := pii.NewTokenizer(vault, pii.WithLogger(log))
	if err != nil {
		return fmt.Errorf("build tokenizer: %w", err)
	}

	sink, err := warehouse.NewSink(a.bus, a.ch, warehouse.SinkConfig{
		Logger: log.With("component", "sink"), Metrics: warehouse.NewSinkMetrics(a.reg)})
	if err != nil {
		return err
	}
	if err := sink.Start(ctx); err != nil {
		return fmt.Errorf("start warehouse sink: %w", err)
	}
	a.onClose(func(ctx context.Context) {
		if err := sink.Close(ctx); err != nil {
			log.Warn("sink close", "err", err)
		}
	})

	rev, err := review.New(ctx, a.bus, pc.review,
		review.WithLogger(log),
		review.WithMetrics(review.NewMetrics(a.reg)),
		review.WithDetokenizer(review.DetokenizeFunc(func(ctx context.Context, tenant, token, actor, reason string) (string, error) {
			return vault.Detokenize(ctx, tenant, token, pii.Request{Actor: actor, Reason: reason})
		})))
	if err != nil {
		return fmt.Errorf("build review service: %w", err)
	}
	if err := rev.Start(ctx); err != nil {
		return fmt.Errorf("start review service: %w", err)
	}
	a.onClose(func(ctx context.Context) {
		if err := rev.Close(ctx); err != nil {
			log.Warn("review close", "err", err)
		}
	})
	a.mux.Handle("/v1/review/", rev.Handler())
	a.mux.Handle("/console/", rev.Handler())
	a.mux.Handle("/console", rev.Handler())

	em := evaluator.NewMetrics(a.reg)
	var (
		set  *rules.Set
		ropt []evaluator.RulesOption
	)
	if pc.rulesDir == "" {
		set, err = rules.Load(rules.Packs())
	} else {
		set, err = rules.LoadDir(pc.rulesDir)
		ropt = append(ropt, evaluator.WithRulesDir(pc.rulesDir, 0))
	}
	if err != nil {
		return fmt.Errorf("load rules: %w", err)
	}
	ropt = append(ropt, evaluator.WithRulesLogger(log), evaluator.WithRulesMetrics(em))
	holder, err := evaluator.NewRules(set, ropt...)
	if err != nil {
		return err
	}
	if err := holder.Open(ctx); err != nil {
		return fmt.Errorf("watch rules: %w", err)
	}
	a.onClose(func(ctx context.Context) { _ = holder.Close(ctx) })
	ev, err := evaluator.New(a.bus, holder, evaluator.WithLogger(log), evaluator.WithMetrics(em))
	if err != nil {
		return err
	}
	if err := ev.Start(ctx); err != nil {
		return fmt.Errorf("start evaluator: %w", err)
	}
	a.onClose(func(ctx context.Context) {
		if err := ev.Drain(ctx); err != nil {
			log.Warn("evaluator drain", "err", err)
		}
		_ = ev.Close(ctx)
	})
	log.Info("rules loaded", "rules", len(set.Rules()), "version", set.Version())

	if pc.retention {
		svc, err := retention.New(a.ch, a.bus, vault, retention.WithLogger(log))
		if err != nil {
			return err
		}
		sched, err := retention.NewScheduler(svc, retention.SchedulerConfig{Logger: log})
		if err != nil {
			return err
		}
		if err := sched.Start(ctx); err != nil {
			return fmt.Errorf("start retention scheduler: %w", err)
		}
		a.onClose(func(ctx context.Context) { _ = sched.Close(ctx) })
	}

	in, err := ingest.New(a.bus, tok, pc.ingest, ingest.WithLogger(log),
		ingest.WithMetrics(ingest.NewMetrics(a.reg)))
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err = in.ServeNATS(sctx)
	cancel()
	if err != nil {
		return fmt.Errorf("serve NATS ingest: %w", err)
	}
	a.onClose(func(ctx context.Context) {
		if err := in.Close(ctx); err != nil {
			log.Warn("ingest close", "err", err)
		}
	})
	a.mux.Handle("/v1/", in.Handler())
	return nil
}

// devKeys loads the PII keys of a `vigil dev` data directory, creating
// random ones on first start. Production passes keys explicitly.
func devKeys(dataDir string) (pii.KeyProvider, error) {
	path := filepath.Join(dataDir, "pii-keys.json")
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		gen := func() string {
			b := make([]byte, pii.KeySize)
			_, _ = rand.Read(b)
			return base64.StdEncoding.EncodeToString(b)
		}
		cfg := pii.StaticKeysConfig{Default: &pii.StaticTenantKeys{KEK: gen(), TokenKey: gen()}}
		raw, _ := json.MarshalIndent(cfg, "", "  ")
		if err := os.WriteFile(path, raw, 0o600); err != nil {
			return nil, fmt.Errorf("write dev PII keys: %w", err)
		}
	}
	return pii.LoadStaticKeysFile(path)
}

// devConsoleToken returns the admin token of a `vigil dev` data directory's
// reviewer console, creating a random one on first start.
func devConsoleToken(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "console-token")
	if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
		return string(b), nil
	}
	b := make([]byte, 18)
	_, _ = rand.Read(b)
	tok := "dev-" + base64.RawURLEncoding.EncodeToString(b)
	if err := os.WriteFile(path, []byte(tok), 0o600); err != nil {
		return "", fmt.Errorf("write console token: %w", err)
	}
	return tok, nil
}
