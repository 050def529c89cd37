package pii_test

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/pii"
)

func ExampleFindTokens() {
	for _, t := range pii.FindTokens("mail ⟦EMAIL:7f3a9c1e2b4d5a6f⟧ or call ⟦PHONE:0011223344556677⟧, not ⟦EMAIL:xyz⟧") {
		fmt.Println(t.Kind, t.ID, t.Start, t.End)
	}
	// Output:
	// email 7f3a9c1e2b4d5a6f 5 33
	// phone 0011223344556677 42 70
}

func ExampleDetector_Detect() {
	d, _ := pii.NewDetector(pii.Policy{})
	text := "Card 4111 1111 1111 1111, order #2125550187"
	for _, f := range d.Detect(text, pii.Directory{}) {
		fmt.Println(f.Kind, text[f.Start:f.End])
	}
	// Output:
	// card 4111 1111 1111 1111
}

func TestStaticKeys(t *testing.T) {
	good := randomKey(t)
	other := randomKey(t)
	tests := []struct {
		name    string
		cfg     pii.StaticKeysConfig
		wantErr error
	}{
		{"tenant keys", pii.StaticKeysConfig{Tenants: map[string]pii.StaticTenantKeys{"a": {KEK: good, TokenKey: other}}}, nil},
		{"default", pii.StaticKeysConfig{Default: &pii.StaticTenantKeys{KEK: good, TokenKey: other}}, nil},
		{"empty", pii.StaticKeysConfig{}, pii.ErrInvalidKey},
		{"not base64", pii.StaticKeysConfig{Default: &pii.StaticTenantKeys{KEK: "secret-kek!!", TokenKey: other}}, pii.ErrInvalidKey},
		{"short", pii.StaticKeysConfig{Default: &pii.StaticTenantKeys{KEK: "c2hvcnQ=", TokenKey: other}}, pii.ErrInvalidKey},
		{"same keys", pii.StaticKeysConfig{Default: &pii.StaticTenantKeys{KEK: good, TokenKey: good}}, pii.ErrInvalidKey},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pii.NewStaticKeys(tc.cfg)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("NewStaticKeys = %v, want %v", err, tc.wantErr)
			}
			if err != nil && (strings.Contains(err.Error(), good) || strings.Contains(err.Error(), "secret-kek")) {
				t.Errorf("error echoes key material: %v", err)
			}
		})
	}

	ctx := testCtx(t)
	sk, err := pii.NewStaticKeys(pii.StaticKeysConfig{
		Tenants: map[string]pii.StaticTenantKeys{"a": {KEK: good, TokenKey: other}},
		Default: &pii.StaticTenantKeys{KEK: other, TokenKey: good},
	})
	if err != nil {
		t.Fatal(err)
	}
	b1, _ := sk.KeyEncryptionKey(ctx, "b")
	c1, _ := sk.KeyEncryptionKey(ctx, "c")
	b2, _ := sk.KeyEncryptionKey(ctx, "b")
	if len(b1) != pii.KeySize || bytes.Equal(b1, c1) || !bytes.Equal(b1, b2) {
		t.Error("derived tenant keys are not per-tenant and stable")
	}
	onlyA, _ := pii.NewStaticKeys(pii.StaticKeysConfig{Tenants: map[string]pii.StaticTenantKeys{"a": {KEK: good, TokenKey: other}}})
	if _, err := onlyA.TokenKey(ctx, "b"); !errors.Is(err, pii.ErrUnknownTenant) {
		t.Errorf("TokenKey(unknown) = %v, want ErrUnknownTenant", err)
	}

	path := filepath.Join(t.TempDir(), "keys.json")
	if err := os.WriteFile(path, []byte(`{"tenants":{"a":{"kek":"`+good+`","token_key":"`+other+`"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := pii.LoadStaticKeysFile(path); err != nil {
		t.Errorf("LoadStaticKeysFile: %v", err)
	}
	if err := os.WriteFile(path, []byte(`{"tenant":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := pii.LoadStaticKeysFile(path); err == nil {
		t.Error("LoadStaticKeysFile accepted an unknown field")
	}
	env := map[string]string{pii.EnvKEK: good, pii.EnvTokenKey: other}
	if _, err := pii.StaticKeysFromEnv(func(k string) string { return env[k] }); err != nil {
		t.Errorf("StaticKeysFromEnv: %v", err)
	}
}

func TestTokenIDsPerTenantAndDeterministic(t *testing.T) {
	r := newRig(t)
	ctx := testCtx(t)
	dir := pii.Directory{Sender: vigil.Participant{ID: "u-1"}}
	a1, _, err := r.tok.Tokenize(ctx, "t1", "mail "+rawEmail, dir)
	if err != nil {
		t.Fatal(err)
	}
	a2, _, _ := r.tok.Tokenize(ctx, "t1", "again: "+strings.ToUpper(rawEmail), dir)
	b1, _, _ := r.tok.Tokenize(ctx, "t2", "mail "+rawEmail, dir)
	ta, tb, tc := pii.FindTokens(a1)[0].ID, pii.FindTokens(a2)[0].ID, pii.FindTokens(b1)[0].ID
	if ta != tb {
		t.Errorf("same value (other case) got tokens %s and %s", ta, tb)
	}
	if ta == tc {
		t.Error("two tenants share a token for one value")
	}
	want, err := r.tok.TokenFor(ctx, "t1", pii.KindEmail, rawEmail)
	if err != nil || want != pii.FindTokens(a1)[0].String() {
		t.Errorf("TokenFor = %s, %v; want %s", want, err, pii.FindTokens(a1)[0])
	}
}

func TestNoPIIInErrorsLogsAndMetrics(t *testing.T) {
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	reg := prometheus.NewRegistry()
	m := pii.NewMetrics(reg)
	srv := newRig(t).srv
	kv := vaultBucket(t, srv)
	audit := newStreamAuditor(t, srv)
	v, err := pii.NewVault(kv, testKeys(t), pii.WithAuditor(audit), pii.WithSecureDeleter(streamDeleter{srv.JS}),
		pii.WithVaultLogger(logger), pii.WithVaultMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := pii.NewTokenizer(v, pii.WithLogger(logger), pii.WithMetrics(m))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	var errs []error
	msg := seededMessage("t-ok")
	if err := tok.TokenizeMessage(ctx, msg); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.Findings.WithLabelValues("card")); got != 1 {
		t.Errorf("findings{kind=card} = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.VaultWrites); got != 6 {
		t.Errorf("vault writes = %v, want 6", got)
	}
	// The same values again: all in the stored-value cache, no vault write.
	if err := tok.TokenizeMessage(ctx, seededMessage("t-ok")); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(m.VaultWrites); got != 6 {
		t.Errorf("vault writes after a repeated message = %v, want still 6", got)
	}
	if got := testutil.ToFloat64(m.CacheHits); got != 6 {
		t.Errorf("cache hits = %v, want 6", got)
	}
	errs = append(errs, v.Shred(ctx, "t-ok", "u-anna"))
	bad := seededMessage("t-bad")
	bad.Sender.ID = ""
	errs = append(errs, tok.TokenizeMessage(ctx, bad))
	_, _, err = tok.Tokenize(ctx, "t-bad", "mail "+rawEmail, pii.Directory{})
	errs = append(errs, err)
	for _, tk := range pii.FindTokens(msg.Text) {
		_, err := v.Detokenize(ctx, "t-ok", tk.String(), pii.Request{Actor: "a", Reason: "r"})
		errs = append(errs, err)
	}
	// Vault unreachable: every write fails.
	srv.Shutdown()
	down := seededMessage("t-down")
	errs = append(errs, tok.TokenizeMessage(ctx, down))
	if errs[len(errs)-1] == nil {
		t.Fatal("TokenizeMessage with the server down succeeded")
	}
	if down.Text != seededMessage("t-down").Text {
		t.Error("failed TokenizeMessage modified the message")
	}
	var out strings.Builder
	for _, e := range errs {
		if e != nil {
			fmt.Fprintln(&out, e.Error())
		}
	}
	out.Write(logs.Bytes())
	metrics, _ := reg.Gather()
	for _, mf := range metrics {
		fmt.Fprintln(&out, mf.String())
	}
	if !strings.Contains(out.String(), "subject shredded") {
		t.Errorf("expected the shred log line, got:\n%s", out.String())
	}
	for _, v := range append(rawVariants, "u-anna") {
		if strings.Contains(out.String(), v) {
			t.Errorf("errors/logs/metrics contain a seeded value %q:\n%s", v, out.String())
		}
	}
}
