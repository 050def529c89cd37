package evaluator

import "errors"

// Sentinel errors. Each is wrapped with the operation that failed, so match
// them with [errors.Is].
var (
	// ErrInvalidOption is returned by [New], [NewClassifier], [NewWebhooks],
	// [NewWindow] and [NewRules] when an option or config field is invalid.
	ErrInvalidOption = errors.New("invalid option")

	// ErrBudgetExhausted is returned by [Classifier.Classify] when the
	// tenant's tier-2 call budget (calls per minute) is used up. The
	// evaluator records it on the evaluation and publishes no tier-2 verdict
	// for that message; tier-1 verdicts are unaffected. The call is not
	// retried later: a message evaluated while the budget is exhausted keeps
	// only its tier-1 outcome.
	ErrBudgetExhausted = errors.New("tier-2 budget exhausted")

	// ErrCircuitOpen is returned by [Classifier.Classify] while the circuit
	// breaker is open after too many consecutive classifier failures. It
	// closes again after a successful probe once the cool-down has passed.
	ErrCircuitOpen = errors.New("tier-2 circuit breaker open")

	// ErrClassifier is returned by [Classifier.Classify] when the endpoint
	// answered but the answer was unusable (non-2xx status after retries,
	// malformed JSON, a label outside the rule's labels). The underlying
	// cause is wrapped beside it.
	ErrClassifier = errors.New("tier-2 classifier failed")

	// ErrWindowConflict is returned by [Window.Append] when the compare-and-set
	// update of a conversation's context window kept losing to another writer
	// after every retry. It wraps [jetstream.ErrKeyRevisionMismatch] or
	// [jetstream.ErrKeyExists] from the last attempt, so both match.
	//
	// [jetstream.ErrKeyRevisionMismatch]: https://pkg.go.dev/github.com/nats-io/nats.go/jetstream#ErrKeyRevisionMismatch
	// [jetstream.ErrKeyExists]: https://pkg.go.dev/github.com/nats-io/nats.go/jetstream#ErrKeyExists
	ErrWindowConflict = errors.New("context window revision conflict")

	// ErrWebhookQueueFull is returned by [Webhooks.Send] for each endpoint
	// whose bounded queue is full; the delivery is dropped and counted in
	// vigil_evaluator_webhook_drops_total.
	ErrWebhookQueueFull = errors.New("webhook queue full")

	// ErrClosed is returned when a closed or draining component is used.
	ErrClosed = errors.New("evaluator closed")
)
