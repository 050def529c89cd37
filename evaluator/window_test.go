package evaluator_test

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/bus/bustest"
	"github.com/vigilhq/vigil/evaluator"
)

// newBucket opens a bus (and with it the context bucket) on s.
func newBucket(t testing.TB, s *bustest.Server) *bus.Bus {
	t.Helper()
	return s.Bus(t, bus.Config{Memory: true})
}

var t0 = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

func msgAt(conv string, i int, at time.Time) *vigil.Message {
	return &vigil.Message{
		ID: fmt.Sprintf("%s-m%d", conv, i), Tenant: "acme", ConversationID: conv,
		Sender: vigil.Participant{ID: "u1"}, Text: fmt.Sprintf("text %d", i),
		SentAt: at, ReceivedAt: at, Metadata: map[string]string{"k": "v"},
	}
}

func ids(ms []vigil.Message) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func TestWindowAppend(t *testing.T) {
	type step struct {
		seq     uint64
		i       int
		at      time.Duration // after t0
		wantCtx []string
	}
	tests := []struct {
		name  string
		n     int
		d     time.Duration
		steps []step
	}{
		{
			name: "keeps previous messages oldest first",
			n:    5, d: time.Hour,
			steps: []step{
				{1, 1, 0, []string{}},
				{2, 2, time.Second, []string{"c-m1"}},
				{5, 3, 2 * time.Second, []string{"c-m1", "c-m2"}},
			},
		},
		{
			name: "last N only",
			n:    2, d: time.Hour,
			steps: []step{
				{1, 1, 0, []string{}},
				{2, 2, 1, []string{"c-m1"}},
				{3, 3, 2, []string{"c-m1", "c-m2"}},
				{4, 4, 3, []string{"c-m2", "c-m3"}},
			},
		},
		{
			name: "last T only",
			n:    10, d: time.Minute,
			steps: []step{
				{1, 1, 0, []string{}},
				{2, 2, 30 * time.Second, []string{"c-m1"}},
				{3, 3, 80 * time.Second, []string{"c-m2"}},
				{4, 4, 10 * time.Minute, []string{}},
			},
		},
		{
			name: "late redelivery is inserted in sequence order",
			n:    5, d: time.Hour,
			steps: []step{
				{1, 1, 0, []string{}},
				{3, 3, 2, []string{"c-m1"}},
				{2, 2, 1, []string{"c-m1"}},
				{4, 4, 3, []string{"c-m1", "c-m2", "c-m3"}},
				{2, 2, 1, []string{"c-m1"}},
			},
		},
		{
			name: "redelivery of a trimmed message is not applied again",
			n:    1, d: time.Hour,
			steps: []step{
				{1, 1, 0, []string{}},
				{2, 2, 1, []string{"c-m1"}},
				{3, 3, 2, []string{"c-m2"}},
				{1, 1, 0, []string{}},
				{4, 4, 3, []string{"c-m3"}},
			},
		},
		{
			// Seq 3 arrives after seqs 4–6 pushed seqs 1–2 out of the
			// cached window (n=2 keeps 3 entries): its context comes from
			// the bucket, and it is recorded.
			name: "late first delivery older than the window sees its context",
			n:    2, d: time.Hour,
			steps: []step{
				{1, 1, 0, []string{}},
				{2, 2, 1, []string{"c-m1"}},
				{4, 4, 3, []string{"c-m1", "c-m2"}},
				{5, 5, 4, []string{"c-m2", "c-m4"}},
				{6, 6, 5, []string{"c-m4", "c-m5"}},
				{7, 7, 6, []string{"c-m5", "c-m6"}},
				{3, 3, 2, []string{"c-m1", "c-m2"}},
				{3, 3, 2, []string{"c-m1", "c-m2"}},
				{8, 8, 7, []string{"c-m6", "c-m7"}},
			},
		},
		{
			name: "redelivery is not applied twice and sees the same context",
			n:    5, d: time.Hour,
			steps: []step{
				{1, 1, 0, []string{}},
				{2, 2, 1, []string{"c-m1"}},
				{3, 3, 2, []string{"c-m1", "c-m2"}},
				{2, 2, 1, []string{"c-m1"}},
				{4, 4, 3, []string{"c-m1", "c-m2", "c-m3"}},
			},
		},
	}
	s := bustest.New(t)
	kv := newBucket(t, s)
	for k, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w, err := evaluator.NewWindow(kv, tc.n, tc.d, 100, nil)
			if err != nil {
				t.Fatal(err)
			}
			// One conversation per case: they share the bucket.
			conv := fmt.Sprintf("c%d", k)
			for _, st := range tc.steps {
				m := msgAt(conv, st.i, t0.Add(st.at))
				m.ID = fmt.Sprintf("c-m%d", st.i)
				got, err := w.Append(context.Background(), m, st.seq)
				if err != nil {
					t.Fatalf("Append(seq %d): %v", st.seq, err)
				}
				if diff := cmp.Diff(st.wantCtx, ids(got)); diff != "" {
					t.Errorf("Append(seq %d) context (-want +got):\n%s", st.seq, diff)
				}
			}
		})
	}
}

