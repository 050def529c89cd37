package bus

import "github.com/prometheus/client_golang/prometheus"

// Metric label values of vigil_bus_publishes_total{result}.
const (
	ResultOK        = "ok"
	ResultDuplicate = "duplicate"
	ResultFull      = "full"
	ResultBusy      = "busy"
	ResultTimeout   = "timeout"
	ResultError     = "error"
)

// Metrics are the bus's Prometheus metrics.
type Metrics struct {
	// PublishDuration is vigil_bus_publish_duration_seconds{stream}: time
	// from publish to PubAck (or error).
	PublishDuration *prometheus.HistogramVec
	// Publishes is vigil_bus_publishes_total{stream,result}.
	Publishes *prometheus.CounterVec
	// AtomicFallbacks is vigil_bus_atomic_batch_fallbacks_total: atomic
	// batches refused (mostly retries holding stored ids) and published
	// message by message instead.
	AtomicFallbacks prometheus.Counter
}

// NewMetrics creates the bus metrics and registers them with reg when reg
// is not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		PublishDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_bus_publish_duration_seconds",
			Help:    "Time from publish to JetStream PubAck, by stream.",
			Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"stream"}),
		Publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_bus_publishes_total",
			Help: "Publishes to JetStream by stream and result (ok, duplicate, full, busy, timeout, error).",
		}, []string{"stream", "result"}),
		AtomicFallbacks: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_bus_atomic_batch_fallbacks_total",
			Help: "Atomic batches refused by the server and published message by message instead.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.PublishDuration, m.Publishes, m.AtomicFallbacks)
	}
	return m
}
