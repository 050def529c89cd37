package evaluator

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vigilhq/vigil"
)

// Window defaults.
const (
	// DefaultWindowMessages is how many previous messages a context window keeps.
	DefaultWindowMessages = 50
	// DefaultWindowDuration is how far back a context window reaches.
	DefaultWindowDuration = 10 * time.Minute
	// DefaultWindowCacheSize bounds the in-memory cache of windows.
	DefaultWindowCacheSize = 10_000
	// DefaultWindowCASAttempts bounds compare-and-set attempts per append.
	DefaultWindowCASAttempts = 8
	// MaxWindowBytes bounds a window's stored size (well under NATS's
	// default 1 MiB payload limit): the oldest entries are dropped first, so
	// a conversation of long messages keeps a shorter context instead of
	// failing its KV update.
	MaxWindowBytes = 256 << 10
	// windowEntryOverhead approximates an entry's encoded size besides its
	// text.
	windowEntryOverhead = 160
)

// windowKeyPrefix starts every window key in the context bucket.
const windowKeyPrefix = "win."

// WindowEntry is one message kept in a conversation's context window with
// the MESSAGES stream sequence it was applied at. The message is stored
// tokenized, as it arrived, with only the fields rules read of previous
// messages (id, sender, channel, text, send time, PII kinds): no
// participants, subjects, attachments or metadata.
type WindowEntry struct {
	Seq     uint64
	Message vigil.Message
}

// storedEntry is a WindowEntry as the bucket stores it: short keys and only
// the fields rules read, since every update rewrites the whole window.
// Tenant and conversation are implied by the key.
type storedEntry struct {
	Seq     uint64         `json:"s"`
	ID      string         `json:"i"`
	Sender  string         `json:"u,omitempty"`
	Name    string         `json:"n,omitempty"`
	Role    string         `json:"r,omitempty"`
	Channel string         `json:"c,omitempty"`
	Text    string         `json:"t"`
	SentAt  int64          `json:"a"`
	PII     map[string]int `json:"p,omitempty"`
}

func toStored(e WindowEntry) storedEntry {
	m := &e.Message
	return storedEntry{
		Seq: e.Seq, ID: m.ID, Sender: m.Sender.ID, Name: m.Sender.DisplayName, Role: m.Sender.Role,
		Channel: m.Channel, Text: m.Text, SentAt: m.SentAt.UnixNano(), PII: m.PII,
	}
}

func fromStored(s storedEntry) WindowEntry {
	return WindowEntry{Seq: s.Seq, Message: vigil.Message{
		ID: s.ID, Sender: vigil.Participant{ID: s.Sender, DisplayName: s.Name, Role: s.Role},
		Channel: s.Channel, Text: s.Text, SentAt: time.Unix(0, s.SentAt).UTC(), PII: s.PII,
	}}
}

// storedState is a windowState as the bucket stores it.
type storedState struct {
	LastSeq  uint64        `json:"last_seq"`
	FloorSeq uint64        `json:"floor_seq,omitempty"`
	Entries  []storedEntry `json:"entries"`
}

// MarshalJSON encodes st compactly (one flat struct per entry, no nested
// Marshaler calls, which encoding/json would re-validate).
func (st windowState) MarshalJSON() ([]byte, error) {
	out := storedState{LastSeq: st.LastSeq, FloorSeq: st.FloorSeq, Entries: make([]storedEntry, len(st.Entries))}
	for i, e := range st.Entries {
		out.Entries[i] = toStored(e)
	}
	return json.Marshal(out)
}

// UnmarshalJSON decodes what MarshalJSON wrote; entries carry neither
// tenant nor conversation id.
func (st *windowState) UnmarshalJSON(b []byte) error {
	var in storedState
	if err := json.Unmarshal(b, &in); err != nil {
		return err
	}
	*st = windowState{LastSeq: in.LastSeq, FloorSeq: in.FloorSeq, Entries: make([]WindowEntry, len(in.Entries))}
	for i, e := range in.Entries {
		st.Entries[i] = fromStored(e)
	}
	return nil
}

// windowState is the value stored in the KV bucket for one conversation.
type windowState struct {
	// LastSeq is the highest stream sequence applied.
	LastSeq uint64
	// FloorSeq is the highest sequence trimmed out of the window; a
	// redelivered message at or below it is not applied again.
	FloorSeq uint64
	// Entries are ordered by Seq.
	Entries []WindowEntry
}

