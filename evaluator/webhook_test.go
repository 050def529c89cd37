package evaluator_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/evaluator"
)

// receiver is a webhook endpoint that verifies every delivery's signature
// and answers scripted statuses.
type receiver struct {
	*httptest.Server
	secret []byte

	mu       sync.Mutex
	statuses []int    // answered in order, then 200
	attempts []string // delivery ids of every attempt
	verified []string // delivery ids accepted with a valid signature
	badSig   int
	block    chan struct{} // when set, requests wait on it
}

func newReceiver(t testing.TB, secret string, statuses ...int) *receiver {
	t.Helper()
	r := &receiver{secret: []byte(secret), statuses: statuses}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	if r.block != nil {
		<-r.block
	}
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	id := req.Header.Get(evaluator.HeaderDelivery)
	r.attempts = append(r.attempts, id)
	if err := evaluator.VerifySignature(r.secret, req.Header, body, evaluator.DefaultSignatureTolerance, time.Now()); err != nil {
		r.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	if len(r.statuses) > 0 {
		st := r.statuses[0]
		r.statuses = r.statuses[1:]
		http.Error(w, "scripted", st)
		return
	}
	r.verified = append(r.verified, id)
}

func (r *receiver) counts() (attempts, verified, bad int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.attempts), len(r.verified), r.badSig
}

func verdict(id string, a vigil.Action) *vigil.Verdict {
	return &vigil.Verdict{ID: id, Tenant: "acme", ConversationID: "c1", RuleID: "threat", Action: a, Severity: vigil.SeverityHigh, Tier: 1}
}

