package pii

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/vigilhq/vigil"
)

// Tokenizer replaces personal data with tokens and keeps the originals in a
// [Vault]. It is safe for concurrent use.
type Tokenizer struct {
	vault     *Vault
	def       *Detector
	tenants   map[string]*Detector
	metrics   *Metrics
	logger    *slog.Logger
	stored    *lru.Cache[storedKey, struct{}]
	mu        sync.RWMutex
	tokenKeys map[string]*tokenHasher
}

// storedKey names one (token, subject) pair the vault holds.
type storedKey struct {
	tenant, kind, id, subject string
}

// NewTokenizer returns a tokenizer storing originals in v.
//
// Available options:
//   - [WithPolicy]: the default detection policy.
//   - [WithTenantPolicy]: a policy for one tenant.
//   - [WithMetrics]: Prometheus metrics.
//   - [WithCacheSize]: the size of the stored-value cache.
//   - [WithLogger].
func NewTokenizer(v *Vault, opts ...Option) (*Tokenizer, error) {
	if v == nil {
		return nil, fmt.Errorf("%w: tokenizer needs a vault", ErrInvalidOption)
	}
	o := options{cacheSize: DefaultCacheSize, tenants: map[string]Policy{}}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	def, err := NewDetector(o.policy)
	if err != nil {
		return nil, err
	}
	t := &Tokenizer{
		vault: v, def: def, tenants: make(map[string]*Detector, len(o.tenants)),
		metrics: o.metrics, logger: o.logger, stored: newCache[storedKey, struct{}](o.cacheSize),
		tokenKeys: map[string]*tokenHasher{},
	}
	if t.logger == nil {
		t.logger = slog.New(slog.DiscardHandler)
	}
	t.logger = t.logger.With("component", "pii.tokenizer")
	for tenant, p := range o.tenants {
		d, err := NewDetector(p)
		if err != nil {
			return nil, fmt.Errorf("tenant %s policy: %w", tenant, err)
		}
		t.tenants[tenant] = d
	}
	return t, nil
}

// Vault returns the tokenizer's vault.
func (t *Tokenizer) Vault() *Vault { return t.vault }

func (t *Tokenizer) detector(tenant string) *Detector {
	if d, ok := t.tenants[tenant]; ok {
		return d
	}
	return t.def
}

func (t *Tokenizer) tokenKey(ctx context.Context, tenant string) (*tokenHasher, error) {
	t.mu.RLock()
	h, ok := t.tokenKeys[tenant]
	t.mu.RUnlock()
	if ok {
		return h, nil
	}
	k, err := t.vault.keys.TokenKey(ctx, tenant)
	if err != nil {
		return nil, err
	}
	h = newTokenHasher(k)
	t.mu.Lock()
	if len(t.tokenKeys) > 10000 {
		clear(t.tokenKeys)
	}
	t.tokenKeys[tenant] = h
	t.mu.Unlock()
	return h, nil
}

// TokenFor returns the token that value of kind k becomes for tenant, as
// the tokenizer would write it, without storing anything.
func (t *Tokenizer) TokenFor(ctx context.Context, tenant string, k Kind, value string) (string, error) {
	key, err := t.tokenKey(ctx, tenant)
	if err != nil {
		return "", fmt.Errorf("token for: %w", err)
	}
	return formatToken(k, key.id(k, normalize(k, value, t.detector(tenant).pol.region))), nil
}

// batch collects the vault entries of one tokenization.
type batch struct {
	entries []Entry
	counts  [numKinds]int
	found   bool
}

func (b *batch) add(k Kind, id, value, subject string) {
	// Linear dedup: a message holds a handful of values.
	for i := range b.entries {
		e := &b.entries[i]
		if e.TokenID == id && e.Kind == k && e.Subjects[0] == subject {
			return
		}
	}
	b.entries = append(b.entries, Entry{Kind: k, TokenID: id, Value: value, Subjects: []string{subject}})
}

