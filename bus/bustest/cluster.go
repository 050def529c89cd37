package bustest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is an in-process JetStream cluster with one client connection
// that knows every node, for replicated (R3) streams and failover tests.
type Cluster struct {
	// Servers are the nodes, in start order.
	Servers []*server.Server
	// StoreDirs are the nodes' JetStream store directories.
	StoreDirs []string
	// Conn is connected to the cluster (any node) over loopback TCP.
	Conn *nats.Conn
	// JS is the JetStream API on Conn.
	JS jetstream.JetStream
}

// NewCluster starts an n-node JetStream cluster on loopback, waits until
// JetStream has a meta leader, connects and registers cleanup.
func NewCluster(tb testing.TB, n int) *Cluster {
	tb.Helper()
	return NewClusterWith(tb, n, Options{})
}

// NewClusterWith is [NewCluster] with options applied to every node.
func NewClusterWith(tb testing.TB, n int, o Options) *Cluster {
	tb.Helper()
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freePort(tb)
	}
	routes := make([]*url.URL, n)
	for i, p := range ports {
		routes[i] = &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", p)}
	}
	c := &Cluster{}
	tb.Cleanup(c.Shutdown)
	dir := tb.TempDir()
	for i := range n {
		opts := &server.Options{
			ServerName: fmt.Sprintf("bustest-%d", i),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   filepath.Join(dir, fmt.Sprintf("n%d", i), "jetstream"),
			NoLog:      true,
			NoSigs:     true,
			Cluster:    server.ClusterOpts{Name: "bustest", Host: "127.0.0.1", Port: ports[i]},
			Routes:     routes,
			SyncAlways: o.SyncAlways,

			JetStreamMaxStore: o.MaxStoreBytes,
		}
		srv, err := server.NewServer(opts)
		if err != nil {
			tb.Fatalf("bustest: new cluster node %d: %v", i, err)
		}
		srv.Start()
		c.Servers = append(c.Servers, srv)
		c.StoreDirs = append(c.StoreDirs, opts.StoreDir)
	}
	urls := make([]string, n)
	for i, srv := range c.Servers {
		if !srv.ReadyForConnections(10 * time.Second) {
			tb.Fatalf("bustest: cluster node %d not ready", i)
		}
		urls[i] = srv.ClientURL()
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.Name("bustest"), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		tb.Fatalf("bustest: connect cluster: %v", err)
	}
	c.Conn = nc
	if c.JS, err = jetstream.New(nc); err != nil {
		tb.Fatalf("bustest: jetstream: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := c.JS.AccountInfo(ctx)
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatalf("bustest: cluster JetStream not ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return c
}

// Shutdown closes the connection and stops every node. Safe to call more
// than once.
func (c *Cluster) Shutdown() {
	if c.Conn != nil {
		c.Conn.Close()
	}
	for _, srv := range c.Servers {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("bustest: free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
