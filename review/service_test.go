package review_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/review"
	"github.com/vigilhq/vigil/review/workflow"
)

func TestIndexRebuiltOnRestart(t *testing.T) {
	e := newEnv(t, testConfig())
	for i := range 3 {
		e.flag("acme", fmt.Sprintf("conv-%d", i), "r1", vigil.SeverityHigh, vigil.ActionAlert, "text")
	}
	id := e.waitAlerts(tokAnn, "", 3).Alerts[0].ID
	if st := e.api(tokAnn, "POST", "/v1/review/alerts/"+id+"/claim", nil, nil); st != 200 {
		t.Fatalf("claim: %d", st)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Start(ctx); err == nil {
		t.Fatal("Start after Close succeeded")
	}
	// A new service on the same bus loads every alert from the bucket
	// before Start returns, and resumes the durable consumer.
	svc, err := review.New(ctx, e.bus, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer svc.Close(ctx)
	ann := workflow.Principal{Name: "ann", Tenant: "acme", Role: workflow.RoleReviewer}
	pg, _ := svc.Queue(ctx, ann, workflow.Filter{State: workflow.StateAll})
	if pg.Total != 3 || pg.ByState[workflow.StateClaimed] != 1 {
		t.Fatalf("after restart: %d alerts, %d claimed; want 3 and 1", pg.Total, pg.ByState[workflow.StateClaimed])
	}
	e.flag("acme", "conv-new", "r1", vigil.SeverityHigh, vigil.ActionAlert, "text")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if pg, _ = svc.Queue(ctx, ann, workflow.Filter{State: workflow.StateAll}); pg.Total == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted service did not consume new verdicts: %d alerts", pg.Total)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sse reads "alert" events of one server-sent events stream.
func sse(t *testing.T, e *env, tok string) (<-chan workflow.Change, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", e.http.URL+"/v1/review/events", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	ch := make(chan workflow.Change, 16)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(ch)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				var c workflow.Change
				if json.Unmarshal([]byte(data), &c) == nil {
					ch <- c
				}
			}
		}
	}()
	return ch, func() {
		cancel()
		resp.Body.Close()
		<-done
	}
}

func TestLiveEventsPerTenant(t *testing.T) {
	e := newEnv(t, testConfig())
	acme, stopAcme := sse(t, e, tokAnn)
	defer stopAcme()
	other, stopOther := sse(t, e, tokEve)
	defer stopOther()
	e.flag("acme", "c1", "r1", vigil.SeverityHigh, vigil.ActionAlert, "acme text")
	e.flag("other", "c2", "r2", vigil.SeverityLow, vigil.ActionAlert, "other text")
	next := func(ch <-chan workflow.Change) workflow.Change {
		select {
		case c := <-ch:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("no live event within 10s")
		}
		return workflow.Change{}
	}
	if c := next(acme); c.Tenant != "acme" || !c.Created || c.State != workflow.StateOpen {
		t.Errorf("acme stream got %+v", c)
	}
	// The other tenant's first event is its own alert: acme's never reached it.
	if c := next(other); c.Tenant != "other" {
		t.Errorf("other stream got %+v", c)
	}
}

func TestBulkClose(t *testing.T) {
	e := newEnv(t, testConfig())
	for i := range 3 {
		e.flag("acme", fmt.Sprintf("conv-%d", i), "r1", vigil.SeverityHigh, vigil.ActionAlert, "text")
	}
	pg := e.waitAlerts(tokPriv, "", 3)
	ids := []string{pg.Alerts[0].ID, pg.Alerts[1].ID, pg.Alerts[2].ID}
	for _, id := range ids[:2] {
		e.api(tokPriv, "POST", "/v1/review/alerts/"+id+"/claim", nil, nil)
	}
	var got struct {
		Results []workflow.BulkResult `json:"results"`
	}
	body := map[string]any{"ids": ids, "disposition": "false_positive", "reason": "market commentary"}
	if st := e.api(tokPriv, "POST", "/v1/review/bulk/close", body, &got); st != 200 || len(got.Results) != 3 {
		t.Fatalf("bulk close = %d %+v", st, got)
	}
	for i, r := range got.Results {
		closed := r.State == workflow.StateClosed && r.Error == nil
		if want := i < 2; closed != want {
			t.Errorf("result %d = %+v, want closed %v", i, r, want)
		}
	}
	if r := got.Results[2]; r.Error == nil || r.Error.Code != workflow.CodeNotClaimed {
		t.Errorf("unclaimed alert result = %+v, want not_claimed", r)
	}
	var refused apiError
	if st := e.api(tokPriv, "POST", "/v1/review/bulk/close", map[string]any{"ids": ids, "disposition": "no_action"}, &refused); st != 400 || refused.Error.Code != workflow.CodeReasonRequired {
		t.Errorf("bulk close without reason = %d %+v", st, refused)
	}
}

