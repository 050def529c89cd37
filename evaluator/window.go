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
	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bus"
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

// storedEntry is a WindowEntry as the bucket stores it, one revision of its
// conversation's key per message: short keys and only the fields rules
// read. Tenant and conversation are implied by the key.
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

// encodeEntries encodes the value of one revision: one entry as an object,
// several (the messages of one conversation evaluated in one batch) as an
// array.
func encodeEntries(es []WindowEntry) ([]byte, error) {
	if len(es) == 1 {
		return json.Marshal(toStored(es[0]))
	}
	out := make([]storedEntry, len(es))
	for i, e := range es {
		out[i] = toStored(e)
	}
	return json.Marshal(out)
}

// decodeEntries decodes one revision into its entries. A value that is not
// an entry (a whole-window value of the earlier layout, which has no id)
// yields none.
func decodeEntries(b []byte) ([]WindowEntry, error) {
	var ss []storedEntry
	if len(b) > 0 && b[0] == '[' {
		if err := json.Unmarshal(b, &ss); err != nil {
			return nil, err
		}
	} else {
		var s storedEntry
		if err := json.Unmarshal(b, &s); err != nil {
			return nil, err
		}
		ss = []storedEntry{s}
	}
	out := make([]WindowEntry, 0, len(ss))
	for _, s := range ss {
		if s.ID == "" || s.Seq == 0 {
			continue
		}
		out = append(out, WindowEntry{Seq: s.Seq, Message: vigil.Message{
			ID: s.ID, Sender: vigil.Participant{ID: s.Sender, DisplayName: s.Name, Role: s.Role},
			Channel: s.Channel, Text: s.Text, SentAt: time.Unix(0, s.SentAt).UTC(), PII: s.PII,
		}})
	}
	return out, nil
}

// windowState is a conversation's window as the evaluator uses it: the
// key's revisions decoded, ordered by sequence and trimmed.
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
	return seq <= st.FloorSeq || st.holds(seq)
}

// older reports whether seq comes before everything the window kept after
// trimming: its context (and whether it was applied) is then only in the
// bucket.
func (st *windowState) older(seq uint64) bool {
	return st.FloorSeq > 0 && (len(st.Entries) == 0 || seq < st.Entries[0].Seq)
}

// holds reports whether seq is in the window's entries.
func (st *windowState) holds(seq uint64) bool {
	_, found := slices.BinarySearchFunc(st.Entries, seq, func(e WindowEntry, s uint64) int { return cmp.Compare(e.Seq, s) })
	return found
}

// ContextStore is what a [Window] uses of the context bucket
// ([bus.Bus]): the revisions of a key, and atomic compare-and-set appends.
type ContextStore interface {
	ContextEntries(ctx context.Context, key string) ([]bus.ContextEntry, uint64, error)
	AppendContext(ctx context.Context, appends []bus.ContextAppend) ([]uint64, error)
}

var _ ContextStore = (*bus.Bus)(nil)

