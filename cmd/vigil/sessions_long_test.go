//go:build long && !race

// The race detector allows at most 8128 live goroutines per process, and a
// WebSocket session holds one on each side: this harness runs without
// -race (go test -tags long -run TestSessions ./cmd/vigil).

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/pii"
)

// Knobs of TestSessions, from the environment.
const (
	envSessions        = "VIGIL_SESSIONS"         // total WebSocket sessions (default 50000)
	envSessionsRate    = "VIGIL_SESSIONS_RATE"    // msgs/s over all sessions (default 5000)
	envSessionsSeconds = "VIGIL_SESSIONS_SECONDS" // load duration (default 60)
	envSessionsSync    = "VIGIL_SESSIONS_SYNC"    // vigil dev --sync-interval (default always)
	envSessionsClient  = "VIGIL_SESSIONS_CLIENT"  // set in client subprocesses: their config (JSON)
	// perProcess bounds the sockets of one serve replica or one client
	// process (open-files hard limit 20,000).
	perProcess = 12_500
	// threatEvery: session i with i%threatEvery == 0 sends a threat first.
	threatEvery = 100
)

// sessionsClientConfig is what the parent hands one client subprocess.
type sessionsClientConfig struct {
	Targets []string // serve HTTP addresses; session i uses Targets[i%len]
	From    int      // first session index
	Count   int      // sessions of this process
	Rate    float64  // msgs/s of this process
	Seconds int
	Prefix  string
	Token   string
	Out     string // result file
}

// sessionsResult is what a client subprocess measured.
type sessionsResult struct {
	Opened, DialErrors         int
	Sent, Acked, ErrorFrames   int64
	UnexpectedCloses           int64
	LatencyMicros              []int32
	ThreatSessions             int   // sessions that sent a threat line
	ThreatAcked                int   // … and got its ack: the action must come
	ThreatActioned             int   // threat sessions whose ack came and that got the action for their threat
	StrayActions               int64 // actions on sessions that sent no threat, or for another message
	FirstErr                   string
	CloseReasons               map[string]int64 // unexpected closes by reason
	OpenSeconds, ActionSeconds float64
}

type clientSession struct {
	c      *websocket.Conn
	idx    int
	conv   string
	threat string // id of the threat line this session sends ("" for none)
	// threatAcked: the threat line was acked, so its action must come.
	threatAcked atomic.Bool

	mu      sync.Mutex
	pending []time.Time
	n       int
	actions []string // message ids of action frames received
}

