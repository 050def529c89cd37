package retention_test

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/pii"
	"github.com/vigilhq/vigil/retention"
	"github.com/vigilhq/vigil/warehouse"
)

const age30d = 30 * 24 * time.Hour

func eraseReq(ref string) retention.EraseRequest {
	return retention.EraseRequest{Tenant: tenant, Subject: "alice", Ref: ref, Actor: "dpo@acme", Reason: "GDPR Art. 17 request"}
}

// auditActions returns the Action of every event in AUDIT.
func (e *env) auditActions(t *testing.T) []string {
	t.Helper()
	ctx := ctxT(t)
	st, err := e.srv.JS.Stream(ctx, bus.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var ev vigil.AuditEvent
		if err := json.Unmarshal(m.Data, &ev); err != nil {
			t.Fatal(err)
		}
		out = append(out, ev.Action)
	}
	return out
}

func TestEraseDecides(t *testing.T) {
	sentAt := now.Add(-age30d)
	tests := []struct {
		name    string
		age     time.Duration
		setup   func(t *testing.T, e *env)
		want    string // outcome
		wantErr error
		// wantClasses and wantAfter check a restriction.
		wantClasses []string
		wantAfter   time.Time
	}{
		{name: "no policy no hold: erased", age: age30d, want: retention.OutcomeErased},
		{name: "sec 17a-4 in force: restricted", age: age30d, want: retention.OutcomeRestricted,
			setup:       setPolicy("", retention.ClassSEC17a4, 0),
			wantClasses: []string{retention.ClassSEC17a4},
			// The last linked message (bob's m-4 lists alice) was sent at +4m.
			wantAfter: sentAt.Add(4*time.Minute).AddDate(0, 0, 2192)},
		{name: "mifid ii on the channel: restricted", age: age30d, want: retention.OutcomeRestricted,
			setup:       setPolicy("teams", retention.ClassMiFIDII, 2557),
			wantClasses: []string{retention.ClassMiFIDII},
			wantAfter:   sentAt.Add(4*time.Minute).AddDate(0, 0, 2557)},
		{name: "policy on another channel only: erased", age: age30d, want: retention.OutcomeErased,
			setup: setPolicy("sms", retention.ClassSEC17a4, 0)},
		{name: "gdpr minimization is no duty: erased", age: age30d, want: retention.OutcomeErased,
			setup: setPolicy("", retention.ClassGDPRMin, 365)},
		{name: "sec 17a-4 expired: erased", age: 7 * 366 * 24 * time.Hour, want: retention.OutcomeErased,
			setup: setPolicy("", retention.ClassSEC17a4, 0)},
		{name: "hold on the subject: refused", age: age30d, wantErr: retention.ErrUnderLegalHold,
			setup: hold(retention.HoldRequest{Scope: warehouse.HoldScopeSubject, Subject: "alice"})},
		{name: "hold on the conversation: refused", age: age30d, wantErr: retention.ErrUnderLegalHold,
			setup: hold(retention.HoldRequest{Scope: warehouse.HoldScopeConversation, ConversationID: "c1"})},
		{name: "hold on the period: refused", age: age30d, wantErr: retention.ErrUnderLegalHold,
			setup: hold(retention.HoldRequest{Scope: warehouse.HoldScopeTimeRange, From: sentAt.Add(-time.Hour), To: sentAt.Add(time.Hour)})},
		{name: "hold and 17a-4: hold wins", age: age30d, wantErr: retention.ErrUnderLegalHold,
			setup: both(setPolicy("", retention.ClassSEC17a4, 0), hold(retention.HoldRequest{Scope: warehouse.HoldScopeTenant}))},
		{name: "hold elsewhere: erased", age: age30d, want: retention.OutcomeErased,
			setup: hold(retention.HoldRequest{Scope: warehouse.HoldScopeConversation, ConversationID: "c2"})},
		{name: "released hold: erased", age: age30d, want: retention.OutcomeErased,
			setup: both(hold(retention.HoldRequest{Scope: warehouse.HoldScopeSubject, Subject: "alice"}), release("CASE-1"))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.seed(t, tc.age)
			if tc.setup != nil {
				tc.setup(t, e)
			}
			aliceTokens := e.tokensOf("alice")
			bobTokens := e.tokensOf("bob")
			cert, err := e.svc.Erase(ctxT(t), eraseReq("REQ-1"))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Erase = %v, want %v", err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), "CASE-1") {
					t.Errorf("error %q does not name the case CASE-1", err)
				}
				// Nothing changed.
				if err := e.detokenizeAll(t, aliceTokens); err != nil {
					t.Errorf("after refusal Detokenize = %v, want values", err)
				}
				if n := e.count(t, "SELECT count() FROM messages WHERE sender_id = 'alice'"); n != 3 {
					t.Errorf("after refusal alice has %d message rows, want 3", n)
				}
				if n := e.streamHas(t, "alice"); n != 3 {
					t.Errorf("after refusal the stream has %d of alice's messages, want 3", n)
				}
				if n := e.db.Count(t, "erasures"); n != 0 {
					t.Errorf("after refusal %d erasure records, want 0", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Erase: %v", err)
			}
			if cert.Outcome != tc.want {
				t.Fatalf("certificate outcome %q, want %q\n%+v", cert.Outcome, tc.want, cert)
			}
			if cert.Found.MessagesSent != 3 || cert.Found.MessagesLinked != 2 || cert.Found.Verdicts != 3 || cert.Found.Tokens == 0 {
				t.Errorf("certificate found %+v, want 3 sent, 2 linked, 3 verdicts, some tokens", cert.Found)
			}
			if cert.Verified != (retention.Verified{}) {
				t.Errorf("certificate verified %+v, want nothing left", cert.Verified)
			}
			rec, err := warehouse.GetErasure(ctxT(t), e.db.Conn, tenant, "REQ-1")
			if err != nil {
				t.Fatal(err)
			}
			if rec.Outcome != tc.want {
				t.Errorf("erasures row outcome %q, want %q", rec.Outcome, tc.want)
			}
			parsed, err := retention.ParseCertificate([]byte(rec.Certificate))
			if err != nil || parsed.Outcome != tc.want || parsed.Request != "REQ-1" {
				t.Errorf("stored certificate = %+v, %v", parsed, err)
			}
			if !contains(e.auditActions(t), retention.AuditActionErase) {
				t.Errorf("no %s audit event", retention.AuditActionErase)
			}
			// Bob is untouched either way.
			if err := e.detokenizeAll(t, bobTokens); err != nil {
				t.Errorf("bob's tokens: %v, want values", err)
			}
			if n := e.streamHas(t, "bob"); n != 2 {
				t.Errorf("stream has %d of bob's messages, want 2", n)
			}

			switch tc.want {
			case retention.OutcomeErased:
				if !cert.Shredded.SubjectKey || cert.Deleted != (retention.Deleted{Messages: 3, Verdicts: 3, StreamMessages: 3, StreamVerdicts: 3}) {
					t.Errorf("certificate shredded %+v deleted %+v, want key shredded and 3/3/3/3 deleted", cert.Shredded, cert.Deleted)
				}
				if n := e.streamVerdicts(t, "alice"); n != 0 {
					t.Errorf("after erasure VERDICTS holds %d verdicts about alice, want 0", n)
				}
				if err := e.detokenizeAll(t, aliceTokens); !errors.Is(err, pii.ErrSubjectShredded) {
					t.Errorf("after erasure Detokenize = %v, want ErrSubjectShredded", err)
				}
				if n := e.count(t, "SELECT count() FROM messages WHERE sender_id = 'alice'"); n != 0 {
					t.Errorf("after erasure alice has %d message rows, want 0", n)
				}
				if n := e.count(t, "SELECT count() FROM verdicts WHERE sender_id = 'alice'"); n != 0 {
					t.Errorf("after erasure alice has %d verdict rows, want 0", n)
				}
				if n := e.streamHas(t, "alice"); n != 0 {
					t.Errorf("after erasure the stream has %d of alice's messages, want 0", n)
				}
				if rec.SubjectID != "" || e.count(t, "SELECT count() FROM erasures WHERE subject_id != ''") != 0 {
					t.Errorf("erasures still name the erased subject")
				}
				if cert.Restriction != nil {
					t.Errorf("erased certificate has a restriction %+v", cert.Restriction)
				}
			case retention.OutcomeRestricted:
				if cert.Shredded.SubjectKey || cert.Deleted != (retention.Deleted{}) {
					t.Errorf("restricted certificate shredded %+v deleted %+v, want nothing", cert.Shredded, cert.Deleted)
				}
				r := cert.Restriction
				if r == nil || !equal(r.Classes, tc.wantClasses) || !r.DeleteAfter.Equal(tc.wantAfter) || r.Messages != 5 ||
					!strings.Contains(r.Basis, "17(3)(b)") {
					t.Fatalf("restriction %+v, want classes %v, 5 messages, delete after %s, basis citing 17(3)(b)", r, tc.wantClasses, tc.wantAfter)
				}
				if err := e.detokenizeAll(t, aliceTokens); !errors.Is(err, pii.ErrSubjectRestricted) {
					t.Errorf("after restriction Detokenize = %v, want ErrSubjectRestricted", err)
				}
				if n := e.count(t, "SELECT count() FROM messages WHERE sender_id = 'alice'"); n != 3 {
					t.Errorf("restricted alice has %d message rows, want 3", n)
				}
				if n := e.streamHas(t, "alice"); n != 3 {
					t.Errorf("restricted: stream has %d of alice's messages, want 3", n)
				}
				if n := e.streamVerdicts(t, "alice"); n != 3 {
					t.Errorf("restricted: VERDICTS holds %d verdicts about alice, want 3", n)
				}
				if rec.Basis != r.Basis || !rec.DeleteAfter.Equal(tc.wantAfter) || rec.SubjectID != "alice" {
					t.Errorf("erasures row basis %q delete_after %s subject kept %v", rec.Basis, rec.DeleteAfter, rec.SubjectID == "alice")
				}
			}
		})
	}
}