func TestWebhooks(t *testing.T) {
	tests := []struct {
		name         string
		secret       string // the endpoint's; the receiver always uses "s3cret"
		statuses     []int
		verdicts     []*vigil.Verdict
		wantAttempts int
		wantVerified int
		wantBad      int
		wantResult   map[string]float64
	}{
		{
			name: "delivered and verified", secret: "s3cret",
			verdicts:     []*vigil.Verdict{verdict("v1", vigil.ActionRetract), verdict("v2", vigil.ActionAlert)},
			wantAttempts: 2, wantVerified: 2, wantResult: map[string]float64{"ok": 2},
		},
		{
			name: "retried after 500", secret: "s3cret", statuses: []int{500, 503},
			verdicts:     []*vigil.Verdict{verdict("v1", vigil.ActionEscalate)},
			wantAttempts: 3, wantVerified: 1, wantResult: map[string]float64{"ok": 1, "retry": 2},
		},
		{
			name: "4xx is final", secret: "s3cret", statuses: []int{410},
			verdicts:     []*vigil.Verdict{verdict("v1", vigil.ActionFlag)},
			wantAttempts: 1, wantResult: map[string]float64{"failed": 1},
		},
		{
			name: "wrong secret is refused", secret: "other",
			verdicts:     []*vigil.Verdict{verdict("v1", vigil.ActionRetract)},
			wantAttempts: 1, wantBad: 1, wantResult: map[string]float64{"failed": 1},
		},
		{
			name: "other tenants and internal actions are not sent", secret: "s3cret",
			verdicts: []*vigil.Verdict{
				{ID: "v1", Tenant: "globex", Action: vigil.ActionRetract},
				verdict("v2", vigil.ActionEscalateTier2),
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rcv := newReceiver(t, "s3cret", tc.statuses...)
			m := evaluator.NewMetrics(nil)
			wh, err := evaluator.NewWebhooks(evaluator.WebhookConfig{
				Endpoints: []evaluator.WebhookEndpoint{{Tenant: "acme", URL: rcv.URL, Secret: []byte(tc.secret)}},
				Backoff:   time.Millisecond, Logger: quietLogger(),
			}, m)
			if err != nil {
				t.Fatal(err)
			}
			if err := wh.Open(); err != nil {
				t.Fatal(err)
			}
			for _, v := range tc.verdicts {
				if err := wh.Send(v); err != nil {
					t.Fatalf("Send(%s) = %v", v.ID, err)
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := wh.Close(ctx); err != nil {
				t.Fatalf("Close = %v", err)
			}
			a, v, bad := rcv.counts()
			if a != tc.wantAttempts || v != tc.wantVerified || bad != tc.wantBad {
				t.Errorf("receiver saw attempts %d verified %d bad %d, want %d %d %d", a, v, bad, tc.wantAttempts, tc.wantVerified, tc.wantBad)
			}
			for _, res := range []string{"ok", "retry", "failed"} {
				if got := testutil.ToFloat64(m.WebhookDeliveries.WithLabelValues(res)); got != tc.wantResult[res] {
					t.Errorf("deliveries{result=%q} = %v, want %v", res, got, tc.wantResult[res])
				}
			}
			if err := wh.Send(verdict("late", vigil.ActionRetract)); !errors.Is(err, evaluator.ErrClosed) {
				t.Errorf("Send after Close = %v, want ErrClosed", err)
			}
		})
	}
}

func TestWebhooksQueueFullIsCounted(t *testing.T) {
	rcv := newReceiver(t, "k")
	rcv.block = make(chan struct{})
	m := evaluator.NewMetrics(nil)
	wh, err := evaluator.NewWebhooks(evaluator.WebhookConfig{
		Endpoints: []evaluator.WebhookEndpoint{{Tenant: "acme", URL: rcv.URL, Secret: []byte("k")}},
		QueueSize: 2, Logger: quietLogger(),
	}, m)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Open(); err != nil {
		t.Fatal(err)
	}
	var dropped int
	for i := range 10 {
		err := wh.Send(verdict("v"+strconv.Itoa(i), vigil.ActionRetract))
		if errors.Is(err, evaluator.ErrWebhookQueueFull) {
			dropped++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	// One delivery is in flight (blocked), two are queued: the rest drop.
	if dropped < 7 || dropped > 8 {
		t.Errorf("dropped %d of 10, want 7 or 8", dropped)
	}
	if got := testutil.ToFloat64(m.WebhookDrops.WithLabelValues("acme")); got != float64(dropped) {
		t.Errorf("drops metric = %v, want %d", got, dropped)
	}
	close(rcv.block)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := wh.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, v, _ := rcv.counts(); v != 10-dropped {
		t.Errorf("verified %d deliveries, want %d", v, 10-dropped)
	}
}

func TestVerifySignature(t *testing.T) {
	secret := []byte("k")
	body := []byte(`{"id":"v1"}`)
	now := time.Unix(1_800_000_000, 0)
	hdr := func(ts int64, sig string) http.Header {
		h := http.Header{}
		h.Set(evaluator.HeaderTimestamp, strconv.FormatInt(ts, 10))
		h.Set(evaluator.HeaderSignature, sig)
		return h
	}
	ts := now.Unix()
	tests := []struct {
		name    string
		h       http.Header
		body    []byte
		wantErr error
	}{
		{"valid", hdr(ts, evaluator.Sign(secret, ts, body)), body, nil},
		{"tampered body", hdr(ts, evaluator.Sign(secret, ts, body)), []byte(`{"id":"v2"}`), evaluator.ErrBadSignature},
		{"wrong secret", hdr(ts, evaluator.Sign([]byte("x"), ts, body)), body, evaluator.ErrBadSignature},
		{"too old", hdr(ts-3600, evaluator.Sign(secret, ts-3600, body)), body, evaluator.ErrBadSignature},
		{"missing timestamp", http.Header{evaluator.HeaderSignature: {evaluator.Sign(secret, ts, body)}}, body, evaluator.ErrBadSignature},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := evaluator.VerifySignature(secret, tc.h, tc.body, evaluator.DefaultSignatureTolerance, now)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("VerifySignature = %v, want %v", err, tc.wantErr)
			}
		})
	}
}
