package main

import (
	"crypto/rand"
	"encoding/base64"
	"io"
	"net/http"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vigilhq/vigil/bus/bustest"
	"github.com/vigilhq/vigil/warehouse/warehousetest"
)

func randKey(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

var serveStartedRE = regexp.MustCompile(`msg="vigil serve started" http=(\S+)`)

// TestServeExternal runs `vigil serve` against an external NATS server and
// ClickHouse (both real, started by the test) with tenant-bound tokens.
func TestServeExternal(t *testing.T) {
	ns := bustest.New(t)
	db := warehousetest.New(t)
	t.Setenv("VIGIL_PII_KEK", randKey(t))
	t.Setenv("VIGIL_PII_TOKEN_KEY", randKey(t))
	t.Setenv("VIGIL_TOKENS", "tok-acme=acme,tok-globex=globex")
	p := startVigil(t, "serve", "--nats", ns.Server.ClientURL(), "--replicas", "1",
		"--clickhouse", db.DSN, "--http", "127.0.0.1:0", "--retention-schedule=false")
	addr := p.waitLine(t, serveStartedRE, 2*time.Minute)[1]

	post := func(token, body string) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+addr+"/v1/messages", strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	msg := `{"tenant":"acme","conversation_id":"c","sent_at":"2026-12-04T10:00:00Z","sender":{"id":"u","role":"advisor"},"text":"hello"}`
	tests := []struct {
		name  string
		token string
		want  int
	}{
		{"own tenant", "tok-acme", http.StatusAccepted},
		{"no token", "", http.StatusUnauthorized},
		{"other tenant's token", "tok-globex", http.StatusForbidden},
		{"unknown token", "nope", http.StatusUnauthorized},
	}
	for _, tc := range tests {
		if code, body := post(tc.token, msg); code != tc.want {
			t.Errorf("%s: POST = %d %s, want %d", tc.name, code, body, tc.want)
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, time.Minute); code != exitOK {
		t.Fatalf("exit after SIGTERM = %d:\n%s", code, p.output())
	}
	if out := p.output(); strings.Contains(out, "tok-acme") {
		t.Errorf("a token was logged:\n%s", out)
	}
}

func TestServeRefusesWithoutTokens(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    int
		wantErr string
	}{
		{name: "no clickhouse", args: []string{"serve"}, want: exitUsage, wantErr: "--clickhouse is required"},
		{name: "no tokens", args: []string{"serve", "--clickhouse", "http://127.0.0.1:1/x"}, want: exitUsage, wantErr: "no ingest tokens"},
		{name: "bad tokens", args: []string{"serve", "--clickhouse", "x", "--tokens", "justatoken"}, want: exitUsage, wantErr: "token=tenant"},
		{name: "no keys", args: []string{"serve", "--clickhouse", "x", "--insecure"}, want: exitFailure, wantErr: "VIGIL_PII_KEK"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("VIGIL_PII_KEK", "")
			t.Setenv("VIGIL_PII_TOKEN_KEY", "")
			t.Setenv("VIGIL_TOKENS", "")
			p := startVigil(t, tc.args...)
			if code := p.wait(t, time.Minute); code != tc.want {
				t.Errorf("exit = %d, want %d:\n%s", code, tc.want, p.output())
			}
			if !strings.Contains(p.output(), tc.wantErr) || strings.Contains(p.output(), "justatoken") {
				t.Errorf("stderr = %q, want it to mention %q and never echo a token", p.output(), tc.wantErr)
			}
		})
	}
}