func TestSupervisorySampling(t *testing.T) {
	cfg := testConfig()
	cfg.SampleRate = 1
	e := newEnv(t, cfg)
	// A conversation under review is not sampled.
	now := time.Now().UTC()
	flagged := &vigil.Message{ID: "m-flagged-1", Tenant: "acme", ConversationID: "conv-flagged", Text: "x", SentAt: now}
	e.verdict(flagged, "r1", vigil.SeverityHigh, vigil.ActionAlert, 1)
	e.waitAlerts(tokAnn, "", 1)
	for i, conv := range []string{"conv-flagged", "conv-quiet", "conv-quiet"} {
		m := &vigil.Message{ID: fmt.Sprintf("m-s-%d", i), Tenant: "acme", ConversationID: conv, Text: "hello", SentAt: now, ReceivedAt: now}
		if _, err := e.bus.PublishMessage(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	pg := e.waitAlerts(tokAnn, "rule="+workflow.SampleRuleID, 1)
	if a := pg.Alerts[0]; a.ConversationID != "conv-quiet" || a.Kind != workflow.KindSample || a.MessageID != "m-s-1" {
		t.Errorf("sample alert = %+v", a)
	}
	time.Sleep(200 * time.Millisecond)
	e.waitAlerts(tokAnn, "rule="+workflow.SampleRuleID, 1)
}

func TestSampledRate(t *testing.T) {
	day := time.Date(2026, 12, 4, 0, 0, 0, 0, time.UTC)
	tests := []struct{ rate float64 }{{0}, {0.01}, {0.1}, {0.5}, {1}}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.rate), func(t *testing.T) {
			const n = 20000
			hits := 0
			for i := range n {
				if review.Sampled("acme", fmt.Sprintf("conv-%d", i), day.Add(time.Duration(i)*time.Second), tc.rate) {
					hits++
				}
			}
			got := float64(hits) / n
			if math.Abs(got-tc.rate) > 0.01 {
				t.Errorf("Sampled at rate %g picked %.4f", tc.rate, got)
			}
		})
	}
	if review.Sampled("acme", "c", day, 0.5) != review.Sampled("acme", "c", day.Add(23*time.Hour), 0.5) {
		t.Error("Sampled changes its mind within a day")
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  review.Config
	}{
		{"negative sample rate", review.Config{SampleRate: -0.1}},
		{"sample rate above 1", review.Config{SampleRate: 1.5}},
		{"short window", review.Config{AggregationWindow: time.Millisecond}},
		{"short session key", review.Config{SessionKey: []byte("short")}},
		{"unknown role", review.Config{Tokens: map[string]workflow.Principal{"t": {Name: "x", Tenant: "a", Role: "root"}}}},
		{"reviewer of all tenants", review.Config{Tokens: map[string]workflow.Principal{"t": {Name: "x", Tenant: "*", Role: workflow.RoleReviewer}}}},
		{"token without tenant", review.Config{Tokens: map[string]workflow.Principal{"t": {Name: "x", Role: workflow.RoleReviewer}}}},
	}
	e := newEnv(t, testConfig())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := review.New(context.Background(), e.bus, tc.cfg)
			if !errors.Is(err, review.ErrInvalidConfig) {
				t.Fatalf("New() error = %v, want ErrInvalidConfig", err)
			}
			if strings.Contains(err.Error(), `"t"`) {
				t.Errorf("error echoes the token: %v", err)
			}
		})
	}
}

