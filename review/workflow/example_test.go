package workflow_test

import (
	"fmt"
	"time"

	"github.com/vigilhq/vigil/review/workflow"
)

func ExampleApply() {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	ann := workflow.Principal{Name: "ann", Tenant: "acme", Role: workflow.RoleReviewer}
	rules := workflow.Rules{RequireClaim: true}
	a := &workflow.Alert{ID: "a-1", Tenant: "acme", State: workflow.StateOpen}

	_, _, err := workflow.Apply(a, workflow.Op{Kind: workflow.OpClose, Disposition: workflow.NoAction, Reason: "fine"}, ann, rules, now)
	fmt.Println("close before claim:", err)

	a, ev, _ := workflow.Apply(a, workflow.Op{Kind: workflow.OpClaim}, ann, rules, now)
	fmt.Println(ev.ID, ev.FromState, "→", ev.ToState, "by", ev.Reviewer)

	a, ev, _ = workflow.Apply(a, workflow.Op{Kind: workflow.OpClose, Disposition: workflow.Coached, Reason: "spoke to the advisor"}, ann, rules, now)
	fmt.Println(ev.ID, ev.FromState, "→", ev.ToState, ev.Disposition, a.Version)
	// Output:
	// close before claim: claim alert a-1 before closing it
	// a-1-v1 open → claimed by ann
	// a-1-v2 claimed → closed coached 2
}
