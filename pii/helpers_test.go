package pii_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus/bustest"
	"github.com/vigilhq/vigil/pii"
)

func randomID(t testing.TB) string {
	t.Helper()
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

func randomKey(t testing.TB) string {
	t.Helper()
	b := make([]byte, pii.KeySize)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func testKeys(t testing.TB) *pii.StaticKeys {
	t.Helper()
	k, err := pii.NewStaticKeys(pii.StaticKeysConfig{Default: &pii.StaticTenantKeys{KEK: randomKey(t), TokenKey: randomKey(t)}})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// vaultBucket creates a KV bucket shaped like the bus's vault bucket: a KV
// stream that keeps every revision and, unlike jetstream.CreateKeyValue's,
// allows message deletes so secure delete works.
func vaultBucket(t testing.TB, srv *bustest.Server) jetstream.KeyValue {
	t.Helper()
	ctx := testCtx(t)
	bucket := "pii_vault_" + randomID(t)
	if _, err := srv.JS.CreateStream(ctx, jetstream.StreamConfig{
		Name:              "KV_" + bucket,
		Subjects:          []string{"$KV." + bucket + ".>"},
		MaxMsgsPerSubject: 64,
		MaxBytes:          -1,
		MaxMsgSize:        -1,
		MaxMsgs:           -1,
		MaxConsumers:      -1,
		Storage:           jetstream.FileStorage,
		AllowRollup:       true,
		AllowDirect:       true,
		Discard:           jetstream.DiscardNew,
		Duplicates:        2 * time.Minute,
	}); err != nil {
		t.Fatal(err)
	}
	kv, err := srv.JS.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// streamDeleter is the test's SecureDeleter: SecureDeleteMsg on the KV's
// backing stream for every revision of the key.
type streamDeleter struct{ js jetstream.JetStream }

var _ pii.SecureDeleter = streamDeleter{}

func (d streamDeleter) SecureDeleteKey(ctx context.Context, kv jetstream.KeyValue, key string) error {
	st, err := d.js.Stream(ctx, "KV_"+kv.Bucket())
	if err != nil {
		return err
	}
	hist, err := kv.History(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range hist {
		if err := st.SecureDeleteMsg(ctx, e.Revision()); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return err
		}
	}
	return nil
}

// streamAuditor publishes audit events to a real JetStream stream (as
// bus.PublishAudit does) and remembers them for assertions.
type streamAuditor struct {
	js      jetstream.JetStream
	subject string
	mu      sync.Mutex
	events  []vigil.AuditEvent
	raw     [][]byte
}

func newStreamAuditor(t testing.TB, srv *bustest.Server) *streamAuditor {
	t.Helper()
	name := "AUDIT_" + randomID(t)
	if _, err := srv.JS.CreateStream(testCtx(t), jetstream.StreamConfig{
		Name: name, Subjects: []string{"audit." + name + ".>"}, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
	return &streamAuditor{js: srv.JS, subject: "audit." + name}
}

func (a *streamAuditor) Audit(ctx context.Context, ev vigil.AuditEvent) error {
	b, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if _, err := a.js.Publish(ctx, a.subject+"."+ev.Tenant, b); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, ev)
	a.raw = append(a.raw, b)
	return nil
}

func (a *streamAuditor) snapshot() ([]vigil.AuditEvent, [][]byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]vigil.AuditEvent(nil), a.events...), append([][]byte(nil), a.raw...)
}

type rig struct {
	srv   *bustest.Server
	kv    jetstream.KeyValue
	keys  *pii.StaticKeys
	audit *streamAuditor
	vault *pii.Vault
	tok   *pii.Tokenizer
}

func newRig(t testing.TB, opts ...pii.Option) *rig {
	t.Helper()
	srv := bustest.New(t)
	r := &rig{srv: srv, kv: vaultBucket(t, srv), keys: testKeys(t), audit: newStreamAuditor(t, srv)}
	var err error
	r.vault, err = pii.NewVault(r.kv, r.keys, pii.WithAuditor(r.audit), pii.WithSecureDeleter(streamDeleter{srv.JS}))
	if err != nil {
		t.Fatal(err)
	}
	r.tok, err = pii.NewTokenizer(r.vault, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// filesContaining returns the store files whose bytes contain needle.
func filesContaining(t testing.TB, srv *bustest.Server, needle []byte) []string {
	t.Helper()
	var hits []string
	for _, f := range srv.Files(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(data, needle) {
			hits = append(hits, f)
		}
	}
	return hits
}

// waitOnDisk waits until needle is in some store file: the positive control
// that makes "not on disk" assertions meaningful (the file store writes
// asynchronously).
func waitOnDisk(t testing.TB, srv *bustest.Server, needle []byte) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(filesContaining(t, srv, needle)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("positive control: %d bytes never reached the store files", len(needle))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