// applied reports whether seq is already in the window or was trimmed out.
func (st *windowState) applied(seq uint64) bool {
	if seq <= st.FloorSeq {
		return true
	}
	_, found := slices.BinarySearchFunc(st.Entries, seq, func(e WindowEntry, s uint64) int { return cmp.Compare(e.Seq, s) })
	return found
}

// Window keeps each conversation's recent messages (last N and last T) in a
// JetStream KV bucket, the truth, with a bounded in-memory cache in front of
// it. Updates are compare-and-set on the key's revision, so a restarted or
// rebalanced evaluator continues from what the bucket holds. Window is safe
// for concurrent use; callers keep one writer per conversation (the owner of
// its partition), as DESIGN.md asks.
type Window struct {
	kv          jetstream.KeyValue
	maxMessages int
	maxAge      time.Duration
	attempts    int
	metrics     *Metrics

	cache *lru.Cache[string, *cachedWindow]
}

type cachedWindow struct {
	key   string
	state windowState
	rev   uint64
}

// NewWindow returns a context window over kv keeping at most maxMessages
// previous messages no older than maxAge, caching at most cacheSize
// conversations in memory. metrics may be nil. It returns ErrInvalidOption
// for a nil bucket or non-positive limits.
func NewWindow(kv jetstream.KeyValue, maxMessages int, maxAge time.Duration, cacheSize int, metrics *Metrics) (*Window, error) {
	switch {
	case kv == nil:
		return nil, fmt.Errorf("%w: nil context bucket", ErrInvalidOption)
	case maxMessages <= 0:
		return nil, fmt.Errorf("%w: window messages %d must be positive", ErrInvalidOption, maxMessages)
	case maxAge <= 0:
		return nil, fmt.Errorf("%w: window duration %s must be positive", ErrInvalidOption, maxAge)
	case cacheSize <= 0:
		return nil, fmt.Errorf("%w: window cache size %d must be positive", ErrInvalidOption, cacheSize)
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	return &Window{
		kv: kv, maxMessages: maxMessages, maxAge: maxAge, attempts: DefaultWindowCASAttempts,
		metrics: metrics, cache: newCache[string, *cachedWindow](cacheSize),
	}, nil
}

// WindowKey returns the KV key of a conversation's window. Tenant and
// conversation ids may hold characters KV keys forbid, so the key is a hash
// of both; it reveals neither.
func WindowKey(tenant, conversation string) string {
	h := sha256.Sum256([]byte(tenant + "\x00" + conversation))
	return windowKeyPrefix + hex.EncodeToString(h[:20])
}

// Append applies m, read at stream sequence seq, to its conversation's
// window and returns the context for evaluating m: the messages before seq,
// oldest first, within the window's count and age (age measured back from
// m.SentAt). Entries are keyed by sequence, so a redelivered message (a
// crash between the KV update and the ack) is never applied twice and sees
// the same context as the first time; a message redelivered after later
// ones of its conversation were applied (a crash left it unacked while the
// next owner went on) is inserted in sequence order. A compare-and-set
// conflict re-reads the bucket and retries; after every attempt it returns
// an error matching ErrWindowConflict.
func (w *Window) Append(ctx context.Context, m *vigil.Message, seq uint64) ([]vigil.Message, error) {
	key := WindowKey(m.Tenant, m.ConversationID)
	var lastErr error
	for attempt := 0; attempt < w.attempts; attempt++ {
		if attempt > 0 {
			w.metrics.WindowCASRetries.Inc()
		}
		cw, err := w.load(ctx, key, attempt > 0)
		if err != nil {
			return nil, fmt.Errorf("load context window %s: %w", key, err)
		}
		prev := w.context(cw.state, m, seq)
		if cw.state.applied(seq) {
			return prev, nil
		}
		st := w.insert(cw.state, WindowEntry{Seq: seq, Message: windowMessage(m)})
		val, err := st.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("encode context window %s: %w", key, err)
		}
		var rev uint64
		if cw.rev == 0 {
			rev, err = w.kv.Create(ctx, key, val)
		} else {
			rev, err = w.kv.Update(ctx, key, val, cw.rev)
		}
		if err == nil {
			w.store(&cachedWindow{key: key, state: st, rev: rev})
			return prev, nil
		}
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			w.forget(key)
			return nil, fmt.Errorf("update context window %s: %w", key, err)
		}
		// Someone else wrote (a previous owner of the partition, or our cache
		// is stale after a restart): the bucket is the truth, re-read it.
		w.forget(key)
		lastErr = err
	}
	return nil, fmt.Errorf("update context window %s after %d attempts: %w: %w", key, w.attempts, ErrWindowConflict, lastErr)
}

