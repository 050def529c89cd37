package retention

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/warehouse"
)

// EraseRequest is a data subject's erasure request (GDPR Art. 17).
type EraseRequest struct {
	Tenant string
	// Subject is the data subject's id (the platform's participant id).
	Subject string
	// Ref is the request reference; re-running a ref is idempotent and
	// completes an interrupted erasure.
	Ref string
	// Actor and Reason go to the audit log and the certificate.
	Actor, Reason string
	// DryRun returns the plan without changing anything.
	DryRun bool
}

func (r EraseRequest) validate() error {
	if err := required("actor", r.Actor, "reason", r.Reason); err != nil {
		return err
	}
	return validIDs("tenant", r.Tenant, "subject", r.Subject, "request ref", r.Ref)
}

// progress is what the erasures row holds while a request is in progress:
// the stream sequences to erase, which ClickHouse no longer knows once its
// rows are deleted.
type progress struct {
	Outcome     string   `json:"outcome"`
	Seqs        []uint64 `json:"stream_seqs"`
	VerdictSeqs []uint64 `json:"verdict_stream_seqs,omitempty"`
}

// plan is the decision of an erasure request.
type plan struct {
	cert   *Certificate
	filter warehouse.MessageFilter // rows to delete (zero Tenant: none)
	seqs   []uint64                // stream messages to erase
	vseqs  []uint64                // VERDICTS entries to erase
	basis  string
	after  time.Time
}

