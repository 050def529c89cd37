package evaluator

import "github.com/prometheus/client_golang/prometheus"

// Label names. Only bounded values go into labels: never a conversation,
// sender, message id or token.
const (
	labelTenant = "tenant"
	labelRule   = "rule"
	labelTier   = "tier"
	labelAction = "action"
	labelResult = "result"
	labelReason = "reason"
)

// Metrics are the evaluator's Prometheus metrics. Build them with
// [NewMetrics]; one value may be shared by an [Evaluator], its [Rules],
// [Window], [Classifier] and [Webhooks].
type Metrics struct {
	// RuleEvaluations counts rule evaluations by rule and tier. Tier 1
	// evaluates the whole set at once through its prefilter index, so it
	// counts one evaluation per message under rule="*"; tier 2 counts each
	// classifier question under its rule. Firings are in Verdicts.
	RuleEvaluations *prometheus.CounterVec
	// RuleErrors counts rules that failed at run time on a message (cost
	// limit, runtime error); the message's other rules still ran.
	RuleErrors *prometheus.CounterVec
	// Verdicts counts published verdicts by rule and action.
	Verdicts *prometheus.CounterVec
	// EvalDuration observes the time to evaluate one message (tier 1,
	// window update and publication), in seconds.
	EvalDuration prometheus.Histogram
	// VerdictLatency observes message receipt → verdict published, by tier.
	VerdictLatency *prometheus.HistogramVec
	// Tier2Calls counts classifier calls by result (ok, none, cached,
	// error, timeout, budget, circuit_open).
	Tier2Calls *prometheus.CounterVec
	// BudgetExhausted counts tier-2 calls refused by a tenant's budget.
	BudgetExhausted *prometheus.CounterVec
	// DeadLetters counts messages sent to the dead-letter subject, by reason.
	DeadLetters *prometheus.CounterVec
	// BatchSize observes how many messages a lane evaluated together
	// through the batch path (one observation per batch).
	BatchSize prometheus.Histogram
	// WindowCASRetries counts context-window compare-and-set conflicts that
	// were retried.
	WindowCASRetries prometheus.Counter
	// WebhookDeliveries counts webhook deliveries by result (ok, retry,
	// failed).
	WebhookDeliveries *prometheus.CounterVec
	// WebhookDrops counts webhook deliveries dropped because an endpoint's
	// queue was full, by tenant.
	WebhookDrops *prometheus.CounterVec
	// RulesLastReloadSuccessful is 1 when the last rule reload succeeded and
	// 0 when it was rejected (the previous rule set was kept).
	RulesLastReloadSuccessful prometheus.Gauge
	// RulesLastReloadSuccessTimestamp is the Unix time of the last
	// successful reload.
	RulesLastReloadSuccessTimestamp prometheus.Gauge
}

// NewMetrics builds the evaluator metrics and registers them with reg when
// reg is not nil. It panics if a metric is already registered on reg, as
// [prometheus.Registerer.MustRegister] does.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	latencyBuckets := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}
	m := &Metrics{
		RuleEvaluations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_evaluator_rule_evaluations_total",
			Help: "Rule evaluations by rule and tier.",
		}, []string{labelRule, labelTier}),
		RuleErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_evaluator_rule_errors_total",
			Help: "Rules that failed at run time on a message, by rule.",
		}, []string{labelRule}),
		Verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_evaluator_verdicts_total",
			Help: "Verdicts published by rule and action.",
		}, []string{labelRule, labelAction}),
		EvalDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_evaluator_evaluation_duration_seconds",
			Help:    "Time to evaluate one message through tier 1 and publish its outcome.",
			Buckets: latencyBuckets,
		}),
		VerdictLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_evaluator_verdict_latency_seconds",
			Help:    "Time from message receipt to verdict publication, by tier.",
			Buckets: latencyBuckets,
		}, []string{labelTier}),
		Tier2Calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_evaluator_tier2_calls_total",
			Help: "Tier-2 classifier calls by result.",
		}, []string{labelResult}),
		BudgetExhausted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_evaluator_tier2_budget_exhausted_total",
			Help: "Tier-2 calls refused because the tenant's budget was exhausted.",
		}, []string{labelTenant}),
		DeadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_evaluator_dead_letters_total",
			Help: "Messages sent to the dead-letter subject, by reason.",
		}, []string{labelReason}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vigil_evaluator_batch_messages",
			Help:    "Messages a lane evaluated together in one batch (window appends, records and acks batched).",
			Buckets: prometheus.ExponentialBuckets(2, 2, 8),
		}),
		WindowCASRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_evaluator_window_cas_retries_total",
			Help: "Context-window compare-and-set conflicts that were retried.",
		}),
		WebhookDeliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_evaluator_webhook_deliveries_total",
			Help: "Webhook delivery attempts by result.",
		}, []string{labelResult}),
		WebhookDrops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_evaluator_webhook_drops_total",
			Help: "Webhook deliveries dropped because the endpoint queue was full.",
		}, []string{labelTenant}),
		RulesLastReloadSuccessful: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_rules_last_reload_successful",
			Help: "Whether the last rule reload succeeded (1) or was rejected and the previous rule set kept (0).",
		}),
		RulesLastReloadSuccessTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_rules_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful rule reload.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.RuleEvaluations, m.RuleErrors, m.Verdicts, m.EvalDuration, m.VerdictLatency,
			m.Tier2Calls, m.BudgetExhausted, m.DeadLetters, m.WindowCASRetries, m.BatchSize,
			m.WebhookDeliveries, m.WebhookDrops, m.RulesLastReloadSuccessful,
			m.RulesLastReloadSuccessTimestamp)
	}
	return m
}