// TestSessionsClient is the client side, run only inside a subprocess
// started by TestSessions.
func TestSessionsClient(t *testing.T) {
	raw := os.Getenv(envSessionsClient)
	if raw == "" {
		t.Skip("client subprocess of TestSessions")
	}
	var cfg sessionsClientConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		t.Fatal(err)
	}
	var res sessionsResult
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// One HTTP client per source address 127.0.0.2–127.0.0.9.
	clients := make([]*http.Client, 8)
	for i := range clients {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(2+i))}, Timeout: 30 * time.Second}
		clients[i] = &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	hdr := http.Header{"Authorization": {"Bearer " + cfg.Token}}

	var (
		lmu      sync.Mutex
		lat      []int32
		ss       = make([]*clientSession, cfg.Count)
		sent     atomic.Int64
		acked    atomic.Int64
		errFr    atomic.Int64
		closes   atomic.Int64
		stray    atomic.Int64
		reasons  = map[string]int64{}
		errOnce  sync.Once
		firstErr string
		readers  sync.WaitGroup
		stopping atomic.Bool
	)
	setErr := func(s string) { errOnce.Do(func() { firstErr = s }) }

	read := func(s *clientSession) {
		defer readers.Done()
		for {
			_, data, err := s.c.Read(ctx)
			if err != nil {
				if !stopping.Load() {
					closes.Add(1)
					reason := "read error"
					var ce websocket.CloseError
					if errors.As(err, &ce) {
						reason = fmt.Sprintf("%d %s", ce.Code, ce.Reason)
					}
					lmu.Lock()
					reasons[reason]++
					lmu.Unlock()
					setErr(fmt.Sprintf("session %d read: %v", s.idx, err))
				}
				return
			}
			var f struct {
				Type    string         `json:"type"`
				ID      string         `json:"id"`
				Error   string         `json:"error"`
				Verdict *vigil.Verdict `json:"verdict"`
			}
			if err := json.Unmarshal(data, &f); err != nil {
				setErr(fmt.Sprintf("frame %q: %v", data, err))
				continue
			}
			switch f.Type {
			case "ack", "error":
				s.mu.Lock()
				var at time.Time
				if len(s.pending) > 0 {
					at, s.pending = s.pending[0], s.pending[1:]
				}
				s.mu.Unlock()
				if f.Type == "error" {
					errFr.Add(1)
					setErr("error frame: " + f.Error)
					continue
				}
				acked.Add(1)
				if s.threat != "" && f.ID == s.threat {
					s.threatAcked.Store(true)
				}
				if !at.IsZero() {
					d := time.Since(at).Microseconds()
					lmu.Lock()
					lat = append(lat, int32(min(d, math.MaxInt32)))
					lmu.Unlock()
				}
			case "action":
				s.mu.Lock()
				if f.Verdict != nil {
					s.actions = append(s.actions, f.Verdict.MessageID)
				}
				s.mu.Unlock()
				if f.Verdict == nil || s.threat == "" || f.Verdict.MessageID != s.threat || f.Verdict.ConversationID != s.conv {
					stray.Add(1)
				}
			}
		}
	}

	// Open every session, 64 handshakes at a time.
	start := time.Now()
	sem := make(chan struct{}, 64)
	var dials sync.WaitGroup
	var dialErrs atomic.Int64
	for k := range cfg.Count {
		i := cfg.From + k
		s := &clientSession{idx: i, conv: fmt.Sprintf("%s-s%d", cfg.Prefix, i)}
		if i%threatEvery == 0 {
			s.threat = fmt.Sprintf("%s-%d-0", cfg.Prefix, i)
		}
		sem <- struct{}{}
		dials.Add(1)
		go func() {
			defer dials.Done()
			defer func() { <-sem }()
			dctx, dcancel := context.WithTimeout(ctx, time.Minute)
			defer dcancel()
			c, _, err := websocket.Dial(dctx, "ws://"+cfg.Targets[i%len(cfg.Targets)]+"/v1/ws",
				&websocket.DialOptions{HTTPClient: clients[i%len(clients)], HTTPHeader: hdr})
			if err != nil {
				dialErrs.Add(1)
				setErr(fmt.Sprintf("dial session %d: %v", i, err))
				return
			}
			c.SetReadLimit(1 << 20)
			s.c = c
			ss[k] = s
			readers.Add(1)
			go read(s)
		}()
	}
	dials.Wait()
	res.OpenSeconds = time.Since(start).Seconds()
	var open []*clientSession
	for _, s := range ss {
		if s != nil {
			open = append(open, s)
			if s.threat != "" {
				res.ThreatSessions++
			}
		}
	}
	res.Opened, res.DialErrors = len(open), int(dialErrs.Load())
	fmt.Fprintf(os.Stderr, "SESSIONS-OPEN %d\n", len(open))
	// Wait for the parent's go (it measures the servers' idle RSS first).
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		t.Fatalf("waiting for go: %v", err)
	}

	// Pace the load: round-robin over the sessions, so every session sends
	// and each threat session's first message is its threat line.
	send := func(s *clientSession) {
		s.mu.Lock()
		k := s.n
		s.n++
		s.pending = append(s.pending, time.Now())
		s.mu.Unlock()
		text := fmt.Sprintf("message %d about the quarterly rebalance of account group %d", k, s.idx%97)
		if k == 0 && s.threat != "" {
			text = threatText
		}
		b, _ := json.Marshal(map[string]any{
			"id":              fmt.Sprintf("%s-%d-%d", cfg.Prefix, s.idx, k),
			"tenant":          "acme",
			"conversation_id": s.conv,
			"sent_at":         time.Now().UTC().Format(time.RFC3339Nano),
			"sender":          map[string]string{"id": fmt.Sprintf("u-%d", s.idx), "role": "customer"},
			"text":            text,
		})
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		defer wcancel()
		if err := s.c.Write(wctx, websocket.MessageText, b); err != nil {
			setErr(fmt.Sprintf("write session %d: %v", s.idx, err))
			return
		}
		sent.Add(1)
	}
	work := make(chan *clientSession, 1024)
	var senders sync.WaitGroup
	for range 32 {
		senders.Add(1)
		go func() {
			defer senders.Done()
			for s := range work {
				send(s)
			}
		}()
	}
	loadStart := time.Now()
	var due int64
	next := 0
	tick := time.NewTicker(10 * time.Millisecond)
	for el := time.Duration(0); el < time.Duration(cfg.Seconds)*time.Second && len(open) > 0; el = time.Since(loadStart) {
		<-tick.C
		for want := int64(cfg.Rate * time.Since(loadStart).Seconds()); due < want; due++ {
			work <- open[next]
			next = (next + 1) % len(open)
		}
	}
	tick.Stop()
	close(work)
	senders.Wait()

	// Wait for the outstanding acks and for every threat session's action.
	actStart := time.Now()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		done := acked.Load()+errFr.Load() >= sent.Load()
		res.ThreatActioned, res.ThreatAcked = 0, 0
		for _, s := range open {
			if !s.threatAcked.Load() {
				continue
			}
			res.ThreatAcked++
			s.mu.Lock()
			if slices.Contains(s.actions, s.threat) {
				res.ThreatActioned++
			}
			s.mu.Unlock()
		}
		if done && res.ThreatActioned == res.ThreatAcked {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	res.ActionSeconds = time.Since(actStart).Seconds()
	// Late strays would show up in this second.
	time.Sleep(time.Second)
	stopping.Store(true)
	for _, s := range open {
		_ = s.c.Close(websocket.StatusNormalClosure, "done")
	}
	cancel()
	readers.Wait()

	res.Sent, res.Acked, res.ErrorFrames = sent.Load(), acked.Load(), errFr.Load()
	res.UnexpectedCloses, res.StrayActions = closes.Load(), stray.Load()
	res.LatencyMicros, res.FirstErr, res.CloseReasons = lat, firstErr, reasons
	b, _ := json.Marshal(res)
	if err := os.WriteFile(cfg.Out, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// clientProc is one client subprocess.
type clientProc struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   string
	open  chan int
	done  chan error
}

func startSessionsClient(t *testing.T, cfg sessionsClientConfig) *clientProc {
	t.Helper()
	raw, _ := json.Marshal(cfg)
	cmd := exec.Command(os.Args[0], "-test.run", "^TestSessionsClient$", "-test.count", "1", "-test.timeout", "30m")
	cmd.Env = append(os.Environ(), envSessionsClient+"="+string(raw))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = os.Stdout
	p := &clientProc{cmd: cmd, stdin: stdin, out: cfg.Out, open: make(chan int, 1), done: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			var n int
			if _, err := fmt.Sscanf(sc.Text(), "SESSIONS-OPEN %d", &n); err == nil {
				p.open <- n
				continue
			}
			fmt.Fprintln(os.Stderr, sc.Text())
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	})
	return p
}

