package pii_test

import (
	"context"
	"strings"
	"testing"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus/bustest"
	"github.com/vigilhq/vigil/pii"
)

// Metadata values and attachment names are scanned like the text: a
// platform that puts "reply-to: ann@example.com" in metadata must not
// smuggle raw PII into the archive.
func TestTokenizeMessageMetadataAndAttachments(t *testing.T) {
	srv := bustest.New(t)
	var audited int
	v, err := pii.NewVault(vaultBucket(t, srv), testKeys(t), pii.WithAuditor(pii.AuditorFunc(func(context.Context, vigil.AuditEvent) error {
		audited++
		return nil
	})))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := pii.NewTokenizer(v)
	if err != nil {
		t.Fatal(err)
	}
	m := &vigil.Message{
		ID: "m1", Tenant: "acme", ConversationID: "c1",
		Sender:      vigil.Participant{ID: "u1", DisplayName: "Ann Lee"},
		Text:        "see attached",
		Metadata:    map[string]string{"reply_to": "ann.lee@example.com", "thread": "42"},
		Attachments: []vigil.Attachment{{Name: "statement for ann.lee@example.com.pdf", ContentType: "application/pdf"}},
	}
	if err := tok.TokenizeMessage(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(m.Metadata["reply_to"], "ann.lee@example.com") || !strings.Contains(m.Metadata["reply_to"], "⟦EMAIL:") {
		t.Errorf("metadata reply_to = %q, want an email token", m.Metadata["reply_to"])
	}
	if m.Metadata["thread"] != "42" {
		t.Errorf("metadata without PII changed: %q", m.Metadata["thread"])
	}
	if strings.Contains(m.Attachments[0].Name, "ann.lee@example.com") || !strings.Contains(m.Attachments[0].Name, "⟦EMAIL:") {
		t.Errorf("attachment name = %q, want an email token", m.Attachments[0].Name)
	}
	if m.PII["email"] != 2 {
		t.Errorf("PII counts = %v, want email:2", m.PII)
	}
	got, err := v.Detokenize(testCtx(t), "acme", pii.FindTokens(m.Metadata["reply_to"])[0].String(), pii.Request{Actor: "t", Reason: "test"})
	if err != nil || got != "ann.lee@example.com" || audited != 1 {
		t.Errorf("detokenize metadata token = %q, %v (audit events %d)", got, err, audited)
	}
}
