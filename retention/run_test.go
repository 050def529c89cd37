package retention_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigilhq/vigil/pii"
	"github.com/vigilhq/vigil/retention"
	"github.com/vigilhq/vigil/warehouse"
)

func TestAccessExport(t *testing.T) {
	e := newEnv(t)
	e.seed(t, age30d)
	ctx := ctxT(t)
	rep, err := e.svc.Access(ctx, retention.AccessRequest{Tenant: tenant, Subject: "alice", Actor: "dpo@acme", Reason: "Art. 15 request DSR-7"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Messages) != 5 || rep.Verdicts != 3 {
		t.Fatalf("access export has %d messages, %d verdicts; want 5 (3 sent, 2 linked) and 3", len(rep.Messages), rep.Verdicts)
	}
	var sent, values int
	var text strings.Builder
	for _, m := range rep.Messages {
		if m.Role == "sender" {
			sent++
		}
		text.WriteString(m.Text + "\n")
	}
	for _, tk := range rep.Tokens {
		if tk.Status == retention.TokenValue {
			values++
		}
	}
	if sent != 3 || values != len(rep.Tokens) || values == 0 {
		t.Errorf("sent %d (want 3), %d of %d tokens with values", sent, values, len(rep.Tokens))
	}
	if !strings.Contains(text.String(), "alice.archer@example.com") {
		t.Errorf("export does not show alice's own e-mail:\n%s", text.String())
	}
	if strings.Contains(text.String(), "carol@example.org") {
		t.Errorf("export shows another person's data")
	}
	if got := e.auditActions(t); !contains(got, retention.AuditActionAccess) || !contains(got, pii.AuditActionDetokenize) {
		t.Errorf("audit actions %v, want access and detokenize events", got)
	}

	// Restricted: tokens listed without values.
	if err := e.vault.Restrict(ctx, tenant, "alice", "test"); err != nil {
		t.Fatal(err)
	}
	rep, err = e.svc.Access(ctx, retention.AccessRequest{Tenant: tenant, Subject: "alice", Actor: "dpo@acme", Reason: "Art. 15"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range rep.Tokens {
		if tk.Status != retention.TokenRestricted || tk.Value != "" {
			t.Errorf("restricted subject token %+v, want status restricted and no value", tk)
		}
	}
}

func TestRunPurgesExpired(t *testing.T) {
	e := newEnv(t)
	e.seed(t, 400*24*time.Hour) // 400 days old
	ctx := ctxT(t)
	// carol's sms conversation is held; every channel keeps a year.
	setPolicy("", retention.ClassGDPRMin, 365)(t, e)
	hold(retention.HoldRequest{Scope: warehouse.HoldScopeConversation, ConversationID: "c2"})(t, e)

	opts := retention.RunOptions{Actor: "ops", Reason: "daily", DryRun: true}
	plan, err := e.svc.Run(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Policies) != 1 || plan.Policies[0].Messages != 5 || plan.Policies[0].Held != 1 || plan.Policies[0].Verdicts != 4 {
		t.Fatalf("dry run %+v, want 5 messages and 4 verdicts due, 1 held", plan.Policies)
	}
	if n := e.db.Count(t, "messages"); n != 6 {
		t.Fatalf("dry run removed rows: %d left, want 6", n)
	}
	opts.DryRun = false
	rep, err := e.svc.Run(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if p := rep.Policies[0]; p.Messages != 5 || p.StreamMessages != 5 || p.StreamVerdicts != 4 || p.Held != 1 {
		t.Fatalf("run %+v, want 5 messages removed (5 from MESSAGES, 4 from VERDICTS), 1 held", p)
	}
	if n := e.streamVerdicts(t, "alice") + e.streamVerdicts(t, "bob"); n != 0 {
		t.Errorf("%d expired verdicts left in VERDICTS, want 0", n)
	}
	if n := e.count(t, "SELECT count() FROM messages"); n != 1 {
		t.Errorf("%d message rows left, want carol's held one", n)
	}
	if n := e.streamHas(t, "alice") + e.streamHas(t, "bob"); n != 0 {
		t.Errorf("%d expired stream messages left, want 0", n)
	}
	if n := e.streamHas(t, "carol"); n != 1 {
		t.Errorf("held stream message gone")
	}
	if !contains(e.auditActions(t), retention.AuditActionRun) {
		t.Errorf("no %s audit event", retention.AuditActionRun)
	}
}

func TestRunCompletesDeferredErasure(t *testing.T) {
	e := newEnv(t)
	e.seed(t, age30d)
	ctx := ctxT(t)
	setPolicy("", retention.ClassSEC17a4, 0)(t, e)
	cert, err := e.svc.Erase(ctx, eraseReq("REQ-9"))
	if err != nil || cert.Outcome != retention.OutcomeRestricted {
		t.Fatalf("Erase = %+v, %v; want restricted", cert, err)
	}
	opts := retention.RunOptions{Actor: "ops", Reason: "daily"}
	rep, err := e.svc.Run(ctx, opts)
	if err != nil || len(rep.Erasures) != 0 {
		t.Fatalf("run before expiry: %+v, %v; want no erasure", rep.Erasures, err)
	}
	// Six years later.
	e.clock = cert.Restriction.DeleteAfter.Add(time.Hour)
	rep, err = e.svc.Run(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Erasures) != 1 || rep.Erasures[0].Outcome != retention.OutcomeErased {
		t.Fatalf("run after expiry erasures %+v, want REQ-9 erased", rep.Erasures)
	}
	if err := e.detokenizeAll(t, e.tokensOf("alice")); !errors.Is(err, pii.ErrSubjectShredded) {
		t.Errorf("after deferred erasure Detokenize = %v, want ErrSubjectShredded", err)
	}
	rec, err := warehouse.GetErasure(ctx, e.db.Conn, tenant, "REQ-9")
	if err != nil || rec.Outcome != retention.OutcomeErased || rec.SubjectID != "" {
		t.Errorf("record %+v, %v; want erased without subject id", rec, err)
	}
}

func TestScheduler(t *testing.T) {
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	m := retention.NewMetrics(reg)
	svc, err := retention.New(e.db.Conn, e.bus, e.vault, retention.WithMetrics(m), retention.WithClock(func() time.Time { return now }))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := retention.NewScheduler(svc, retention.SchedulerConfig{Interval: 20 * time.Millisecond, FirstRun: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := sc.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
	deadline := time.Now().Add(20 * time.Second)
	for testutil.ToFloat64(m.Runs.WithLabelValues("ok")) < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := sc.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	runs := testutil.ToFloat64(m.Runs.WithLabelValues("ok"))
	if runs < 2 {
		t.Fatalf("%v successful runs, want at least 2", runs)
	}
	time.Sleep(60 * time.Millisecond)
	if after := testutil.ToFloat64(m.Runs.WithLabelValues("ok")); after != runs {
		t.Errorf("runs continued after Close: %v → %v", runs, after)
	}
	if err := sc.Close(context.Background()); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if n, err := testutil.GatherAndCount(reg, "vigil_retention_runs_total"); err != nil || n == 0 {
		t.Errorf("vigil_retention_runs_total not registered: %d, %v", n, err)
	}
}
