//go:build long

package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/bus/bustest"
	"github.com/vigilhq/vigil/warehouse/warehousetest"
)

// envInt reads a positive integer knob from the environment.
func envInt(t testing.TB, name string, def int64) int64 {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}

// vmRSS returns the resident set of process pid in KiB (/proc VmRSS).
func vmRSS(t testing.TB, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return n
		}
	}
	t.Fatalf("no VmRSS for pid %d", pid)
	return 0
}

// TestFaultKillDevLong is TestFaultKillDev at scale: VIGIL_FAULT_MESSAGES
// messages (default 50,000: what fits in ~15 minutes under -race on a
// 2-core machine; 1M with VIGIL_FAULT_MESSAGES=1000000) and
// VIGIL_FAULT_KILLS SIGKILLs (default 10).
func TestFaultKillDevLong(t *testing.T) {
	total := envInt(t, "VIGIL_FAULT_MESSAGES", 50_000)
	kills := envInt(t, "VIGIL_FAULT_KILLS", 10)
	r := runKillFault(t, total, int(kills), 16, 100, 20*time.Minute)
	if r.acked == 0 || r.stored < r.acked {
		t.Errorf("acked %d, stored %d", r.acked, r.stored)
	}
}

// servePKIEnv sets the keys and token `vigil serve` needs; every replica
// started afterwards shares them.
func servePKIEnv(t *testing.T, token string) {
	t.Helper()
	t.Setenv("VIGIL_PII_KEK", randKey(t))
	t.Setenv("VIGIL_PII_TOKEN_KEY", randKey(t))
	t.Setenv("VIGIL_TOKENS", token+"=acme")
}

// TestFaultClusterLeaderKill runs `vigil serve` against a 3-node NATS
// cluster with R3 streams, shuts down the MESSAGES stream leader under
// load, and checks that ingest resumes and no acked message is lost or
// duplicated in the stream or the archive.
func TestFaultClusterLeaderKill(t *testing.T) {
	c := bustest.NewCluster(t, 3)
	db := warehousetest.New(t)
	servePKIEnv(t, "tok-f")
	urls := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		urls[i] = s.ClientURL()
	}
	p := startVigil(t, "serve", "--nats", strings.Join(urls, ","), "--replicas", "3",
		"--clickhouse", db.DSN, "--http", "127.0.0.1:0", "--retention-schedule=false")
	addr := p.waitLine(t, serveStartedRE, 3*time.Minute)[1]

	total := envInt(t, "VIGIL_FAULT_MESSAGES", 20_000)
	l := newFaultLoad(fmt.Sprintf("r%d", rand.Uint32()), total, 8, 50)
	l.token = "tok-f"
	l.setBase("http://" + addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(ctx, t)
	}()
	for l.ackN.Load() < total/3 && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	info, err := c.JS.Stream(ctx, bus.StreamMessages)
	if err != nil {
		t.Fatal(err)
	}
	si, err := info.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if si.Config.Replicas != 3 || si.Cluster == nil || si.Cluster.Leader == "" {
		t.Fatalf("MESSAGES replicas %d cluster %+v, want R3 with a leader", si.Config.Replicas, si.Cluster)
	}
	leader := si.Cluster.Leader
	var live []string
	killedAt, ackedAt := time.Now(), l.ackN.Load()
	for i, s := range c.Servers {
		if s.Name() == leader {
			s.Shutdown()
			continue
		}
		live = append(live, urls[i])
	}
	if len(live) != 2 {
		t.Fatalf("leader %q not among the nodes", leader)
	}
	for l.ackN.Load() == ackedAt && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	resumed := time.Since(killedAt)
	errsAtKill := l.errs.Load()
	<-done
	if ctx.Err() != nil {
		t.Fatalf("load did not finish: %d of %d acked", l.ackN.Load(), total)
	}
	// The new leader is one of the survivors.
	si, err = info.Info(ctx)
	if err == nil && si.Cluster != nil {
		t.Logf("MESSAGES leader %s → %s", leader, si.Cluster.Leader)
	}
	r := verifyFaultRun(t, l, strings.Join(live, ","), "http://"+warehousetest.Addr(t), db.Name, 5*time.Minute)
	t.Logf("leader %s killed at %d acked; first ack after %v; sent %d, acked %d, unanswered %d, stored %d, 429/503 %d, transport errors %d (%d at kill); verdicts %d (threat %d); raw rows: messages %d, verdicts %d",
		leader, ackedAt, resumed.Round(time.Millisecond), r.sent, r.acked, r.maybe, r.stored, r.refused, r.errs, errsAtKill, r.verdicts, r.threatVerdicts, r.rawMessages, r.rawVerdicts)
}

