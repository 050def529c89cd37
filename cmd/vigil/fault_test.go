package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/ingest"
)

// threatText is a line the built-in finance pack retracts
// (finance.threat.violence) in a conversation that is not about a game.
const (
	threatText = "I'm going to kill you"
	threatRule = "finance.threat.violence"
)

// faultLoad sends uniquely identified messages in batches over HTTP to
// whatever address is current, and keeps, client side, which ids were
// acked (a 202 that named them) and which were sent without an answer
// (they may or may not be stored, at most once).
type faultLoad struct {
	prefix  string
	token   string        // bearer token; "" sends none
	pace    time.Duration // pause of each worker between batches
	workers int
	batch   int
	total   int64 // messages to send

	base atomic.Pointer[string] // http://host:port of the live vigil, nil while down

	next  atomic.Int64 // messages handed to senders
	ackN  atomic.Int64
	mu    sync.Mutex
	acked map[string]bool
	maybe map[string]bool // sent, no answer (yet)
	// threat holds the ids whose text is threatText.
	threat map[string]bool
	// refused counts 429/503 answers, retried after Retry-After.
	refused atomic.Int64
	errs    atomic.Int64 // transport errors (vigil killed mid-request)
}

func newFaultLoad(prefix string, total int64, workers, batch int) *faultLoad {
	return &faultLoad{prefix: prefix, workers: workers, batch: batch, total: total,
		acked: map[string]bool{}, maybe: map[string]bool{}, threat: map[string]bool{}}
}

func (l *faultLoad) setBase(b string) {
	if b == "" {
		l.base.Store(nil)
		return
	}
	l.base.Store(&b)
}

// message builds message n of worker w: every 50th message of a
// conversation is a threat, the rest are plain.
func (l *faultLoad) message(w int, n int64) map[string]any {
	id := fmt.Sprintf("%s-%d-%d", l.prefix, w, n)
	text := fmt.Sprintf("message %d about the quarterly rebalance of account group %d", n, w)
	if n%50 == 7 {
		text = threatText
	}
	return map[string]any{
		"id":              id,
		"tenant":          "acme",
		"conversation_id": fmt.Sprintf("%s-c%d-%d", l.prefix, w, n%16),
		"sent_at":         time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC).Add(time.Duration(n) * time.Millisecond).Format(time.RFC3339Nano),
		"sender":          map[string]string{"id": fmt.Sprintf("u-%d", n%7), "role": "customer"},
		"text":            text,
	}
}

// run sends until total messages are acked or answered for good, or ctx
// ends. Failures of the protocol (4xx other than 429, conflicts) fail t.
func (l *faultLoad) run(ctx context.Context, t testing.TB) {
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	defer client.CloseIdleConnections()
	for w := range l.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n int64
			for ctx.Err() == nil {
				if l.next.Add(int64(l.batch)) > l.total+int64(l.batch)-1 {
					return
				}
				msgs := make([]map[string]any, l.batch)
				ids := make([]string, l.batch)
				for i := range msgs {
					msgs[i] = l.message(w, n)
					ids[i] = msgs[i]["id"].(string)
					n++
				}
				l.mu.Lock()
				for i, id := range ids {
					if msgs[i]["text"] == threatText {
						l.threat[id] = true
					}
				}
				l.mu.Unlock()
				body, _ := json.Marshal(msgs)
				l.send(ctx, t, client, ids, body)
				if l.pace > 0 {
					time.Sleep(l.pace)
				}
			}
		}()
	}
	wg.Wait()
}

