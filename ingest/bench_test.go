package ingest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
)

// benchBatch is the batch size of both sides of BenchmarkIngest.
const benchBatch = 1000

// benchText is ~300 bytes of ordinary chat text without personal data, so
// the tokenizer scans but stores nothing in the vault.
var benchText = strings.Repeat("let us review the quarterly allocation before the call ", 6)[:300]

// BenchmarkIngest compares, on one embedded JetStream (file store, loopback
// TCP), HTTP batch ingest (decode, validate, tokenize with the real pii
// tokenizer, async publish, wait for every PubAck) with bare JetStream
// async publishes of the same messages (marshal, PublishMsgAsync with a
// unique Nats-Msg-Id, wait for every PubAck). Both report msgs/s and the
// per-batch ack latency.
//
// The sync-always variants fsync every write before the PubAck, Vigil's
// production durability (DESIGN.md); the others use nats-server's default
// (fsync every 2 minutes), the figure DESIGN.md's baselines quote.
func BenchmarkIngest(b *testing.B) {
	for _, sync := range []bool{false, true} {
		name := "sync-interval"
		if sync {
			name = "sync-always"
		}
		b.Run(name, func(b *testing.B) { benchIngest(b, sync) })
	}
}

func benchIngest(b *testing.B, syncAlways bool) {
	for _, conc := range []int{1, 4} {
		b.Run(fmt.Sprintf("bare-jetstream-async-c%d", conc), func(b *testing.B) {
			benchBare(b, envOpts{syncAlways: syncAlways}, conc)
		})
		for _, atomic := range []bool{true, false} {
			name := "http-batch"
			if !atomic {
				name = "http-batch-no-atomic"
			}
			b.Run(fmt.Sprintf("%s-c%d", name, conc), func(b *testing.B) {
				benchHTTP(b, envOpts{syncAlways: syncAlways, busCfg: bus.Config{NoAtomicBatches: !atomic}}, conc)
			})
		}
	}
}

// benchBare publishes batches of benchBatch messages with PublishMsgAsync
// from conc goroutines and waits for every PubAck.
func benchBare(b *testing.B, o envOpts, conc int) {
	e := newEnv(b, o)
	js, err := jetstream.New(e.nats.Conn, jetstream.WithPublishAsyncMaxPending(bus.DefaultAsyncMaxPending))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now().UTC()
	var seq atomic.Int64
	runBatches(b, conc, func() error {
		m := vigil.Message{Tenant: "acme", Sender: vigil.Participant{ID: "u-1", DisplayName: "⟦NAME:x⟧"},
			Channel: "chat", Text: benchText, SentAt: now, ReceivedAt: now}
		futs := make([]jetstream.PubAckFuture, benchBatch)
		for i := range futs {
			n := seq.Add(1)
			m.ID = "bare-" + strconv.FormatInt(n, 10)
			m.ConversationID = "c" + strconv.FormatInt(n%100, 10)
			data, err := json.Marshal(&m)
			if err != nil {
				return err
			}
			msg := &nats.Msg{Subject: bus.MessageSubject(m.Tenant, m.ConversationID), Data: data, Header: nats.Header{}}
			msg.Header.Set(jetstream.MsgIDHeader, m.ID)
			if futs[i], err = js.PublishMsgAsync(msg, jetstream.WithStallWait(10*time.Second)); err != nil {
				return err
			}
		}
		for _, f := range futs {
			select {
			case <-f.Ok():
			case err := <-f.Err():
				return err
			}
		}
		return nil
	})
}

// benchHTTP posts batches of benchBatch messages to /v1/messages/batch from
// conc goroutines.
func benchHTTP(b *testing.B, o envOpts, conc int) {
	e := newEnv(b, o)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conc}}
	defer client.CloseIdleConnections()
	// A struct, not a map: the client's own encoding cost should not
	// dominate the comparison.
	type wp struct {
		ID          string `json:"id"`
		DisplayName string `json:"display_name"`
	}
	type wm struct {
		ID             string `json:"id"`
		Tenant         string `json:"tenant"`
		ConversationID string `json:"conversation_id"`
		Sender         wp     `json:"sender"`
		Channel        string `json:"channel"`
		Text           string `json:"text"`
		SentAt         string `json:"sent_at"`
	}
	sentAt := time.Now().UTC().Format(time.RFC3339Nano)
	var seq atomic.Int64
	runBatches(b, conc, func() error {
		batch := make([]wm, benchBatch)
		for i := range batch {
			n := seq.Add(1)
			batch[i] = wm{ID: "http-" + strconv.FormatInt(n, 10), Tenant: "acme", ConversationID: "c" + strconv.FormatInt(n%100, 10),
				Sender: wp{ID: "u-1", DisplayName: "Alice Smith"}, Channel: "chat", Text: benchText, SentAt: sentAt}
		}
		body, err := json.Marshal(batch)
		if err != nil {
			return err
		}
		req, _ := http.NewRequest(http.MethodPost, e.http.URL+"/v1/messages/batch", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tokenAcme)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusAccepted {
			return fmt.Errorf("status %d: %.200s", resp.StatusCode, out)
		}
		return nil
	})
}