func TestWindowBoundedBytes(t *testing.T) {
	s := bustest.New(t)
	kv := newBucket(t, s)
	w, err := evaluator.NewWindow(kv, 255, time.Hour, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	// 60 messages of 16 KiB: far over NATS's 1 MiB payload limit if kept.
	big := strings.Repeat("x", 16<<10)
	var got []vigil.Message
	for i := 1; i <= 60; i++ {
		m := msgAt("c", i, t0.Add(time.Duration(i)*time.Second))
		m.Text = big
		if got, err = w.Append(context.Background(), m, uint64(i)); err != nil {
			t.Fatalf("Append(%d): %v", i, err)
		}
	}
	entries, err := w.Messages(context.Background(), "acme", "c")
	if err != nil {
		t.Fatal(err)
	}
	maxN := evaluator.MaxWindowBytes / (16 << 10)
	if len(entries) > maxN || len(entries) < maxN-2 || entries[len(entries)-1].Seq != 60 {
		t.Fatalf("window holds %d entries ending at seq %d, want about %d ending at 60", len(entries), entries[len(entries)-1].Seq, maxN)
	}
	if len(got) == 0 || got[len(got)-1].ID != "c-m59" {
		t.Fatalf("context of the last message ends %v, want c-m59", ids(got))
	}
}

func TestWindowRestartAndConflict(t *testing.T) {
	s := bustest.New(t)
	kv := newBucket(t, s)
	ctx := context.Background()
	m := evaluator.NewMetrics(nil)
	a, err := evaluator.NewWindow(kv, 10, time.Hour, 100, m)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		if _, err := a.Append(ctx, msgAt("c", i, t0.Add(time.Duration(i)*time.Second)), uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	// A second evaluator (restart or rebalance) continues from the bucket.
	b, err := evaluator.NewWindow(kv, 10, time.Hour, 100, m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Append(ctx, msgAt("c", 4, t0.Add(4*time.Second)), 4)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"c-m1", "c-m2", "c-m3"}, ids(got)); diff != "" {
		t.Fatalf("restarted window context (-want +got):\n%s", diff)
	}
	// a's cache is now stale: its CAS must conflict, re-read and keep m4.
	got, err = a.Append(ctx, msgAt("c", 5, t0.Add(5*time.Second)), 5)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"c-m1", "c-m2", "c-m3", "c-m4"}, ids(got)); diff != "" {
		t.Fatalf("context after conflict (-want +got):\n%s", diff)
	}
	if n := testutil.ToFloat64(m.WindowCASRetries); n != 1 {
		t.Errorf("cas retries = %v, want 1", n)
	}
	entries, err := b.Messages(ctx, "acme", "c")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 5 || entries[4].Seq != 5 {
		t.Fatalf("bucket holds %d entries (last %+v), want 5 ending at seq 5", len(entries), entries[len(entries)-1].Seq)
	}
	if entries[0].Message.Metadata != nil {
		t.Errorf("window stored metadata; it keeps only what rules read")
	}
}

func TestWindowKey(t *testing.T) {
	valid := regexp.MustCompile(`^[-/_=\.a-zA-Z0-9]+$`)
	tests := []struct{ tenant, conv string }{
		{"acme", "c1"},
		{"acme", "conv with spaces/and*wildcards>"},
		{"tenant.x", "ünïcödé"},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		k := evaluator.WindowKey(tc.tenant, tc.conv)
		if !valid.MatchString(k) {
			t.Errorf("WindowKey(%q, %q) = %q, not a valid KV key", tc.tenant, tc.conv, k)
		}
		if seen[k] {
			t.Errorf("WindowKey(%q, %q) = %q collides", tc.tenant, tc.conv, k)
		}
		seen[k] = true
	}
	if evaluator.WindowKey("a", "b.c") == evaluator.WindowKey("a.b", "c") {
		t.Error("WindowKey does not separate tenant from conversation")
	}
}

func TestNewWindowInvalid(t *testing.T) {
	s := bustest.New(t)
	kv := newBucket(t, s)
	tests := []struct {
		name string
		kv   evaluator.ContextStore
		n    int
		d    time.Duration
		c    int
	}{
		{"nil bucket", nil, 1, time.Second, 1},
		{"zero messages", kv, 0, time.Second, 1},
		{"more messages than the bucket keeps", kv, bus.ContextHistory, time.Second, 1},
		{"zero duration", kv, 1, 0, 1},
		{"zero cache", kv, 1, time.Second, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := evaluator.NewWindow(tc.kv, tc.n, tc.d, tc.c, nil)
			if !errors.Is(err, evaluator.ErrInvalidOption) {
				t.Fatalf("NewWindow = %v, want ErrInvalidOption", err)
			}
		})
	}
}

// BenchmarkWindowAppend measures one append to a full window (the default
// 50 messages), cache hit, KV CAS update included.
func BenchmarkWindowAppend(b *testing.B) {
	s := bustest.New(b)
	kv := newBucket(b, s)
	w, err := evaluator.NewWindow(kv, evaluator.DefaultWindowMessages, time.Hour, 100, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := range b.N + evaluator.DefaultWindowMessages {
		if i == evaluator.DefaultWindowMessages {
			b.ResetTimer()
		}
		m := msgAt("c", i, t0.Add(time.Duration(i)*time.Millisecond))
		m.Text = "a tokenized message of ordinary length, about eighty bytes, tok_4f2a9c1e here"
		if _, err := w.Append(ctx, m, uint64(i+1)); err != nil {
			b.Fatal(err)
		}
	}
}
