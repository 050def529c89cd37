package review

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/review/workflow"
)

var benchNow = time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)

// fillIndex adds n alerts over two tenants, 20 rules, four severities and
// the three states.
func fillIndex(n int) *index {
	x := newIndex()
	sevs := []vigil.Severity{vigil.SeverityLow, vigil.SeverityMedium, vigil.SeverityHigh, vigil.SeverityCritical}
	states := []workflow.State{workflow.StateOpen, workflow.StateOpen, workflow.StateClaimed, workflow.StateClosed}
	for i := range n {
		tenant := "acme"
		if i%10 == 9 {
			tenant = "other"
		}
		a := &workflow.Alert{
			ID: fmt.Sprintf("a-%06d", i), Tenant: tenant, ConversationID: fmt.Sprintf("c-%d", i),
			RuleID: fmt.Sprintf("rule.%02d", i%20), Kind: workflow.KindVerdict, Severity: sevs[i%4],
			State: states[(i/4)%4], FirstAt: benchNow.Add(-time.Duration(i) * time.Minute), Count: 1 + i%3,
		}
		a.WindowStart = a.FirstAt.Truncate(time.Hour)
		if a.State == workflow.StateClaimed {
			a.Assignee = "ann"
		}
		x.apply(a, uint64(i+1))
	}
	return x
}

func TestIndexQuery(t *testing.T) {
	x := fillIndex(1000)
	ann := workflow.Principal{Name: "ann", Tenant: "acme", Role: workflow.RoleReviewer}
	root := workflow.Principal{Name: "root", Tenant: workflow.AllTenants, Role: workflow.RoleAdmin}
	tests := []struct {
		name  string
		p     workflow.Principal
		f     workflow.Filter
		total int
	}{
		{"active of one tenant", ann, workflow.Filter{}, 677},
		{"all states", ann, workflow.Filter{State: workflow.StateAll}, 900},
		{"closed", ann, workflow.Filter{State: workflow.StateClosed}, 223},
		{"admin sees both tenants", root, workflow.Filter{State: workflow.StateAll}, 1000},
		{"admin narrows to a tenant", root, workflow.Filter{State: workflow.StateAll, Tenant: "other"}, 100},
		{"reviewer cannot widen", ann, workflow.Filter{State: workflow.StateAll, Tenant: "other"}, 0},
		{"rule", ann, workflow.Filter{State: workflow.StateAll, RuleID: "rule.03"}, 50},
		{"severity", ann, workflow.Filter{State: workflow.StateAll, Severity: vigil.SeverityCritical}, 200},
		{"assignee", ann, workflow.Filter{Assignee: "ann"}, 223},
		{"unassigned", ann, workflow.Filter{Assignee: "-"}, 454},
		{"older than 10h", ann, workflow.Filter{State: workflow.StateAll, MinAge: 10 * time.Hour}, 900 - 540},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pg := x.query(tc.p, tc.f, benchNow)
			if pg.Total != tc.total {
				t.Fatalf("query(%+v).Total = %d, want %d", tc.f, pg.Total, tc.total)
			}
			if len(pg.Alerts) != min(tc.total, workflow.DefaultPerPage) {
				t.Fatalf("page has %d alerts", len(pg.Alerts))
			}
			for i := 1; i < len(pg.Alerts); i++ {
				if compareAlerts(pg.Alerts[i-1], pg.Alerts[i]) > 0 {
					t.Fatalf("page out of order at %d", i)
				}
			}
		})
	}
	// Paging covers every match exactly once.
	seen := map[string]bool{}
	for page := 1; ; page++ {
		pg := x.query(ann, workflow.Filter{State: workflow.StateAll, Page: page, PerPage: 70}, benchNow)
		if len(pg.Alerts) == 0 {
			break
		}
		for _, a := range pg.Alerts {
			if seen[a.ID] {
				t.Fatalf("alert %s on two pages", a.ID)
			}
			seen[a.ID] = true
		}
	}
	if len(seen) != 900 {
		t.Fatalf("pages cover %d alerts, want 900", len(seen))
	}
}

// BenchmarkIndexQuery is the queue query alone (no HTTP, no template) over
// 10k alerts.
func BenchmarkIndexQuery(b *testing.B) {
	x := fillIndex(10000)
	ann := workflow.Principal{Name: "ann", Tenant: "acme", Role: workflow.RoleReviewer}
	for _, f := range []workflow.Filter{{}, {Page: 100}, {RuleID: "rule.03", Severity: vigil.SeverityCritical}} {
		b.Run(fmt.Sprintf("page%d-rule%q", max(f.Page, 1), f.RuleID), func(b *testing.B) {
			for b.Loop() {
				x.query(ann, f, benchNow)
			}
		})
	}
	b.Run("stats", func(b *testing.B) {
		for b.Loop() {
			x.stats(ann, "", benchNow)
		}
	})
}