// Messages returns the window of a conversation as the bucket holds it,
// oldest first, bypassing the cache. Entries carry neither tenant nor
// conversation id: the key implies them.
func (w *Window) Messages(ctx context.Context, tenant, conversation string) ([]WindowEntry, error) {
	key := WindowKey(tenant, conversation)
	cw, err := w.load(ctx, key, true)
	if err != nil {
		return nil, fmt.Errorf("load context window %s: %w", key, err)
	}
	return cw.state.Entries, nil
}

// context returns the entries before seq within count and age of m.
func (w *Window) context(st windowState, m *vigil.Message, seq uint64) []vigil.Message {
	var out []vigil.Message
	cutoff := m.SentAt.Add(-w.maxAge)
	for _, e := range st.Entries {
		if e.Seq >= seq || e.Message.SentAt.Before(cutoff) {
			continue
		}
		pm := e.Message
		pm.Tenant, pm.ConversationID = m.Tenant, m.ConversationID
		out = append(out, pm)
	}
	if len(out) > w.maxMessages {
		out = out[len(out)-w.maxMessages:]
	}
	return out
}

// insert returns st with e added in sequence order and trimmed to the
// newest maxMessages+1 entries no older than maxAge before the newest
// entry. One more than maxMessages is kept so that a redelivered message
// still sees a full context of maxMessages before it.
func (w *Window) insert(st windowState, e WindowEntry) windowState {
	entries := make([]WindowEntry, 0, len(st.Entries)+1)
	i, _ := slices.BinarySearchFunc(st.Entries, e.Seq, func(x WindowEntry, s uint64) int { return cmp.Compare(x.Seq, s) })
	entries = append(append(append(entries, st.Entries[:i]...), e), st.Entries[i:]...)
	out := windowState{LastSeq: max(st.LastSeq, e.Seq), FloorSeq: st.FloorSeq}
	newest := entries[len(entries)-1].Message.SentAt
	for _, x := range entries {
		if x.Message.SentAt.After(newest) {
			newest = x.Message.SentAt
		}
	}
	cutoff := newest.Add(-w.maxAge)
	drop := max(len(entries)-(w.maxMessages+1), 0)
	// Drop more of the oldest entries while the window is too large.
	size := 0
	for j := len(entries) - 1; j >= drop; j-- {
		size += entrySize(entries[j])
		if size > MaxWindowBytes {
			drop = j + 1
			break
		}
	}
	for j, x := range entries {
		if j < drop || x.Message.SentAt.Before(cutoff) {
			out.FloorSeq = max(out.FloorSeq, x.Seq)
			continue
		}
		out.Entries = append(out.Entries, x)
	}
	return out
}

func (w *Window) load(ctx context.Context, key string, fresh bool) (*cachedWindow, error) {
	if !fresh {
		if cw, ok := w.cache.Get(key); ok {
			return cw, nil
		}
	}
	e, err := w.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return &cachedWindow{key: key}, nil
	}
	if err != nil {
		return nil, err
	}
	cw := &cachedWindow{key: key, rev: e.Revision()}
	if err := cw.state.UnmarshalJSON(e.Value()); err != nil {
		return nil, fmt.Errorf("decode revision %d: %w", e.Revision(), err)
	}
	w.store(cw)
	return cw, nil
}

func (w *Window) store(cw *cachedWindow) { w.cache.Add(cw.key, cw) }

func (w *Window) forget(key string) { w.cache.Remove(key) }

// entrySize approximates e's encoded size.
func entrySize(e WindowEntry) int {
	m := &e.Message
	return windowEntryOverhead + len(m.Text) + len(m.ID) + len(m.Sender.ID) + len(m.Sender.DisplayName) + len(m.Sender.Role) + len(m.Channel) + 16*len(m.PII)
}

// windowMessage is the part of m a window keeps: what rules read.
func windowMessage(m *vigil.Message) vigil.Message {
	return vigil.Message{
		ID: m.ID, Sender: m.Sender, Channel: m.Channel, Text: m.Text,
		SentAt: m.SentAt.UTC(), PII: m.PII,
	}
}
