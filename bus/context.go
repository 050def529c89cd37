package bus

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"
)

// ContextAppend is one compare-and-set append to the context bucket: Value
// is stored under Key only if the key's latest revision is still Revision
// (0: the key has no entry yet).
type ContextAppend struct {
	Key      string
	Value    []byte
	Revision uint64
}

// contextStream is the stream behind the context bucket.
const contextStream = "KV_" + BucketContext

// contextSubject is the stream subject of a context key.
func contextSubject(key string) string { return "$KV." + BucketContext + "." + key }

// ErrContextBatchRefused is returned by [Bus.AppendContext] when an
// append's revision was no longer the latest (or the server refused the
// atomic batch): the caller re-reads the keys and appends again.
var ErrContextBatchRefused = errors.New("bus: context batch refused")

// AppendContext stores appends in the context bucket and returns each
// key's new revision, in order. Config.MinAtomicBatch or more appends go as
// one atomic batch (one fsync under SyncAlways, all or nothing) unless
// Config.NoAtomicBatches is set; fewer are pipelined asynchronous
// publishes, each checked on its own. Keys must be distinct: nats-server
// checks a key's expected revision once per batch. It returns an error
// matching [ErrContextBatchRefused] when a revision was no longer the
// latest, or the bus error; on error the caller must assume any subset of
// the appends was stored (re-read the keys).
func (b *Bus) AppendContext(ctx context.Context, appends []ContextAppend) ([]uint64, error) {
	if len(appends) == 0 {
		return nil, nil
	}
	if len(appends) > MaxAtomicBatch {
		return nil, fmt.Errorf("%w: %d appends, at most %d per batch", ErrContextBatchRefused, len(appends), MaxAtomicBatch)
	}
	ctx, cancel := b.withTimeout(ctx)
	defer cancel()
	msgs := make([]*nats.Msg, len(appends))
	seen := make(map[string]bool, len(appends))
	for i, a := range appends {
		if seen[a.Key] {
			return nil, fmt.Errorf("%w: key %s appears twice", ErrContextBatchRefused, a.Key)
		}
		seen[a.Key] = true
		msgs[i] = &nats.Msg{Subject: contextSubject(a.Key), Data: a.Value, Header: nats.Header{}}
		msgs[i].Header.Set(jetstream.ExpectedLastSubjSeqHeader, strconv.FormatUint(a.Revision, 10))
	}
	start := time.Now()
	var acks []Ack
	var err error
	if b.atomic(len(msgs)) {
		acks, err = b.publishAtomic(ctx, contextStream, msgs)
	} else {
		acks, err = b.publishPipelined(ctx, contextStream, msgs)
	}
	b.metrics.PublishDuration.WithLabelValues(contextStream).Observe(since(start))
	var apiErr *jetstream.APIError
	switch {
	case err == nil:
	case errors.Is(err, errAtomicFallback),
		errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant):
		return nil, fmt.Errorf("append context: %w: %w", ErrContextBatchRefused, err)
	default:
		return nil, fmt.Errorf("append context: %w", err)
	}
	revs := make([]uint64, len(acks))
	for i, a := range acks {
		revs[i] = a.Sequence
	}
	return revs, nil
}

// ContextEntry is one stored revision of a context key.
type ContextEntry struct {
	Revision uint64
	Value    []byte
}

// ContextEntries returns every stored revision of a context key, oldest
// first (at most [ContextHistory]), and the key's latest revision (the one
// to compare-and-set against; 0 for a key never written), with one
// batched direct get: one request, answered by any replica.
func (b *Bus) ContextEntries(ctx context.Context, key string) (entries []ContextEntry, latest uint64, err error) {
	ctx, cancel := b.withTimeout(ctx)
	defer cancel()
	it, err := jetstreamext.GetBatch(ctx, b.js, contextStream, ContextHistory,
		jetstreamext.GetBatchSubject(contextSubject(key)))
	if err != nil {
		return nil, 0, fmt.Errorf("read context %s: %w", key, b.mapErr(err))
	}
	var out []ContextEntry
	for msg, err := range it {
		if errors.Is(err, jetstreamext.ErrNoMessages) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read context %s: %w", key, b.mapErr(err))
		}
		latest = msg.Sequence
		if op := msg.Header.Get("KV-Operation"); op != "" {
			// A delete or purge marker: what came before no longer counts.
			out = out[:0]
			continue
		}
		out = append(out, ContextEntry{Revision: msg.Sequence, Value: msg.Data})
	}
	return out, latest, nil
}