// replace tokenizes text with det, attributing values to dir's sender (and
// a matched participant for names).
func (t *Tokenizer) replace(det *Detector, key *tokenHasher, text string, fs []Finding, dir *Directory, b *batch) string {
	if len(fs) == 0 {
		return text
	}
	var sb strings.Builder
	sb.Grow(len(text) + 16*len(fs))
	prev := 0
	for _, f := range fs {
		raw := text[f.Start:f.End]
		norm := f.norm
		if norm == "" {
			norm = normalize(f.Kind, raw, det.pol.region)
		}
		id := key.id(f.Kind, norm)
		sb.WriteString(text[prev:f.Start])
		sb.WriteString(formatToken(f.Kind, id))
		prev = f.End
		// A directory name belongs to its participant; everything else to
		// the sender (see the package documentation).
		subject := dir.Sender.ID
		if f.Subject != "" {
			subject = f.Subject
		}
		b.add(f.Kind, id, raw, subject)
		if i := kindIndex(f.Kind); i >= 0 {
			b.counts[i]++
			b.found = true
		}
	}
	sb.WriteString(text[prev:])
	return sb.String()
}

// Tokenize replaces the personal data in text with tokens and stores the
// originals, attributed to dir.Sender.ID (names from the directory to their
// participant), before returning. The findings' spans refer to text. A text with
// findings but no sender id returns [ErrNoSubject].
func (t *Tokenizer) Tokenize(ctx context.Context, tenant, text string, dir Directory) (string, []Finding, error) {
	det := t.detector(tenant)
	if t.metrics != nil {
		t.metrics.ScannedBytes.Add(float64(len(text)))
	}
	// Detect first: most texts hold nothing and need no key.
	fs := det.Detect(text, dir)
	if len(fs) == 0 {
		return text, nil, nil
	}
	if dir.Sender.ID == "" {
		return "", nil, fmt.Errorf("tokenize: %w", ErrNoSubject)
	}
	key, err := t.tokenKey(ctx, tenant)
	if err != nil {
		return "", nil, fmt.Errorf("tokenize: %w", err)
	}
	var b batch
	out := t.replace(det, key, text, fs, &dir, &b)
	if err := t.store(ctx, tenant, &b); err != nil {
		return "", nil, fmt.Errorf("tokenize: %w", err)
	}
	t.count(&b)
	return out, fs, nil
}

