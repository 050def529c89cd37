package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Defaults for [EmbeddedConfig].
const (
	// DefaultNATSHost is the interface the embedded server listens on.
	DefaultNATSHost = "127.0.0.1"
	// DefaultNATSPort is the client port of the embedded server.
	DefaultNATSPort = 4222
	// SyncAlways, as EmbeddedConfig.SyncInterval, fsyncs every write before
	// JetStream acknowledges it. It is the default: a compliance archive
	// must not lose acknowledged messages on power loss (DESIGN.md). It costs
	// ~31× throughput on one stream; see DESIGN.md "Measured building blocks".
	SyncAlways time.Duration = 0
	// DefaultReadyTimeout bounds how long StartEmbedded waits for the server.
	DefaultReadyTimeout = 10 * time.Second
	// lockFileName is the lock taken in EmbeddedConfig.DataDir.
	lockFileName = "nats.lock"
)

// ErrDataDirLocked is returned by [StartEmbedded] when another process
// (another vigil) holds the data directory.
var ErrDataDirLocked = errors.New("bus: data directory is locked: another vigil is using the directory")

// EmbeddedConfig configures the in-process NATS JetStream server of
// `vigil dev` and single-node deployments.
type EmbeddedConfig struct {
	// DataDir holds the JetStream store (DataDir/jetstream) and the lock
	// file DataDir/nats.lock. Required.
	DataDir string
	// Host is the listen address. Default [DefaultNATSHost].
	Host string
	// Port is the client port: 0 selects [DefaultNATSPort], -1 a random port.
	Port int
	// SyncInterval is how often the store is fsynced. [SyncAlways] (0, the
	// default) fsyncs every write before the PubAck; a positive interval
	// (nats-server's default is 2m) acknowledges before fsync and can lose
	// acknowledged messages on power loss. Set it only knowingly.
	SyncInterval time.Duration
	// MaxPayload is the largest message the server accepts; 0 keeps the
	// nats-server default (1 MiB).
	MaxPayload int32
	// MaxStoreBytes bounds JetStream file storage; 0 lets the server pick
	// (a share of the free disk).
	MaxStoreBytes int64
	// ServerName names the server (default "vigil").
	ServerName string
	// Logger receives the server's log at Debug (trace off), Info (notice),
	// Warn and Error. nil discards it.
	Logger *slog.Logger
}

// Embedded is a running in-process NATS JetStream server.
type Embedded struct {
	srv      *server.Server
	storeDir string
	lock     *os.File
}

// StartEmbedded takes the data directory lock, starts an in-process NATS
// server with JetStream on it and waits until it accepts connections or ctx
// ends. If another process holds the directory it returns an error wrapping
// [ErrDataDirLocked]. Stop it with [Embedded.Shutdown].
func StartEmbedded(ctx context.Context, cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("%w: embedded: data dir is required", ErrInvalidConfig)
	}
	if cfg.SyncInterval < 0 {
		return nil, fmt.Errorf("%w: embedded: negative sync interval", ErrInvalidConfig)
	}
	if cfg.Host == "" {
		cfg.Host = DefaultNATSHost
	}
	if cfg.Port == 0 {
		cfg.Port = DefaultNATSPort
	}
	if cfg.ServerName == "" {
		cfg.ServerName = "vigil"
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded nats: create data dir: %w", err)
	}
	lock, err := lockDir(filepath.Join(cfg.DataDir, lockFileName))
	if err != nil {
		return nil, err
	}
	e := &Embedded{storeDir: filepath.Join(cfg.DataDir, "jetstream"), lock: lock}
	opts := &server.Options{
		ServerName:             cfg.ServerName,
		Host:                   cfg.Host,
		Port:                   cfg.Port,
		JetStream:              true,
		StoreDir:               e.storeDir,
		JetStreamMaxStore:      cfg.MaxStoreBytes,
		MaxPayload:             cfg.MaxPayload,
		NoSigs:                 true,
		SyncAlways:             cfg.SyncInterval == SyncAlways,
		SyncInterval:           cfg.SyncInterval,
		DisableJetStreamBanner: true,
	}
	if cfg.SyncInterval == SyncAlways {
		// nats-server still runs its periodic flush loop; keep its default.
		opts.SyncInterval = 0
	}
	if cfg.Logger == nil {
		opts.NoLog = true
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		e.unlock()
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	if cfg.Logger != nil {
		srv.SetLoggerV2(&serverLogger{l: cfg.Logger.With("component", "nats-server")}, true, false, false)
	}
	e.srv = srv
	srv.Start()
	ready := make(chan bool, 1)
	deadline := DefaultReadyTimeout
	if d, ok := ctx.Deadline(); ok {
		deadline = time.Until(d)
	}
	go func() { ready <- srv.ReadyForConnections(deadline) }() // ends within deadline
	select {
	case ok := <-ready:
		if !ok {
			e.stop()
			return nil, fmt.Errorf("embedded nats: not ready after %s", deadline)
		}
	case <-ctx.Done():
		e.stop()
		return nil, fmt.Errorf("embedded nats: %w", ctx.Err())
	}
	return e, nil
}

// ClientURL is the URL clients connect to (nats://host:port).
func (e *Embedded) ClientURL() string { return e.srv.ClientURL() }

// StoreDir is the JetStream store directory (DataDir/jetstream).
func (e *Embedded) StoreDir() string { return e.storeDir }

// Server returns the underlying nats-server, for tests and diagnostics.
func (e *Embedded) Server() *server.Server { return e.srv }

// Shutdown stops the server, waits until it has released its store (or
// ctx ends) and releases the data directory lock. Clients should drain
// before. Safe to call more than once.
func (e *Embedded) Shutdown(ctx context.Context) error {
	done := make(chan struct{})
	go func() { // ends when the server has stopped
		e.stop()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("embedded nats shutdown: %w", ctx.Err())
	}
}

func (e *Embedded) stop() {
	if e.srv != nil {
		e.srv.Shutdown()
		e.srv.WaitForShutdown()
	}
	e.unlock()
}

// serverLogger adapts slog to nats-server's Logger interface.
type serverLogger struct{ l *slog.Logger }

// Noticef is nats-server's start-up banner and lifecycle chatter: Debug,
// so a healthy vigil stays quiet at Info (it logs its own lifecycle).
func (s *serverLogger) Noticef(format string, v ...any) { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Warnf(format string, v ...any)   { s.l.Warn(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Fatalf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Errorf(format string, v ...any)  { s.l.Error(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Debugf(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
func (s *serverLogger) Tracef(format string, v ...any)  { s.l.Debug(fmt.Sprintf(format, v...)) }