func percentile(sorted []int32, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return time.Duration(sorted[max(i, 0)]) * time.Microsecond
}

// TestSessions opens VIGIL_SESSIONS WebSocket sessions (default 50,000)
// over several `vigil serve` replicas (≤ 12,500 each) that share one
// `vigil dev`'s NATS and ClickHouse, from client subprocesses (≤ 12,500
// sockets each) spread over source addresses 127.0.0.2–9, sends
// VIGIL_SESSIONS_RATE msgs/s for VIGIL_SESSIONS_SECONDS, and reports RSS
// per session and ack latency. It asserts correctness only: every session
// opens and stays open, every message is acked, every threat session gets
// the retract action for its threat line and no other session gets one.
func TestSessions(t *testing.T) {
	n := int(envInt(t, envSessions, 50_000))
	rate := float64(envInt(t, envSessionsRate, 5000))
	secs := int(envInt(t, envSessionsSeconds, 60))
	replicas := (n + perProcess - 1) / perProcess

	// vigil dev provides NATS and ClickHouse; its PII keys are the ones
	// the serve replicas get, so every process tokenizes alike.
	data := t.TempDir()
	kek, tk := randKey(t), randKey(t)
	keys, _ := json.Marshal(pii.StaticKeysConfig{Default: &pii.StaticTenantKeys{KEK: kek, TokenKey: tk}})
	if err := os.WriteFile(filepath.Join(data, "pii-keys.json"), keys, 0o600); err != nil {
		t.Fatal(err)
	}
	dev := &devRun{data: data}
	if v := os.Getenv(envSessionsSync); v != "" {
		dev.args = []string{"--sync-interval", v}
	}
	dev.start(t)
	t.Setenv("VIGIL_PII_KEK", kek)
	t.Setenv("VIGIL_PII_TOKEN_KEY", tk)
	t.Setenv("VIGIL_TOKENS", "tok-s=acme")
	var (
		serves []*vigilProc
		addrs  []string
	)
	for range replicas {
		p := startVigil(t, "serve", "--nats", dev.nats, "--replicas", "1", "--clickhouse", dev.ch+"/vigil",
			"--http", "127.0.0.1:0", "--retention-schedule=false")
		addrs = append(addrs, p.waitLine(t, serveStartedRE, 3*time.Minute)[1])
		serves = append(serves, p)
	}
	time.Sleep(3 * time.Second)
	rss := func() []int64 {
		out := make([]int64, len(serves))
		for i, p := range serves {
			out[i] = vmRSS(t, p.cmd.Process.Pid)
		}
		return out
	}
	base := rss()

	prefix := fmt.Sprintf("w%d", rand.Uint32())
	procs := (n + perProcess - 1) / perProcess
	var clients []*clientProc
	dir := t.TempDir()
	for k := range procs {
		from, to := k*n/procs, (k+1)*n/procs
		clients = append(clients, startSessionsClient(t, sessionsClientConfig{
			Targets: addrs, From: from, Count: to - from, Rate: rate / float64(procs), Seconds: secs,
			Prefix: prefix, Token: "tok-s", Out: filepath.Join(dir, fmt.Sprintf("client%d.json", k)),
		}))
	}
	opened := 0
	for _, c := range clients {
		select {
		case o := <-c.open:
			opened += o
		case err := <-c.done:
			t.Fatalf("client exited before opening its sessions: %v", err)
		case <-time.After(15 * time.Minute):
			t.Fatal("sessions not open after 15 minutes")
		}
	}
	time.Sleep(3 * time.Second)
	idle := rss()
	for _, c := range clients {
		if _, err := fmt.Fprintln(c.stdin, "go"); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(time.Duration(secs) * time.Second / 2)
	loaded := rss()
	var total sessionsResult
	var lat []int32
	for _, c := range clients {
		select {
		case err := <-c.done:
			if err != nil {
				t.Fatalf("client: %v", err)
			}
		case <-time.After(time.Duration(secs)*time.Second + 10*time.Minute):
			t.Fatal("client did not finish")
		}
		b, err := os.ReadFile(c.out)
		if err != nil {
			t.Fatal(err)
		}
		var r sessionsResult
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		total.Opened += r.Opened
		total.DialErrors += r.DialErrors
		total.Sent += r.Sent
		total.Acked += r.Acked
		total.ErrorFrames += r.ErrorFrames
		total.UnexpectedCloses += r.UnexpectedCloses
		total.ThreatSessions += r.ThreatSessions
		total.ThreatAcked += r.ThreatAcked
		total.ThreatActioned += r.ThreatActioned
		total.StrayActions += r.StrayActions
		total.OpenSeconds = max(total.OpenSeconds, r.OpenSeconds)
		total.ActionSeconds = max(total.ActionSeconds, r.ActionSeconds)
		for k, v := range r.CloseReasons {
			if total.CloseReasons == nil {
				total.CloseReasons = map[string]int64{}
			}
			total.CloseReasons[k] += v
		}
		if total.FirstErr == "" {
			total.FirstErr = r.FirstErr
		}
		lat = append(lat, r.LatencyMicros...)
	}
	slices.Sort(lat)

	var perIdle, perLoaded []string
	for i := range serves {
		per := n / replicas
		perIdle = append(perIdle, fmt.Sprintf("%.1f", float64(idle[i]-base[i])/float64(per)))
		perLoaded = append(perLoaded, fmt.Sprintf("%.1f", float64(loaded[i]-base[i])/float64(per)))
	}
	t.Logf("%d sessions over %d serve replicas and %d client processes: opened %d in %.1fs (dial errors %d)", n, replicas, procs, total.Opened, total.OpenSeconds, total.DialErrors)
	t.Logf("RSS KiB per replica: baseline %v, idle sessions %v, under load %v; KiB per session idle [%s], under load [%s]",
		base, idle, loaded, strings.Join(perIdle, " "), strings.Join(perLoaded, " "))
	t.Logf("load %.0f msgs/s target for %ds: sent %d (%.0f msgs/s), acked %d, error frames %d; ack p50 %v p99 %v p99.9 %v max %v",
		rate, secs, total.Sent, float64(total.Sent)/float64(secs), total.Acked, total.ErrorFrames,
		percentile(lat, 0.5), percentile(lat, 0.99), percentile(lat, 0.999), percentile(lat, 1))
	t.Logf("actions: %d/%d threat sessions whose threat was acked got their retract (%d sent a threat; all within %.1fs after the load), %d stray actions; unexpected closes %d %v; first error: %q",
		total.ThreatActioned, total.ThreatAcked, total.ThreatSessions, total.ActionSeconds, total.StrayActions, total.UnexpectedCloses, total.CloseReasons, total.FirstErr)

	if total.Opened != n || opened != n {
		t.Errorf("opened %d sessions, want %d", total.Opened, n)
	}
	if total.UnexpectedCloses != 0 {
		t.Errorf("%d sessions closed by the server", total.UnexpectedCloses)
	}
	if total.Acked+total.ErrorFrames != total.Sent || total.Sent == 0 {
		t.Errorf("sent %d, acked %d, error frames %d: every message must be answered", total.Sent, total.Acked, total.ErrorFrames)
	}
	if total.ThreatAcked == 0 || total.ThreatActioned != total.ThreatAcked {
		t.Errorf("%d of %d threat sessions whose threat was acked got their action", total.ThreatActioned, total.ThreatAcked)
	}
	if total.StrayActions != 0 {
		t.Errorf("%d actions reached sessions that did not send the threat", total.StrayActions)
	}
}
