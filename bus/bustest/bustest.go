// Package bustest starts real embedded NATS JetStream servers for tests.
// Import it only from _test.go files.
package bustest

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vigilhq/vigil/bus"
)

// Server is a running embedded JetStream server with one client connection.
type Server struct {
	// Server is the in-process nats-server.
	Server *server.Server
	// StoreDir is the JetStream data directory (scan it for raw PII).
	StoreDir string
	// Conn is a client connection over loopback TCP.
	Conn *nats.Conn
	// JS is the JetStream API on Conn.
	JS jetstream.JetStream
}

// New starts a JetStream server on a random loopback port with its store in
// a temporary directory, connects to it and registers cleanup. It fails the
// test if the server cannot start.
func New(tb testing.TB) *Server {
	tb.Helper()
	dir := tb.TempDir()
	return NewAt(tb, dir)
}

// Options tune a test server.
type Options struct {
	// SyncAlways fsyncs every write before the PubAck, as Vigil's
	// production default does (bus.SyncAlways).
	SyncAlways bool
	// MaxStoreBytes bounds JetStream file storage (0 = server default).
	MaxStoreBytes int64
}

// NewWith is [New] with options.
func NewWith(tb testing.TB, o Options) *Server {
	tb.Helper()
	return newServer(tb, tb.TempDir(), o)
}

// NewAt is [New] with the store in dir, so a test can restart a server on
// the same data.
func NewAt(tb testing.TB, dir string) *Server {
	tb.Helper()
	return newServer(tb, dir, Options{})
}

func newServer(tb testing.TB, dir string, o Options) *Server {
	tb.Helper()
	opts := &server.Options{
		SyncAlways:        o.SyncAlways,
		JetStreamMaxStore: o.MaxStoreBytes,
		ServerName:        "bustest",
		Host:              "127.0.0.1",
		Port:              -1,
		JetStream:         true,
		StoreDir:          filepath.Join(dir, "jetstream"),
		NoLog:             true,
		NoSigs:            true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		tb.Fatalf("bustest: new nats-server: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		tb.Fatalf("bustest: nats-server not ready after 10s")
	}
	nc, err := nats.Connect(srv.ClientURL(), nats.Name("bustest"))
	if err != nil {
		srv.Shutdown()
		tb.Fatalf("bustest: connect: %v", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		srv.Shutdown()
		tb.Fatalf("bustest: jetstream: %v", err)
	}
	s := &Server{Server: srv, StoreDir: opts.StoreDir, Conn: nc, JS: js}
	tb.Cleanup(s.Shutdown)
	return s
}

// Shutdown closes the connection and stops the server, waiting for it to
// release its store. Safe to call more than once.
func (s *Server) Shutdown() {
	if s.Conn != nil {
		s.Conn.Close()
	}
	if s.Server != nil {
		s.Server.Shutdown()
		s.Server.WaitForShutdown()
	}
}

// Files returns every regular file under the store directory, for tests
// that scan the bytes at rest.
func (s *Server) Files(tb testing.TB) []string {
	tb.Helper()
	var files []string
	err := filepath.WalkDir(s.StoreDir, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("bustest: walk %s: %v", s.StoreDir, err)
	}
	return files
}

// Bus opens a [bus.Bus] with cfg on the server's connection, creating every
// Vigil stream and bucket, and fails the test on error.
func (s *Server) Bus(tb testing.TB, cfg bus.Config, opts ...bus.Option) *bus.Bus {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := bus.Open(ctx, s.Conn, cfg, opts...)
	if err != nil {
		tb.Fatalf("bustest: open bus: %v", err)
	}
	return b
}

// Contains reports the files under the store directory whose bytes contain
// needle, for tests proving that a value is (or is no longer) at rest.
func (s *Server) Contains(tb testing.TB, needle []byte) []string {
	tb.Helper()
	var hits []string
	for _, f := range s.Files(tb) {
		data, err := os.ReadFile(f)
		if err != nil {
			tb.Fatalf("bustest: read %s: %v", f, err)
		}
		if bytes.Contains(data, needle) {
			hits = append(hits, f)
		}
	}
	return hits
}
