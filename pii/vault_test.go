package pii_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/pii"
)

const (
	rawEmail = "anna.lee@example.com"
	rawCard  = "4111 1111 1111 1111"
	rawIBAN  = "GB82 WEST 1234 5698 7654 32"
	rawPhone = "+44 20 7946 0958"
	rawName  = "Robert Okafor"
)

// seededMessage carries an e-mail, a card, an IBAN, a phone number and a
// participant's name.
func seededMessage(tenant string) *vigil.Message {
	return &vigil.Message{
		ID: "m-1", Tenant: tenant, ConversationID: "c-1",
		Sender:       vigil.Participant{ID: "u-anna", DisplayName: "Anna Lee", Role: "advisor"},
		Participants: []vigil.Participant{{ID: "u-bob", DisplayName: rawName, Role: "customer"}},
		Text: "Hi " + rawName + ", reach me at " + rawEmail + " or " + rawPhone +
			". Refund to card " + rawCard + " or IBAN " + rawIBAN + ".",
	}
}

// rawVariants are the seeded values and their normalised spellings, none of
// which may be at rest.
var rawVariants = []string{
	rawEmail, rawCard, "4111111111111111", rawIBAN, "GB82WEST12345698765432",
	rawPhone, "+442079460958", "2079460958", rawName, "robert okafor", "Anna Lee", "anna lee",
}

