package bench_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/vigilhq/vigil/bench"
)

// ackServer is a tiny stand-in for ingest's HTTP API: it validates the
// request shape and acks, or refuses per refuse(n) for the n-th request.
type ackServer struct {
	t        *testing.T
	token    string
	delay    time.Duration
	refuse   func(n int64) (status int, retryAfter string)
	requests atomic.Int64
	batches  atomic.Int64
	mu       sync.Mutex
	ids      map[string]int
}

func (s *ackServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.requests.Add(1)
	if s.token != "" && r.Header.Get("Authorization") != "Bearer "+s.token {
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":"bad token","status":401}`)
		return
	}
	if s.delay > 0 {
		time.Sleep(s.delay)
	}
	if s.refuse != nil {
		if st, ra := s.refuse(n); st != 0 {
			if ra != "" {
				w.Header().Set("Retry-After", ra)
			}
			w.WriteHeader(st)
			_, _ = io.WriteString(w, `{"error":"busy","status":`+itoa(st)+`}`)
			return
		}
	}
	body, _ := io.ReadAll(r.Body)
	var msgs []map[string]any
	switch r.URL.Path {
	case "/v1/messages":
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			s.t.Errorf("single: %v", err)
		}
		msgs = []map[string]any{m}
	case "/v1/messages/batch":
		s.batches.Add(1)
		if err := json.Unmarshal(body, &msgs); err != nil {
			s.t.Errorf("batch: %v", err)
		}
	default:
		http.NotFound(w, r)
		return
	}
	type ack struct {
		ID  string `json:"id"`
		Seq int64  `json:"seq"`
	}
	acks := make([]ack, 0, len(msgs))
	s.mu.Lock()
	for _, m := range msgs {
		for _, k := range []string{"tenant", "conversation_id", "sender", "text", "sent_at"} {
			if m[k] == nil || m[k] == "" {
				s.t.Errorf("message lacks %s: %v", k, m)
			}
		}
		id, _ := m["id"].(string)
		s.ids[id]++
		acks = append(acks, ack{ID: id, Seq: n})
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	if r.URL.Path == "/v1/messages" {
		_ = json.NewEncoder(w).Encode(acks[0])
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"acks": acks})
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func newAckServer(t *testing.T, s *ackServer) string {
	t.Helper()
	s.t = t
	s.ids = map[string]int{}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv.URL
}

