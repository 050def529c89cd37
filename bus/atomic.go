package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nuid"
)

// Atomic batch publish (nats-server ≥ 2.12, stream AllowAtomicPublish):
// every message carries Nats-Batch-Id and Nats-Batch-Sequence, the last one
// also Nats-Batch-Commit: 1 and is sent as a request; the server stages the
// batch and commits all of it or nothing, with consecutive sequences and a
// single PubAck. Under SyncAlways the commit fsyncs once for the whole
// batch (group commit) instead of once per message, which is what makes
// compliance-grade durability affordable (see bench/results/ingest.md).
const (
	hdrBatchID     = "Nats-Batch-Id"
	hdrBatchSeq    = "Nats-Batch-Sequence"
	hdrBatchCommit = "Nats-Batch-Commit"
	// MaxAtomicBatch is nats-server's default limit on messages per atomic
	// batch; larger batches are split.
	MaxAtomicBatch = 1000
)

// errAtomicFallback means the atomic batch was refused for a reason the
// per-message path handles (an id already stored, atomic publish disabled
// or too many open batches): nothing of the batch was stored.
var errAtomicFallback = errors.New("atomic batch refused")

// Server error codes after which the per-message path is used
// (nats-server jetstream_errors_generated.go).
var atomicFallbackCodes = map[jetstream.ErrorCode]bool{
	10158: true, // duplicate message id is in process
	10174: true, // atomic publish is disabled
	10175: true, // missing sequence
	10176: true, // incomplete batch
	10177: true, // unsupported header
	10179: true, // invalid batch id
	10199: true, // batch too large
	10201: true, // batch contains a duplicate message id
	10210: true, // too many inflight atomic batches
}

type batchPubAck struct {
	Stream   string              `json:"stream"`
	Sequence uint64              `json:"seq"`
	Count    int                 `json:"count"`
	BatchID  string              `json:"batch"`
	Error    *jetstream.APIError `json:"error,omitempty"`
}

// publishAtomic stores msgs (subjects, headers and payloads set by the
// caller) in stream as one atomic batch and returns one Ack per message. It
// returns an error matching errAtomicFallback when the server refused the
// batch for a reason the per-message path handles; nothing was stored then.
func (b *Bus) publishAtomic(ctx context.Context, stream string, msgs []*nats.Msg) ([]Ack, error) {
	batchID := nuid.Next()
	n := len(msgs)
	for i, msg := range msgs {
		if msg.Header == nil {
			msg.Header = nats.Header{}
		}
		msg.Header.Set(jetstream.ExpectedStreamHeader, stream)
		msg.Header.Set(hdrBatchID, batchID)
		msg.Header.Set(hdrBatchSeq, strconv.Itoa(i+1))
		if i < n-1 {
			if err := b.nc.PublishMsg(msg); err != nil {
				return nil, b.mapErr(err)
			}
			continue
		}
		msg.Header.Set(hdrBatchCommit, "1")
		resp, err := b.nc.RequestMsgWithContext(ctx, msg)
		if err != nil {
			return nil, b.mapErr(err)
		}
		var pa batchPubAck
		if err := json.Unmarshal(resp.Data, &pa); err != nil {
			return nil, fmt.Errorf("decode batch ack: %w", err)
		}
		if pa.Error != nil {
			if atomicFallbackCodes[pa.Error.ErrorCode] {
				return nil, fmt.Errorf("%w: %w", errAtomicFallback, pa.Error)
			}
			return nil, b.mapErr(pa.Error)
		}
		if pa.Count != n || pa.Sequence < uint64(n) {
			return nil, fmt.Errorf("batch ack for %d messages covers %d", n, pa.Count)
		}
		acks := make([]Ack, n)
		first := pa.Sequence - uint64(n) + 1
		for j := range acks {
			acks[j] = Ack{Stream: pa.Stream, Sequence: first + uint64(j)}
		}
		return acks, nil
	}
	return nil, nil
}