// runBatches runs b.N batches, conc at a time, and reports msgs/s and the
// p50/p99 batch ack latency in milliseconds.
func runBatches(b *testing.B, conc int, batch func() error) {
	lat := make([]time.Duration, b.N)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, conc)
	b.ResetTimer()
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				t0 := time.Now()
				if err := batch(); err != nil {
					errs <- err
					return
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatal(err)
	}
	slices.Sort(lat)
	b.ReportMetric(float64(b.N*benchBatch)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-batch-ack-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-batch-ack-ms")
}

// BenchmarkWSSessionMemory opens WebSocket sessions that each send one
// message, read its ack and then stay idle, and reports heap+stack growth
// per session. Client and server live in this process, so "bare" (a
// coder/websocket echo handler, the DESIGN.md baseline) against "ingest"
// in the same run isolates what an ingest session adds.
func BenchmarkWSSessionMemory(b *testing.B) {
	const sessions = 500
	e := newEnv(b, envOpts{})
	bare := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			_, data, err := c.Read(context.Background())
			if err != nil {
				return
			}
			if err := c.Write(context.Background(), websocket.MessageText, data[:min(len(data), 40)]); err != nil {
				return
			}
		}
	}))
	defer bare.Close()
	for _, target := range []struct{ name, url string }{{"bare", bare.URL}, {"ingest", e.http.URL + "/v1/ws"}} {
		b.Run(target.name, func(b *testing.B) {
			for range b.N {
				before := memInUse()
				conns := openSessions(b, target.url, sessions)
				after := memInUse()
				b.ReportMetric(float64(after-before)/sessions/1024, "KiB/session")
				for _, c := range conns {
					c.CloseNow()
				}
			}
		})
	}
}

var memSeq atomic.Int64

func openSessions(b *testing.B, url string, n int) []*websocket.Conn {
	conns := make([]*websocket.Conn, 0, n)
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed atomic.Int64
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			h := http.Header{"Authorization": {"Bearer " + tokenAcme}}
			c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http"), &websocket.DialOptions{HTTPHeader: h})
			if err != nil {
				failed.Add(1)
				return
			}
			body, _ := json.Marshal(wireMsg(fmt.Sprintf("mem-%d", memSeq.Add(1)), "acme", fmt.Sprintf("c%d", i), "hello"))
			if err := c.Write(ctx, websocket.MessageText, body); err != nil {
				failed.Add(1)
				return
			}
			if _, _, err := c.Read(ctx); err != nil {
				failed.Add(1)
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		b.Fatalf("%d sessions failed", failed.Load())
	}
	return conns
}

func memInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse + ms.StackInuse
}

// BenchmarkIngestSingle compares the ack latency of one message at a time:
// POST /v1/messages against a bare synchronous JetStream publish of the
// same message (sync-interval store).
func BenchmarkIngestSingle(b *testing.B) {
	b.Run("bare-jetstream-sync", func(b *testing.B) {
		e := newEnv(b, envOpts{})
		js, err := jetstream.New(e.nats.Conn)
		if err != nil {
			b.Fatal(err)
		}
		m := vigil.Message{Tenant: "acme", ConversationID: "c", Sender: vigil.Participant{ID: "u-1"},
			Channel: "chat", Text: benchText, SentAt: time.Now().UTC(), ReceivedAt: time.Now().UTC()}
		var seq int
		runSingles(b, func() error {
			seq++
			m.ID = "bare-" + strconv.Itoa(seq)
			data, err := json.Marshal(&m)
			if err != nil {
				return err
			}
			_, err = js.Publish(context.Background(), bus.MessageSubject(m.Tenant, m.ConversationID), data, jetstream.WithMsgID(m.ID))
			return err
		})
	})
	b.Run("http-single", func(b *testing.B) {
		e := newEnv(b, envOpts{})
		client := e.http.Client()
		w := wireMsg("", "acme", "c", benchText)
		var seq int
		runSingles(b, func() error {
			seq++
			w["id"] = "http-" + strconv.Itoa(seq)
			body, err := json.Marshal(w)
			if err != nil {
				return err
			}
			req, _ := http.NewRequest(http.MethodPost, e.http.URL+"/v1/messages", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tokenAcme)
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			_, _ = io.Copy(io.Discard, resp.Body)
			if resp.StatusCode != http.StatusAccepted {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			return nil
		})
	})
}

// runSingles reports msgs/s and p50/p99 ack latency in microseconds.
func runSingles(b *testing.B, one func() error) {
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		t0 := time.Now()
		if err := one(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1000, "p50-ack-us")
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1000, "p99-ack-us")
}