// send posts one batch until a 202 names its ids, retrying the same ids
// (dedup makes it safe) across restarts.
func (l *faultLoad) send(ctx context.Context, t testing.TB, client *http.Client, ids []string, body []byte) {
	for ctx.Err() == nil {
		b := l.base.Load()
		if b == nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		l.mu.Lock()
		for _, id := range ids {
			if !l.acked[id] {
				l.maybe[id] = true
			}
		}
		l.mu.Unlock()
		req, _ := http.NewRequestWithContext(ctx, "POST", *b+"/v1/messages/batch", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if l.token != "" {
			req.Header.Set("Authorization", "Bearer "+l.token)
		}
		resp, err := client.Do(req)
		if err != nil {
			l.errs.Add(1)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		rb, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr != nil {
			// Killed while writing the answer: the batch stays unanswered
			// (maybe stored) and is retried with the same ids.
			l.errs.Add(1)
			time.Sleep(50 * time.Millisecond)
			continue
		}
		switch resp.StatusCode {
		case http.StatusAccepted:
			var ba ingest.BatchAck
			if err := json.Unmarshal(rb, &ba); err != nil || len(ba.Acks) != len(ids) {
				t.Errorf("202 body %q: %v, want %d acks", rb, err, len(ids))
				return
			}
			l.mu.Lock()
			for i, a := range ba.Acks {
				if a.ID != ids[i] || a.Conflict || a.Sequence == 0 {
					t.Errorf("ack %d = %+v, want id %s, a sequence and no conflict", i, a, ids[i])
				}
				l.acked[a.ID] = true
				delete(l.maybe, a.ID)
			}
			l.mu.Unlock()
			l.ackN.Add(int64(len(ids)))
			return
		case http.StatusTooManyRequests, http.StatusServiceUnavailable:
			l.refused.Add(1)
			if resp.Header.Get("Retry-After") == "" {
				t.Errorf("%d without Retry-After: %s", resp.StatusCode, rb)
			}
			time.Sleep(200 * time.Millisecond)
		default:
			t.Errorf("POST batch = %d %s", resp.StatusCode, rb)
			return
		}
	}
}

// devRun is a `vigil dev` on one data directory, restarted after kills.
type devRun struct {
	data string
	args []string // extra flags
	p    *vigilProc
	http string
	nats string
	ch   string
}

func (d *devRun) start(t *testing.T) {
	t.Helper()
	args := []string{"dev", "--data", d.data, "--http", "127.0.0.1:0", "--nats-port", "-1", "--clickhouse-http", "127.0.0.1:0"}
	d.p = startVigil(t, append(args, d.args...)...)
	m := d.p.waitLine(t, startedRE, 3*time.Minute)
	d.http, d.nats, d.ch = m[1], m[2], m[3]
}

// kill sends SIGKILL and waits for the process to be gone.
func (d *devRun) kill(t *testing.T) {
	t.Helper()
	if err := d.p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-d.p.done
}

// chQuery runs q on the ClickHouse HTTP interface and returns the trimmed
// TSV answer.
func chQuery(t testing.TB, chURL, q string) string {
	t.Helper()
	resp, err := http.Get(chURL + "/?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", q, resp.StatusCode, b)
	}
	return strings.TrimSpace(string(b))
}

func chInt(t testing.TB, chURL, q string) int64 {
	t.Helper()
	s := chQuery(t, chURL, q)
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("%s = %q, want a number", q, s)
	}
	return n
}

func chSet(t testing.TB, chURL, q string) map[string]int {
	t.Helper()
	out := map[string]int{}
	s := chQuery(t, chURL, q)
	if s == "" {
		return out
	}
	for _, l := range strings.Split(s, "\n") {
		out[l]++
	}
	return out
}

// streamIDs reads every message of MESSAGES and counts its Nats-Msg-Id,
// retrying for up to a minute while the cluster settles (a JetStream API
// request can find no responder during a leader election).
func streamIDs(t testing.TB, natsURL string) map[string]int {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ids, err := readStreamIDs(natsURL)
		if err == nil {
			return ids
		}
		if time.Now().After(deadline) {
			t.Fatalf("read MESSAGES: %v", err)
		}
		t.Logf("read MESSAGES: %v (retrying)", err)
		time.Sleep(time.Second)
	}
}

// streamCount returns how many records stream holds.
func streamCount(t testing.TB, natsURL, stream string) uint64 {
	t.Helper()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("%s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatalf("%s: %v", stream, err)
	}
	return info.State.Msgs
}

func readStreamIDs(natsURL string) (map[string]int, error) {
	nc, err := nats.Connect(natsURL)
	if err != nil {
		return nil, err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	s, err := js.Stream(ctx, bus.StreamMessages)
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	want := info.State.Msgs
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return nil, err
	}
	ids := map[string]int{}
	var got uint64
	for got < want {
		batch, err := c.Fetch(1000, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			ids[m.Headers().Get(nats.MsgIdHdr)]++
			got++
			n++
		}
		if err := batch.Error(); err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("%d of %d messages, then nothing", got, want)
		}
	}
	return ids, nil
}