// TestFaultClickHouseOutage cuts `vigil serve`'s path to ClickHouse for
// VIGIL_FAULT_OUTAGE_SECONDS (default 60) under steady load: ingest keeps
// acking, nothing acked is lost, the archive catches up exactly once, and
// the process's RSS is recorded before, during and after.
func TestFaultClickHouseOutage(t *testing.T) {
	ns := bustest.New(t)
	db := warehousetest.New(t)
	px := warehousetest.NewProxy(t, warehousetest.Addr(t))
	servePKIEnv(t, "tok-f")
	p := startVigil(t, "serve", "--nats", ns.Server.ClientURL(), "--replicas", "1",
		"--clickhouse", fmt.Sprintf("http://%s/%s", px.Addr(), db.Name),
		"--http", "127.0.0.1:0", "--retention-schedule=false")
	addr := p.waitLine(t, serveStartedRE, 3*time.Minute)[1]
	pid := p.cmd.Process.Pid
	outage := time.Duration(envInt(t, "VIGIL_FAULT_OUTAGE_SECONDS", 60)) * time.Second

	// ~500 msgs/s: 4 workers × 25 messages every ~200 ms.
	total := envInt(t, "VIGIL_FAULT_MESSAGES", int64(500*(outage/time.Second+40)))
	l := newFaultLoad(fmt.Sprintf("o%d", rand.Uint32()), total, 4, 25)
	l.token, l.pace = "tok-f", 200*time.Millisecond
	l.setBase("http://" + addr)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(ctx, t)
	}()
	idle := vmRSS(t, pid)
	time.Sleep(15 * time.Second)
	before := vmRSS(t, pid)
	archivedBefore := db.Count(t, "messages")
	px.SetDown(true)
	downAt := l.ackN.Load()
	var during []int64
	for range 4 {
		time.Sleep(outage / 4)
		during = append(during, vmRSS(t, pid))
	}
	archivedDuring := db.Count(t, "messages")
	ackedDuring := l.ackN.Load() - downAt
	px.SetDown(false)
	<-done
	if ctx.Err() != nil {
		t.Fatalf("load did not finish: %d of %d acked", l.ackN.Load(), total)
	}
	if ackedDuring == 0 {
		t.Errorf("ingest acked nothing while ClickHouse was unreachable")
	}
	// Nothing reaches ClickHouse through a cut path; a batch written just
	// before the cut may land, so compare with the archive at the cut only
	// loosely: it must not have grown by the outage's traffic.
	if archivedDuring > archivedBefore+uint64(ackedDuring)/2 {
		t.Errorf("archive grew from %d to %d while ClickHouse was unreachable", archivedBefore, archivedDuring)
	}
	r := verifyFaultRun(t, l, ns.Server.ClientURL(), "http://"+warehousetest.Addr(t), db.Name, 5*time.Minute)
	after := vmRSS(t, pid)
	t.Logf("outage %v: acked %d during it; RSS KiB idle %d, before %d, during %v, after catch-up %d; sent %d, acked %d, stored %d, 429/503 %d; raw rows messages %d",
		outage, ackedDuring, idle, before, during, after, r.sent, r.acked, r.stored, r.refused, r.rawMessages)
}

