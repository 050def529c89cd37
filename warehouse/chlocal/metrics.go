package chlocal

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Label names and values of the engine's metrics.
const (
	labelKind   = "kind"   // ping, query, insert
	labelResult = "result" // ok, error

	labelPing   = "ping"
	labelQuery  = "query"
	labelInsert = "insert"

	resultOK    = "ok"
	resultError = "error"

	logKeyComponent = "component"
	logKeyQueryID   = "query_id"
	logKeyCode      = "code"
)

// Metrics are the embedded ClickHouse's Prometheus metrics.
type Metrics struct {
	// Requests counts HTTP requests by kind and result.
	Requests *prometheus.CounterVec
	// Duration observes HTTP request latency by kind.
	Duration *prometheus.HistogramVec
	// ReceivedBytes counts request body bytes as received (compressed).
	ReceivedBytes prometheus.Counter
	// SentBytes counts response body bytes as sent (compressed).
	SentBytes prometheus.Counter
	// LockWait observes how long statements wait for the engine lock.
	LockWait prometheus.Histogram
}

// NewMetrics builds the metrics and registers them with reg when reg is not
// nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_chlocal_requests_total",
			Help: "HTTP requests served by the embedded ClickHouse, by kind and result.",
		}, []string{labelKind, labelResult}),
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_chlocal_request_duration_seconds",
			Help:    "Latency of HTTP requests served by the embedded ClickHouse.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12),
		}, []string{labelKind}),
		ReceivedBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_chlocal_received_bytes_total",
			Help: "Request body bytes received by the embedded ClickHouse, as sent on the wire.",
		}),
		SentBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_chlocal_sent_bytes_total",
			Help: "Response body bytes sent by the embedded ClickHouse, as sent on the wire.",
		}),
		LockWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_chlocal_lock_wait_seconds",
			Help:    "Time statements waited for the engine (chDB runs one statement at a time).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 3, 12),
		}),
	}
	if reg != nil {
		m.Requests = register(reg, m.Requests)
		m.Duration = register(reg, m.Duration)
		m.ReceivedBytes = register(reg, m.ReceivedBytes)
		m.SentBytes = register(reg, m.SentBytes)
		m.LockWait = register(reg, m.LockWait)
	}
	return m
}

// register registers c, or returns the collector registered before under the
// same name: an engine reopened in the same process keeps its series.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if prev, ok := are.ExistingCollector.(C); ok {
				return prev
			}
		}
		panic(err) // a different collector under our name: a programming error
	}
	return c
}
