package bus_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/vigilhq/vigil/bus"
)

func TestStartEmbeddedLockedDir(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t)
	e1, err := bus.StartEmbedded(ctx, bus.EmbeddedConfig{DataDir: dir, Port: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bus.StartEmbedded(ctx, bus.EmbeddedConfig{DataDir: dir, Port: -1})
	if !errors.Is(err, bus.ErrDataDirLocked) {
		t.Fatalf("second StartEmbedded = %v, want ErrDataDirLocked", err)
	}
	if !strings.Contains(err.Error(), "another vigil is using the directory") {
		t.Fatalf("error %q does not say another vigil holds the directory", err)
	}
	// A working server behind the lock: connect, open the bus, publish.
	nc, err := nats.Connect(e1.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	b, err := bus.Open(ctx, nc, bus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.PublishMessage(ctx, msg("m1", "t", "c", "x")); err != nil {
		t.Fatal(err)
	}
	nc.Close()
	if err := e1.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Released: the directory can be used again, and the message survived.
	e2, err := bus.StartEmbedded(ctx, bus.EmbeddedConfig{DataDir: dir, Port: -1})
	if err != nil {
		t.Fatalf("StartEmbedded after Shutdown: %v", err)
	}
	defer e2.Shutdown(context.Background())
	if !strings.HasPrefix(e2.StoreDir(), dir) {
		t.Fatalf("StoreDir %q not under %q", e2.StoreDir(), dir)
	}
	nc2, err := bus.Connect(ctx, e2.ClientURL(), bus.ConnectOptions{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	b2, err := bus.Open(ctx, nc2, bus.Config{})
	if err != nil {
		t.Fatal(err)
	}
	ack, err := b2.PublishMessage(ctx, msg("m1", "t", "c", "x"))
	if err != nil {
		t.Fatal(err)
	}
	if !ack.Duplicate || ack.Sequence != 1 {
		t.Fatalf("ack after restart = %+v, want duplicate of seq 1", ack)
	}
}

func TestStartEmbeddedInvalidConfig(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, cfg := range []bus.EmbeddedConfig{
		{},
		{DataDir: t.TempDir(), SyncInterval: -time.Second},
	} {
		if _, err := bus.StartEmbedded(ctx, cfg); !errors.Is(err, bus.ErrInvalidConfig) {
			t.Errorf("StartEmbedded(%+v) = %v, want ErrInvalidConfig", cfg, err)
		}
	}
}

func TestConnectRejectsConflictingAuth(t *testing.T) {
	_, err := bus.Connect(testCtx(t), "nats://127.0.0.1:1", bus.ConnectOptions{User: "u", Token: "t"})
	if !errors.Is(err, bus.ErrInvalidOption) {
		t.Fatalf("Connect(user+token) = %v, want ErrInvalidOption", err)
	}
}
