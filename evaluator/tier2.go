package evaluator

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/rules"
)

// tier2Job is the tier-2 work of one message: its candidates, asked after
// tier-1 verdicts are published; the message is acked when it is done.
//
// Tier 2 runs in process rather than through a durable work stream (the bus
// has none yet): the message stays unacked until its tier-2 work is done, so
// a crash redelivers it and the work is redone (tier-1 verdicts deduplicate
// by id; answers come from the classifier again or its cache). Keep
// DefaultTier2Timeout below the consumer's AckWait.
type tier2Job struct {
	msg     jetstream.Msg
	m       *vigil.Message
	seq     uint64
	prev    []vigil.Message
	cands   []rules.Match
	version string
	ev      *vigil.Evaluation
	start   time.Time
}

func (e *Evaluator) runTier2() {
	for job := range e.jobs {
		if e.ctx.Err() != nil {
			_ = job.msg.Nak() // hard stop: redelivered to the next owner
			continue
		}
		if err := e.tier2(job); err != nil && e.ctx.Err() == nil {
			e.tier2Failed(job, err)
		}
	}
}

// tier2 classifies job's candidates, publishes the verdicts and the
// evaluation, and acks. Classifier failures (budget, breaker, timeout,
// errors) only mean no tier-2 verdict; publication failures are returned.
func (e *Evaluator) tier2(job *tier2Job) error {
	ctx, cancel := context.WithTimeout(e.ctx, e.o.tier2Timeout)
	defer cancel()
	// The job may have waited in the queue: restart the AckWait so the
	// message is not redelivered while its tier-2 work runs.
	_ = job.msg.InProgress()
	ctxTexts := make([]string, len(job.prev))
	for i, p := range job.prev {
		ctxTexts[i] = p.Text
	}
	ran := false
	var vs []*vigil.Verdict
	for _, mt := range job.cands {
		r := mt.Rule
		e.m.RuleEvaluations.WithLabelValues(r.ID, "2").Inc()
		res, err := e.o.classifier.Classify(ctx, ClassifyRequest{
			Tenant: job.m.Tenant, RuleID: r.ID, Prompt: r.Prompt, Labels: r.Labels,
			Text: job.m.Text, Context: ctxTexts,
		})
		switch {
		case errors.Is(err, ErrBudgetExhausted), errors.Is(err, ErrCircuitOpen):
			continue // counted by the classifier; tier 1 stands alone
		case err != nil:
			if e.ctx.Err() != nil {
				return err
			}
			e.log.Warn("tier-2 classification failed", logKeyRule, r.ID, logKeyMessage, job.m.ID, logKeyErr, err)
			continue
		}
		ran = true
		if !res.Fires(e.o.classifier.MinConfidence()) {
			continue
		}
		action := r.Action
		if action == vigil.ActionEscalateTier2 {
			action = vigil.ActionFlag
		}
		vs = append(vs, e.verdict(job.m, job.version, r, mt.Spans, 2, action, res.Label+": "+res.Reason))
	}
	if ran {
		job.ev.Tiers = []int{1, 2}
	}
	job.ev.Verdicts += len(vs)
	return e.finish(ctx, job.msg, job.m, vs, job.ev, job.start)
}

// tier2Failed hands the message back for redelivery, or dead-letters it
// when it has been delivered too often.
func (e *Evaluator) tier2Failed(job *tier2Job, err error) {
	md, mdErr := job.msg.Metadata()
	if mdErr == nil && md.NumDelivered >= uint64(e.maxDeliver) {
		if dlErr := e.deadLetter(job.msg, job.seq, ReasonTier2, err); dlErr == nil {
			return
		}
	}
	e.log.Error("tier-2 work left for redelivery", logKeyMessage, job.m.ID, logKeyErr, err)
	_ = job.msg.NakWithDelay(time.Second)
}
