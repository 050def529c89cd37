package ingest

import (
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vigilhq/vigil"
)

// maxFuzzInput keeps single fuzz executions fast.
const maxFuzzInput = 64 << 10

// FuzzDecode drives request decoding and validation with arbitrary bodies
// and checks: no panic; an accepted message satisfies every documented
// limit; a rejection is a 4xx whose message quotes no input; the derived
// id is deterministic.
func FuzzDecode(f *testing.F) {
	for _, seed := range []string{
		`{"tenant":"acme","conversation_id":"c.1","sender":{"id":"u1","display_name":"Al"},"text":"hi","sent_at":"2026-12-04T10:00:00Z"}`,
		`[{"id":"m1","tenant":"acme","conversation_id":"c","sender":{"id":"u"},"text":"x","sent_at":"2026-12-04T10:00:00.123+02:00","metadata":{"k":"v"}}]`,
		`{"tenant":"acme","conversation_id":"c","sender":{"id":"u"},"attachments":[{"name":"a.pdf","size_bytes":3}],"sent_at":"2026-12-04T10:00:00Z"}`,
		`{"tenant":5}`, `[]`, `{`, `"x"`, `{"text":"\xff"}`, `{"tenant":"a b"}`, `[{"tenant":"a"},{}]`,
		`{"tenant":"acme","conversation_id":"c","sender":{"id":"u"},"text":"x","sent_at":"yesterday"}`,
	} {
		f.Add([]byte(seed), false)
	}
	f.Add([]byte(`{"tenant":"acme","colour":"red"}`), true)
	f.Fuzz(func(t *testing.T, body []byte, strict bool) {
		if len(body) > maxFuzzInput {
			return
		}
		cfg, err := Config{Insecure: true, Strict: strict, MaxTextBytes: 1 << 10, MaxBatch: 8}.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		s := &Server{cfg: cfg}
		now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
		ws, _, e := s.decodeAny(body)
		if e != nil {
			checkRejection(t, e)
			return
		}
		if len(ws) == 0 || len(ws) > cfg.MaxBatch {
			t.Fatalf("decoded %d messages", len(ws))
		}
		for _, w := range ws {
			m, e := s.toMessage(w, now)
			if e != nil {
				checkRejection(t, e)
				continue
			}
			for _, id := range []string{m.ID, m.Tenant, m.ConversationID, m.Sender.ID} {
				if err := vigil.ValidateID(id); err != nil {
					t.Fatalf("accepted invalid id: %v", err)
				}
			}
			if len(m.Text) > cfg.MaxTextBytes || !utf8.ValidString(m.Text) || m.SentAt.IsZero() || !m.ReceivedAt.Equal(now) {
				t.Fatalf("accepted message breaks limits: %d text bytes, sent %v", len(m.Text), m.SentAt)
			}
			if len(m.Metadata) > cfg.MaxMetadataEntries || len(m.Participants) > cfg.MaxParticipants || len(m.Attachments) > cfg.MaxAttachments {
				t.Fatal("accepted message over a count limit")
			}
			if m.PII != nil || m.Subjects != nil {
				t.Fatal("client set server-side fields")
			}
			if w.ID == "" {
				m2, _ := s.toMessage(w, now.Add(time.Hour))
				if m2.ID != m.ID {
					t.Fatal("derived id depends on receive time")
				}
			}
		}
	})
}

func checkRejection(t *testing.T, e *Error) {
	t.Helper()
	if e.Status < 400 || e.Status >= 500 || e.Msg == "" {
		t.Fatalf("rejection %d %q", e.Status, e.Msg)
	}
	if e.Status != http.StatusBadRequest && e.Status != http.StatusRequestEntityTooLarge && e.Status != http.StatusForbidden {
		t.Fatalf("unexpected status %d", e.Status)
	}
	// Messages come from a fixed vocabulary: never a quoted input value.
	if strings.ContainsAny(e.Msg, `"'`) || len(e.Msg) > 120 {
		t.Fatalf("rejection message may echo input: %q", e.Msg)
	}
}