func setPolicy(channel, class string, days int) func(*testing.T, *env) {
	return func(t *testing.T, e *env) {
		t.Helper()
		if _, err := e.svc.SetPolicy(ctxT(t), retention.PolicyRequest{Tenant: tenant, Channel: channel, Class: class, KeepDays: days,
			Actor: "cco", Reason: "policy"}); err != nil {
			t.Fatal(err)
		}
	}
}

func hold(r retention.HoldRequest) func(*testing.T, *env) {
	return func(t *testing.T, e *env) {
		t.Helper()
		r.Tenant, r.CaseID, r.Actor, r.Reason = tenant, "CASE-1", "counsel", "litigation"
		if _, err := e.svc.CreateHold(ctxT(t), r); err != nil {
			t.Fatal(err)
		}
	}
}

func release(caseID string) func(*testing.T, *env) {
	return func(t *testing.T, e *env) {
		t.Helper()
		if _, err := e.svc.ReleaseHold(ctxT(t), tenant, caseID, "counsel", "settled", false); err != nil {
			t.Fatal(err)
		}
	}
}

func both(fs ...func(*testing.T, *env)) func(*testing.T, *env) {
	return func(t *testing.T, e *env) {
		for _, f := range fs {
			f(t, e)
		}
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func equal(a, b []string) bool { return strings.Join(a, ",") == strings.Join(b, ",") }

// TestEraseReplayIdempotentDryRun: a dry run changes nothing; re-running a
// completed request returns its certificate; replayed events and new
// messages never bring the subject back.
func TestEraseReplayIdempotentDryRun(t *testing.T) {
	e := newEnv(t)
	e.seed(t, age30d)
	ctx := ctxT(t)
	aliceTokens := e.tokensOf("alice")

	req := eraseReq("REQ-2")
	req.DryRun = true
	plan, err := e.svc.Erase(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if !plan.DryRun || plan.Outcome != retention.OutcomeErased || plan.Deleted.Messages != 3 {
		t.Fatalf("dry run plan %+v, want an erasure of 3 messages", plan)
	}
	if err := e.detokenizeAll(t, aliceTokens); err != nil {
		t.Fatalf("after dry run Detokenize = %v, want values", err)
	}
	if n := e.db.Count(t, "erasures"); n != 0 || e.streamHas(t, "alice") != 3 || e.count(t, "SELECT count() FROM messages WHERE sender_id = 'alice'") != 3 {
		t.Fatalf("dry run changed something: %d erasure records", n)
	}

	first, err := e.svc.Erase(ctx, eraseReq("REQ-2"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := e.svc.Erase(ctx, eraseReq("REQ-2"))
	if err != nil {
		t.Fatalf("second Erase: %v", err)
	}
	a, _ := first.JSON()
	b, _ := again.JSON()
	if string(a) != string(b) {
		t.Errorf("re-run returned another certificate:\n%s\nwant\n%s", b, a)
	}
	// The same ref for another subject is refused.
	other := eraseReq("REQ-2")
	other.Subject = "bob"
	if _, err := e.svc.Erase(ctx, other); !errors.Is(err, retention.ErrInvalidRequest) {
		t.Errorf("Erase(REQ-2 for bob) = %v, want ErrInvalidRequest", err)
	}

	// Replay: the tokens of old events point at the shredded key.
	for _, m := range e.msgs {
		if m.Sender.ID != "alice" {
			continue
		}
		replayed := *m
		replayed.ID += "-replay"
		if err := e.tok.TokenizeMessage(ctx, &replayed); err != nil {
			t.Fatal(err)
		}
		if _, err := e.bus.PublishMessage(ctx, &replayed); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.detokenizeAll(t, aliceTokens); !errors.Is(err, pii.ErrSubjectShredded) {
		t.Errorf("after replay Detokenize = %v, want ErrSubjectShredded", err)
	}
	// Alice writes again with the same e-mail: the value is never stored.
	fresh := &vigil.Message{ID: "m-new", Tenant: tenant, ConversationID: "c9", Sender: vigil.Participant{ID: "alice"},
		Text: "new address? no, still alice.archer@example.com", SentAt: now, ReceivedAt: now}
	if err := e.tok.TokenizeMessage(ctx, fresh); err != nil {
		t.Fatal(err)
	}
	toks := pii.FindTokens(fresh.Text)
	if len(toks) == 0 {
		t.Fatal("fresh message has no token")
	}
	if err := e.detokenizeAll(t, []string{toks[0].String()}); !errors.Is(err, pii.ErrSubjectShredded) {
		t.Errorf("new message of an erased subject: Detokenize = %v, want ErrSubjectShredded", err)
	}
}

// TestEraseResumes: a crash after the stream and ClickHouse deletions but
// before the final record is completed by running the request again.
func TestEraseResumes(t *testing.T) {
	e := newEnv(t)
	e.seed(t, age30d)
	ctx := ctxT(t)
	f := warehouse.MessageFilter{Tenant: tenant, Sender: "alice"}
	seqs, err := warehouse.MessageStreamSeqs(ctx, e.db.Conn, f)
	if err != nil || len(seqs) != 3 {
		t.Fatalf("seqs %v, %v", seqs, err)
	}
	// What Erase records before changing anything, then a partial run:
	// two stream messages and every ClickHouse row gone, no shred yet.
	sh, err := e.vault.SubjectHash(ctx, tenant, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if err := warehouse.PutErasure(ctx, e.db.Conn, warehouse.ErasureRecord{Tenant: tenant, RequestRef: "REQ-3", SubjectHash: sh,
		SubjectID: "alice", Outcome: retention.OutcomeInProgress, RequestedBy: "dpo@acme", At: now,
		Certificate: `{"outcome":"erased","stream_seqs":[` + itoa(seqs[0]) + `,` + itoa(seqs[1]) + `,` + itoa(seqs[2]) + `]}`}); err != nil {
		t.Fatal(err)
	}
	if err := e.bus.EraseMessages(ctx, seqs[:2]); err != nil {
		t.Fatal(err)
	}
	if _, err := warehouse.DeleteMessages(ctx, e.db.Conn, f); err != nil {
		t.Fatal(err)
	}

	cert, err := e.svc.Erase(ctx, eraseReq("REQ-3"))
	if err != nil {
		t.Fatalf("resumed Erase: %v", err)
	}
	if cert.Outcome != retention.OutcomeErased || !cert.Shredded.SubjectKey || cert.Verified != (retention.Verified{}) {
		t.Fatalf("resumed certificate %+v", cert)
	}
	if n := e.streamHas(t, "alice"); n != 0 {
		t.Errorf("after resume the stream has %d of alice's messages, want 0", n)
	}
	if err := e.detokenizeAll(t, e.tokensOf("alice")); !errors.Is(err, pii.ErrSubjectShredded) {
		t.Errorf("after resume Detokenize = %v, want ErrSubjectShredded", err)
	}
	rec, err := warehouse.GetErasure(ctx, e.db.Conn, tenant, "REQ-3")
	if err != nil || rec.Outcome != retention.OutcomeErased {
		t.Errorf("record after resume %+v, %v", rec, err)
	}
}

// TestBadAdminInput: every bad request is refused with a clear error and
// changes nothing.
func TestBadAdminInput(t *testing.T) {
	e := newEnv(t)
	e.seed(t, age30d)
	hold(retention.HoldRequest{Scope: warehouse.HoldScopeConversation, ConversationID: "c2"})(t, e)
	ctx := ctxT(t)
	aliceTokens := e.tokensOf("alice")
	snapshot := func() [5]uint64 {
		return [5]uint64{e.db.Count(t, "legal_holds"), e.db.Count(t, "erasures"), e.db.Count(t, "retention_policies"),
			e.count(t, "SELECT count() FROM messages"), e.count(t, "SELECT count() FROM verdicts")}
	}
	before := snapshot()
	auditBefore := len(e.auditActions(t))
	from := now.Add(-time.Hour)
	tests := []struct {
		name    string
		do      func() error
		wantErr error
		wantMsg string
	}{
		{"unknown subject", func() error {
			r := eraseReq("REQ-X")
			r.Subject = "nobody"
			_, err := e.svc.Erase(ctx, r)
			return err
		}, retention.ErrUnknownSubject, "unknown data subject"},
		{"erase without reason", func() error {
			r := eraseReq("REQ-X")
			r.Reason = " "
			_, err := e.svc.Erase(ctx, r)
			return err
		}, retention.ErrInvalidRequest, "reason required"},
		{"erase with bad ref", func() error { _, err := e.svc.Erase(ctx, eraseReq("REQ X")); return err }, retention.ErrInvalidRequest, "request ref"},
		{"access of unknown subject", func() error {
			_, err := e.svc.Access(ctx, retention.AccessRequest{Tenant: tenant, Subject: "nobody", Actor: "dpo", Reason: "Art. 15"})
			return err
		}, retention.ErrUnknownSubject, ""},
		{"unknown policy", func() error {
			_, err := e.svc.SetPolicy(ctx, retention.PolicyRequest{Tenant: tenant, Class: "sox-404", Actor: "cco", Reason: "x"})
			return err
		}, retention.ErrUnknownPolicy, `"sox-404"`},
		{"policy period below the minimum", func() error {
			_, err := e.svc.SetPolicy(ctx, retention.PolicyRequest{Tenant: tenant, Class: retention.ClassSEC17a4, KeepDays: 365, Actor: "cco", Reason: "x"})
			return err
		}, retention.ErrInvalidRequest, "at least 2192 days"},
		{"mifid period above the maximum", func() error {
			_, err := e.svc.SetPolicy(ctx, retention.PolicyRequest{Tenant: tenant, Class: retention.ClassMiFIDII, KeepDays: 4000, Actor: "cco", Reason: "x"})
			return err
		}, retention.ErrInvalidRequest, "at most 2557 days"},
		{"minimization without a period", func() error {
			_, err := e.svc.SetPolicy(ctx, retention.PolicyRequest{Tenant: tenant, Class: retention.ClassGDPRMin, Actor: "cco", Reason: "x"})
			return err
		}, retention.ErrInvalidRequest, "needs a period"},
		{"overlapping hold", func() error {
			_, err := e.svc.CreateHold(ctx, retention.HoldRequest{Tenant: tenant, CaseID: "CASE-1", Scope: warehouse.HoldScopeTenant, Actor: "x", Reason: "y"})
			return err
		}, retention.ErrHoldExists, "case CASE-1"},
		{"hold dates reversed", func() error {
			_, err := e.svc.CreateHold(ctx, retention.HoldRequest{Tenant: tenant, CaseID: "CASE-2", Scope: warehouse.HoldScopeTimeRange,
				From: from, To: from.Add(-time.Minute), Actor: "x", Reason: "y"})
			return err
		}, retention.ErrInvalidRequest, "is not before its end"},
		{"hold time range without dates", func() error {
			_, err := e.svc.CreateHold(ctx, retention.HoldRequest{Tenant: tenant, CaseID: "CASE-2", Scope: warehouse.HoldScopeTimeRange, Actor: "x", Reason: "y"})
			return err
		}, retention.ErrInvalidRequest, "needs a start or an end"},
		{"hold bad scope", func() error {
			_, err := e.svc.CreateHold(ctx, retention.HoldRequest{Tenant: tenant, CaseID: "CASE-2", Scope: "everything", Actor: "x", Reason: "y"})
			return err
		}, retention.ErrInvalidRequest, "scope must be"},
		{"hold conversation missing", func() error {
			_, err := e.svc.CreateHold(ctx, retention.HoldRequest{Tenant: tenant, CaseID: "CASE-2", Scope: warehouse.HoldScopeConversation, Actor: "x", Reason: "y"})
			return err
		}, retention.ErrInvalidRequest, "conversation"},
		{"release unknown hold", func() error {
			_, err := e.svc.ReleaseHold(ctx, tenant, "CASE-404", "x", "y", false)
			return err
		}, retention.ErrHoldNotFound, "CASE-404"},
		{"release without actor", func() error {
			_, err := e.svc.ReleaseHold(ctx, tenant, "CASE-1", "", "y", false)
			return err
		}, retention.ErrInvalidRequest, "actor required"},
		{"release dry run", func() error {
			h, err := e.svc.ReleaseHold(ctx, tenant, "CASE-1", "x", "y", true)
			if err == nil && !h.Active() {
				return errors.New("dry run released the hold")
			}
			return err
		}, nil, ""},
		{"run without actor", func() error { _, err := e.svc.Run(ctx, retention.RunOptions{Reason: "x"}); return err }, retention.ErrInvalidRequest, "actor"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if !errors.Is(err, tc.wantErr) || tc.wantErr == nil && err != nil {
				t.Fatalf("error = %v, want %v", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not say %q", err, tc.wantMsg)
			}
			if err != nil && strings.Contains(err.Error(), "alice.archer") {
				t.Errorf("error %q carries PII", err)
			}
			if got := snapshot(); got != before {
				t.Errorf("tables changed: %v, want %v", got, before)
			}
		})
	}
	if err := e.detokenizeAll(t, aliceTokens); err != nil {
		t.Errorf("after bad input Detokenize = %v, want values", err)
	}
	// Detokenizations above are audited by the vault; nothing else was.
	for _, a := range e.auditActions(t)[auditBefore:] {
		if a != pii.AuditActionDetokenize {
			t.Errorf("bad input wrote audit event %s", a)
		}
	}
}

func itoa(u uint64) string { return strconv.FormatUint(u, 10) }

// TestEraseVaultOnlySubject: a subject known only to the vault (tokenized,
// never archived) is erased by shredding; an unbounded tenant hold covers
// the vault too.
func TestEraseVaultOnlySubject(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t)
	m := &vigil.Message{ID: "m-dave", Tenant: tenant, ConversationID: "c7", Sender: vigil.Participant{ID: "dave", DisplayName: "Dave Dealer"},
		Text: "dave@example.net", SentAt: now, ReceivedAt: now}
	if err := e.tok.TokenizeMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	toks := []string{}
	for _, tk := range pii.FindTokens(m.Text + m.Sender.DisplayName) {
		toks = append(toks, tk.String())
	}
	req := retention.EraseRequest{Tenant: tenant, Subject: "dave", Ref: "REQ-D", Actor: "dpo", Reason: "Art. 17"}

	hold(retention.HoldRequest{Scope: warehouse.HoldScopeTenant})(t, e)
	if _, err := e.svc.Erase(ctx, req); !errors.Is(err, retention.ErrUnderLegalHold) {
		t.Fatalf("Erase under a tenant hold = %v, want ErrUnderLegalHold", err)
	}
	if err := e.detokenizeAll(t, toks); err != nil {
		t.Fatalf("after refusal Detokenize = %v, want values", err)
	}
	release("CASE-1")(t, e)
	cert, err := e.svc.Erase(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if cert.Outcome != retention.OutcomeErased || cert.Found.Tokens != len(toks) || cert.Found.MessagesSent != 0 {
		t.Fatalf("certificate %+v, want erased with %d tokens and no messages", cert, len(toks))
	}
	if err := e.detokenizeAll(t, toks); !errors.Is(err, pii.ErrSubjectShredded) {
		t.Errorf("after erasure Detokenize = %v, want ErrSubjectShredded", err)
	}
}

// TestEraseMixedRestrictsAndDeletes: a duty on one channel keeps that
// message and restricts the subject; messages no duty keeps are deleted.
func TestEraseMixedRestrictsAndDeletes(t *testing.T) {
	e := newEnv(t)
	e.seed(t, age30d)
	ctx := ctxT(t)
	m := &vigil.Message{ID: "m-sms", Tenant: tenant, ConversationID: "c3", Sender: vigil.Participant{ID: "alice", DisplayName: "Alice Archer"},
		Channel: "sms", Text: "order confirmed", SentAt: now.Add(-time.Hour), ReceivedAt: now.Add(-time.Hour)}
	if err := e.tok.TokenizeMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	if _, err := e.bus.PublishMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	e.msgs = append(e.msgs, m)
	e.waitRows(t, "messages", 7)
	setPolicy("sms", retention.ClassSEC17a4, 0)(t, e)

	cert, err := e.svc.Erase(ctx, eraseReq("REQ-M"))
	if err != nil {
		t.Fatal(err)
	}
	if cert.Outcome != retention.OutcomeRestricted || cert.Restriction == nil || cert.Restriction.Messages != 1 ||
		!cert.Restriction.DeleteAfter.Equal(m.SentAt.AddDate(0, 0, 2192)) {
		t.Fatalf("certificate %+v restriction %+v, want restricted keeping 1 message until +2192 days", cert, cert.Restriction)
	}
	if want := (retention.Deleted{Messages: 3, Verdicts: 3, StreamMessages: 3, StreamVerdicts: 3}); cert.Deleted != want {
		t.Errorf("deleted %+v, want %+v", cert.Deleted, want)
	}
	if n := e.count(t, "SELECT count() FROM messages WHERE sender_id = 'alice'"); n != 1 {
		t.Errorf("alice has %d message rows, want the retained sms one", n)
	}
	if n := e.streamHas(t, "alice"); n != 1 {
		t.Errorf("stream has %d of alice's messages, want 1", n)
	}
	if err := e.detokenizeAll(t, e.tokensOf("alice")); !errors.Is(err, pii.ErrSubjectRestricted) {
		t.Errorf("Detokenize = %v, want ErrSubjectRestricted", err)
	}
	if err := e.detokenizeAll(t, e.tokensOf("bob")); err != nil {
		t.Errorf("bob's tokens: %v", err)
	}
}

// streamVerdicts counts the verdicts in VERDICTS whose sender is subject.
func (e *env) streamVerdicts(t *testing.T, subject string) int {
	t.Helper()
	ctx := ctxT(t)
	st, err := e.srv.JS.Stream(ctx, bus.StreamVerdicts)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		var v vigil.Verdict
		if err := json.Unmarshal(m.Data, &v); err != nil {
			t.Fatal(err)
		}
		if v.SenderID == subject {
			n++
		}
	}
	return n
}
