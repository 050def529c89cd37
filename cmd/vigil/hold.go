package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vigilhq/vigil/retention"
	"github.com/vigilhq/vigil/warehouse"
)

const holdUsage = `Create, release and list legal holds.

Usage:
  vigil hold create --tenant T --case ID --scope SCOPE [--conversation C] [--subject S] [--from TIME] [--to TIME] --actor A --reason R
  vigil hold release --tenant T --case ID --actor A --reason R [--dry-run]
  vigil hold list [--tenant T] [--all] [--json]

SCOPE is tenant (everything of the tenant), conversation (--conversation),
subject (--subject: messages they sent or took part in) or time_range
(--from and/or --to). --from/--to also narrow the other scopes. TIME is
RFC 3339 (2026-12-01T00:00:00Z) or a date (2026-12-01, midnight UTC).

Held data is never purged by 'vigil retention run' nor erased by
'vigil erase' until the hold is released. One active hold per case id.

Exit codes:
  0  done
  1  the case already has an active hold, no such hold, or failure
  2  bad flags or values (scope, dates)
`

func runHold(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	sub, rest := "", args
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, rest = args[0], args[1:]
	}
	var f adminFlags
	fs := flagSet("hold", holdUsage, stdout)
	withNATS := sub == "create" || sub == "release"
	// NATS flags are listed always; only create and release connect to NATS.
	f.register(fs, true)
	tenant := fs.String("tenant", "", "Tenant id.")
	caseID := fs.String("case", "", "Case id of the matter.")
	scope := fs.String("scope", "", "What the hold covers: tenant, conversation, subject or time_range.")
	conversation := fs.String("conversation", "", "Conversation id (scope conversation).")
	subject := fs.String("subject", "", "Data subject id (scope subject).")
	from := fs.String("from", "", "Start of the held period (inclusive).")
	to := fs.String("to", "", "End of the held period (exclusive).")
	actor := fs.String("actor", "", "Who places or lifts the hold, for the audit log.")
	reason := fs.String("reason", "", "Why, for the audit log.")
	dryRun := fs.Bool("dry-run", false, "release: print the hold that would be released; change nothing.")
	all := fs.Bool("all", false, "list: include released holds.")
	asJSON := fs.Bool("json", false, "list: print JSON.")
	if code := parseFlags(fs, rest, stderr); code >= 0 {
		return code
	}
	if _, err := applyConfig(fs, lookupEnv); err != nil {
		return usageError(stderr, "hold", "%v", err)
	}
	var req retention.HoldRequest
	switch sub {
	case "list":
	case "create", "release":
		if *tenant == "" || *caseID == "" || strings.TrimSpace(*actor) == "" || strings.TrimSpace(*reason) == "" {
			return usageError(stderr, "hold", "--tenant, --case, --actor and --reason are required")
		}
		if sub == "create" {
			fromT, err := parseTimeFlag(*from, time.Time{})
			if err != nil {
				return usageError(stderr, "hold", "--from: %v", err)
			}
			toT, err := parseTimeFlag(*to, time.Time{})
			if err != nil {
				return usageError(stderr, "hold", "--to: %v", err)
			}
			req = retention.HoldRequest{Tenant: *tenant, CaseID: *caseID, Scope: *scope, ConversationID: *conversation,
				Subject: *subject, From: fromT, To: toT, Actor: *actor, Reason: *reason}
		}
	case "":
		return usageError(stderr, "hold", "no subcommand (create, release or list)")
	default:
		return usageError(stderr, "hold", "unknown subcommand %q", sub)
	}
	a, hint, err := openAdmin(ctx, &f, withNATS, "hold")
	if err != nil {
		return fail(stderr, err, hint)
	}
	defer a.close()
	switch sub {
	case "create":
		h, err := a.svc.CreateHold(ctx, req)
		if errors.Is(err, retention.ErrHoldExists) {
			return fail(stderr, err, "vigil hold list --tenant "+*tenant)
		}
		if err != nil {
			return adminError(stderr, err, "vigil hold --help")
		}
		fmt.Fprintf(stdout, "hold %s placed on %s (tenant %s)\n", h.CaseID, describeHold(h), h.Tenant)
	case "release":
		h, err := a.svc.ReleaseHold(ctx, *tenant, *caseID, *actor, *reason, *dryRun)
		if errors.Is(err, retention.ErrHoldNotFound) {
			return fail(stderr, err, "vigil hold list --tenant "+*tenant)
		}
		if err != nil {
			return adminError(stderr, err, "")
		}
		if *dryRun {
			fmt.Fprintf(stdout, "dry run: would release hold %s on %s (tenant %s); data it covers becomes subject to retention and erasure again\n",
				h.CaseID, describeHold(h), h.Tenant)
		} else {
			fmt.Fprintf(stdout, "hold %s released (tenant %s)\n", h.CaseID, h.Tenant)
		}
	default: // list
		holds, err := warehouse.ListHolds(ctx, a.ch, *tenant)
		if err != nil {
			return fail(stderr, err, "")
		}
		shown := []retention.Hold{}
		for _, h := range holds {
			if *all || h.Active() {
				shown = append(shown, h)
			}
		}
		if *asJSON {
			if err := printJSON(stdout, shown); err != nil {
				return fail(stderr, err, "")
			}
			return exitOK
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TENANT\tCASE\tSCOPE\tCREATED\tBY\tSTATUS")
		for _, h := range shown {
			status := "active"
			if !h.Active() {
				status = "released " + h.ReleasedAt.Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.Tenant, h.CaseID, describeHold(h), h.CreatedAt.Format(time.RFC3339), h.CreatedBy, status)
		}
		if len(shown) == 0 {
			fmt.Fprintln(tw, "(no holds)")
		}
		_ = tw.Flush()
	}
	return exitOK
}

// describeHold names what a hold covers without personal data beyond ids.
func describeHold(h retention.Hold) string {
	var s string
	switch h.Scope {
	case warehouse.HoldScopeConversation:
		s = "conversation " + h.ConversationID
	case warehouse.HoldScopeSubject:
		s = "subject " + h.Subject
	case warehouse.HoldScopeTimeRange:
		s = "period"
	default:
		s = "tenant"
	}
	if !h.From.IsZero() {
		s += " from " + h.From.Format(time.RFC3339)
	}
	if !h.To.IsZero() {
		s += " to " + h.To.Format(time.RFC3339)
	}
	return s
}