// fillUntilRefused drives load at the vigil serve on addr until ingest has
// refused 20 requests (503/429), then checks that every acked id is in
// MESSAGES exactly once and nothing unsent is. The returned load stays
// locked until the test ends, for the caller's own checks.
func fillUntilRefused(t *testing.T, prefix, addr, natsURL, what string) (*faultLoad, map[string]int) {
	t.Helper()
	l := newFaultLoad(fmt.Sprintf("%s%d", prefix, rand.Uint32()), 1<<30, 4, 20)
	l.token = "tok-f"
	l.setBase("http://" + addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(ctx, t)
	}()
	deadline := time.Now().Add(5 * time.Minute)
	for l.refused.Load() < 20 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	if l.refused.Load() == 0 {
		t.Fatalf("no 503 after %d acked messages into %s", l.ackN.Load(), what)
	}
	stream := streamIDs(t, natsURL)
	l.mu.Lock()
	t.Cleanup(l.mu.Unlock)
	for id := range l.acked {
		if stream[id] != 1 {
			t.Errorf("acked id %s in MESSAGES %d times, want once", id, stream[id])
		}
	}
	for id, n := range stream {
		if n != 1 || (!l.acked[id] && !l.maybe[id]) {
			t.Errorf("MESSAGES holds %s %d times (acked %v)", id, n, l.acked[id])
		}
	}
	return l, stream
}

// TestFaultStreamFull fills the disk under `vigil serve`: neither dev nor
// serve has a flag for MESSAGES' max bytes, so the NATS server gets a
// 4 MiB JetStream store. Once it is full, ingest must answer 503 (or 429)
// with Retry-After and have acked nothing that is not stored.
func TestFaultStreamFull(t *testing.T) {
	ns := bustest.NewWith(t, bustest.Options{MaxStoreBytes: 4 << 20})
	db := warehousetest.New(t)
	servePKIEnv(t, "tok-f")
	p := startVigil(t, "serve", "--nats", ns.Server.ClientURL(), "--replicas", "1",
		"--clickhouse", db.DSN, "--http", "127.0.0.1:0", "--retention-schedule=false")
	addr := p.waitLine(t, serveStartedRE, 3*time.Minute)[1]

	l, stream := fillUntilRefused(t, "s", addr, ns.Server.ClientURL(), "a 4 MiB store")
	t.Logf("store full after %d acked (%d in MESSAGES, %d refused with 503/429 + Retry-After)", len(l.acked), len(stream), l.refused.Load())
}

// TestFaultStreamLimit fills MESSAGES up to `vigil serve
// --messages-max-bytes`: ingest must answer 503 with Retry-After, have
// acked nothing that is not stored, and keep the old records.
func TestFaultStreamLimit(t *testing.T) {
	ns := bustest.New(t)
	db := warehousetest.New(t)
	servePKIEnv(t, "tok-f")
	p := startVigil(t, "serve", "--nats", ns.Server.ClientURL(), "--replicas", "1",
		"--clickhouse", db.DSN, "--http", "127.0.0.1:0", "--retention-schedule=false",
		"--messages-max-bytes", "1048576")
	addr := p.waitLine(t, serveStartedRE, 3*time.Minute)[1]

	l, stream := fillUntilRefused(t, "m", addr, ns.Server.ClientURL(), "a 1 MiB stream")
	// Discard-new: the first acked messages are still there.
	if len(l.acked) == 0 || stream[l.prefix+"-0-0"] != 1 && stream[l.prefix+"-1-0"] != 1 {
		t.Errorf("the first messages are gone from a full MESSAGES (discard must be new)")
	}
	t.Logf("MESSAGES full after %d acked (%d stored, %d refused with 503/429 + Retry-After)", len(l.acked), len(stream), l.refused.Load())
}
