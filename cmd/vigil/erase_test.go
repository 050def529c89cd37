package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/bus/bustest"
	"github.com/vigilhq/vigil/pii"
	"github.com/vigilhq/vigil/retention"
	"github.com/vigilhq/vigil/warehouse"
	"github.com/vigilhq/vigil/warehouse/warehousetest"
)

// adminFixture is a real NATS and ClickHouse with a tokenized, archived
// conversation between alice and bob, and the flags that reach them.
type adminFixture struct {
	db    *warehousetest.DB
	flags []string
}

func newAdminFixture(t *testing.T) *adminFixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv := bustest.New(t)
	db := warehousetest.New(t)
	b := srv.Bus(t, bus.Config{})
	key := func() string {
		k := make([]byte, pii.KeySize)
		_, _ = rand.Read(k)
		return base64.StdEncoding.EncodeToString(k)
	}
	cfg := pii.StaticKeysConfig{Default: &pii.StaticTenantKeys{KEK: key(), TokenKey: key()}}
	keyFile := filepath.Join(t.TempDir(), "keys.json")
	raw, _ := json.Marshal(cfg)
	if err := os.WriteFile(keyFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := pii.NewStaticKeys(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := retention.NewVault(b, keys)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := pii.NewTokenizer(v)
	if err != nil {
		t.Fatal(err)
	}
	sink, err := warehouse.NewSink(b, db.Conn, warehouse.SinkConfig{FlushInterval: 50 * time.Millisecond, Durable: "cli",
		Streams: []string{bus.StreamMessages, bus.StreamVerdicts}})
	if err != nil {
		t.Fatal(err)
	}
	if err := sink.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sink.Close(context.Background()) })
	alice := vigil.Participant{ID: "alice", DisplayName: "Alice Archer"}
	bobP := vigil.Participant{ID: "bob", DisplayName: "Bob Broker"}
	sent := time.Now().UTC().Add(-time.Hour)
	for i, s := range []struct {
		from, to vigil.Participant
		text     string
	}{{alice, bobP, "mail me at alice.archer@example.com"}, {bobP, alice, "sure"}, {alice, bobP, "thanks"}} {
		m := &vigil.Message{ID: fmt.Sprintf("m-%d", i), Tenant: "acme", ConversationID: "c1", Sender: s.from,
			Participants: []vigil.Participant{s.from, s.to}, Channel: "teams", Text: s.text, SentAt: sent, ReceivedAt: sent}
		if err := tok.TokenizeMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
		if _, err := b.PublishMessage(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for db.Count(t, "messages") != 3 {
		if time.Now().After(deadline) {
			t.Fatal("messages did not reach ClickHouse")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return &adminFixture{db: db, flags: []string{"--nats", srv.Server.ClientURL(), "--clickhouse", db.DSN, "--pii-keys", keyFile}}
}

func TestAdminCommands(t *testing.T) {
	f := newAdminFixture(t)
	who := []string{"--actor", "dpo@acme", "--reason", "DSR-1"}
	args := func(cmd ...string) []string {
		out := append([]string{}, cmd...)
		out = append(out, f.flags...)
		return append(out, who...)
	}
	aliceRows := func() uint64 {
		var n uint64
		if err := f.db.Conn.QueryRow(context.Background(), "SELECT count() FROM messages WHERE sender_id = 'alice'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantOut    string // substring of stdout
		wantErr    string // exact stderr, or prefix when ending in "…"
		aliceAfter uint64
	}{
		{"erase help", []string{"erase", "--help"}, exitOK, "Usage:\n  vigil erase --tenant T", "", 2},
		{"erase missing flags", []string{"erase", "--tenant", "acme"}, exitUsage, "",
			"Error: --subject, --request, --actor, --reason required\nTry: vigil erase --help\n", 2},
		{"hold on alice", args("hold", "create", "--tenant", "acme", "--case", "K-1", "--scope", "subject", "--subject", "alice"), exitOK,
			"hold K-1 placed on subject alice (tenant acme)\n", "", 2},
		{"overlapping hold", args("hold", "create", "--tenant", "acme", "--case", "K-1", "--scope", "tenant"), exitFailure, "",
			"Error: create hold: legal hold already active: case K-1 (tenant acme, since …", 2},
		{"erase held subject", args("erase", "--tenant", "acme", "--subject", "alice", "--request", "R-1"), exitFailure, "",
			"Error: erase R-1: under legal hold: case K-1 covers this data subject; nothing was changed (release the hold first)\nTry: vigil hold list --tenant acme\n", 2},
		{"malformed date", args("hold", "create", "--tenant", "acme", "--case", "K-2", "--scope", "time_range", "--from", "2026-13-01"), exitUsage, "",
			"Error: --from: want RFC 3339 (2026-12-01T00:00:00Z) or a date (2026-12-01), got \"2026-13-01\"\nTry: vigil hold --help\n", 2},
		{"reversed dates", args("hold", "create", "--tenant", "acme", "--case", "K-2", "--scope", "time_range", "--from", "2026-12-02", "--to", "2026-12-01"), exitUsage, "",
			"Error: create hold: invalid request: hold start 2026-12-02T00:00:00Z is not before its end 2026-12-01T00:00:00Z\nTry: vigil hold --help\n", 2},
		{"unknown policy", args("retention", "set", "--tenant", "acme", "--class", "sox-404"), exitUsage, "",
			"Error: --class: unknown retention policy class \"sox-404\" (known: sec-17a-4, finra-4511, mifid-ii, hipaa, gdpr-minimization)\nTry: vigil retention --help\n", 2},
		{"unknown subject", args("erase", "--tenant", "acme", "--subject", "nobody", "--request", "R-2"), exitFailure, "",
			"Error: erase R-2: unknown data subject: no token, message or verdict is linked to it in tenant acme\nTry: check --tenant and --subject (the platform's participant id)\n", 2},
		{"release dry run", args("hold", "release", "--tenant", "acme", "--case", "K-1", "--dry-run"), exitOK,
			"dry run: would release hold K-1 on subject alice (tenant acme)", "", 2},
		{"still held", args("erase", "--tenant", "acme", "--subject", "alice", "--request", "R-1"), exitFailure, "", "Error: erase R-1: under legal hold…", 2},
		{"hold list", append([]string{"hold", "list", "--tenant", "acme"}, f.flags[2:4]...), exitOK, "K-1", "", 2},
		{"release", args("hold", "release", "--tenant", "acme", "--case", "K-1"), exitOK, "hold K-1 released (tenant acme)\n", "", 2},
		{"erase plan", args("erase", "--tenant", "acme", "--subject", "alice", "--request", "R-1", "--dry-run"), exitOK,
			"ERASURE PLAN (dry run: nothing was changed)", "", 2},
		{"access", args("access", "--tenant", "acme", "--subject", "alice"), exitOK, "alice.archer@example.com", "", 2},
		{"erase", args("erase", "--tenant", "acme", "--subject", "alice", "--request", "R-1", "--json"), exitOK, `"outcome": "erased"`, "", 0},
		{"erase again", args("erase", "--tenant", "acme", "--subject", "alice", "--request", "R-1"), exitOK, "Outcome:       ERASED", "", 0},
		{"access after erasure", args("access", "--tenant", "acme", "--subject", "alice"), exitOK, `"status": "shredded"`, "", 0},
		{"policy", args("retention", "set", "--tenant", "acme", "--class", "gdpr-minimization", "--keep-days", "30"), exitOK,
			"policy gdpr-minimization (30 days) assigned to tenant acme channel (default)\n", "", 0},
		{"retention run dry", args("retention", "run", "--dry-run"), exitOK, "retention run would remove 0 messages", "", 0},
		{"retention classes", []string{"retention", "classes"}, exitOK, "sec-17a-4", "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tc.args, &out, &errb)
			if code != tc.wantCode {
				t.Fatalf("vigil %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(tc.args, " "), code, tc.wantCode, out.String(), errb.String())
			}
			if !strings.Contains(out.String(), tc.wantOut) {
				t.Errorf("stdout does not contain %q:\n%s", tc.wantOut, out.String())
			}
			if p, ok := strings.CutSuffix(tc.wantErr, "…"); ok {
				if !strings.HasPrefix(errb.String(), p) {
					t.Errorf("stderr = %q, want prefix %q", errb.String(), p)
				}
			} else if errb.String() != tc.wantErr {
				t.Errorf("stderr = %q, want %q", errb.String(), tc.wantErr)
			}
			if strings.Contains(errb.String(), "alice.archer") {
				t.Errorf("stderr carries PII: %q", errb.String())
			}
			if n := aliceRows(); n != tc.aliceAfter {
				t.Errorf("alice has %d message rows, want %d", n, tc.aliceAfter)
			}
		})
	}
}

func TestStreamLayout(t *testing.T) {
	ctx := context.Background()
	empty := bustest.New(t)
	running := bustest.New(t)
	running.Bus(t, bus.Config{Partitions: 3})
	tests := []struct {
		name                 string
		srv                  *bustest.Server
		replicas, partitions int
		want                 bus.Config
	}{
		{"read from the running streams", running, 0, 0, bus.Config{Replicas: 1, Partitions: 3}},
		{"flags win", running, 1, 5, bus.Config{Replicas: 1, Partitions: 5}},
		{"no streams yet: defaults", empty, 0, 0, bus.Config{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := streamLayout(ctx, tc.srv.Conn, tc.replicas, tc.partitions)
			if err != nil || got != tc.want {
				t.Fatalf("streamLayout = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