// Erase executes an erasure request. Precedence: legal hold > regulatory
// retention > erasure request.
//
//   - An active hold covering the subject or any linked message returns
//     [ErrUnderLegalHold] naming the case(s); nothing is changed.
//   - Where no retention duty applies (no policy, an expired one, or
//     minimization only), the subject's vault key is shredded, their
//     messages are securely deleted from the MESSAGES stream, and their
//     messages and the verdicts about them are deleted from ClickHouse and
//     verified gone. Tokens elsewhere then fail to detokenize with
//     pii.ErrSubjectShredded, also after a replay.
//   - Where a duty keeps any linked message, the subject is restricted
//     (detokenization blocked, GDPR Art. 18 / 17(3)(b)) with the basis and
//     the date the last duty expires; their messages no duty keeps are
//     deleted. [Service.Run] completes the erasure after that date.
//
// A subject with nothing linked returns [ErrUnknownSubject]; bad fields
// [ErrInvalidRequest]. The request is recorded in the erasures table before
// anything changes (with the stream sequences to erase) and again when
// done with its certificate, and audited. Running a completed ref again
// returns its certificate; running an interrupted one completes it.
func (s *Service) Erase(ctx context.Context, req EraseRequest) (*Certificate, error) {
	if err := req.validate(); err != nil {
		return nil, fmt.Errorf("erase: %w", err)
	}
	sh, err := s.vault.SubjectHash(ctx, req.Tenant, req.Subject)
	if err != nil {
		return nil, fmt.Errorf("erase %s: %w", req.Ref, err)
	}
	prev, err := warehouse.GetErasure(ctx, s.conn, req.Tenant, req.Ref)
	hasPrev := err == nil
	if err != nil && !errors.Is(err, warehouse.ErrNoErasure) {
		return nil, fmt.Errorf("erase %s: %w", req.Ref, err)
	}
	var prog progress
	if hasPrev {
		if prev.SubjectHash != sh {
			return nil, fmt.Errorf("erase: %w: request ref %s was used for another data subject", ErrInvalidRequest, req.Ref)
		}
		switch prev.Outcome {
		case OutcomeErased:
			c, err := ParseCertificate([]byte(prev.Certificate))
			if err != nil {
				return nil, fmt.Errorf("erase %s: %w", req.Ref, err)
			}
			return c, nil
		case OutcomeInProgress:
			if err := json.Unmarshal([]byte(prev.Certificate), &prog); err != nil {
				return nil, fmt.Errorf("erase %s: read progress: %w", req.Ref, err)
			}
		}
	}

	p, err := s.plan(ctx, req, sh, hasPrev, prog)
	if err != nil {
		return nil, err
	}
	c := p.cert
	if req.DryRun {
		c.DryRun = true
		return c, nil
	}

	// Record the plan first: if anything below fails or the process dies,
	// running the request again finds the stream sequences here.
	pj, _ := json.Marshal(progress{Outcome: c.Outcome, Seqs: p.seqs, VerdictSeqs: p.vseqs})
	rec := warehouse.ErasureRecord{Tenant: req.Tenant, RequestRef: req.Ref, SubjectHash: sh, SubjectID: req.Subject,
		Outcome: OutcomeInProgress, Basis: p.basis, DeleteAfter: p.after, Found: foundMap(c.Found),
		RequestedBy: req.Actor, At: c.IssuedAt, Certificate: string(pj)}
	if err := warehouse.PutErasure(ctx, s.conn, rec); err != nil {
		return nil, fmt.Errorf("erase %s: %w", req.Ref, err)
	}

	if c.Outcome == OutcomeRestricted {
		// Blocking reads is the urgent part; deletion of what no duty
		// keeps follows.
		if err := s.vault.Restrict(ctx, req.Tenant, req.Subject, p.basis); err != nil {
			return nil, fmt.Errorf("erase %s: %w", req.Ref, err)
		}
	}
	// Stream first: the warehouse rows are what find the sequences again.
	if err := s.bus.EraseMessages(ctx, p.seqs); err != nil {
		return nil, fmt.Errorf("erase %s: stream: %w", req.Ref, err)
	}
	if err := s.bus.EraseVerdicts(ctx, p.vseqs); err != nil {
		return nil, fmt.Errorf("erase %s: stream: %w", req.Ref, err)
	}
	if c.Outcome == OutcomeErased {
		if err := s.vault.Shred(ctx, req.Tenant, req.Subject); err != nil {
			return nil, fmt.Errorf("erase %s: %w", req.Ref, err)
		}
	}
	if p.filter.Tenant != "" {
		removed, err := warehouse.DeleteMessages(ctx, s.conn, p.filter)
		if err != nil {
			return nil, fmt.Errorf("erase %s: %w", req.Ref, err)
		}
		// Counts found now: after a resumed run, rows deleted before the
		// crash are no longer counted.
		c.Deleted.Messages, c.Deleted.Verdicts = removed.Messages, removed.Verdicts
	}

	// Verify.
	if p.filter.Tenant != "" {
		left, err := warehouse.CountMessages(ctx, s.conn, p.filter)
		if err != nil {
			return nil, fmt.Errorf("erase %s: verify: %w", req.Ref, err)
		}
		c.Verified.Messages, c.Verified.Verdicts = left.Messages, left.Verdicts
	}
	if c.Verified.StreamMessages, err = s.storedCount(ctx, bus.StreamMessages, p.seqs); err != nil {
		return nil, fmt.Errorf("erase %s: verify stream: %w", req.Ref, err)
	}
	if c.Verified.StreamVerdicts, err = s.storedCount(ctx, bus.StreamVerdicts, p.vseqs); err != nil {
		return nil, fmt.Errorf("erase %s: verify stream: %w", req.Ref, err)
	}
	if c.Verified != (Verified{}) {
		return nil, fmt.Errorf("erase %s: %d messages, %d verdicts, %d stream messages, %d stream verdicts still readable; run the request again",
			req.Ref, c.Verified.Messages, c.Verified.Verdicts, c.Verified.StreamMessages, c.Verified.StreamVerdicts)
	}

	cj, err := c.JSON()
	if err != nil {
		return nil, err
	}
	rec.Outcome, rec.Certificate = c.Outcome, string(cj)
	rec.Removed = map[string]uint64{"messages": c.Deleted.Messages, "verdicts": c.Deleted.Verdicts,
		"stream_messages": uint64(c.Deleted.StreamMessages), "stream_verdicts": uint64(c.Deleted.StreamVerdicts)}
	if c.Outcome == OutcomeErased {
		rec.SubjectID = ""
	}
	if err := warehouse.PutErasure(ctx, s.conn, rec); err != nil {
		return nil, fmt.Errorf("erase %s: %w", req.Ref, err)
	}
	if c.Outcome == OutcomeErased {
		if err := warehouse.ClearErasureSubject(ctx, s.conn, req.Tenant, req.Ref); err != nil {
			return nil, fmt.Errorf("erase %s: %w", req.Ref, err)
		}
	}
	details := map[string]string{
		"request": req.Ref, "outcome": c.Outcome,
		"messages_deleted":        strconv.FormatUint(c.Deleted.Messages, 10),
		"verdicts_deleted":        strconv.FormatUint(c.Deleted.Verdicts, 10),
		"stream_messages_deleted": strconv.Itoa(c.Deleted.StreamMessages),
	}
	if c.Restriction != nil {
		details["delete_after"] = c.Restriction.DeleteAfter.Format(time.RFC3339)
		details["classes"] = strings.Join(c.Restriction.Classes, ",")
	}
	if err := s.audit(ctx, req.Tenant, req.Actor, AuditActionErase, "subject:"+sh, req.Reason, details, req.Ref, c.Outcome); err != nil {
		return nil, fmt.Errorf("erase %s: %w", req.Ref, err)
	}
	s.metrics.Erasures.WithLabelValues(c.Outcome).Inc()
	s.log.InfoContext(ctx, "erasure request done", "tenant", req.Tenant, "request", req.Ref, "subject_hash", sh,
		"outcome", c.Outcome, "messages_deleted", c.Deleted.Messages)
	return c, nil
}