// faultReport is what a kill run found, for bench/results/faults.md.
type faultReport struct {
	sent, acked, maybe, stored int
	kills, refused, errs       int64
	rawMessages, rawVerdicts   int64
	verdicts, threatVerdicts   int64
}

// verifyFaultRun waits for the projections to catch up with MESSAGES and
// checks the exactly-once properties against the client's record.
//
// chURL is the ClickHouse HTTP interface and db the database of the tables
// ("vigil" for vigil dev).
func verifyFaultRun(t *testing.T, l *faultLoad, natsURL, chURL, db string, within time.Duration) faultReport {
	t.Helper()
	stream := streamIDs(t, natsURL)
	// Every message is valid: a crash must never end in a dead letter
	// (a timeout caused by the restart counted against the message would).
	if n := streamCount(t, natsURL, bus.StreamDeadLetter); n != 0 {
		t.Errorf("DEADLETTER holds %d records, want none", n)
	}
	var r faultReport
	l.mu.Lock()
	defer l.mu.Unlock()
	for id, n := range stream {
		if n != 1 {
			t.Errorf("MESSAGES holds id %s %d times, want once", id, n)
		}
		if !l.acked[id] && !l.maybe[id] {
			t.Errorf("MESSAGES holds id %s the client never sent", id)
		}
	}
	for id := range l.acked {
		if stream[id] != 1 {
			t.Errorf("acked id %s is in MESSAGES %d times, want once", id, stream[id])
		}
	}
	r.acked, r.maybe, r.stored = len(l.acked), len(l.maybe), len(stream)
	r.sent = r.acked + r.maybe
	want := int64(len(stream))

	// The sink and evaluator finish what was in flight at the last kill.
	// Give up when the counts stop moving for two minutes (or after
	// within): a stall is a loss, not slowness. Verdicts are stored before
	// their evaluation records, so once every message has one, VERDICTS is
	// complete and its sink consumer (which runs on its own) must catch up.
	deadline := time.Now().Add(within)
	var lastM, lastE, lastV int64 = -1, -1, -1
	wantV := int64(-1)
	moved := time.Now()
	for {
		m := chInt(t, chURL, "SELECT count() FROM "+db+".messages FINAL")
		e := chInt(t, chURL, "SELECT count() FROM "+db+".evaluations FINAL")
		v := chInt(t, chURL, "SELECT count() FROM "+db+".verdicts FINAL")
		if m >= want && e >= want {
			if wantV < 0 {
				wantV = int64(streamCount(t, natsURL, bus.StreamVerdicts))
			}
			if v >= wantV {
				break
			}
		}
		if m != lastM || e != lastE || v != lastV {
			lastM, lastE, lastV, moved = m, e, v, time.Now()
		}
		if time.Now().After(deadline) || time.Since(moved) > 2*time.Minute {
			missing := chQuery(t, chURL, "SELECT count(), min(stream_seq), max(stream_seq) FROM "+db+".messages FINAL WHERE id NOT IN (SELECT message_id FROM "+db+".evaluations FINAL)")
			t.Fatalf("ClickHouse stopped at %d messages, %d evaluations, %d verdicts, want %d, %d and %d (VERDICTS; -1: not read yet); messages without an evaluation (count, min seq, max seq): %s",
				m, e, v, want, want, wantV, missing)
		}
		time.Sleep(250 * time.Millisecond)
	}

	archive := chSet(t, chURL, "SELECT id FROM "+db+".messages FINAL")
	if int64(len(archive)) != want {
		t.Errorf("archive holds %d distinct ids, MESSAGES %d", len(archive), want)
	}
	for id, n := range archive {
		if n != 1 {
			t.Errorf("archive holds id %s %d times after FINAL, want once", id, n)
		}
		if stream[id] != 1 {
			t.Errorf("archive holds id %s that is not in MESSAGES", id)
		}
	}
	for id := range l.acked {
		if archive[id] != 1 {
			t.Errorf("acked id %s is in the archive %d times, want once", id, archive[id])
		}
	}
	if got := chInt(t, chURL, "SELECT count() FROM (SELECT message_id, ruleset_version FROM "+db+".evaluations FINAL GROUP BY ALL HAVING count() > 1)"); got != 0 {
		t.Errorf("%d (message, ruleset) pairs have more than one evaluation", got)
	}
	if got := chInt(t, chURL, "SELECT uniqExact(message_id) FROM "+db+".evaluations FINAL"); got != want {
		t.Errorf("evaluated messages = %d, want %d", got, want)
	}
	if got := chInt(t, chURL, "SELECT uniqExact(ruleset_version) FROM "+db+".evaluations FINAL"); got != 1 {
		t.Errorf("ruleset versions = %d, want 1", got)
	}
	r.verdicts = chInt(t, chURL, "SELECT count() FROM "+db+".verdicts FINAL")
	if got := chInt(t, chURL, "SELECT uniqExact(id) FROM "+db+".verdicts FINAL"); got != r.verdicts {
		t.Errorf("verdict rows after FINAL = %d, distinct verdict ids = %d, want equal", r.verdicts, got)
	}
	// The verdicts are those of a clean run: every stored threat line, and
	// nothing else, is retracted under the threat rule.
	threats := chSet(t, chURL, "SELECT message_id FROM "+db+".verdicts FINAL WHERE rule_id = '"+threatRule+"'")
	r.threatVerdicts = int64(len(threats))
	for id, n := range threats {
		if n != 1 || !l.threat[id] {
			t.Errorf("threat verdict on %s (%d rows), want exactly one and only on threat lines", id, n)
		}
	}
	for id := range l.threat {
		if stream[id] == 1 && threats[id] != 1 {
			t.Errorf("stored threat line %s has %d threat verdicts, want 1", id, threats[id])
		}
	}
	r.rawMessages = chInt(t, chURL, "SELECT count() FROM "+db+".messages")
	r.rawVerdicts = chInt(t, chURL, "SELECT count() FROM "+db+".verdicts")
	r.refused, r.errs = l.refused.Load(), l.errs.Load()
	return r
}

