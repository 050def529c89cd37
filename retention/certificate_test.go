package retention_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vigilhq/vigil/retention"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s (-want +got):\n%s", path, diff)
	}
}

func TestCertificateGolden(t *testing.T) {
	issued := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	base := retention.Certificate{
		Version: retention.CertificateVersion, Request: "DSR-2026-0042", Tenant: "acme",
		SubjectHash: "5f0c3a1e9b7d2c4a8e6f1b3d5c7a9e0f", RequestedBy: "dpo@acme.example", Reason: "GDPR Art. 17 request by e-mail",
		IssuedAt: issued,
		Found:    retention.Found{Tokens: 4, MessagesSent: 3, MessagesLinked: 2, Verdicts: 3, StreamMessages: 3, StreamVerdicts: 3},
	}
	erased := base
	erased.Outcome = retention.OutcomeErased
	erased.Shredded = retention.Shredded{SubjectKey: true, Tokens: 4}
	erased.Deleted = retention.Deleted{Messages: 3, Verdicts: 3, StreamMessages: 3, StreamVerdicts: 3}
	erased.Steps = []retention.Step{
		{Action: "securely delete 3 messages from the MESSAGES stream and 3 verdicts from the VERDICTS stream", Why: "no legal hold and no retention duty applies to this subject's data"},
		{Action: "crypto-shred the subject's vault key (4 tokens become unreadable)", Why: "no legal hold and no retention duty applies to this subject's data"},
		{Action: "delete 3 message rows and 3 verdict rows from ClickHouse and verify none remain", Why: "no legal hold and no retention duty applies to this subject's data"},
	}
	restricted := base
	restricted.Outcome = retention.OutcomeRestricted
	restricted.Found.StreamMessages = 5
	restricted.Restriction = &retention.Restriction{
		Basis:   "GDPR Art. 17(3)(b) and Art. 18: erasure deferred by a legal retention obligation; SEC Rule 17a-4(b)(4)",
		Classes: []string{retention.ClassSEC17a4}, Messages: 5, DeleteAfter: issued.AddDate(0, 0, 2192),
	}
	restricted.Steps = []retention.Step{{Action: "restrict the subject: block detokenization of their 4 tokens; keep 5 messages until 2032-12-01T12:00:00Z",
		Why: "a retention obligation (sec-17a-4) outranks the erasure request"}}
	plan := erased
	plan.DryRun = true

	tests := []struct {
		name string
		c    retention.Certificate
	}{
		{"erased", erased},
		{"restricted", restricted},
		{"plan", plan},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			js, err := tc.c.JSON()
			if err != nil {
				t.Fatal(err)
			}
			golden(t, "certificate_"+tc.name+".json", js)
			var txt bytes.Buffer
			if err := tc.c.WriteText(&txt); err != nil {
				t.Fatal(err)
			}
			golden(t, "certificate_"+tc.name+".txt", txt.Bytes())
			back, err := retention.ParseCertificate(js)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&tc.c, back); diff != "" {
				t.Errorf("JSON round trip (-want +got):\n%s", diff)
			}
		})
	}
}
