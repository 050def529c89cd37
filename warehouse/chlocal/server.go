package chlocal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// DefaultAddr is where `vigil dev` serves the embedded ClickHouse's HTTP
// interface: loopback only (there is no authentication), ClickHouse's port.
const DefaultAddr = "127.0.0.1:8123"

// Server serves an [Engine]'s HTTP interface on a TCP listener. It owns the
// listener and the serving goroutine; [Server.Close] stops both.
type Server struct {
	e    *Engine
	ln   net.Listener
	srv  *http.Server
	wg   sync.WaitGroup
	once sync.Once
	err  error // from Serve, read after wg.Wait
}

// Serve listens on addr (e.g. "127.0.0.1:8123", or "127.0.0.1:0" for any free
// port) and serves [Engine.Handler] until [Server.Close]. ctx bounds only the
// listen call.
func (e *Engine) Serve(ctx context.Context, addr string) (*Server, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for clickhouse http on %s: %w", addr, err)
	}
	s := &Server{
		e:  e,
		ln: ln,
		srv: &http.Server{
			Handler:           e.Handler(),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(e.log.Handler(), slog.LevelWarn),
		},
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.err = err
			e.log.Error("clickhouse http server stopped", slog.Any("err", err))
		}
	}()
	e.log.Info("clickhouse http interface listening", slog.String("addr", ln.Addr().String()))
	return s, nil
}

// Addr returns the address the server listens on (host:port).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops accepting connections, waits for in-flight requests (bounded by
// ctx, then closes them) and for the serving goroutine. It does not close the
// engine.
func (s *Server) Close(ctx context.Context) error {
	var err error
	s.once.Do(func() {
		err = s.srv.Shutdown(ctx)
		if err != nil {
			err = errors.Join(fmt.Errorf("shut down clickhouse http: %w", err), s.srv.Close())
		}
		s.wg.Wait()
		if s.err != nil {
			err = errors.Join(err, s.err)
		}
	})
	return err
}