func TestTokenizeMessageNoRawPIIAtRest(t *testing.T) {
	r := newRig(t)
	ctx := testCtx(t)
	tenant := "acme-" + randomID(t)
	m := seededMessage(tenant)
	if err := r.tok.TokenizeMessage(ctx, m); err != nil {
		t.Fatalf("TokenizeMessage: %v", err)
	}
	for _, v := range rawVariants {
		if strings.Contains(m.Text, v) || strings.Contains(m.Sender.DisplayName, v) || strings.Contains(m.Participants[0].DisplayName, v) {
			t.Errorf("tokenized message still contains a seeded value (%d bytes)", len(v))
		}
	}
	wantPII := map[string]int{"name": 1, "email": 1, "phone": 1, "card": 1, "iban": 1}
	if !mapsEqual(m.PII, wantPII) {
		t.Errorf("m.PII = %v, want %v", m.PII, wantPII)
	}
	if want := []string{"u-anna", "u-bob"}; !slices.Equal(m.Subjects, want) {
		t.Errorf("m.Subjects = %v, want %v", m.Subjects, want)
	}
	toks := FindTokensIn(t, m)
	if len(toks) != 7 { // 5 in the text + 2 display names
		t.Fatalf("tokens = %d, want 7: %q", len(toks), m.Text)
	}
	// The participant's name in the text and as display name is one token.
	if !strings.Contains(m.Text, m.Participants[0].DisplayName) {
		t.Errorf("display-name token %s not reused in text %q", m.Participants[0].DisplayName, m.Text)
	}

	// Publish the tokenized message to a real stream, as ingest would.
	if _, err := r.srv.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "MSG_" + randomID(t), Subjects: []string{"msg.>"}}); err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(m)
	if _, err := r.srv.JS.Publish(ctx, "msg."+tenant+".c-1", body); err != nil {
		t.Fatal(err)
	}

	// Positive controls: the published message and the vault ciphertexts are
	// on disk, so the negative scan below looks at flushed data.
	waitOnDisk(t, r.srv, []byte(m.Participants[0].DisplayName))
	keys, err := r.kv.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	vals := 0
	for _, k := range keys {
		if strings.ContainsAny(k, "@ ") || strings.Contains(k, "u-anna") || strings.Contains(k, "u-bob") {
			t.Errorf("vault key %q contains raw text or a raw subject id", k)
		}
		e, err := r.kv.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(k, "val.") {
			vals++
			waitOnDisk(t, r.srv, e.Value())
		}
		for _, v := range rawVariants {
			if bytes.Contains(e.Value(), []byte(v)) || strings.Contains(k, v) {
				t.Errorf("vault entry %s holds a seeded value", k)
			}
		}
	}
	if vals != 6 { // 5 text values (the name is one) + Anna's display name
		t.Errorf("vault values = %d, want 6 (keys %v)", vals, keys)
	}
	for _, v := range rawVariants {
		if hits := filesContaining(t, r.srv, []byte(v)); len(hits) > 0 {
			t.Errorf("seeded value (%d bytes) found at rest in %v", len(v), hits)
		}
	}

	// Detokenize returns every original and audits each read.
	want := map[pii.Kind]string{pii.KindEmail: rawEmail, pii.KindCard: rawCard, pii.KindIBAN: rawIBAN, pii.KindPhone: rawPhone, pii.KindName: rawName}
	for _, tk := range pii.FindTokens(m.Text) {
		got, err := r.vault.Detokenize(ctx, tenant, tk.String(), pii.Request{Actor: "reviewer-7", Reason: "case 42"})
		if err != nil {
			t.Fatalf("Detokenize(%s): %v", tk, err)
		}
		if got != want[tk.Kind] {
			t.Errorf("Detokenize(%s) = %d bytes, want the original %s", tk, len(got), tk.Kind)
		}
	}
	events, raw := r.audit.snapshot()
	if len(events) != 5 {
		t.Fatalf("audit events = %d, want 5", len(events))
	}
	for i, ev := range events {
		if ev.Action != pii.AuditActionDetokenize || ev.Actor != "reviewer-7" || ev.Reason != "case 42" || ev.Tenant != tenant ||
			ev.Details[pii.AuditDetailResult] != "ok" || ev.ID == "" || ev.At.IsZero() {
			t.Errorf("audit event %d = %+v", i, ev)
		}
		if _, ok := pii.ParseToken(ev.Target); !ok {
			t.Errorf("audit event %d target %q is not a token", i, ev.Target)
		}
		for _, v := range rawVariants {
			if bytes.Contains(raw[i], []byte(v)) {
				t.Errorf("audit event %d contains a seeded value", i)
			}
		}
	}
	for _, v := range rawVariants { // the audit stream is on disk too
		if hits := filesContaining(t, r.srv, []byte(v)); len(hits) > 0 {
			t.Errorf("seeded value (%d bytes) found at rest after detokenize in %v", len(v), hits)
		}
	}

	// Tokenizing again changes nothing: tokens are never re-tokenized.
	again := *m
	again.Participants = slices.Clone(m.Participants)
	if err := r.tok.TokenizeMessage(ctx, &again); err != nil {
		t.Fatal(err)
	}
	if again.Text != m.Text || again.Sender.DisplayName != m.Sender.DisplayName || again.Participants[0].DisplayName != m.Participants[0].DisplayName {
		t.Errorf("second TokenizeMessage changed the message:\n%q\n%q", m.Text, again.Text)
	}
}

