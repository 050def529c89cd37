package bench

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: 1 µs to 5 minutes at 3 significant digits.
const (
	histMinMicros = 1
	histMaxMicros = int64(5 * time.Minute / time.Microsecond)
	histSigFigs   = 3
)

// latencyHist is a concurrency-safe HDR histogram of durations.
type latencyHist struct {
	mu sync.Mutex
	h  *hdrhistogram.Histogram
}

func newLatencyHist() *latencyHist {
	return &latencyHist{h: hdrhistogram.New(histMinMicros, histMaxMicros, histSigFigs)}
}

func (l *latencyHist) record(d time.Duration) {
	us := int64(d / time.Microsecond)
	us = max(us, histMinMicros)
	us = min(us, histMaxMicros)
	l.mu.Lock()
	_ = l.h.RecordValue(us) // in range by construction
	l.mu.Unlock()
}

func (l *latencyHist) summary() LatencySummary {
	l.mu.Lock()
	defer l.mu.Unlock()
	h := l.h
	if h.TotalCount() == 0 {
		return LatencySummary{}
	}
	us := func(v int64) time.Duration { return time.Duration(v) * time.Microsecond }
	return LatencySummary{
		Count: h.TotalCount(),
		Min:   us(h.Min()),
		Mean:  time.Duration(h.Mean() * float64(time.Microsecond)),
		P50:   us(h.ValueAtQuantile(50)),
		P90:   us(h.ValueAtQuantile(90)),
		P99:   us(h.ValueAtQuantile(99)),
		P999:  us(h.ValueAtQuantile(99.9)),
		Max:   us(h.Max()),
	}
}

// LatencySummary summarises a latency distribution. Quantiles come from an
// HDR histogram with microsecond resolution and 3 significant digits. JSON
// carries seconds (p50_seconds, …).
type LatencySummary struct {
	Count int64
	Min   time.Duration
	Mean  time.Duration
	P50   time.Duration
	P90   time.Duration
	P99   time.Duration
	P999  time.Duration
	Max   time.Duration
}

// MarshalJSON writes the durations in seconds.
func (s LatencySummary) MarshalJSON() ([]byte, error) {
	sec := func(d time.Duration) float64 { return d.Seconds() }
	return json.Marshal(struct {
		Count int64   `json:"count"`
		Min   float64 `json:"min_seconds"`
		Mean  float64 `json:"mean_seconds"`
		P50   float64 `json:"p50_seconds"`
		P90   float64 `json:"p90_seconds"`
		P99   float64 `json:"p99_seconds"`
		P999  float64 `json:"p999_seconds"`
		Max   float64 `json:"max_seconds"`
	}{s.Count, sec(s.Min), sec(s.Mean), sec(s.P50), sec(s.P90), sec(s.P99), sec(s.P999), sec(s.Max)})
}

// verdictTracker measures verdict latency: the time from a message's ack to
// the first verdict that names it. Acked ids wait at most window for a
// verdict, so memory stays bounded however long the run.
type verdictTracker struct {
	window time.Duration
	hist   *latencyHist

	mu        sync.Mutex
	pending   map[string]time.Time
	order     []pendingAck // ack order; order[head:] is live
	head      int
	events    int64 // verdict events seen
	matched   int64 // messages with a first verdict recorded
	unmatched int64 // verdicts for ids not pending (late, repeated or foreign)
}

type pendingAck struct {
	id string
	at time.Time
}

func newVerdictTracker(window time.Duration) *verdictTracker {
	return &verdictTracker{window: window, hist: newLatencyHist(), pending: map[string]time.Time{}}
}

func (t *verdictTracker) acked(id string, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.pending[id] = at
	t.order = append(t.order, pendingAck{id, at})
	// Forget acks older than the window; compact the queue once its dead
	// head outweighs the live part, so pruning stays amortised O(1).
	for t.head < len(t.order) && at.Sub(t.order[t.head].at) > t.window {
		old := t.order[t.head]
		if a, ok := t.pending[old.id]; ok && a.Equal(old.at) {
			delete(t.pending, old.id)
		}
		t.order[t.head] = pendingAck{}
		t.head++
	}
	if t.head > 1024 && t.head*2 > len(t.order) {
		t.order = append(t.order[:0], t.order[t.head:]...)
		t.head = 0
	}
}

func (t *verdictTracker) verdict(messageID string, at time.Time) {
	t.mu.Lock()
	t.events++
	ackAt, ok := t.pending[messageID]
	if ok {
		delete(t.pending, messageID)
		t.matched++
	} else {
		t.unmatched++
	}
	t.mu.Unlock()
	if ok {
		t.hist.record(at.Sub(ackAt))
	}
}

func (t *verdictTracker) counts() (events, matched, unmatched int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.events, t.matched, t.unmatched
}
