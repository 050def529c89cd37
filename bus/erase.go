package bus

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrKeyNotFound is returned by [Bus.SecureDeleteKey] when the key has no
// stored revision (never written, or already securely deleted).
var ErrKeyNotFound = errors.New("bus: key not found")

// EraseMessages securely deletes the given sequences from MESSAGES:
// nats-server overwrites each message's bytes on disk with random data
// before removing it (SecureDeleteMsg), so erased text does not linger in
// block files. Sequences already gone are skipped. It is the only code path
// that deletes from the archive; retention decides what may be erased.
func (b *Bus) EraseMessages(ctx context.Context, seqs []uint64) error {
	st, err := b.js.Stream(ctx, StreamMessages)
	if err != nil {
		return fmt.Errorf("erase messages: %w", err)
	}
	for _, seq := range seqs {
		if err := st.SecureDeleteMsg(ctx, seq); err != nil {
			if errors.Is(err, jetstream.ErrMsgNotFound) || errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) && !b.exists(ctx, st, seq) {
				continue
			}
			return fmt.Errorf("erase message seq %d: %w", seq, err)
		}
	}
	return nil
}

func (b *Bus) exists(ctx context.Context, st jetstream.Stream, seq uint64) bool {
	_, err := st.GetMsg(ctx, seq)
	return err == nil
}

// SecureDeleteKey removes every revision of key from bucket (a
// [jetstream.KeyValue] such as [Bus.VaultKV], or a bucket name) by
// securely deleting each backing message of stream KV_<bucket> (subject
// $KV.<bucket>.<key>): the server overwrites the bytes on disk before
// removing them. A plain KV Delete or Purge would only mark the key deleted
// and leave the value in the block files until compaction.
//
// Only revisions the bucket still keeps can be found, so buckets that hold
// secrets keep full history ([DefaultVaultHistory]) and write keys once.
// If the key has no revision, ErrKeyNotFound is returned. Only the vault
// bucket allows it: the other buckets deny message delete and return the
// server's "message delete not permitted" error.
func (b *Bus) SecureDeleteKey(ctx context.Context, bucket any, key string) error {
	var name string
	switch v := bucket.(type) {
	case jetstream.KeyValue:
		name = v.Bucket()
	case string:
		name = v
	default:
		return fmt.Errorf("%w: bucket must be a jetstream.KeyValue or a name", ErrInvalidOption)
	}
	kv, err := b.js.KeyValue(ctx, name)
	if err != nil {
		return fmt.Errorf("secure delete key: bucket %s: %w", name, err)
	}
	st, err := b.js.Stream(ctx, "KV_"+name)
	if err != nil {
		return fmt.Errorf("secure delete key: bucket %s: %w", name, err)
	}
	hist, err := kv.History(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("secure delete key in %s: %w", name, ErrKeyNotFound)
	}
	if err != nil {
		return fmt.Errorf("secure delete key in %s: history: %w", name, err)
	}
	for _, e := range hist {
		if err := st.SecureDeleteMsg(ctx, e.Revision()); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
			return fmt.Errorf("secure delete key in %s: revision %d: %w", name, e.Revision(), err)
		}
	}
	return nil
}
