package bus

import "github.com/nats-io/nats.go/jetstream"

// Review workflow stream and bucket (package review). They live in their
// own file so the review workflow can evolve without touching the core
// streams; [ReviewStreamConfig] and [AlertsKeyValueConfig] are applied by
// review.New with CreateOrUpdate.
const (
	// StreamReview holds every review transition (alert created, claimed,
	// closed, reopened, commented…) as JSON with the columns of the
	// warehouse table review_events: review.<tenant token>.<alert id
	// token>. It is the source of truth for review history.
	StreamReview = "REVIEW"
	// BucketAlerts holds the current state of every review alert, one key
	// per alert id, updated with compare-and-set.
	BucketAlerts = "vigil_review_alerts"

	subjReviewPrefix = "review"
	// DefaultAlertsHistory keeps the latest alert state only: the history
	// is on [StreamReview].
	DefaultAlertsHistory = 1
)

// ReviewSubject is the subject of the review events of one alert.
func ReviewSubject(tenant, alertID string) string {
	return subjReviewPrefix + "." + EncodeToken(tenant) + "." + EncodeToken(alertID)
}

// ReviewWildcard matches every review event subject.
const ReviewWildcard = subjReviewPrefix + ".>"

// ReviewStreamConfig returns the configuration of [StreamReview]: an
// append-only log (deny delete and purge, discard new when full), like
// AUDIT.
func ReviewStreamConfig(cfg Config) jetstream.StreamConfig {
	cfg, _ = cfg.withDefaults()
	return jetstream.StreamConfig{
		Name:        StreamReview,
		Description: "Vigil review workflow transitions",
		Subjects:    []string{subjReviewPrefix + ".*.*"},
		Retention:   jetstream.LimitsPolicy,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    -1,
		MaxMsgs:     -1,
		Storage:     cfg.storage(),
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
		DenyDelete:  true,
		DenyPurge:   true,
	}
}

// AlertsKeyValueConfig returns the configuration of [BucketAlerts].
func AlertsKeyValueConfig(cfg Config) jetstream.KeyValueConfig {
	cfg, _ = cfg.withDefaults()
	return jetstream.KeyValueConfig{
		Bucket:      BucketAlerts,
		Description: "Vigil review alerts (current state)",
		History:     DefaultAlertsHistory,
		Storage:     cfg.storage(),
		Replicas:    cfg.Replicas,
	}
}