func TestPendingEventsSurviveReviewStreamOutage(t *testing.T) {
	e := newEnv(t, testConfig())
	e.flag("acme", "c1", "r1", vigil.SeverityHigh, vigil.ActionAlert, "text")
	id := e.waitAlerts(tokAnn, "", 1).Alerts[0].ID
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	js := e.bus.JetStream()
	trail := func() []string {
		var out []string
		for _, ev := range e.streamRecords(bus.StreamReview) {
			out = append(out, fmt.Sprintf("%v>%v", ev["from_state"], ev["to_state"]))
		}
		return out
	}
	// REVIEW goes away: the claim is saved with its event pending and the
	// API says so.
	if err := js.DeleteStream(ctx, bus.StreamReview); err != nil {
		t.Fatal(err)
	}
	var outage apiError
	if st := e.api(tokAnn, "POST", "/v1/review/alerts/"+id+"/claim", nil, &outage); st != 503 {
		t.Fatalf("claim during outage = %d %+v, want 503", st, outage)
	}
	var a workflow.Alert
	e.api(tokAnn, "GET", "/v1/review/alerts/"+id, nil, &a)
	if a.State != workflow.StateClaimed || a.Pending == nil || a.Pending.ToState != workflow.StateClaimed {
		t.Fatalf("after outage: state %s, pending %+v", a.State, a.Pending)
	}
	if _, err := js.CreateOrUpdateStream(ctx, bus.ReviewStreamConfig(e.bus.Config())); err != nil {
		t.Fatal(err)
	}
	// The next transition publishes the pending event first.
	if st := e.api(tokAnn, "POST", "/v1/review/alerts/"+id+"/close", map[string]string{"disposition": "no_action", "reason": "ok"}, nil); st != 200 {
		t.Fatalf("close after outage: %d", st)
	}
	if got, want := trail(), []string{"open>claimed", "claimed>closed"}; !slices.Equal(got, want) {
		t.Fatalf("REVIEW after recovery = %v, want %v", got, want)
	}

	// An outage at creation: the start-up sweep of a new replica
	// publishes what the old one could not.
	if err := js.DeleteStream(ctx, bus.StreamReview); err != nil {
		t.Fatal(err)
	}
	e.flag("acme", "c2", "r1", vigil.SeverityHigh, vigil.ActionAlert, "text")
	e.waitAlerts(tokAnn, "", 2)
	if err := e.svc.Close(ctx); err != nil {
		t.Fatal(err)
	}
	svc, err := review.New(ctx, e.bus, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer svc.Close(ctx)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if got := trail(); slices.Equal(got, []string{">open"}) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("REVIEW after restart = %v, want the pending creation event", trail())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestConversationContext(t *testing.T) {
	cfg := testConfig()
	cfg.ContextMessages = 1
	e := newEnv(t, cfg)
	ctx := context.Background()
	now := time.Now().UTC()
	var msgs []*vigil.Message
	for i := range 5 {
		m := &vigil.Message{ID: fmt.Sprintf("m-ctx-%d", i), Tenant: "acme", ConversationID: "conv-ctx",
			Sender: vigil.Participant{ID: "u1"}, Text: fmt.Sprintf("line %d", i), SentAt: now, ReceivedAt: now}
		// Another conversation interleaves; it must not show up.
		o := &vigil.Message{ID: fmt.Sprintf("m-other-%d", i), Tenant: "acme", ConversationID: "conv-other",
			Sender: vigil.Participant{ID: "u2"}, Text: "noise", SentAt: now, ReceivedAt: now}
		for _, x := range []*vigil.Message{m, o} {
			if _, err := e.bus.PublishMessage(ctx, x); err != nil {
				t.Fatal(err)
			}
		}
		msgs = append(msgs, m)
	}
	e.verdict(msgs[2], "r1", vigil.SeverityHigh, vigil.ActionAlert, 1)
	id := e.waitAlerts(tokAnn, "", 1).Alerts[0].ID
	var got struct {
		Messages []vigil.Message `json:"messages"`
	}
	if st := e.api(tokAnn, "GET", "/v1/review/alerts/"+id+"/context", nil, &got); st != 200 {
		t.Fatalf("context: %d", st)
	}
	var ids []string
	for _, m := range got.Messages {
		ids = append(ids, m.ID)
	}
	if want := []string{"m-ctx-1", "m-ctx-2", "m-ctx-3"}; !slices.Equal(ids, want) {
		t.Errorf("context = %v, want %v", ids, want)
	}
	if st := e.api(tokEve, "GET", "/v1/review/alerts/"+id+"/context", nil, nil); st != 404 {
		t.Errorf("other tenant's context = %d, want 404", st)
	}
}

func TestTwoReplicasFoldIntoOneAlert(t *testing.T) {
	e := newEnv(t, testConfig())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// A second replica shares the durable consumer: verdicts of one
	// conversation are split between the two and folded with CAS.
	second, err := review.New(ctx, e.bus, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := second.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer second.Close(ctx)
	const n = 60
	now := time.Now().UTC()
	for i := range n {
		m := &vigil.Message{ID: fmt.Sprintf("m-rep-%d", i), Tenant: "acme", ConversationID: "conv-noisy", SentAt: now}
		e.verdict(m, "r1", vigil.SeverityHigh, vigil.ActionAlert, 1)
	}
	ann := workflow.Principal{Name: "ann", Tenant: "acme", Role: workflow.RoleReviewer}
	deadline := time.Now().Add(20 * time.Second)
	for {
		pg1, _ := e.svc.Queue(ctx, ann, workflow.Filter{State: workflow.StateAll})
		pg2, _ := second.Queue(ctx, ann, workflow.Filter{State: workflow.StateAll})
		if pg1.Total == 1 && pg2.Total == 1 && pg1.Alerts[0].Count == n && pg2.Alerts[0].Count == n {
			break
		}
		if pg1.Total > 1 || pg2.Total > 1 {
			t.Fatalf("replicas opened %d and %d alerts, want 1", pg1.Total, pg2.Total)
		}
		if time.Now().After(deadline) {
			c := 0
			if pg1.Total == 1 {
				c = pg1.Alerts[0].Count
			}
			t.Fatalf("alert count = %d, want %d", c, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