// plan finds everything linked to the subject and decides what to do.
func (s *Service) plan(ctx context.Context, req EraseRequest, sh string, resumed bool, prev progress) (*plan, error) {
	holds, err := warehouse.ListHolds(ctx, s.conn, req.Tenant)
	if err != nil {
		return nil, fmt.Errorf("erase %s: %w", req.Ref, err)
	}
	linked, err := warehouse.FindMessages(ctx, s.conn, warehouse.MessageFilter{Tenant: req.Tenant, Linked: req.Subject}, 0)
	if err != nil {
		return nil, fmt.Errorf("erase %s: %w", req.Ref, err)
	}
	if cases := holdsCovering(holds, req.Subject, linked); len(cases) > 0 {
		return nil, fmt.Errorf("erase %s: %w: case %s covers this data subject; nothing was changed (release the hold first)",
			req.Ref, ErrUnderLegalHold, joinCases(cases))
	}
	tokens, err := s.vault.SubjectTokens(ctx, req.Tenant, req.Subject)
	if err != nil {
		return nil, fmt.Errorf("erase %s: %w", req.Ref, err)
	}
	bySender := warehouse.MessageFilter{Tenant: req.Tenant, Sender: req.Subject}
	found, err := warehouse.CountMessages(ctx, s.conn, bySender)
	if err != nil {
		return nil, fmt.Errorf("erase %s: %w", req.Ref, err)
	}
	var sent []warehouse.MessageRef
	for _, m := range linked {
		if m.SenderID == req.Subject {
			sent = append(sent, m)
		}
	}
	if len(tokens) == 0 && len(linked) == 0 && found == (warehouse.Removal{}) && !resumed {
		return nil, fmt.Errorf("erase %s: %w: no token, message or verdict is linked to it in tenant %s", req.Ref, ErrUnknownSubject, req.Tenant)
	}
	policies, err := warehouse.ListPolicies(ctx, s.conn, req.Tenant)
	if err != nil {
		return nil, fmt.Errorf("erase %s: %w", req.Ref, err)
	}
	now := s.now().UTC()
	retained := map[string]bool{}
	classSet := map[string]Class{}
	var after time.Time
	for _, m := range linked {
		pa, ok := policyFor(policies, m.Channel)
		if !ok {
			continue
		}
		cl, err := LookupClass(pa.Class)
		if err != nil {
			return nil, fmt.Errorf("erase %s: policy of channel %q: %w", req.Ref, m.Channel, err)
		}
		if exp := expiry(m.SentAt, pa.KeepDays); cl.Duty && exp.After(now) {
			retained[m.ID] = true
			classSet[cl.Name] = cl
			if exp.After(after) {
				after = exp
			}
		}
	}

	c := &Certificate{
		Version: CertificateVersion, Request: req.Ref, Tenant: req.Tenant, SubjectHash: sh,
		RequestedBy: req.Actor, Reason: req.Reason, IssuedAt: now.Truncate(time.Millisecond),
		Found: Found{Tokens: len(tokens), MessagesSent: len(sent), MessagesLinked: len(linked) - len(sent), Verdicts: found.Verdicts},
	}
	p := &plan{cert: c}
	if len(retained) == 0 {
		c.Outcome = OutcomeErased
		p.filter = bySender
		if p.seqs, err = warehouse.MessageStreamSeqs(ctx, s.conn, bySender); err != nil {
			return nil, fmt.Errorf("erase %s: %w", req.Ref, err)
		}
		p.seqs = mergeSeqs(p.seqs, prev.Seqs)
		if p.vseqs, err = warehouse.VerdictStreamSeqs(ctx, s.conn, bySender); err != nil {
			return nil, fmt.Errorf("erase %s: %w", req.Ref, err)
		}
		p.vseqs = mergeSeqs(p.vseqs, prev.VerdictSeqs)
		c.Found.StreamMessages, c.Found.StreamVerdicts = len(p.seqs), len(p.vseqs)
		c.Shredded = Shredded{SubjectKey: true, Tokens: len(tokens)}
		c.Deleted = Deleted{Messages: found.Messages, Verdicts: found.Verdicts, StreamMessages: len(p.seqs), StreamVerdicts: len(p.vseqs)}
		why := "no legal hold and no retention duty applies to this subject's data"
		c.Steps = []Step{
			{Action: fmt.Sprintf("securely delete %d messages from the MESSAGES stream and %d verdicts from the VERDICTS stream", len(p.seqs), len(p.vseqs)), Why: why},
			{Action: fmt.Sprintf("crypto-shred the subject's vault key (%d tokens become unreadable, also in replayed events and other senders' messages)", len(tokens)), Why: why},
			{Action: fmt.Sprintf("delete %d message rows and %d verdict rows from ClickHouse (ALTER TABLE … DELETE, mutations_sync = 2) and verify none remain", found.Messages, found.Verdicts), Why: why},
		}
		return p, nil
	}

	c.Outcome = OutcomeRestricted
	names := make([]string, 0, len(classSet))
	for n := range classSet {
		names = append(names, n)
	}
	sort.Strings(names)
	bases := make([]string, 0, len(names))
	for _, n := range names {
		bases = append(bases, classSet[n].Basis)
	}
	p.basis = "GDPR Art. 17(3)(b) and Art. 18: erasure deferred by a legal retention obligation; " + strings.Join(bases, "; ")
	p.after = after.Truncate(time.Millisecond)
	c.Restriction = &Restriction{Basis: p.basis, Classes: names, Messages: len(retained), DeleteAfter: p.after}
	var free []string
	for _, m := range sent {
		if !retained[m.ID] {
			free = append(free, m.ID)
		}
	}
	c.Steps = []Step{{
		Action: fmt.Sprintf("restrict the subject: block detokenization of their %d tokens; keep %d messages until %s", len(tokens), len(retained), p.after.Format(time.RFC3339)),
		Why:    "a retention obligation (" + strings.Join(names, ", ") + ") outranks the erasure request; the retention run completes the erasure when it expires",
	}}
	if len(free) > 0 || resumed {
		p.filter = warehouse.MessageFilter{Tenant: req.Tenant, IDs: free}
		if free == nil {
			p.filter.IDs = []string{}
		}
		if p.seqs, err = warehouse.MessageStreamSeqs(ctx, s.conn, p.filter); err != nil {
			return nil, fmt.Errorf("erase %s: %w", req.Ref, err)
		}
		p.seqs = mergeSeqs(p.seqs, prev.Seqs)
		if p.vseqs, err = warehouse.VerdictStreamSeqs(ctx, s.conn, p.filter); err != nil {
			return nil, fmt.Errorf("erase %s: %w", req.Ref, err)
		}
		p.vseqs = mergeSeqs(p.vseqs, prev.VerdictSeqs)
		planned, err := warehouse.CountMessages(ctx, s.conn, p.filter)
		if err != nil {
			return nil, fmt.Errorf("erase %s: %w", req.Ref, err)
		}
		c.Deleted = Deleted{Messages: planned.Messages, Verdicts: planned.Verdicts, StreamMessages: len(p.seqs), StreamVerdicts: len(p.vseqs)}
		c.Steps = append(c.Steps, Step{
			Action: fmt.Sprintf("delete %d messages no obligation keeps (%d stream messages, %d stream verdicts, %d message rows, %d verdict rows) and verify none remain",
				len(free), len(p.seqs), len(p.vseqs), planned.Messages, planned.Verdicts),
			Why: "their retention period has expired or no retention duty covers them",
		})
	}
	c.Found.StreamMessages = len(sent)
	return p, nil
}

