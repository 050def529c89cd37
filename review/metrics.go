package review

import "github.com/prometheus/client_golang/prometheus"

// Label values of [Metrics].
const (
	labelResult = "result"
	labelOp     = "op"
	labelKind   = "kind"

	resultAlerted    = "alerted"
	resultSuppressed = "suppressed"
	resultIgnored    = "ignored"
	resultDuplicate  = "duplicate"
	resultInvalid    = "invalid"
	resultError      = "error"
	resultOK         = "ok"
	resultRefused    = "refused"
)

// Metrics of the review service.
type Metrics struct {
	// Verdicts consumed by result: alerted (new alert), suppressed (folded
	// into an existing alert), ignored (not alertable), duplicate
	// (redelivery), invalid, error.
	Verdicts *prometheus.CounterVec
	// AlertsCreated by kind (verdict, sample).
	AlertsCreated *prometheus.CounterVec
	// Transitions by op and result (ok, refused, error).
	Transitions *prometheus.CounterVec
	// Detokenize requests by result (ok, refused, error).
	Detokenize *prometheus.CounterVec
	// EventPublishFailures counts review events that could not be
	// published after the alert state changed.
	EventPublishFailures prometheus.Counter
	// QueueDuration is the time to answer a queue query.
	QueueDuration prometheus.Histogram
}

// NewMetrics creates the review metrics and registers them with reg when
// reg is not nil.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_review_verdicts_total",
			Help: "Verdicts consumed by the review service, by result.",
		}, []string{labelResult}),
		AlertsCreated: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_review_alerts_created_total",
			Help: "Review alerts created, by kind.",
		}, []string{labelKind}),
		Transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_review_transitions_total",
			Help: "Review operations, by op and result.",
		}, []string{labelOp, labelResult}),
		Detokenize: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_review_detokenize_requests_total",
			Help: "Detokenize requests, by result.",
		}, []string{labelResult}),
		EventPublishFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_review_event_publish_failures_total",
			Help: "Review events not published after the alert state changed.",
		}),
		QueueDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_review_queue_query_duration_seconds",
			Help:    "Time to filter, sort and page the alert queue.",
			Buckets: prometheus.ExponentialBuckets(0.0001, 4, 8),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Verdicts, m.AlertsCreated, m.Transitions, m.Detokenize, m.EventPublishFailures, m.QueueDuration)
	}
	return m
}