// Window keeps each conversation's recent messages (last N and last T) in
// the context bucket, the truth, with a bounded in-memory cache in front of
// it. Each applied message appends one small entry to its conversation's
// key (compare-and-set on the key's latest revision) rather than rewriting
// the whole window: the key's history ([bus.ContextHistory] revisions) is
// the window. A restarted or rebalanced evaluator continues from what the
// bucket holds. Window is safe for concurrent use; callers keep one writer
// per conversation (the owner of its partition), as DESIGN.md asks.
type Window struct {
	store       ContextStore
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

// NewWindow returns a context window over store keeping at most
// maxMessages previous messages (at most [bus.ContextHistory]-1) no older
// than maxAge, caching at most cacheSize conversations in memory. metrics
// may be nil. It returns ErrInvalidOption for a nil store or bad limits.
func NewWindow(store ContextStore, maxMessages int, maxAge time.Duration, cacheSize int, metrics *Metrics) (*Window, error) {
	switch {
	case store == nil:
		return nil, fmt.Errorf("%w: nil context store", ErrInvalidOption)
	case maxMessages <= 0 || maxMessages >= bus.ContextHistory:
		return nil, fmt.Errorf("%w: window messages %d must be between 1 and %d (the context bucket keeps %d revisions per conversation)",
			ErrInvalidOption, maxMessages, bus.ContextHistory-1, bus.ContextHistory)
	case maxAge <= 0:
		return nil, fmt.Errorf("%w: window duration %s must be positive", ErrInvalidOption, maxAge)
	case cacheSize <= 0:
		return nil, fmt.Errorf("%w: window cache size %d must be positive", ErrInvalidOption, cacheSize)
	}
	if metrics == nil {
		metrics = NewMetrics(nil)
	}
	return &Window{
		store: store, maxMessages: maxMessages, maxAge: maxAge, attempts: DefaultWindowCASAttempts,
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
	var lastErr error
	for attempt := 0; attempt < w.attempts; attempt++ {
		if attempt > 0 {
			w.metrics.WindowCASRetries.Inc()
		}
		prevs, p, err := w.prepare(ctx, []*vigil.Message{m}, []uint64{seq}, attempt > 0)
		if err != nil {
			return nil, err
		}
		prev := prevs[0]
		if p == nil {
			return prev, nil
		}
		err = w.commit(ctx, []*pendingAppend{p})
		if err == nil {
			return prev, nil
		}
		if !errors.Is(err, bus.ErrContextBatchRefused) {
			return nil, err
		}
		// Someone else wrote (a previous owner of the partition, or our cache
		// is stale after a restart): the bucket is the truth, re-read it.
		lastErr = err
	}
	return nil, fmt.Errorf("update context window %s after %d attempts: %w: %w",
		WindowKey(m.Tenant, m.ConversationID), w.attempts, ErrWindowConflict, lastErr)
}

// pendingAppend is one conversation's revision [Window.prepare] built and
// [Window.commit] stores: its new entries, and the window with them.
type pendingAppend struct {
	cw   *cachedWindow
	next windowState
	val  []byte
}

// prepare loads the window of ms, messages of one conversation in stream
// order read at seqs (from the bucket when fresh or not cached), and
// returns each message's context — the earlier messages of ms included —
// and the append that applies those not applied yet, or nil when all are.
func (w *Window) prepare(ctx context.Context, ms []*vigil.Message, seqs []uint64, fresh bool) ([][]vigil.Message, *pendingAppend, error) {
	key := WindowKey(ms[0].Tenant, ms[0].ConversationID)
	cw, err := w.load(ctx, key, fresh)
	if err != nil {
		return nil, nil, fmt.Errorf("load context window %s: %w", key, err)
	}
	prevs := make([][]vigil.Message, len(ms))
	st := cw.state
	var added []WindowEntry
	for i, m := range ms {
		if st.older(seqs[i]) {
			prev, applied, err := w.late(ctx, key, m, seqs[i])
			if err != nil {
				return nil, nil, err
			}
			prevs[i] = prev
			if !applied {
				// Older than the cached window: recorded in the bucket,
				// trimmed out of the cache at once.
				added = append(added, WindowEntry{Seq: seqs[i], Message: windowMessage(m)})
			}
			continue
		}
		prevs[i] = w.context(st, m, seqs[i])
		if st.applied(seqs[i]) {
			continue
		}
		e := WindowEntry{Seq: seqs[i], Message: windowMessage(m)}
		// insert appends in place past the cached state's length, which
		// leaves the cached state as it is until the append is stored
		// (a pending append that is never committed is simply dropped).
		st = w.insert(st, e)
		added = append(added, e)
	}
	if len(added) == 0 {
		return prevs, nil, nil
	}
	val, err := encodeEntries(added)
	if err != nil {
		return nil, nil, fmt.Errorf("encode context entries %s: %w", key, err)
	}
	return prevs, &pendingAppend{cw: cw, next: st, val: val}, nil
}

// commit stores ps (distinct conversations) and updates the cache. On any
// error the conversations are dropped from the cache, so the next prepare
// re-reads them (any subset of ps may have been stored); a conflict
// matches bus.ErrContextBatchRefused.
func (w *Window) commit(ctx context.Context, ps []*pendingAppend) error {
	if len(ps) == 0 {
		return nil
	}
	appends := make([]bus.ContextAppend, len(ps))
	for i, p := range ps {
		appends[i] = bus.ContextAppend{Key: p.cw.key, Value: p.val, Revision: p.cw.rev}
	}
	revs, err := w.store.AppendContext(ctx, appends)
	if err != nil {
		for _, p := range ps {
			w.forget(p.cw.key)
		}
		return fmt.Errorf("update context windows: %w", err)
	}
	for i, p := range ps {
		w.remember(&cachedWindow{key: p.cw.key, state: p.next, rev: revs[i]})
	}
	return nil
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
// still sees a full context of maxMessages before it. st is given up: the
// result may share its entries' backing array (appending in place is what
// keeps a full window's append O(1)).
func (w *Window) insert(st windowState, e WindowEntry) windowState {
	entries := st.Entries
	if n := len(entries); n == 0 || entries[n-1].Seq < e.Seq {
		entries = append(entries, e)
	} else {
		i, _ := slices.BinarySearchFunc(entries, e.Seq, func(x WindowEntry, s uint64) int { return cmp.Compare(x.Seq, s) })
		entries = slices.Insert(slices.Clip(entries), i, e)
	}
	return w.trim(entries, max(st.LastSeq, e.Seq), st.FloorSeq)
}

// trim returns the window of entries (ordered by sequence): the newest
// maxMessages+1 no older than maxAge before the newest and within
// MaxWindowBytes, with FloorSeq raised past what it drops. The result may
// share entries' backing array.
func (w *Window) trim(entries []WindowEntry, lastSeq, floor uint64) windowState {
	out := windowState{LastSeq: lastSeq, FloorSeq: floor}
	if len(entries) == 0 {
		return out
	}
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
	for _, x := range entries[:drop] {
		out.FloorSeq = max(out.FloorSeq, x.Seq)
	}
	kept := entries[drop:]
	if !slices.ContainsFunc(kept, func(x WindowEntry) bool { return x.Message.SentAt.Before(cutoff) }) {
		out.Entries = kept
		return out
	}
	out.Entries = make([]WindowEntry, 0, len(kept))
	for _, x := range kept {
		if x.Message.SentAt.Before(cutoff) {
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
	full, latest, err := w.read(ctx, key)
	if err != nil {
		return nil, err
	}
	cw := &cachedWindow{key: key, rev: latest, state: w.trim(full.Entries, full.LastSeq, full.FloorSeq)}
	w.remember(cw)
	return cw, nil
}

// read returns everything the bucket holds for key, untrimmed, and the
// key's latest revision.
func (w *Window) read(ctx context.Context, key string) (windowState, uint64, error) {
	revs, latest, err := w.store.ContextEntries(ctx, key)
	if err != nil {
		return windowState{}, 0, err
	}
	entries := make([]WindowEntry, 0, len(revs))
	for _, r := range revs {
		es, err := decodeEntries(r.Value)
		if err != nil {
			return windowState{}, 0, fmt.Errorf("decode revision %d: %w", r.Revision, err)
		}
		entries = append(entries, es...)
	}
	slices.SortFunc(entries, func(a, b WindowEntry) int { return cmp.Compare(a.Seq, b.Seq) })
	entries = slices.CompactFunc(entries, func(a, b WindowEntry) bool { return a.Seq == b.Seq })
	st := windowState{Entries: entries}
	if n := len(entries); n > 0 {
		st.LastSeq = entries[n-1].Seq
		if len(revs) >= bus.ContextHistory {
			// The bucket dropped older revisions: whatever came before the
			// oldest one kept counts as applied.
			st.FloorSeq = entries[0].Seq - 1
		}
	}
	return st, latest, nil
}

// late returns the context of m, read at seq before everything the cached
// window kept (a redelivery that arrives after more than the window's worth
// of later messages was applied), from everything the bucket holds, and
// whether seq is applied already. Trimming the cached window must not make
// such a message count as applied: it would be evaluated without its
// context and never recorded.
func (w *Window) late(ctx context.Context, key string, m *vigil.Message, seq uint64) ([]vigil.Message, bool, error) {
	full, _, err := w.read(ctx, key)
	if err != nil {
		return nil, false, fmt.Errorf("load context window %s: %w", key, err)
	}
	return w.context(full, m, seq), full.applied(seq), nil
}

func (w *Window) remember(cw *cachedWindow) { w.cache.Add(cw.key, cw) }

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