func TestRunHTTP(t *testing.T) {
	tests := []struct {
		name   string
		srv    *ackServer
		cfg    bench.RunConfig
		check  func(t *testing.T, s *ackServer, res *bench.Result, elapsed time.Duration)
		failed int64
	}{
		{
			name: "rate limited",
			cfg:  bench.RunConfig{Rate: 100, Count: 150, Sessions: 4},
			check: func(t *testing.T, s *ackServer, res *bench.Result, elapsed time.Duration) {
				// 150 messages at 100/s take ~1.5 s (burst 1).
				if elapsed < 1400*time.Millisecond || elapsed > 4*time.Second {
					t.Errorf("run took %v, want ~1.5s", elapsed)
				}
				if res.Rate < 60 || res.Rate > 110 {
					t.Errorf("achieved rate %.1f, want ~100", res.Rate)
				}
			},
		},
		{
			name: "unlimited with token",
			srv:  &ackServer{token: "s3cret"},
			cfg:  bench.RunConfig{Count: 300, Sessions: 3, Token: "s3cret"},
			check: func(t *testing.T, s *ackServer, res *bench.Result, elapsed time.Duration) {
				if res.Requests != 300 {
					t.Errorf("requests = %d, want 300", res.Requests)
				}
			},
		},
		{
			name: "latency accounted",
			srv:  &ackServer{delay: 30 * time.Millisecond},
			cfg:  bench.RunConfig{Count: 20, Sessions: 2},
			check: func(t *testing.T, s *ackServer, res *bench.Result, elapsed time.Duration) {
				l := res.AckLatency
				if l.Count != 20 {
					t.Errorf("latency count = %d, want 20", l.Count)
				}
				if l.P50 < 30*time.Millisecond || l.P50 > 500*time.Millisecond {
					t.Errorf("p50 = %v, want ≥ 30ms (server delay)", l.P50)
				}
				if !(l.Min <= l.P50 && l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999 && l.P999 <= l.Max) {
					t.Errorf("quantiles out of order: %+v", l)
				}
			},
		},
		{
			name: "batches",
			cfg:  bench.RunConfig{Count: 55, Batch: 10, Sessions: 1},
			check: func(t *testing.T, s *ackServer, res *bench.Result, elapsed time.Duration) {
				// 5 batches of 10 and one of 5.
				if got := s.batches.Load(); got != 6 {
					t.Errorf("batch requests = %d, want 6", got)
				}
			},
		},
		{
			name: "503 with Retry-After is honoured",
			srv: &ackServer{refuse: func(n int64) (int, string) {
				if n <= 2 {
					return http.StatusServiceUnavailable, "1"
				}
				return 0, ""
			}},
			cfg: bench.RunConfig{Count: 3, Sessions: 1},
			check: func(t *testing.T, s *ackServer, res *bench.Result, elapsed time.Duration) {
				if res.Errors["503"] != 2 || res.Retries != 2 || res.Requests != 5 {
					t.Errorf("errors %v retries %d requests %d, want 503×2, 2 retries, 5 requests", res.Errors, res.Retries, res.Requests)
				}
				if elapsed < 2*time.Second {
					t.Errorf("run took %v: Retry-After: 1 twice not honoured", elapsed)
				}
				if res.AckLatency.Max < 2*time.Second {
					t.Errorf("max ack latency %v, want ≥ 2s (retries count)", res.AckLatency.Max)
				}
			},
		},
		{
			name: "429 without Retry-After waits the default",
			srv: &ackServer{refuse: func(n int64) (int, string) {
				if n == 1 {
					return http.StatusTooManyRequests, ""
				}
				return 0, ""
			}},
			cfg: bench.RunConfig{Count: 1, Sessions: 1},
			check: func(t *testing.T, s *ackServer, res *bench.Result, elapsed time.Duration) {
				if res.Errors["429"] != 1 || elapsed < bench.DefaultRetryAfter {
					t.Errorf("errors %v after %v, want one 429 and a wait ≥ %v", res.Errors, elapsed, bench.DefaultRetryAfter)
				}
			},
		},
		{
			name: "400 is not retried",
			srv: &ackServer{refuse: func(int64) (int, string) {
				return http.StatusBadRequest, ""
			}},
			cfg:    bench.RunConfig{Count: 4, Sessions: 2},
			failed: 4,
			check: func(t *testing.T, s *ackServer, res *bench.Result, elapsed time.Duration) {
				if res.Errors["400"] != 4 || res.Retries != 0 {
					t.Errorf("errors %v retries %d, want 400×4 and no retry", res.Errors, res.Retries)
				}
			},
		},
		{
			name: "retries exhausted",
			srv: &ackServer{refuse: func(int64) (int, string) {
				return http.StatusServiceUnavailable, "0"
			}},
			cfg:    bench.RunConfig{Count: 2, Sessions: 2, MaxRetries: -1},
			failed: 2,
			check: func(t *testing.T, s *ackServer, res *bench.Result, elapsed time.Duration) {
				if res.Errors["503"] != 2 {
					t.Errorf("errors %v, want 503×2", res.Errors)
				}
			},
		},
		{
			name:   "wrong token",
			srv:    &ackServer{token: "right"},
			cfg:    bench.RunConfig{Count: 2, Sessions: 1, Token: "wrong"},
			failed: 2,
			check: func(t *testing.T, s *ackServer, res *bench.Result, elapsed time.Duration) {
				if res.Errors["401"] != 2 {
					t.Errorf("errors %v, want 401×2", res.Errors)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.srv
			if srv == nil {
				srv = &ackServer{}
			}
			tc.cfg.Target = newAckServer(t, srv)
			tc.cfg.Seed = 5
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			res, err := bench.Run(ctx, tc.cfg)
			elapsed := time.Since(start)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if res.Sent != tc.cfg.Count || res.Failed != tc.failed || res.Acked != tc.cfg.Count-tc.failed {
				t.Errorf("sent %d acked %d failed %d, want %d, %d, %d", res.Sent, res.Acked, res.Failed,
					tc.cfg.Count, tc.cfg.Count-tc.failed, tc.failed)
			}
			if res.VerdictLatency != nil {
				t.Errorf("HTTP run measured verdict latency")
			}
			srv.mu.Lock()
			for id, n := range srv.ids {
				if n > 1 && tc.failed == 0 {
					t.Errorf("message %s stored %d times", id, n)
				}
			}
			srv.mu.Unlock()
			tc.check(t, srv, res, elapsed)
		})
	}
}

func TestRunDuration(t *testing.T) {
	srv := &ackServer{}
	target := newAckServer(t, srv)
	start := time.Now()
	res, err := bench.Run(context.Background(), bench.RunConfig{Target: target, Rate: 50, Duration: 700 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 600*time.Millisecond || d > 3*time.Second {
		t.Errorf("run took %v, want ~0.7s", d)
	}
	if res.Acked < 20 || res.Acked > 45 {
		t.Errorf("acked %d in 0.7s at 50/s, want ~35", res.Acked)
	}
}

func TestRunConfigInvalid(t *testing.T) {
	tests := []struct {
		name string
		cfg  bench.RunConfig
		want error
	}{
		{"no target", bench.RunConfig{}, bench.ErrInvalidConfig},
		{"bad scheme", bench.RunConfig{Target: "ftp://x"}, bench.ErrInvalidConfig},
		{"unknown transport", bench.RunConfig{Transport: "smoke", Target: "http://x"}, bench.ErrInvalidConfig},
		{"nats without URL", bench.RunConfig{Transport: bench.TransportNATS}, bench.ErrInvalidConfig},
		{"negative rate", bench.RunConfig{Target: "http://x", Rate: -1}, bench.ErrInvalidConfig},
		{"NaN rate", bench.RunConfig{Target: "http://x", Rate: math.NaN()}, bench.ErrInvalidConfig},
		{"negative sessions", bench.RunConfig{Target: "http://x", Sessions: -2}, bench.ErrInvalidConfig},
		{"bad mix", bench.RunConfig{Target: "http://x", Mix: bench.Mix{RuleRate: 2}}, bench.ErrInvalidMix},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := bench.Run(context.Background(), tc.cfg)
			if !errors.Is(err, tc.want) {
				t.Errorf("Run = %v, want %v", err, tc.want)
			}
		})
	}
}

// TestRunWebSocket runs against a WebSocket server speaking ingest's frame
// protocol: acks in order, then an action frame for every rule-worthy
// message after a delay, so verdict latency is measured.
func TestRunWebSocket(t *testing.T) {
	const verdictDelay = 40 * time.Millisecond
	var sessions atomic.Int64
	var wantVerdicts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/ws" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"error":"no","status":401}`, http.StatusUnauthorized)
			return
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		sessions.Add(1)
		var wmu sync.Mutex
		write := func(b []byte) {
			wmu.Lock()
			defer wmu.Unlock()
			_ = c.Write(context.Background(), websocket.MessageText, b)
		}
		var wg sync.WaitGroup
		defer wg.Wait()
		for {
			_, data, err := c.Read(r.Context())
			if err != nil {
				return
			}
			var msgs []map[string]any
			if strings.HasPrefix(string(data), "[") {
				_ = json.Unmarshal(data, &msgs)
			} else {
				var m map[string]any
				_ = json.Unmarshal(data, &m)
				msgs = append(msgs, m)
			}
			for _, m := range msgs {
				id := m["id"].(string)
				write([]byte(`{"type":"ack","id":"` + id + `","seq":1,"duplicate":false}`))
				if strings.Contains(m["text"].(string), "guarantee") || strings.Contains(m["text"].(string), "kill you") {
					wantVerdicts.Add(1)
					wg.Add(1)
					go func() {
						defer wg.Done()
						time.Sleep(verdictDelay)
						write([]byte(`{"type":"action","verdict":{"id":"v-1","message_id":"` + id + `","rule_id":"r","action":"flag"}}`))
					}()
				}
			}
		}
	}))
	t.Cleanup(srv.Close)

	res, err := bench.Run(context.Background(), bench.RunConfig{
		Transport: bench.TransportWS, Target: srv.URL, Token: "tok", Sessions: 3, Count: 300, Batch: 2,
		Mix: bench.Mix{Advisory: 1, Gaming: 1, RuleRate: 0.3}, VerdictWait: time.Second, Seed: 9,
	})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Acked != 300 || res.Failed != 0 || len(res.Errors) != 0 {
		t.Fatalf("acked %d failed %d errors %v, want 300, 0, none", res.Acked, res.Failed, res.Errors)
	}
	if sessions.Load() != 3 {
		t.Errorf("%d WebSocket sessions, want 3", sessions.Load())
	}
	v := res.VerdictLatency
	if v == nil || v.Count == 0 || v.Count != wantVerdicts.Load() || res.VerdictMessages != wantVerdicts.Load() {
		t.Fatalf("verdict latency %+v, verdict messages %d; want %d", v, res.VerdictMessages, wantVerdicts.Load())
	}
	if v.P50 < verdictDelay || v.P50 > 2*time.Second {
		t.Errorf("verdict p50 = %v, want ≥ %v", v.P50, verdictDelay)
	}
}

func TestRunWebSocketRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		http.Error(w, "full", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	_, err := bench.Run(context.Background(), bench.RunConfig{Transport: bench.TransportWS, Target: srv.URL, Count: 1})
	var se *bench.SendError
	if !errors.As(err, &se) || se.Status != http.StatusServiceUnavailable || se.RetryAfter != 3*time.Second {
		t.Fatalf("Run = %v, want a 503 SendError with Retry-After 3s", err)
	}
}

func TestWaitReady(t *testing.T) {
	var calls atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" || calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	tests := []struct {
		name    string
		target  string
		timeout time.Duration
		wantErr bool
	}{
		{"ready on the third poll", srv.URL + "/", 5 * time.Second, false},
		{"never ready", "http://127.0.0.1:1", 600 * time.Millisecond, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			err := bench.WaitReady(ctx, tc.target, nil)
			if (err != nil) != tc.wantErr {
				t.Fatalf("WaitReady = %v, want error %v", err, tc.wantErr)
			}
			if err != nil && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("WaitReady = %v, want it to wrap the deadline", err)
			}
		})
	}
	if calls.Load() != 3 {
		t.Errorf("%d polls, want 3", calls.Load())
	}
}
