package workflow_test

import (
	"errors"
	"testing"
	"time"

	"github.com/vigilhq/vigil/review/workflow"
)

func TestApply(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	ann := workflow.Principal{Name: "ann", Tenant: "acme", Role: workflow.RoleReviewer}
	bob := workflow.Principal{Name: "bob", Tenant: "acme", Role: workflow.RoleReviewer}
	eve := workflow.Principal{Name: "eve", Tenant: "other", Role: workflow.RoleReviewer}
	root := workflow.Principal{Name: "root", Tenant: workflow.AllTenants, Role: workflow.RoleAdmin}
	open := workflow.Alert{ID: "a-1", Tenant: "acme", State: workflow.StateOpen}
	claimed := workflow.Alert{ID: "a-1", Tenant: "acme", State: workflow.StateClaimed, Assignee: "ann"}
	closed := workflow.Alert{ID: "a-1", Tenant: "acme", State: workflow.StateClosed, Assignee: "ann", Disposition: workflow.NoAction}
	strict := workflow.Rules{RequireClaim: true}
	closeOp := workflow.Op{Kind: workflow.OpClose, Disposition: workflow.FalsePositive, Reason: "benign"}

	tests := []struct {
		name      string
		alert     workflow.Alert
		op        workflow.Op
		p         workflow.Principal
		rules     workflow.Rules
		wantState workflow.State
		wantWho   string
		wantErr   error
		wantCode  int
	}{
		{"claim open", open, workflow.Op{Kind: workflow.OpClaim}, ann, strict, workflow.StateClaimed, "ann", nil, 0},
		{"claim claimed by other", claimed, workflow.Op{Kind: workflow.OpClaim}, bob, strict, "", "", workflow.ErrAlreadyClaimed, 409},
		{"claim closed", closed, workflow.Op{Kind: workflow.OpClaim}, ann, strict, "", "", workflow.ErrIllegalTransition, 409},
		{"other tenant sees nothing", open, workflow.Op{Kind: workflow.OpClaim}, eve, strict, "", "", workflow.ErrNotFound, 404},
		{"admin all tenants claims", open, workflow.Op{Kind: workflow.OpClaim}, root, strict, workflow.StateClaimed, "root", nil, 0},
		{"close unclaimed when claim required", open, closeOp, ann, strict, "", "", workflow.ErrNotClaimed, 409},
		{"close unclaimed when claim optional", open, closeOp, ann, workflow.Rules{}, workflow.StateClosed, "ann", nil, 0},
		{"close claimed", claimed, closeOp, ann, strict, workflow.StateClosed, "ann", nil, 0},
		{"close claimed by other", claimed, closeOp, bob, strict, "", "", workflow.ErrForbidden, 403},
		{"admin closes claimed by other", claimed, closeOp, root, strict, workflow.StateClosed, "ann", nil, 0},
		{"close without reason", claimed, workflow.Op{Kind: workflow.OpClose, Disposition: workflow.Coached}, ann, strict, "", "", workflow.ErrReasonRequired, 400},
		{"close bad disposition", claimed, workflow.Op{Kind: workflow.OpClose, Disposition: "whatever", Reason: "x"}, ann, strict, "", "", &workflow.Error{Code: workflow.CodeInvalidDisp}, 400},
		{"close closed", closed, closeOp, ann, strict, "", "", workflow.ErrIllegalTransition, 409},
		{"reopen without reason", closed, workflow.Op{Kind: workflow.OpReopen, Reason: "  "}, ann, strict, "", "", workflow.ErrReasonRequired, 400},
		{"reopen", closed, workflow.Op{Kind: workflow.OpReopen, Reason: "new evidence"}, ann, strict, workflow.StateOpen, "", nil, 0},
		{"reopen open", open, workflow.Op{Kind: workflow.OpReopen, Reason: "x"}, ann, strict, "", "", workflow.ErrIllegalTransition, 409},
		{"release own", claimed, workflow.Op{Kind: workflow.OpRelease}, ann, strict, workflow.StateOpen, "", nil, 0},
		{"release other's", claimed, workflow.Op{Kind: workflow.OpRelease}, bob, strict, "", "", workflow.ErrForbidden, 403},
		{"reviewer assigns", open, workflow.Op{Kind: workflow.OpAssign, Assignee: "bob"}, ann, strict, "", "", workflow.ErrForbidden, 403},
		{"admin assigns", open, workflow.Op{Kind: workflow.OpAssign, Assignee: "bob"}, root, strict, workflow.StateClaimed, "bob", nil, 0},
		{"comment", open, workflow.Op{Kind: workflow.OpComment, Text: "looks fine"}, bob, strict, workflow.StateOpen, "", nil, 0},
		{"empty comment", open, workflow.Op{Kind: workflow.OpComment}, bob, strict, "", "", &workflow.Error{Code: workflow.CodeBadRequest}, 400},
		{"unknown op", open, workflow.Op{Kind: "delete"}, root, strict, "", "", &workflow.Error{Code: workflow.CodeBadRequest}, 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := tc.alert
			next, ev, err := workflow.Apply(&tc.alert, tc.op, tc.p, tc.rules, now)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Apply() error = %v, want %v", err, tc.wantErr)
				}
				var we *workflow.Error
				if !errors.As(err, &we) || we.Status != tc.wantCode {
					t.Fatalf("Apply() status = %v, want %d", err, tc.wantCode)
				}
				if next != nil || ev != nil {
					t.Fatalf("Apply() refused but returned a value")
				}
				return
			}
			if err != nil {
				t.Fatalf("Apply() error = %v", err)
			}
			if next.State != tc.wantState || next.Assignee != tc.wantWho {
				t.Errorf("Apply() = %s/%q, want %s/%q", next.State, next.Assignee, tc.wantState, tc.wantWho)
			}
			if ev.FromState != before.State || ev.ToState != next.State || ev.Reviewer != tc.p.Name || !ev.At.Equal(now) {
				t.Errorf("event = %+v", ev)
			}
			if tc.alert.State != before.State || tc.alert.Assignee != before.Assignee {
				t.Errorf("Apply() modified its input")
			}
		})
	}
}

func TestAlertIDDeterministic(t *testing.T) {
	w := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	a := workflow.AlertID("acme", "c1", "r1", w, 0)
	if a != workflow.AlertID("acme", "c1", "r1", w, 0) {
		t.Fatal("AlertID not deterministic")
	}
	for _, other := range []string{
		workflow.AlertID("acme", "c1", "r1", w, 1),
		workflow.AlertID("acme", "c1", "r2", w, 0),
		workflow.AlertID("acme", "c1", "r1", w.Add(time.Hour), 0),
		workflow.AlertID("acme2", "c1", "r1", w, 0),
	} {
		if other == a {
			t.Fatalf("AlertID collision: %s", a)
		}
	}
}