func FindTokensIn(t *testing.T, m *vigil.Message) []pii.Token {
	t.Helper()
	var out []pii.Token
	for _, s := range []string{m.Text, m.Sender.DisplayName, m.Participants[0].DisplayName} {
		out = append(out, pii.FindTokens(s)...)
	}
	return out
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestDetokenizeRequest(t *testing.T) {
	r := newRig(t)
	ctx := testCtx(t)
	tenant := "t-" + randomID(t)
	m := seededMessage(tenant)
	if err := r.tok.TokenizeMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	email := ""
	for _, tk := range pii.FindTokens(m.Text) {
		if tk.Kind == pii.KindEmail {
			email = tk.String()
		}
	}
	tests := []struct {
		name      string
		tenant    string
		token     string
		req       pii.Request
		wantErr   error
		wantAudit string // result recorded, "" for no event
	}{
		{"no reason", tenant, email, pii.Request{Actor: "r"}, pii.ErrReasonRequired, ""},
		{"blank reason", tenant, email, pii.Request{Actor: "r", Reason: "  "}, pii.ErrReasonRequired, ""},
		{"no actor", tenant, email, pii.Request{Reason: "case 1"}, pii.ErrActorRequired, ""},
		{"not a token", tenant, "anna@example.com", pii.Request{Actor: "r", Reason: "x"}, pii.ErrInvalidToken, ""},
		{"unknown token", tenant, "⟦EMAIL:0000000000000000⟧", pii.Request{Actor: "r", Reason: "x"}, pii.ErrTokenNotFound, "not_found"},
		{"other tenant", "t-other", email, pii.Request{Actor: "r", Reason: "x"}, pii.ErrTokenNotFound, "not_found"},
		{"ok", tenant, email, pii.Request{Actor: "r", Reason: "x"}, nil, "ok"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before, _ := r.audit.snapshot()
			got, err := r.vault.Detokenize(ctx, tc.tenant, tc.token, tc.req)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Detokenize = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && got != rawEmail {
				t.Errorf("Detokenize returned the wrong value (%d bytes)", len(got))
			}
			if err != nil && strings.Contains(err.Error(), rawEmail) {
				t.Errorf("error %q contains the value", err)
			}
			after, _ := r.audit.snapshot()
			switch {
			case tc.wantAudit == "" && len(after) != len(before):
				t.Errorf("audit events %d → %d, want none", len(before), len(after))
			case tc.wantAudit != "" && (len(after) != len(before)+1 || after[len(after)-1].Details[pii.AuditDetailResult] != tc.wantAudit):
				t.Errorf("audit events %v, want one with result %s", after[len(before):], tc.wantAudit)
			}
		})
	}
}

func TestShred(t *testing.T) {
	r := newRig(t)
	ctx := testCtx(t)
	tenant := "t-" + randomID(t)
	m := seededMessage(tenant)
	if err := r.tok.TokenizeMessage(ctx, m); err != nil {
		t.Fatal(err)
	}
	tokenized := m.Text
	sh, err := r.vault.SubjectHash(ctx, tenant, "u-anna")
	if err != nil {
		t.Fatal(err)
	}
	keyEntry, err := r.kv.Get(ctx, "key."+tenant+"."+sh)
	if err != nil {
		t.Fatalf("subject key of u-anna: %v", err)
	}
	wrapped := keyEntry.Value()
	waitOnDisk(t, r.srv, wrapped)
	var cts [][]byte
	for _, k := range mustKeys(t, r.kv, "val.*.*."+sh) {
		e, err := r.kv.Get(ctx, k)
		if err != nil {
			t.Fatal(err)
		}
		cts = append(cts, e.Value())
	}
	if len(cts) != 5 { // email, phone, card, IBAN, display name
		t.Fatalf("u-anna ciphertexts = %d, want 5", len(cts))
	}
	annaTokens, err := r.vault.SubjectTokens(ctx, tenant, "u-anna")
	if err != nil || len(annaTokens) != 5 {
		t.Fatalf("SubjectTokens(u-anna) = %v, %v; want 5 tokens", annaTokens, err)
	}
	for _, tk := range annaTokens {
		if !strings.Contains(tokenized+m.Sender.DisplayName, tk) {
			t.Errorf("SubjectTokens lists %s, not in the message", tk)
		}
	}

	if err := r.vault.Shred(ctx, tenant, "u-anna"); err != nil {
		t.Fatalf("Shred: %v", err)
	}

	req := pii.Request{Actor: "dpo", Reason: "erasure request 9"}
	for _, tk := range annaTokens {
		if _, err := r.vault.Detokenize(ctx, tenant, tk, req); !errors.Is(err, pii.ErrSubjectShredded) {
			t.Errorf("Detokenize(%s) after shred = %v, want ErrSubjectShredded", tk, err)
		}
	}
	// Bob's name (his data, attributed to him) is still readable.
	if got, err := r.vault.Detokenize(ctx, tenant, m.Participants[0].DisplayName, req); err != nil || got != rawName {
		t.Errorf("Detokenize(Bob's name) after Anna's shred = %d bytes, %v", len(got), err)
	}
	// The tokens remain in the message and still list for the subject.
	if m.Text != tokenized {
		t.Error("message changed by shred")
	}
	if after, err := r.vault.SubjectTokens(ctx, tenant, "u-anna"); err != nil || len(after) != 5 {
		t.Errorf("SubjectTokens after shred = %v, %v", after, err)
	}
	// Neither the wrapped key nor the ciphertexts are anywhere on disk.
	if hits := filesContaining(t, r.srv, wrapped); len(hits) > 0 {
		t.Errorf("wrapped subject key still on disk in %v", hits)
	}
	for i, ct := range cts {
		if hits := filesContaining(t, r.srv, ct); len(hits) > 0 {
			t.Errorf("ciphertext %d still on disk in %v", i, hits)
		}
	}

	// Re-ingesting the original message after erasure: same tokens, nothing
	// readable, no new key.
	again := seededMessage(tenant)
	if err := r.tok.TokenizeMessage(ctx, again); err != nil {
		t.Fatal(err)
	}
	if again.Text != tokenized {
		t.Errorf("re-tokenized text differs:\n%q\n%q", again.Text, tokenized)
	}
	fresh, err := pii.NewTokenizer(r.vault, pii.WithCacheSize(0)) // no cache: must consult the tombstone
	if err != nil {
		t.Fatal(err)
	}
	if err := fresh.TokenizeMessage(ctx, seededMessage(tenant)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.kv.Get(ctx, "key."+tenant+"."+sh); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("subject key after re-tokenize: %v, want ErrKeyNotFound", err)
	}
	if ks := mustKeys(t, r.kv, "val.*.*."+sh); len(ks) != 0 {
		t.Errorf("values stored again for a shredded subject: %v", ks)
	}
	for _, tk := range annaTokens {
		if _, err := r.vault.Detokenize(ctx, tenant, tk, req); !errors.Is(err, pii.ErrSubjectShredded) {
			t.Errorf("Detokenize(%s) after re-ingest = %v, want ErrSubjectShredded", tk, err)
		}
	}
	// Shred is idempotent.
	if err := r.vault.Shred(ctx, tenant, "u-anna"); err != nil {
		t.Errorf("second Shred: %v", err)
	}
}

