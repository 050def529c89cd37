package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/vigilhq/vigil/retention"
)

const eraseUsage = `Erase a data subject (GDPR Art. 17) and print the erasure certificate.

Usage:
  vigil erase --tenant T --subject ID --request REF --actor A --reason R [--dry-run] [--json] [--certificate FILE]

Finds everything linked to the subject: vault tokens, messages they sent,
messages they took part in, verdicts about them. Then, by precedence:
  - a legal hold covers them: nothing is changed, the command fails and names
    the case (release it with 'vigil hold release' first);
  - a retention duty (sec-17a-4, finra-4511, mifid-ii, hipaa) still keeps
    their data: the subject is restricted (GDPR Art. 18, 17(3)(b)):
    detokenization is blocked, the basis and the deletion date are recorded,
    and 'vigil retention run' erases them when the duty expires;
  - otherwise their vault key is crypto-shredded, their messages securely
    deleted from the MESSAGES stream, and their messages and verdicts deleted
    from ClickHouse (ALTER TABLE … DELETE, waited for, verified).
Either way an erasures row, an audit event and a certificate are written.
Re-running a request is safe: a finished one prints its certificate again,
an interrupted one is completed.

Exit codes:
  0  erased or restricted (or the plan printed, with --dry-run)
  1  refused (legal hold, unknown subject) or failed
  2  bad flags or values
`

func runErase(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	var f adminFlags
	fs := flagSet("erase", eraseUsage, stdout)
	f.register(fs, true)
	tenant := fs.String("tenant", "", "Tenant id. Required.")
	subject := fs.String("subject", "", "Data subject id (the platform's participant id). Required.")
	ref := fs.String("request", "", "Request reference (ticket id). Required; re-running it is idempotent.")
	actor := fs.String("actor", "", "Who executes the request, for the audit log. Required.")
	reason := fs.String("reason", "", "Why, for the audit log and the certificate. Required.")
	dryRun := fs.Bool("dry-run", false, "Print the plan; change nothing.")
	asJSON := fs.Bool("json", false, "Print the certificate as JSON.")
	certFile := fs.String("certificate", "", "Also write the JSON certificate to this file.")
	if code := parseFlags(fs, args, stderr); code >= 0 {
		return code
	}
	if _, err := applyConfig(fs, lookupEnv); err != nil {
		return usageError(stderr, "erase", "%v", err)
	}
	var missing []string
	for _, p := range []struct{ name, v string }{{"--tenant", *tenant}, {"--subject", *subject}, {"--request", *ref}, {"--actor", *actor}, {"--reason", *reason}} {
		if strings.TrimSpace(p.v) == "" {
			missing = append(missing, p.name)
		}
	}
	if len(missing) > 0 {
		return usageError(stderr, "erase", "%s required", strings.Join(missing, ", "))
	}
	a, hint, err := openAdmin(ctx, &f, true, "erase")
	if err != nil {
		return fail(stderr, err, hint)
	}
	defer a.close()
	cert, err := a.svc.Erase(ctx, retention.EraseRequest{Tenant: *tenant, Subject: *subject, Ref: *ref, Actor: *actor, Reason: *reason, DryRun: *dryRun})
	switch {
	case errors.Is(err, retention.ErrUnderLegalHold):
		return fail(stderr, err, "vigil hold list --tenant "+*tenant)
	case errors.Is(err, retention.ErrUnknownSubject):
		return fail(stderr, err, "check --tenant and --subject (the platform's participant id)")
	case err != nil:
		return adminError(stderr, err, "")
	}
	js, err := cert.JSON()
	if err != nil {
		return fail(stderr, err, "")
	}
	if *certFile != "" {
		if err := os.WriteFile(*certFile, js, 0o600); err != nil {
			return fail(stderr, fmt.Errorf("write certificate: %w", err), "")
		}
	}
	if *asJSON {
		_, err = stdout.Write(js)
	} else {
		err = cert.WriteText(stdout)
	}
	if err != nil {
		return fail(stderr, err, "")
	}
	return exitOK
}
