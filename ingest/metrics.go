package ingest

import "github.com/prometheus/client_golang/prometheus"

// Transports, the values of the transport label.
const (
	TransportHTTP = "http"
	TransportWS   = "ws"
	TransportNATS = "nats"
)

// Results, the values of the result label of vigil_ingest_requests_total.
const (
	ResultAccepted     = "accepted"
	ResultBadRequest   = "bad_request"
	ResultTooLarge     = "too_large"
	ResultUnauthorized = "unauthorized"
	ResultForbidden    = "forbidden"
	ResultThrottled    = "throttled"
	ResultUnavailable  = "unavailable"
	ResultError        = "error"
)

// Metrics are the ingest metrics.
type Metrics struct {
	// AckDuration is vigil_ingest_ack_duration_seconds{transport}: from a
	// request's arrival to its answer, for accepted requests.
	AckDuration *prometheus.HistogramVec
	// Requests is vigil_ingest_requests_total{transport,result}.
	Requests *prometheus.CounterVec
	// Messages is vigil_ingest_messages_total{transport}: messages acked
	// (duplicates included).
	Messages *prometheus.CounterVec
	// WSSessions is vigil_ingest_ws_sessions: open WebSocket sessions.
	WSSessions prometheus.Gauge
	// WSSendQueueDrops is vigil_ingest_ws_send_queue_drops_total: frames
	// that found a session's send queue full (the session is then closed).
	WSSendQueueDrops prometheus.Counter
	// InFlight is vigil_ingest_in_flight_messages: admitted, not yet acked.
	InFlight prometheus.Gauge
	// WSCloses is vigil_ingest_ws_closes_total{reason}: sessions ended, by
	// reason (client, slow_consumer, idle, ping_timeout, shutdown, protocol).
	WSCloses *prometheus.CounterVec
	// IDConflicts is vigil_ingest_id_conflicts_total: duplicate ids whose
	// stored message differs (reported to the client as conflict).
	IDConflicts prometheus.Counter
}

// NewMetrics creates the ingest metrics and registers them with reg when
// reg is not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		AckDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_ingest_ack_duration_seconds",
			Help:    "Time from receiving a request to acknowledging it after JetStream PubAck, by transport.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}, []string{"transport"}),
		Requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_ingest_requests_total",
			Help: "Ingest requests by transport and result.",
		}, []string{"transport", "result"}),
		Messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_ingest_messages_total",
			Help: "Messages acknowledged, duplicates included, by transport.",
		}, []string{"transport"}),
		WSSessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_ingest_ws_sessions",
			Help: "Open WebSocket sessions.",
		}),
		WSSendQueueDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_ingest_ws_send_queue_drops_total",
			Help: "Frames refused because a WebSocket session's send queue was full; the session is closed.",
		}),
		InFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_ingest_in_flight_messages",
			Help: "Messages admitted and not yet acknowledged.",
		}),
		WSCloses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_ingest_ws_closes_total",
			Help: "WebSocket sessions ended, by reason.",
		}, []string{"reason"}),
		IDConflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_ingest_id_conflicts_total",
			Help: "Duplicate message ids whose stored message differs from the new one.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.AckDuration, m.Requests, m.Messages, m.WSSessions, m.WSSendQueueDrops, m.InFlight, m.WSCloses, m.IDConflicts)
	}
	return m
}