func TestRestrict(t *testing.T) {
	r := newRig(t)
	ctx := testCtx(t)
	tenant := "t-" + randomID(t)
	tok, _, err := r.tok.Tokenize(ctx, tenant, "mail "+rawEmail, pii.Directory{Sender: vigil.Participant{ID: "u-c"}})
	if err != nil {
		t.Fatal(err)
	}
	token := pii.FindTokens(tok)[0].String()
	req := pii.Request{Actor: "a", Reason: "r"}
	if err := r.vault.Restrict(ctx, tenant, "u-c", ""); !errors.Is(err, pii.ErrInvalidOption) {
		t.Errorf("Restrict without basis = %v", err)
	}
	if err := r.vault.Restrict(ctx, tenant, "u-c", "SEC 17a-4 retention"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.vault.Detokenize(ctx, tenant, token, req); !errors.Is(err, pii.ErrSubjectRestricted) {
		t.Errorf("Detokenize while restricted = %v, want ErrSubjectRestricted", err)
	}
	if err := r.vault.Unrestrict(ctx, tenant, "u-c"); err != nil {
		t.Fatal(err)
	}
	if got, err := r.vault.Detokenize(ctx, tenant, token, req); err != nil || got != rawEmail {
		t.Errorf("Detokenize after Unrestrict = %d bytes, %v", len(got), err)
	}
	if err := r.vault.Unrestrict(ctx, tenant, "u-never"); err != nil {
		t.Errorf("Unrestrict(unknown) = %v", err)
	}
}

func mustKeys(t *testing.T, kv jetstream.KeyValue, filter string) []string {
	t.Helper()
	kl, err := kv.ListKeysFiltered(testCtx(t), filter)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for k := range kl.Keys() {
		out = append(out, k)
	}
	return out
}