// runKillFault sends total messages while killing `vigil dev` kills times
// (SIGKILL at a random point of each slice of the load) and restarting it
// on the same data directory, then verifies.
func runKillFault(t *testing.T, total int64, kills, workers, batch int, within time.Duration) faultReport {
	data := t.TempDir()
	if dir := os.Getenv("VIGIL_TEST_LOG_DIR"); dir != "" {
		data = filepath.Join(dir, "data") // kept for inspection
	}
	d := &devRun{data: data}
	d.start(t)
	l := newFaultLoad(fmt.Sprintf("k%d", rand.Uint32()), total, workers, batch)
	l.setBase("http://" + d.http)

	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		l.run(ctx, t)
	}()
	slice := total / int64(kills+1)
	for k := range kills {
		at := slice*int64(k) + slice/4 + rand.Int64N(slice/2+1)
		for l.ackN.Load() < at && ctx.Err() == nil {
			time.Sleep(5 * time.Millisecond)
		}
		l.setBase("")
		d.kill(t)
		t.Logf("kill %d at %d acked", k+1, l.ackN.Load())
		d.start(t)
		l.setBase("http://" + d.http)
	}
	<-done
	if ctx.Err() != nil {
		t.Fatalf("load did not finish within %v: %d of %d acked", within, l.ackN.Load(), total)
	}
	// Verification waits for the projections while they make progress
	// (a stall of two minutes fails it), at most 3 minutes past the load.
	r := verifyFaultRun(t, l, d.nats, d.ch, "vigil", max(within, 3*time.Minute))
	r.kills = int64(kills)
	t.Logf("sent %d, acked %d, unanswered %d, stored %d, kills %d, 429/503 %d, transport errors %d; "+
		"verdicts %d (threat %d); raw rows before FINAL: messages %d, verdicts %d",
		r.sent, r.acked, r.maybe, r.stored, r.kills, r.refused, r.errs, r.verdicts, r.threatVerdicts, r.rawMessages, r.rawVerdicts)
	return r
}

// TestFaultKillDev kills `vigil dev` with SIGKILL three times while
// messages are ingested, evaluated and archived, restarts it on the same
// data directory, and checks that every acked message is stored, archived
// and evaluated exactly once and that verdicts are not duplicated.
func TestFaultKillDev(t *testing.T) {
	if testing.Short() {
		t.Skip("starts vigil dev four times")
	}
	total := int64(3000)
	if s := os.Getenv("VIGIL_FAULT_MESSAGES"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		total = n
	}
	r := runKillFault(t, total, 3, 8, 25, 50*time.Second)
	if r.acked == 0 || r.stored < r.acked {
		t.Errorf("acked %d, stored %d", r.acked, r.stored)
	}
}
