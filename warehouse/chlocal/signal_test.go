package chlocal_test

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// TestGoKeepsSignals checks that the loaded engine left signal handling to
// the Go runtime (Open disables chDB's handlers): SIGTERM and SIGINT reach
// signal.Notify, and a nil dereference is a recoverable panic, not a
// ClickHouse crash report.
func TestGoKeepsSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, sig)
		if err := syscall.Kill(os.Getpid(), sig); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-ch:
			if got != sig {
				t.Fatalf("got %v, want %v", got, sig)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%v did not reach signal.Notify", sig)
		}
		signal.Stop(ch)
	}

	recovered := func() (r any) {
		defer func() { r = recover() }()
		var p *int
		return *p
	}()
	if _, ok := recovered.(runtime.Error); !ok {
		t.Fatalf("nil dereference recovered %v, want a runtime.Error", recovered)
	}
}

// TestContextDeadlineBecomesMaxExecutionTime checks that clickhouse-go's
// max_execution_time (sent for a ctx with deadline) bounds the statement.
func TestContextDeadlineBecomesMaxExecutionTime(t *testing.T) {
	conn := connect(t, testServer.Addr(), "default")
	ctx := clickhouse.Context(context.Background(), clickhouse.WithSettings(clickhouse.Settings{"max_execution_time": 1}))
	start := time.Now()
	err := conn.Exec(ctx, "SELECT sleep(3)")
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) || ex.Code != 159 {
		t.Fatalf("SELECT sleep(3) with max_execution_time=1: %v, want code 159 (TIMEOUT_EXCEEDED)", err)
	}
	var he *clickhouse.HTTPError
	if !errors.As(err, &he) || he.StatusCode != 408 {
		t.Fatalf("status: %v, want 408", err)
	}
	if d := time.Since(start); d > 2500*time.Millisecond {
		t.Fatalf("took %v, want about 1s", d)
	}
	// The setting does not outlive the request.
	if err := conn.Exec(context.Background(), "SELECT sleep(1.5)"); err != nil {
		t.Fatalf("next request still limited: %v", err)
	}
}
