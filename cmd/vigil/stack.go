package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/ingest"
	"github.com/vigilhq/vigil/review"
	"github.com/vigilhq/vigil/review/workflow"
	"github.com/vigilhq/vigil/rules"
	"github.com/vigilhq/vigil/warehouse"
	"github.com/vigilhq/vigil/warehouse/chlocal"
)

// embeddedStackConfig configures [startEmbeddedStack].
type embeddedStackConfig struct {
	dataDir        string
	natsPort       int    // -1 picks a free port
	clickhouseHTTP string // host:port; port 0 picks a free one
	chdbLib        string
	syncInterval   time.Duration
	rulesDir       string
	busConfig      bus.Config
	ingest         ingest.Config // Insecure is forced on
}

// embeddedStack is everything `vigil dev` runs in one process: embedded
// NATS and ClickHouse and the whole pipeline on top. The HTTP listener is
// the caller's (a.mux holds every route).
type embeddedStack struct {
	app          *app
	nats         *bus.Embedded
	engine       *chlocal.Engine
	chSrv        *chlocal.Server
	consoleToken string
	lock         *dirLock
}

// release drops the data-directory lock; call it after app.close.
func (s *embeddedStack) release() { s.lock.release() }

// stackError carries a start-up error and the hint for the user.
type stackError struct {
	err  error
	hint string
}

func (e *stackError) Error() string { return e.err.Error() }
func (e *stackError) Unwrap() error { return e.err }

// startEmbeddedStack locks the data directory and starts embedded NATS,
// embedded ClickHouse (migrated) and the pipeline. On error everything
// started so far is stopped. `vigil dev` and `vigil bench` share it.
func startEmbeddedStack(ctx context.Context, logger *slog.Logger, cfg embeddedStackConfig) (_ *embeddedStack, err error) {
	lock, err := lockDataDir(cfg.dataDir)
	if err != nil {
		return nil, &stackError{err, "stop the other 'vigil dev' or pass another --data directory"}
	}
	a := newApp(logger)
	defer func() {
		if err != nil {
			a.close(context.WithoutCancel(ctx))
			lock.release()
		}
	}()

	nats, err := bus.StartEmbedded(ctx, bus.EmbeddedConfig{
		DataDir:      filepath.Join(cfg.dataDir, "nats"),
		Host:         "127.0.0.1",
		Port:         cfg.natsPort,
		SyncInterval: cfg.syncInterval,
		Logger:       logger,
	})
	if err != nil {
		return nil, &stackError{fmt.Errorf("start embedded NATS: %w", err), "pass another --nats-port, or check the data directory"}
	}
	a.onClose(func(ctx context.Context) { _ = nats.Shutdown(ctx) })
	bc := cfg.busConfig
	// Atomic batches buy group commit: one fsync per batch instead of one per
	// message (23× with fsync on every write). Without per-write fsync they
	// cost more than they save on one node (bench/results/bus.md).
	if cfg.syncInterval > 0 {
		bc.NoAtomicBatches = true
	}
	if err := a.openBus(ctx, nats.ClientURL(), bc, bus.ConnectOptions{Name: "vigil dev"}); err != nil {
		return nil, err
	}

	engine, err := chlocal.Open(ctx, chlocal.Config{
		LibPath:    cfg.chdbLib,
		DataDir:    filepath.Join(cfg.dataDir, "clickhouse"),
		Logger:     logger,
		Registerer: a.reg,
	})
	if err != nil {
		hint := ""
		if errors.Is(err, chlocal.ErrLibraryNotFound) || errors.Is(err, chlocal.ErrLibraryInvalid) {
			hint = "make deps (or run 'vigil serve --clickhouse clickhouse://…' against a ClickHouse server)"
		}
		return nil, &stackError{fmt.Errorf("start embedded ClickHouse: %w", err), hint}
	}
	a.onClose(func(ctx context.Context) { _ = engine.Close(ctx) })
	chSrv, err := engine.Serve(ctx, cfg.clickhouseHTTP)
	if err != nil {
		return nil, &stackError{fmt.Errorf("serve ClickHouse HTTP interface on %s: %w", cfg.clickhouseHTTP, err), "pass another --clickhouse-http address"}
	}
	a.onClose(func(ctx context.Context) { _ = chSrv.Close(ctx) })
	if err := a.openWarehouse(ctx, chSrv.Addr(), warehouse.SchemaOptions{}); err != nil {
		return nil, err
	}

	keys, err := devKeys(cfg.dataDir)
	if err != nil {
		return nil, err
	}
	console, err := devConsoleToken(cfg.dataDir)
	if err != nil {
		return nil, err
	}
	ic := cfg.ingest
	ic.Insecure = true
	err = a.startPipeline(ctx, pipelineConfig{
		keys:     keys,
		rulesDir: cfg.rulesDir,
		ingest:   ic,
		review: review.Config{Tokens: map[string]workflow.Principal{
			console: {Name: "dev-admin", Tenant: workflow.AllTenants, Role: workflow.RoleAdmin},
		}},
	})
	if err != nil {
		hint := ""
		if errors.Is(err, rules.ErrRulesetRejected) {
			hint = "vigil rules test " + cfg.rulesDir
		}
		return nil, &stackError{err, hint}
	}
	return &embeddedStack{app: a, nats: nats, engine: engine, chSrv: chSrv, consoleToken: console, lock: lock}, nil
}
