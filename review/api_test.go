package review_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/pii"
	"github.com/vigilhq/vigil/review"
	"github.com/vigilhq/vigil/review/workflow"
)

func TestAlertsAggregateVerdicts(t *testing.T) {
	m := review.NewMetrics(prometheus.NewRegistry())
	e := newEnv(t, testConfig(), review.WithMetrics(m))
	// One noisy conversation: five verdicts of one rule are one alert.
	var first *vigil.Message
	for i := range 5 {
		m := e.flag("acme", "conv-noisy", "mnpi.leak", vigil.SeverityHigh, vigil.ActionAlert, fmt.Sprintf("insider tip %d", i))
		if first == nil {
			first = m
		}
	}
	// Another rule on the same conversation is its own alert.
	e.flag("acme", "conv-noisy", "guarantee.returns", vigil.SeverityMedium, vigil.ActionEscalate, "guaranteed 20%")
	// Flag-only tier-1 verdicts do not open alerts; a tier-2 result does.
	e.flag("acme", "conv-quiet", "greeting", vigil.SeverityLow, vigil.ActionFlag, "hello")
	t1 := e.flag("acme", "conv-t2", "tier2.harassment", vigil.SeverityMedium, vigil.ActionFlag, "you will regret")
	e.verdict(t1, "tier2.classifier", vigil.SeverityHigh, vigil.ActionFlag, 2)

	pg := e.waitAlerts(tokAnn, "", 3)
	byRule := map[string]*workflow.Alert{}
	for _, a := range pg.Alerts {
		byRule[a.RuleID] = a
	}
	tests := []struct {
		rule       string
		count      int
		suppressed int
	}{
		{"mnpi.leak", 5, 4},
		{"guarantee.returns", 1, 0},
		{"tier2.classifier", 1, 0},
	}
	for _, tc := range tests {
		a := byRule[tc.rule]
		if a == nil {
			t.Fatalf("no alert for rule %s; got %v", tc.rule, pg.Alerts)
		}
		if a.Count != tc.count || a.Suppressed() != tc.suppressed {
			t.Errorf("rule %s: count %d suppressed %d, want %d/%d", tc.rule, a.Count, a.Suppressed(), tc.count, tc.suppressed)
		}
	}
	if byRule["mnpi.leak"].MessageID != first.ID {
		t.Errorf("alert message = %s, want the first flagged message %s", byRule["mnpi.leak"].MessageID, first.ID)
	}

	// Closing the alert and flagging again opens a new alert, it does not
	// fold into the closed one.
	id := byRule["guarantee.returns"].ID
	if st := e.api(tokAnn, "POST", "/v1/review/alerts/"+id+"/claim", nil, nil); st != 200 {
		t.Fatalf("claim: %d", st)
	}
	if st := e.api(tokAnn, "POST", "/v1/review/alerts/"+id+"/close", map[string]string{"disposition": "no_action", "reason": "hedged"}, nil); st != 200 {
		t.Fatalf("close: %d", st)
	}
	e.flag("acme", "conv-noisy", "guarantee.returns", vigil.SeverityMedium, vigil.ActionEscalate, "guaranteed again")
	e.waitAlerts(tokAnn, "rule=guarantee.returns", 2)

	// Suppressed duplicates are counted, not dropped silently. The
	// counter moves just after the alert is visible: poll briefly.
	want := map[string]float64{"alerted": 4, "suppressed": 4, "ignored": 2, "invalid": 0, "error": 0}
	deadline := time.Now().Add(5 * time.Second)
	for result, n := range want {
		for {
			got := testutil.ToFloat64(m.Verdicts.WithLabelValues(result))
			if got == n {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("vigil_review_verdicts_total{result=%q} = %g, want %g", result, got, n)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

func TestIllegalTransitionsRefused(t *testing.T) {
	e := newEnv(t, testConfig())
	e.flag("acme", "c1", "r.open", vigil.SeverityHigh, vigil.ActionAlert, "open one jane.doe@example.com")
	e.flag("acme", "c2", "r.closed", vigil.SeverityHigh, vigil.ActionAlert, "closed one")
	pg := e.waitAlerts(tokAnn, "", 2)
	ids := map[string]string{}
	for _, a := range pg.Alerts {
		ids[a.RuleID] = a.ID
	}
	openID, closedID := ids["r.open"], ids["r.closed"]
	e.api(tokAnn, "POST", "/v1/review/alerts/"+closedID+"/claim", nil, nil)
	if st := e.api(tokAnn, "POST", "/v1/review/alerts/"+closedID+"/close", map[string]string{"disposition": "coached", "reason": "spoke to advisor"}, nil); st != 200 {
		t.Fatalf("setup close: %d", st)
	}

	tests := []struct {
		name     string
		tok      string
		path     string
		body     any
		status   int
		code     string
		alert    string
		wantFrom workflow.State
	}{
		{"close unclaimed", tokAnn, "/v1/review/alerts/" + openID + "/close", map[string]string{"disposition": "no_action", "reason": "fine"}, 409, workflow.CodeNotClaimed, openID, workflow.StateOpen},
		{"reopen without reason", tokAnn, "/v1/review/alerts/" + closedID + "/reopen", map[string]string{}, 400, workflow.CodeReasonRequired, closedID, workflow.StateClosed},
		{"reopen blank reason", tokAnn, "/v1/review/alerts/" + closedID + "/reopen", map[string]string{"reason": "   "}, 400, workflow.CodeReasonRequired, closedID, workflow.StateClosed},
		{"reviewer detokenizes", tokAnn, "/v1/review/alerts/" + openID + "/detokenize", map[string]string{"reason": "investigation"}, 403, workflow.CodeForbidden, openID, workflow.StateOpen},
		{"admin detokenizes", tokAdmin, "/v1/review/alerts/" + openID + "/detokenize", map[string]string{"reason": "investigation"}, 403, workflow.CodeForbidden, openID, workflow.StateOpen},
		{"privileged detokenizes without reason", tokPriv, "/v1/review/alerts/" + openID + "/detokenize", map[string]string{}, 400, workflow.CodeReasonRequired, openID, workflow.StateOpen},
		{"other tenant claims", tokEve, "/v1/review/alerts/" + openID + "/claim", nil, 404, workflow.CodeNotFound, openID, workflow.StateOpen},
		{"other tenant reads", tokEve, "/v1/review/alerts/" + openID, nil, 404, workflow.CodeNotFound, openID, workflow.StateOpen},
		{"no token", "", "/v1/review/alerts/" + openID + "/claim", nil, 401, workflow.CodeUnauthorized, openID, workflow.StateOpen},
		{"bad token", "nope", "/v1/review/alerts/" + openID + "/claim", nil, 401, workflow.CodeUnauthorized, openID, workflow.StateOpen},
		{"close with bad disposition", tokAnn, "/v1/review/alerts/" + openID + "/close", map[string]string{"disposition": "shrug", "reason": "x"}, 400, workflow.CodeInvalidDisp, openID, workflow.StateOpen},
		{"unknown body field", tokAnn, "/v1/review/alerts/" + openID + "/claim", map[string]string{"state": "closed"}, 400, workflow.CodeBadRequest, openID, workflow.StateOpen},
		{"reviewer assigns", tokAnn, "/v1/review/alerts/" + openID + "/assign", map[string]string{"assignee": "bob"}, 403, workflow.CodeForbidden, openID, workflow.StateOpen},
		{"reviewer bulk closes", tokAnn, "/v1/review/bulk/close", map[string]any{"ids": []string{openID}, "disposition": "no_action", "reason": "x"}, 403, workflow.CodeForbidden, openID, workflow.StateOpen},
		{"unknown alert", tokAnn, "/v1/review/alerts/a-000000000000000000000000/claim", nil, 404, workflow.CodeNotFound, openID, workflow.StateOpen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			events, audits, detoks := e.streamCount(bus.StreamReview), e.streamCount(bus.StreamAudit), e.detoks.Load()
			var before workflow.Alert
			e.api(tokAdmin, "GET", "/v1/review/alerts/"+tc.alert, nil, &before)
			var got apiError
			method := "POST"
			if tc.body == nil && tc.name == "other tenant reads" {
				method = "GET"
			}
			status := e.api(tc.tok, method, tc.path, tc.body, &got)
			if status != tc.status || got.Error.Code != tc.code || got.Error.Message == "" {
				t.Fatalf("%s %s = %d %+v, want %d %s with a message", method, tc.path, status, got, tc.status, tc.code)
			}
			var after workflow.Alert
			e.api(tokAdmin, "GET", "/v1/review/alerts/"+tc.alert, nil, &after)
			if after.State != tc.wantFrom || after.UpdatedAt != before.UpdatedAt || after.Assignee != before.Assignee {
				t.Errorf("alert changed: %s/%q → %s/%q", before.State, before.Assignee, after.State, after.Assignee)
			}
			if n := e.streamCount(bus.StreamReview); n != events {
				t.Errorf("REVIEW events %d → %d, want unchanged", events, n)
			}
			if n := e.streamCount(bus.StreamAudit); n != audits {
				t.Errorf("AUDIT events %d → %d, want unchanged", audits, n)
			}
			if n := e.detoks.Load(); n != detoks {
				t.Errorf("vault asked %d times, want 0", n-detoks)
			}
		})
	}
}

func TestConcurrentClaimsOneWins(t *testing.T) {
	e := newEnv(t, testConfig())
	e.flag("acme", "c1", "r1", vigil.SeverityHigh, vigil.ActionAlert, "text")
	id := e.waitAlerts(tokAnn, "", 1).Alerts[0].ID
	toks := []string{tokAnn, tokBob, tokPriv, tokAdmin, tokAnn, tokBob, tokPriv, tokAdmin}
	statuses := make([]int, len(toks))
	codes := make([]string, len(toks))
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, tok := range toks {
		wg.Go(func() {
			<-start
			var got apiError
			statuses[i] = e.api(tok, "POST", "/v1/review/alerts/"+id+"/claim", nil, &got)
			codes[i] = got.Error.Code
		})
	}
	close(start)
	wg.Wait()
	wins := 0
	for i, st := range statuses {
		switch {
		case st == 200:
			wins++
		case st == 409 && codes[i] == workflow.CodeAlreadyClaimed:
		default:
			t.Errorf("claim %d: %d %s", i, st, codes[i])
		}
	}
	if wins != 1 {
		t.Fatalf("claims won = %d (statuses %v), want exactly 1", wins, statuses)
	}
	claims := 0
	for _, ev := range e.streamRecords(bus.StreamReview) {
		if ev["alert_id"] == id && ev["to_state"] == "claimed" {
			claims++
		}
	}
	if claims != 1 {
		t.Errorf("claim events on REVIEW = %d, want 1", claims)
	}
}

func TestReviewEventsHaveWarehouseColumns(t *testing.T) {
	e := newEnv(t, testConfig())
	e.flag("acme", "c1", "r1", vigil.SeverityHigh, vigil.ActionAlert, "text")
	id := e.waitAlerts(tokAnn, "", 1).Alerts[0].ID
	steps := []struct {
		op   string
		body any
	}{
		{"claim", nil},
		{"comments", map[string]string{"text": "checking"}},
		{"close", map[string]string{"disposition": "false_positive", "reason": "quote from news"}},
		{"reopen", map[string]string{"reason": "compliance asked again"}},
	}
	for _, s := range steps {
		if st := e.api(tokAnn, "POST", "/v1/review/alerts/"+id+"/"+s.op, s.body, nil); st != 200 {
			t.Fatalf("%s: %d", s.op, st)
		}
	}
	evs := e.streamRecords(bus.StreamReview)
	want := []string{"alert_id", "at", "disposition", "from_state", "id", "reason", "reviewer", "tenant", "to_state"}
	var trail []string
	for _, ev := range evs {
		keys := make([]string, 0, len(ev))
		for k := range ev {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if !slices.Equal(keys, want) {
			t.Fatalf("event fields = %v, want %v", keys, want)
		}
		trail = append(trail, fmt.Sprintf("%s:%v>%v", ev["reviewer"], ev["from_state"], ev["to_state"]))
	}
	wantTrail := []string{"vigil:>open", "ann:open>claimed", "ann:claimed>claimed", "ann:claimed>closed", "ann:closed>open"}
	if !slices.Equal(trail, wantTrail) {
		t.Errorf("REVIEW trail = %v, want %v", trail, wantTrail)
	}
	if evs[3]["disposition"] != "false_positive" || evs[3]["reason"] != "quote from news" {
		t.Errorf("close event = %v", evs[3])
	}
}

func TestDetokenizeAudited(t *testing.T) {
	cfg := testConfig()
	cfg.DetokenizeBurst = 2
	cfg.DetokenizePerMinute = 1
	var logs bytes.Buffer
	e := newEnv(t, cfg, review.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))))
	e.flag("acme", "c1", "pii.share", vigil.SeverityHigh, vigil.ActionAlert, "mail jane.doe@example.com or call +1 212 555 0100")
	id := e.waitAlerts(tokPriv, "", 1).Alerts[0].ID

	audits := e.streamCount(bus.StreamAudit)
	var got struct {
		Values []workflow.Reveal `json:"values"`
	}
	if st := e.api(tokPriv, "POST", "/v1/review/alerts/"+id+"/detokenize", map[string]string{"reason": "case 42 evidence"}, &got); st != 200 {
		t.Fatalf("detokenize: %d", st)
	}
	vals := map[string]string{}
	for _, r := range got.Values {
		vals[r.Kind] = r.Value
	}
	if vals["email"] != "jane.doe@example.com" || !strings.Contains(vals["phone"], "555") {
		t.Errorf("revealed = %v", got.Values)
	}
	recs := e.streamRecords(bus.StreamAudit)
	if uint64(len(recs)) <= audits {
		t.Fatalf("no audit event written")
	}
	ev := recs[audits]
	if ev["action"] != "review.detokenize" || ev["actor"] != "pat" || ev["reason"] != "case 42 evidence" || ev["tenant"] != "acme" {
		t.Errorf("audit event = %v", ev)
	}
	// The review service's own audit event comes first; the vault's per
	// token events follow it.
	var ours, vaults int
	for _, r := range recs[audits:] {
		switch r["action"] {
		case review.AuditActionDetokenize:
			ours++
		case pii.AuditActionDetokenize:
			vaults++
		}
	}
	if ours != 1 || vaults != 2 {
		t.Errorf("audit events: %d review, %d vault; want 1 and 2", ours, vaults)
	}
	for _, f := range e.srv.Contains(t, []byte("jane.doe@example.com")) {
		t.Errorf("raw value at rest in %s", f)
	}
	// A message from another conversation is not revealed through this
	// alert, and no path logs a value.
	var nf apiError
	if st := e.api(tokPriv, "POST", "/v1/review/alerts/"+id+"/detokenize", map[string]string{"reason": "x", "message_id": "m-elsewhere"}, &nf); st != 404 {
		t.Errorf("detokenize foreign message = %d %+v", st, nf)
	}
	defer func() {
		if strings.Contains(logs.String(), "jane.doe") || strings.Contains(logs.String(), "555") {
			t.Errorf("PII in logs:\n%s", logs.String())
		}
	}()
	// The burst is 2: the third request within the minute is refused.
	e.api(tokPriv, "POST", "/v1/review/alerts/"+id+"/detokenize", map[string]string{"reason": "again"}, nil)
	var rl apiError
	if st := e.api(tokPriv, "POST", "/v1/review/alerts/"+id+"/detokenize", map[string]string{"reason": "and again"}, &rl); st != 429 || rl.Error.Code != workflow.CodeRateLimited {
		t.Errorf("third detokenize = %d %v, want 429 rate_limited", st, rl)
	}
}

func TestTenantIsolation(t *testing.T) {
	e := newEnv(t, testConfig())
	e.flag("acme", "conv-acme-private", "r1", vigil.SeverityHigh, vigil.ActionAlert, "acme secret")
	e.flag("other", "c9", "r9", vigil.SeverityLow, vigil.ActionAlert, "other text")
	e.waitAlerts(tokAdmin, "", 2)
	acme := e.waitAlerts(tokAnn, "", 1).Alerts[0]
	other := e.waitAlerts(tokEve, "", 1).Alerts[0]
	if acme.Tenant != "acme" || other.Tenant != "other" {
		t.Fatalf("queues leak across tenants: %s / %s", acme.Tenant, other.Tenant)
	}
	// A tenant filter does not widen a reviewer's view.
	e.waitAlerts(tokEve, "tenant=acme", 0)

	b := e.login(tokEve)
	if st, body := b.get("/console/alerts/" + acme.ID); st != 404 || contains(body, "acme secret") || contains(body, acme.ConversationID) {
		t.Errorf("other tenant's alert page = %d", st)
	}
	if _, body := b.get("/console/queue?state=all"); contains(body, acme.ID) {
		t.Errorf("other tenant's queue lists %s", acme.ID)
	}
	if _, body := b.get("/console/dashboard"); !contains(body, `data-testid="open">1<`) {
		t.Errorf("other tenant's dashboard does not count exactly its own alert")
	}
}
