package bus_test

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/vigilhq/vigil/bus"
	"github.com/vigilhq/vigil/bus/bustest"
)

// marker returns a random value that cannot occur in the store by chance.
func marker(t *testing.T, prefix string) []byte {
	t.Helper()
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return []byte(prefix + hex.EncodeToString(b))
}

// waitOnDisk waits until needle reaches a store file: the file store
// flushes asynchronously, and a scan that never saw the value proves nothing.
func waitOnDisk(t *testing.T, s *bustest.Server, needle []byte) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for len(s.Contains(t, needle)) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s never reached the store files", needle)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSecureDeleteKeyLeavesNoBytes(t *testing.T) {
	s := bustest.New(t)
	b := s.Bus(t, bus.Config{})
	ctx := testCtx(t)
	kv := b.VaultKV()
	v1, v2, other := marker(t, "vault-secret-1-"), marker(t, "vault-secret-2-"), marker(t, "vault-keep-")
	if _, err := kv.Put(ctx, "subject.alice", v1); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "subject.alice", v2); err != nil { // second revision
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "subject.bob", other); err != nil {
		t.Fatal(err)
	}
	for _, v := range [][]byte{v1, v2, other} {
		waitOnDisk(t, s, v)
	}

	tests := []struct {
		name   string
		bucket any
	}{
		{"by handle", kv},
		{"by name", bus.BucketVault},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := b.SecureDeleteKey(ctx, tt.bucket, "subject.alice")
			if i == 0 && err != nil {
				t.Fatal(err)
			}
			if i == 1 && !errors.Is(err, bus.ErrKeyNotFound) {
				t.Fatalf("second SecureDeleteKey = %v, want ErrKeyNotFound", err)
			}
			for _, v := range [][]byte{v1, v2} {
				if hits := s.Contains(t, v); len(hits) > 0 {
					t.Fatalf("shredded value still on disk in %v", hits)
				}
			}
			if _, err := kv.Get(ctx, "subject.alice"); !errors.Is(err, jetstream.ErrKeyNotFound) {
				t.Fatalf("Get after SecureDeleteKey = %v, want ErrKeyNotFound", err)
			}
		})
	}
	// Other keys are untouched.
	if e, err := kv.Get(ctx, "subject.bob"); err != nil || string(e.Value()) != string(other) {
		t.Fatalf("Get(bob) = %v, %v", e, err)
	}
	if len(s.Contains(t, other)) == 0 {
		t.Fatal("unrelated key vanished from disk")
	}
	if err := b.SecureDeleteKey(ctx, 42, "k"); !errors.Is(err, bus.ErrInvalidOption) {
		t.Fatalf("SecureDeleteKey(42) = %v, want ErrInvalidOption", err)
	}
}

func TestEraseMessagesLeavesNoBytes(t *testing.T) {
	s := bustest.New(t)
	b := s.Bus(t, bus.Config{})
	ctx := testCtx(t)
	gone, kept := marker(t, "erase-me-"), marker(t, "keep-me-")
	a1, err := b.PublishMessage(ctx, msg("m1", "t", "c", string(gone)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.PublishMessage(ctx, msg("m2", "t", "c", string(kept))); err != nil {
		t.Fatal(err)
	}
	waitOnDisk(t, s, gone)
	waitOnDisk(t, s, kept)
	// Erasing twice is harmless: an already erased sequence is skipped.
	for range 2 {
		if err := b.EraseMessages(ctx, []uint64{a1.Sequence}); err != nil {
			t.Fatal(err)
		}
	}
	if hits := s.Contains(t, gone); len(hits) > 0 {
		t.Fatalf("erased message still on disk in %v", hits)
	}
	if len(s.Contains(t, kept)) == 0 {
		t.Fatal("EraseMessages removed the wrong message")
	}
	// The archive still refuses purge.
	st, _ := s.JS.Stream(ctx, bus.StreamMessages)
	if err := st.Purge(ctx); err == nil {
		t.Fatal("Purge of MESSAGES succeeded; the archive must deny purge")
	}
}