// policyFor returns the assignment of channel, falling back to the
// tenant's default (channel "").
func policyFor(ps []warehouse.PolicyAssignment, channel string) (warehouse.PolicyAssignment, bool) {
	var def *warehouse.PolicyAssignment
	for i := range ps {
		switch ps[i].Channel {
		case channel:
			return ps[i], true
		case "":
			def = &ps[i]
		}
	}
	if def != nil {
		return *def, true
	}
	return warehouse.PolicyAssignment{}, false
}

func mergeSeqs(a, b []uint64) []uint64 {
	if len(b) == 0 {
		return a
	}
	set := make(map[uint64]bool, len(a)+len(b))
	for _, s := range append(append([]uint64(nil), a...), b...) {
		set[s] = true
	}
	out := make([]uint64, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// storedCount counts the sequences still stored in stream.
func (s *Service) storedCount(ctx context.Context, stream string, seqs []uint64) (int, error) {
	if len(seqs) == 0 {
		return 0, nil
	}
	st, err := s.bus.JetStream().Stream(ctx, stream)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, seq := range seqs {
		_, err := st.GetMsg(ctx, seq)
		switch {
		case err == nil:
			n++
		case errors.Is(err, jetstream.ErrMsgNotFound):
		default:
			return 0, fmt.Errorf("stream seq %d: %w", seq, err)
		}
	}
	return n, nil
}

func foundMap(f Found) map[string]uint64 {
	return map[string]uint64{
		"tokens": uint64(f.Tokens), "messages_sent": uint64(f.MessagesSent), "messages_linked": uint64(f.MessagesLinked),
		"verdicts": f.Verdicts, "stream_messages": uint64(f.StreamMessages), "stream_verdicts": uint64(f.StreamVerdicts),
	}
}
