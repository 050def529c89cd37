package main

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/vigilhq/vigil/retention"
)

const accessUsage = `Export a data subject's data (GDPR Art. 15) as JSON.

Usage:
  vigil access --tenant T --subject ID --actor A --reason R

Prints the subject's vault values and the archived messages linked to them,
with their own tokens replaced by the values (other people's stay tokens),
and the number of verdicts about them. The export and every value read are
written to the audit log. A restricted or shredded subject's tokens are
listed with that status and no value.

Exit codes:
  0  exported
  1  unknown subject or failure
  2  bad flags
`

func runAccess(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f adminFlags
	fs := flagSet("access", accessUsage, stdout)
	f.register(fs, true)
	tenant := fs.String("tenant", "", "Tenant id. Required.")
	subject := fs.String("subject", "", "Data subject id. Required.")
	actor := fs.String("actor", "", "Who exports, for the audit log. Required.")
	reason := fs.String("reason", "", "Why (request reference), for the audit log. Required.")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if _, err := applyConfig(fs, lookupEnv); err != nil {
		return usageError(stderr, "access", "%v", err)
	}
	if strings.TrimSpace(*tenant) == "" || strings.TrimSpace(*subject) == "" || strings.TrimSpace(*actor) == "" || strings.TrimSpace(*reason) == "" {
		return usageError(stderr, "access", "--tenant, --subject, --actor and --reason are required")
	}
	a, hint, err := openAdmin(ctx, &f, true, "access")
	if err != nil {
		return fail(stderr, err, hint)
	}
	defer a.close()
	rep, err := a.svc.Access(ctx, retention.AccessRequest{Tenant: *tenant, Subject: *subject, Actor: *actor, Reason: *reason})
	switch {
	case errors.Is(err, retention.ErrUnknownSubject):
		return fail(stderr, err, "check --tenant and --subject (the platform's participant id)")
	case err != nil:
		return adminError(stderr, err, "")
	}
	if err := printJSON(stdout, rep); err != nil {
		return fail(stderr, err, "")
	}
	return exitOK
}