// TokenizeMessage replaces the personal data of m — Text,
// Sender.DisplayName, Participants[].DisplayName — with tokens, sets m.PII
// (kind → count of values found in the text) and adds the sender and
// participant ids to m.Subjects. The originals are in the vault before it
// returns, so m can be published afterwards. On error m is unchanged.
// Tokens already in m are left alone, so tokenizing twice changes nothing.
func (t *Tokenizer) TokenizeMessage(ctx context.Context, m *vigil.Message) error {
	if m == nil {
		return fmt.Errorf("tokenize message: %w: nil message", ErrInvalidOption)
	}
	start := time.Now()
	scanned := len(m.Text)
	if m.Tenant == "" {
		return fmt.Errorf("tokenize message %s: %w: empty tenant", m.ID, ErrInvalidOption)
	}
	if m.Sender.ID == "" {
		return fmt.Errorf("tokenize message %s: %w", m.ID, ErrNoSubject)
	}
	det := t.detector(m.Tenant)
	key, err := t.tokenKey(ctx, m.Tenant)
	if err != nil {
		return fmt.Errorf("tokenize message %s: %w", m.ID, err)
	}
	dir := Directory{Sender: m.Sender, Participants: m.Participants}
	var b batch
	text := t.replace(det, key, m.Text, det.Detect(m.Text, dir), &dir, &b)

	name := func(p vigil.Participant) (string, error) {
		if p.DisplayName == "" || len(FindTokens(p.DisplayName)) > 0 || !det.pol.enabled[idxName] {
			return p.DisplayName, nil
		}
		if p.ID == "" {
			return "", ErrNoSubject
		}
		id := key.id(KindName, normalize(KindName, p.DisplayName, ""))
		b.add(KindName, id, p.DisplayName, p.ID)
		return formatToken(KindName, id), nil
	}
	senderName, err := name(m.Sender)
	if err != nil {
		return fmt.Errorf("tokenize message %s: sender: %w", m.ID, err)
	}
	names := make([]string, len(m.Participants))
	for i, p := range m.Participants {
		if names[i], err = name(p); err != nil {
			return fmt.Errorf("tokenize message %s: participant %d: %w", m.ID, i, err)
		}
	}
	// Metadata values and attachment names are free text from the
	// platform ("subject: John Smith's statement.pdf"): scan them like the
	// message text. Metadata keys are the platform's labels and stay.
	var meta map[string]string
	if len(m.Metadata) > 0 {
		meta = make(map[string]string, len(m.Metadata))
		for k, v := range m.Metadata {
			meta[k] = t.replace(det, key, v, det.Detect(v, dir), &dir, &b)
			scanned += len(v)
		}
	}
	attNames := make([]string, len(m.Attachments))
	for i, a := range m.Attachments {
		attNames[i] = t.replace(det, key, a.Name, det.Detect(a.Name, dir), &dir, &b)
		scanned += len(a.Name)
	}
	if err := t.store(ctx, m.Tenant, &b); err != nil {
		return fmt.Errorf("tokenize message %s: %w", m.ID, err)
	}

	m.Text = text
	if meta != nil {
		m.Metadata = meta
	}
	for i := range m.Attachments {
		m.Attachments[i].Name = attNames[i]
	}
	m.Sender.DisplayName = senderName
	for i := range m.Participants {
		m.Participants[i].DisplayName = names[i]
	}
	if b.found {
		if m.PII == nil {
			m.PII = make(map[string]int)
		}
		for i, n := range b.counts {
			if n > 0 {
				m.PII[string(allKinds[i])] += n
			}
		}
	}
	m.Subjects = appendSubjects(m.Subjects, m.Sender.ID)
	for _, p := range m.Participants {
		m.Subjects = appendSubjects(m.Subjects, p.ID)
	}
	t.count(&b)
	if t.metrics != nil {
		t.metrics.ScannedBytes.Add(float64(scanned))
		t.metrics.TokenizeDuration.Observe(time.Since(start).Seconds())
	}
	return nil
}

func appendSubjects(subjects []string, id string) []string {
	if id == "" {
		return subjects
	}
	for _, s := range subjects {
		if s == id {
			return subjects
		}
	}
	return append(subjects, id)
}

func (t *Tokenizer) count(b *batch) {
	if t.metrics == nil {
		return
	}
	for i, n := range b.counts {
		if n > 0 {
			t.metrics.Findings.WithLabelValues(string(allKinds[i])).Add(float64(n))
		}
	}
}

// store writes the batch entries the cache does not know yet.
func (t *Tokenizer) store(ctx context.Context, tenant string, b *batch) error {
	var todo []Entry
	for _, e := range b.entries {
		hit := true
		for _, s := range e.Subjects {
			if _, ok := t.stored.Get(storedKey{tenant, string(e.Kind), e.TokenID, s}); !ok {
				hit = false
				break
			}
		}
		if t.metrics != nil {
			if hit {
				t.metrics.CacheHits.Inc()
			} else {
				t.metrics.CacheMisses.Inc()
			}
		}
		if !hit {
			// All subjects go to the vault, so its shredded check sees them all.
			todo = append(todo, e)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	if err := t.vault.Store(ctx, tenant, todo); err != nil {
		return err
	}
	// A stale entry after a shred elsewhere is harmless: it only skips a
	// write, it never recreates data.
	for _, e := range todo {
		for _, s := range e.Subjects {
			t.stored.Add(storedKey{tenant, string(e.Kind), e.TokenID, s}, struct{}{})
		}
	}
	return nil
}
