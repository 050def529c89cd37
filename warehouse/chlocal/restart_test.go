package chlocal_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/vigilhq/vigil/warehouse/chlocal"
)

// TestPersistsAcrossRestart runs the engine in two child processes (the test
// binary re-executed from TestMain) on one data directory: the first life
// writes through clickhouse-go, closes and reopens the engine in-process and
// checks again; the second life, a new process, reads the rows back.
const (
	envChildLife = "CHLOCAL_TEST_CHILD_LIFE"
	envChildDir  = "CHLOCAL_TEST_CHILD_DIR"
	restartRows  = 10_000
)

func TestPersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	for _, life := range []string{"write", "read"} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), envChildLife+"="+life, envChildDir+"="+dir)
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("life %q: %v\n%s", life, err, out)
		}
		if !strings.Contains(string(out), "life "+life+" ok") {
			t.Fatalf("life %q did not report success:\n%s", life, out)
		}
	}
}

// TestDataDirLockedByAnotherProcess opens, in a child process, the data
// directory the shared engine of this process uses.
func TestDataDirLockedByAnotherProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChildLife+"=locked", envChildDir+"="+testDataDir)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "life locked ok") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// runChildLife is one life of TestPersistsAcrossRestart; it returns the exit
// code.
func runChildLife(life string) int {
	if err := childLife(life, os.Getenv(envChildDir)); err != nil {
		fmt.Fprintf(os.Stderr, "life %s: %v\n", life, err)
		return 1
	}
	fmt.Printf("life %s ok\n", life)
	return 0
}

func childLife(life, dir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	switch life {
	case "write":
		if err := withEngine(ctx, dir, func(conn clickhouse.Conn) error {
			if err := conn.Exec(ctx, "CREATE TABLE events ("+eventColumns+") ENGINE = ReplacingMergeTree(ver) ORDER BY id"); err != nil {
				return err
			}
			insertEvents(panicTB{}, conn, "events", 0, restartRows)
			return checkEvents(ctx, conn)
		}); err != nil {
			return fmt.Errorf("first open: %w", err)
		}
		// Close and reopen in the same process.
		if err := withEngine(ctx, dir, func(conn clickhouse.Conn) error { return checkEvents(ctx, conn) }); err != nil {
			return fmt.Errorf("reopen in process: %w", err)
		}
		return nil
	case "read":
		return withEngine(ctx, dir, func(conn clickhouse.Conn) error { return checkEvents(ctx, conn) })
	case "locked":
		e, err := chlocal.Open(ctx, chlocal.Config{DataDir: dir})
		if err == nil {
			_ = e.Close(ctx)
			return fmt.Errorf("second process opened a data dir in use")
		}
		if !errors.Is(err, chlocal.ErrDataDirLocked) {
			return fmt.Errorf("Open = %v, want ErrDataDirLocked", err)
		}
		return nil
	}
	return fmt.Errorf("unknown life %q", life)
}

func withEngine(ctx context.Context, dir string, f func(clickhouse.Conn) error) error {
	e, err := chlocal.Open(ctx, chlocal.Config{DataDir: dir})
	if err != nil {
		return err
	}
	srv, err := e.Serve(ctx, "127.0.0.1:0")
	if err != nil {
		return err
	}
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{srv.Addr()}, Protocol: clickhouse.HTTP})
	if err != nil {
		return err
	}
	ferr := f(conn)
	_ = conn.Close()
	if err := srv.Close(ctx); err != nil {
		return err
	}
	if err := e.Close(ctx); err != nil {
		return err
	}
	return ferr
}

func checkEvents(ctx context.Context, conn clickhouse.Conn) error {
	var n, sum uint64
	if err := conn.QueryRow(ctx, "SELECT count(), sum(id) FROM events").Scan(&n, &sum); err != nil {
		return err
	}
	if n != restartRows || sum != restartRows*(restartRows-1)/2 {
		return fmt.Errorf("count %d sum %d, want %d rows", n, sum, restartRows)
	}
	var got event
	if err := conn.QueryRow(ctx, "SELECT id, ts, local_ts, tokyo_ts, kind, attrs, tags, note, uid, ver FROM events WHERE id = 4321").
		Scan(&got.ID, &got.TS, &got.LocalTS, &got.TokyoTS, &got.Kind, &got.Attrs, &got.Tags, &got.Note, &got.UID, &got.Ver); err != nil {
		return err
	}
	return sameEvent(makeEvent(4321), got)
}

// panicTB lets the test helpers run outside a test (in a child life); a
// failure panics and the parent sees the non-zero exit and the output.
type panicTB struct{ testing.TB }

func (panicTB) Helper()                   {}
func (panicTB) Fatalf(f string, a ...any) { panic(fmt.Sprintf(f, a...)) }
func (panicTB) Fatal(a ...any)            { panic(fmt.Sprint(a...)) }
