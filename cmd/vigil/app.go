package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/pii"
	"github.com/vigilhq/vigil/warehouse"
)

// readyTimeout bounds each dependency probe of /readyz.
const readyTimeout = 2 * time.Second

// app owns the running components of `vigil dev` / `vigil serve` and stops
// them in reverse start order, which is data-flow order: the HTTP front door
// first, then consumers, then NATS and ClickHouse.
type app struct {
	logger *slog.Logger
	reg    *prometheus.Registry
	mux    *http.ServeMux

	nc    *nats.Conn
	bus   *bus.Bus
	ch    driver.Conn
	vault *pii.Vault

	httpSrv *http.Server
	httpErr chan error

	mu      sync.Mutex
	closers []func(context.Context)
}

func newApp(logger *slog.Logger) *app {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a := &app{logger: logger, reg: reg, mux: http.NewServeMux()}
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	a.mux.HandleFunc("GET /readyz", a.handleReady)
	a.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return a
}

// onClose registers cleanup to run at shutdown, after everything registered
// later has stopped.
func (a *app) onClose(f func(context.Context)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closers = append(a.closers, f)
}

func (a *app) openBus(ctx context.Context, url string, cfg bus.Config, co bus.ConnectOptions) error {
	co.Logger = a.logger
	if co.Name == "" {
		co.Name = "vigil"
	}
	nc, err := bus.Connect(ctx, url, co)
	if err != nil {
		return fmt.Errorf("connect to NATS: %w", err)
	}
	a.nc = nc
	a.onClose(func(context.Context) { nc.Close() })
	b, err := bus.Open(ctx, nc, cfg, bus.WithMetrics(bus.NewMetrics(a.reg)), bus.WithLogger(a.logger.With("component", "bus")))
	if err != nil {
		return fmt.Errorf("set up streams and buckets: %w", err)
	}
	a.bus = b
	return nil
}

func (a *app) openWarehouse(ctx context.Context, dsn string, opts warehouse.SchemaOptions) error {
	conn, db, err := warehouse.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	a.ch = conn
	a.onClose(func(context.Context) { conn.Close() })
	applied, err := warehouse.Migrate(ctx, conn, opts)
	if err != nil {
		return fmt.Errorf("migrate ClickHouse schema in %s: %w", db, err)
	}
	if len(applied) > 0 {
		a.logger.Info("schema migrated", "database", db, "applied", applied)
	}
	return nil
}

// serveHTTP starts the API server on ln; shutdown stops it first.
func (a *app) serveHTTP(ln net.Listener) {
	a.httpSrv = &http.Server{
		Handler:           a.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(a.logger.Handler(), slog.LevelWarn),
	}
	a.httpErr = make(chan error, 1)
	go func() {
		err := a.httpSrv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		a.httpErr <- err
	}()
}

func (a *app) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	checks := map[string]string{}
	ready := true
	check := func(name string, err error) {
		if err != nil {
			checks[name] = err.Error()
			ready = false
			return
		}
		checks[name] = "ok"
	}
	switch {
	case a.bus == nil:
		check("nats", errors.New("not started"))
	default:
		_, err := a.bus.JetStream().Stream(ctx, bus.StreamMessages)
		check("nats", err)
	}
	switch {
	case a.ch == nil:
		check("clickhouse", errors.New("not started"))
	default:
		check("clickhouse", a.ch.Ping(ctx))
	}
	status := http.StatusOK
	if !ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, map[string]any{"ready": ready, "checks": checks})
}

// runUntilDone blocks until ctx is cancelled (the first SIGINT/SIGTERM),
// then drains everything within DefaultShutdownGrace.
func (a *app) runUntilDone(ctx context.Context) {
	<-ctx.Done()
	a.logger.Info("draining", "grace", DefaultShutdownGrace)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultShutdownGrace)
	defer cancel()
	a.shutdown(sctx)
	a.logger.Info("stopped")
}

// shutdown stops the HTTP server, then every registered component in
// reverse order.
func (a *app) shutdown(ctx context.Context) {
	if a.httpSrv != nil {
		if err := a.httpSrv.Shutdown(ctx); err != nil {
			a.logger.Warn("http shutdown", "err", err)
		}
		if err := <-a.httpErr; err != nil {
			a.logger.Warn("http server", "err", err)
		}
		a.httpSrv = nil
	}
	a.close(ctx)
}

func (a *app) close(ctx context.Context) {
	a.mu.Lock()
	closers := a.closers
	a.closers = nil
	a.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		closers[i](ctx)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
