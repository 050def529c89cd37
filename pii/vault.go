package pii

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/vigilhq/vigil"
)

// Errors returned by the vault. All are wrapped with the operation and the
// token or hashed subject; none carries a value.
var (
	// ErrReasonRequired is returned by [Vault.Detokenize] when the request
	// has no reason. Nothing is read and nothing is audited.
	ErrReasonRequired = errors.New("detokenize: reason required")
	// ErrActorRequired is returned by [Vault.Detokenize] when the request
	// names no actor.
	ErrActorRequired = errors.New("detokenize: actor required")
	// ErrSubjectShredded is returned by [Vault.Detokenize] when a data
	// subject linked to the token has been shredded: the value is gone for
	// good.
	ErrSubjectShredded = errors.New("data subject shredded")
	// ErrSubjectRestricted is returned by [Vault.Detokenize] while a data
	// subject linked to the token is restricted (see [Vault.Restrict]).
	ErrSubjectRestricted = errors.New("data subject restricted")
	// ErrTokenNotFound is returned by [Vault.Detokenize] for a well-formed
	// token the vault holds no value for.
	ErrTokenNotFound = errors.New("token not found")
	// ErrInvalidToken is returned for text that is not exactly one token.
	ErrInvalidToken = errors.New("invalid token")
	// ErrNoAuditor is returned by [Vault.Detokenize] when the vault was built
	// without [WithAuditor]: values are never read unaudited.
	ErrNoAuditor = errors.New("no auditor configured")
	// ErrNoSecureDeleter is returned by [Vault.Shred] when the vault was
	// built without [WithSecureDeleter]: a plain KV delete would leave the
	// key bytes on disk.
	ErrNoSecureDeleter = errors.New("no secure deleter configured")
	// ErrNoSubject is returned when a value would be stored without any data
	// subject, or a subject id is empty.
	ErrNoSubject = errors.New("no data subject")
	// ErrCorrupt is returned when stored ciphertext or key material fails
	// authentication (tampering, wrong key provider, wrong tenant).
	ErrCorrupt = errors.New("vault record failed authentication")
)

// Auditor writes audit events; the caller wires it to the audit log (for
// example bus.PublishAudit). Audit must not return before the event is
// durable: a value is only returned after its audit event is written.
type Auditor interface {
	Audit(ctx context.Context, ev vigil.AuditEvent) error
}

// SecureDeleter removes a KV key so that its bytes are overwritten on disk,
// every revision of it. The bus package implements it with SecureDeleteMsg
// on the bucket's backing stream.
type SecureDeleter interface {
	SecureDeleteKey(ctx context.Context, kv jetstream.KeyValue, key string) error
}

// AuditorFunc adapts a function to [Auditor].
type AuditorFunc func(ctx context.Context, ev vigil.AuditEvent) error

// Audit implements [Auditor].
func (f AuditorFunc) Audit(ctx context.Context, ev vigil.AuditEvent) error { return f(ctx, ev) }

// SecureDeleterFunc adapts a function to [SecureDeleter], e.g. to wrap a
// bus method with a different parameter type.
type SecureDeleterFunc func(ctx context.Context, kv jetstream.KeyValue, key string) error

// SecureDeleteKey implements [SecureDeleter].
func (f SecureDeleterFunc) SecureDeleteKey(ctx context.Context, kv jetstream.KeyValue, key string) error {
	return f(ctx, kv, key)
}

var (
	_ Auditor       = AuditorFunc(nil)
	_ SecureDeleter = SecureDeleterFunc(nil)
)

// Request is the who and why of a detokenization, recorded in the audit log.
type Request struct {
	// Actor is the user or service reading the value.
	Actor string
	// Reason is why the value is read (case number, review id…). Required.
	Reason string
}

// Audit event vocabulary.
const (
	// AuditActionDetokenize is the Action of detokenization audit events.
	AuditActionDetokenize = "pii.detokenize"
	// AuditDetailKind and AuditDetailResult are Details keys of those events.
	AuditDetailKind   = "kind"
	AuditDetailResult = "result"
)

// Key prefixes of the vault bucket. Tenants, hashed subjects and token ids
// are the other segments; no raw subject id or value is ever part of a key.
const (
	prefixKey      = "key"      // key.<tenant>.<subject-hash>: wrapped subject key
	prefixVal      = "val"      // val.<tenant>.<kind>_<token-id>.<subject-hash>: ciphertext
	prefixSub      = "sub"      // sub.<tenant>.<subject-hash>.<kind>_<token-id>: index
	prefixTomb     = "tomb"     // tomb.<tenant>.<subject-hash>: shredded marker
	prefixRestrict = "restrict" // restrict.<tenant>.<subject-hash>: Art. 18 restriction
)

const recordVersion = 1

// Vault keeps original values encrypted in a JetStream KV bucket. It is safe
// for concurrent use. See the package documentation for the attribution and
// erasure policies.
type Vault struct {
	kv      jetstream.KeyValue
	keys    KeyProvider
	audit   Auditor
	deleter SecureDeleter
	metrics *Metrics
	logger  *slog.Logger
	timeout time.Duration
	deks    *lru.Cache[string, []byte]
	tombs   *lru.Cache[string, struct{}]
	now     func() time.Time
}

// NewVault returns a vault over kv (the bus package owns the bucket) whose
// tenant keys come from keys.
//
// Available options:
//   - [WithAuditor]: required for [Vault.Detokenize].
//   - [WithSecureDeleter]: required for [Vault.Shred].
//   - [WithVaultMetrics], [WithVaultLogger], [WithKeyCacheSize],
//     [WithVaultTimeout].
func NewVault(kv jetstream.KeyValue, keys KeyProvider, opts ...VaultOption) (*Vault, error) {
	if kv == nil || keys == nil {
		return nil, fmt.Errorf("%w: vault needs a KV bucket and a key provider", ErrInvalidOption)
	}
	o := vaultOptions{keyCacheSize: DefaultKeyCacheSize, timeout: DefaultVaultTimeout}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	if o.logger == nil {
		o.logger = slog.New(slog.DiscardHandler)
	}
	return &Vault{
		kv: kv, keys: keys, audit: o.auditor, deleter: o.deleter, metrics: o.metrics,
		logger:  o.logger.With("component", "pii.vault"),
		timeout: o.timeout,
		deks:    newCache[string, []byte](o.keyCacheSize),
		tombs:   newCache[string, struct{}](o.keyCacheSize),
		now:     time.Now,
	}, nil
}

// withTimeout applies the vault's default timeout to a ctx without deadline.
func (v *Vault) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, v.timeout)
}

// tenantSegment is the tenant's part of a key: the id itself when it is
// made of letters, digits, '-' and '_', else a hash of it.
func tenantSegment(tenant string) string {
	ok := tenant != ""
	for i := 0; i < len(tenant) && ok; i++ {
		c := tenant[i]
		ok = isAlnum(c) || c == '-' || c == '_'
	}
	if ok {
		return tenant
	}
	h := sha256.Sum256([]byte(tenant))
	return "h_" + hex.EncodeToString(h[:16])
}

// SubjectHash returns the keyed hash naming subject in the vault's keys and
// logs: HMAC-SHA256 under the tenant's token key, 32 hex digits.
func (v *Vault) SubjectHash(ctx context.Context, tenant, subject string) (string, error) {
	if subject == "" {
		return "", ErrNoSubject
	}
	key, err := v.keys.TokenKey(ctx, tenant)
	if err != nil {
		return "", fmt.Errorf("subject hash: %w", err)
	}
	return subjectHash(key, subject), nil
}

func subjectHash(tokenKey []byte, subject string) string {
	m := hmac.New(sha256.New, tokenKey)
	m.Write([]byte("vigil/pii/subject/v1\x00"))
	m.Write([]byte(subject))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

func tokenSegment(k Kind, id string) string { return string(k) + "_" + id }

func join(parts ...string) string { return strings.Join(parts, ".") }

// Entry is one value for [Vault.Store].
type Entry struct {
	// Kind and TokenID name the token that replaced the value.
	Kind    Kind
	TokenID string
	// Value is the original value as written.
	Value string
	// Subjects are the data-subject ids the value is attributed to.
	Subjects []string
}

// Store keeps entries of tenant: for every subject of an entry it links the
// token to the subject and stores the value encrypted under the subject's
// key (created on first use). Values with a shredded subject are linked but
// not stored. Store returns only after every write is acknowledged.
func (v *Vault) Store(ctx context.Context, tenant string, entries []Entry) error {
	if len(entries) == 0 {
		return nil
	}
	ctx, cancel := v.withTimeout(ctx)
	defer cancel()
	tk, err := v.keys.TokenKey(ctx, tenant)
	if err != nil {
		return fmt.Errorf("vault store: %w", err)
	}
	t := tenantSegment(tenant)
	for i := range entries {
		if err := v.store(ctx, tenant, t, tk, &entries[i]); err != nil {
			return err
		}
	}
	return nil
}

func (v *Vault) store(ctx context.Context, tenant, t string, tk []byte, e *Entry) error {
	if len(e.Subjects) == 0 {
		return fmt.Errorf("vault store %s: %w", formatToken(e.Kind, e.TokenID), ErrNoSubject)
	}
	ts := tokenSegment(e.Kind, e.TokenID)
	shs := make([]string, len(e.Subjects))
	shredded := false
	for i, s := range e.Subjects {
		if s == "" {
			return fmt.Errorf("vault store %s: %w", formatToken(e.Kind, e.TokenID), ErrNoSubject)
		}
		shs[i] = subjectHash(tk, s)
		sh, err := v.isShredded(ctx, t, shs[i])
		if err != nil {
			return fmt.Errorf("vault store %s: %w", formatToken(e.Kind, e.TokenID), err)
		}
		shredded = shredded || sh
	}
	// The index goes first: if a crash follows, erasure still finds the
	// token, and a value without index entry never exists.
	for _, sh := range shs {
		if _, err := v.kv.Put(ctx, join(prefixSub, t, sh, ts), []byte(e.Kind)); err != nil {
			return fmt.Errorf("vault store %s: index: %w", formatToken(e.Kind, e.TokenID), err)
		}
	}
	if shredded {
		// A shredded subject's values are never stored again.
		return nil
	}
	for _, sh := range shs {
		dek, err := v.subjectKey(ctx, tenant, t, sh, true)
		if err != nil {
			return fmt.Errorf("vault store %s: %w", formatToken(e.Kind, e.TokenID), err)
		}
		ct, err := seal(dek, []byte(e.Value), valueAAD(t, ts, sh))
		if err != nil {
			return fmt.Errorf("vault store %s: %w", formatToken(e.Kind, e.TokenID), err)
		}
		key := join(prefixVal, t, ts, sh)
		if _, err := v.kv.Put(ctx, key, ct); err != nil {
			return fmt.Errorf("vault store %s: %w", formatToken(e.Kind, e.TokenID), err)
		}
		if v.metrics != nil {
			v.metrics.VaultWrites.Inc()
		}
		// A shred may have raced this write (another replica): look again
		// and take the value back if so.
		if gone, err := v.tombstoned(ctx, t, sh); err == nil && gone && v.deleter != nil {
			if err := v.deleter.SecureDeleteKey(ctx, v.kv, key); err != nil {
				return fmt.Errorf("vault store %s: undo after concurrent shred: %w", formatToken(e.Kind, e.TokenID), err)
			}
		}
	}
	return nil
}

func valueAAD(t, ts, sh string) []byte {
	return []byte("vigil/pii/value/v1\x00" + t + "\x00" + ts + "\x00" + sh)
}
func keyAAD(t, sh string) []byte { return []byte("vigil/pii/subject-key/v1\x00" + t + "\x00" + sh) }

// seal encrypts with AES-256-GCM: version byte, 12-byte nonce, ciphertext.
func seal(key, plain, aad []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	out := make([]byte, 1+g.NonceSize(), 1+g.NonceSize()+len(plain)+g.Overhead())
	out[0] = recordVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("seal: nonce: %w", err)
	}
	return g.Seal(out, out[1:1+g.NonceSize()], plain, aad), nil
}

func open(key, rec, aad []byte) ([]byte, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	g, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	if len(rec) < 1+g.NonceSize()+g.Overhead() || rec[0] != recordVersion {
		return nil, ErrCorrupt
	}
	p, err := g.Open(nil, rec[1:1+g.NonceSize()], rec[1+g.NonceSize():], aad)
	if err != nil {
		return nil, ErrCorrupt
	}
	return p, nil
}

var errNoSubjectKey = errors.New("subject key missing")

// subjectKey returns the subject's data key, unwrapping it with the tenant
// KEK, or creating and storing it when create is set.
func (v *Vault) subjectKey(ctx context.Context, tenant, t, sh string, create bool) ([]byte, error) {
	ck := t + "\x00" + sh
	if k, ok := v.deks.Get(ck); ok {
		return k, nil
	}
	kek, err := v.keys.KeyEncryptionKey(ctx, tenant)
	if err != nil {
		return nil, fmt.Errorf("subject key: %w", err)
	}
	key := join(prefixKey, t, sh)
	for attempt := 0; attempt < 2; attempt++ {
		e, err := v.kv.Get(ctx, key)
		if err == nil {
			dek, err := open(kek, e.Value(), keyAAD(t, sh))
			if err != nil {
				return nil, fmt.Errorf("subject key %s: %w", sh, err)
			}
			v.deks.Add(ck, dek)
			return dek, nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("subject key %s: %w", sh, err)
		}
		if !create {
			return nil, errNoSubjectKey
		}
		dek := make([]byte, KeySize)
		if _, err := rand.Read(dek); err != nil {
			return nil, fmt.Errorf("subject key: %w", err)
		}
		wrapped, err := seal(kek, dek, keyAAD(t, sh))
		if err != nil {
			return nil, fmt.Errorf("subject key %s: %w", sh, err)
		}
		if _, err := v.kv.Create(ctx, key, wrapped); err != nil {
			if errors.Is(err, jetstream.ErrKeyExists) {
				continue // another writer won: use its key
			}
			return nil, fmt.Errorf("subject key %s: %w", sh, err)
		}
		v.deks.Add(ck, dek)
		return dek, nil
	}
	return nil, fmt.Errorf("subject key %s: concurrent creation did not settle", sh)
}

// isShredded reports whether the subject has a tombstone, caching positive
// answers (a shred is permanent).
func (v *Vault) isShredded(ctx context.Context, t, sh string) (bool, error) {
	if _, ok := v.tombs.Get(t + "\x00" + sh); ok {
		return true, nil
	}
	return v.tombstoned(ctx, t, sh)
}

func (v *Vault) tombstoned(ctx context.Context, t, sh string) (bool, error) {
	_, err := v.kv.Get(ctx, join(prefixTomb, t, sh))
	switch {
	case err == nil:
		v.tombs.Add(t+"\x00"+sh, struct{}{})
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("tombstone %s: %w", sh, err)
	}
}

func (v *Vault) restricted(ctx context.Context, t, sh string) (bool, error) {
	_, err := v.kv.Get(ctx, join(prefixRestrict, t, sh))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("restriction %s: %w", sh, err)
	}
}

// listKeys returns the keys matching a filter (wildcards allowed).
func (v *Vault) listKeys(ctx context.Context, filter string) ([]string, error) {
	kl, err := v.kv.ListKeysFiltered(ctx, filter)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return nil, nil
		}
		return nil, err
	}
	var keys []string
	for k := range kl.Keys() {
		keys = append(keys, k)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return keys, nil
}

// Detokenize returns the original value of token (its ⟦KIND:id⟧ text) for
// tenant, after writing an audit event (actor, reason, token, kind and
// result; never the value) through the [Auditor] — also when the read is
// denied. A request without reason returns [ErrReasonRequired], without
// actor [ErrActorRequired]; a shredded subject [ErrSubjectShredded]; a
// restricted one [ErrSubjectRestricted]; an unknown token
// [ErrTokenNotFound]. If the audit event cannot be written, no value is
// returned.
func (v *Vault) Detokenize(ctx context.Context, tenant, token string, req Request) (string, error) {
	if strings.TrimSpace(req.Reason) == "" {
		return "", ErrReasonRequired
	}
	if strings.TrimSpace(req.Actor) == "" {
		return "", ErrActorRequired
	}
	if v.audit == nil {
		return "", fmt.Errorf("detokenize: %w", ErrNoAuditor)
	}
	tok, ok := ParseToken(token)
	if !ok {
		return "", fmt.Errorf("detokenize: %w", ErrInvalidToken)
	}
	ctx, cancel := v.withTimeout(ctx)
	defer cancel()
	value, err := v.read(ctx, tenant, tok)
	result := resultOK
	switch {
	case err == nil:
	case errors.Is(err, ErrSubjectShredded):
		result = resultShredded
	case errors.Is(err, ErrSubjectRestricted):
		result = resultRestricted
	case errors.Is(err, ErrTokenNotFound):
		result = resultNotFound
	default:
		result = resultError
	}
	if v.metrics != nil {
		v.metrics.Detokenizations.WithLabelValues(result).Inc()
	}
	if result == resultError {
		return "", fmt.Errorf("detokenize %s: %w", tok, err)
	}
	ev := vigil.AuditEvent{
		ID:      newEventID(),
		Tenant:  tenant,
		Actor:   req.Actor,
		Action:  AuditActionDetokenize,
		Target:  tok.String(),
		Reason:  req.Reason,
		At:      v.now().UTC(),
		Details: map[string]string{AuditDetailKind: string(tok.Kind), AuditDetailResult: result},
	}
	if aerr := v.audit.Audit(ctx, ev); aerr != nil {
		return "", fmt.Errorf("detokenize %s: audit: %w", tok, aerr)
	}
	if err != nil {
		return "", fmt.Errorf("detokenize %s: %w", tok, err)
	}
	return value, nil
}

func newEventID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "a-" + hex.EncodeToString(b[:])
}

func (v *Vault) read(ctx context.Context, tenant string, tok Token) (string, error) {
	t := tenantSegment(tenant)
	ts := tokenSegment(tok.Kind, tok.ID)
	keys, err := v.listKeys(ctx, join(prefixSub, t, "*", ts))
	if err != nil {
		return "", fmt.Errorf("list subjects: %w", err)
	}
	if len(keys) == 0 {
		return "", ErrTokenNotFound
	}
	shs := make([]string, 0, len(keys))
	for _, k := range keys {
		parts := strings.Split(k, ".")
		if len(parts) == 4 {
			shs = append(shs, parts[2])
		}
	}
	for _, sh := range shs {
		gone, err := v.isShredded(ctx, t, sh)
		if err != nil {
			return "", err
		}
		if gone {
			return "", ErrSubjectShredded
		}
	}
	for _, sh := range shs {
		r, err := v.restricted(ctx, t, sh)
		if err != nil {
			return "", err
		}
		if r {
			return "", ErrSubjectRestricted
		}
	}
	for _, sh := range shs {
		e, err := v.kv.Get(ctx, join(prefixVal, t, ts, sh))
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read value: %w", err)
		}
		dek, err := v.subjectKey(ctx, tenant, t, sh, false)
		if errors.Is(err, errNoSubjectKey) {
			return "", ErrSubjectShredded
		}
		if err != nil {
			return "", err
		}
		p, err := open(dek, e.Value(), valueAAD(t, ts, sh))
		if err != nil {
			return "", fmt.Errorf("read value: %w", err)
		}
		return string(p), nil
	}
	return "", ErrTokenNotFound
}

// SubjectTokens returns the tokens (⟦KIND:id⟧ texts) linked to subject,
// shredded or not, sorted as the bucket lists them.
func (v *Vault) SubjectTokens(ctx context.Context, tenant, subject string) ([]string, error) {
	ctx, cancel := v.withTimeout(ctx)
	defer cancel()
	sh, err := v.SubjectHash(ctx, tenant, subject)
	if err != nil {
		return nil, fmt.Errorf("subject tokens: %w", err)
	}
	keys, err := v.listKeys(ctx, join(prefixSub, tenantSegment(tenant), sh, ">"))
	if err != nil {
		return nil, fmt.Errorf("subject tokens %s: %w", sh, err)
	}
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		ts := k[strings.LastIndexByte(k, '.')+1:]
		kind, id, ok := strings.Cut(ts, "_")
		if ok {
			out = append(out, formatToken(Kind(kind), id))
		}
	}
	return out, nil
}

type tombstone struct {
	ShreddedAt time.Time `json:"shredded_at"`
}

type restriction struct {
	Basis        string    `json:"basis"`
	RestrictedAt time.Time `json:"restricted_at"`
}

// Shred crypto-shreds subject: it records a tombstone, overwrites on disk
// every stored copy of the subject's tokens (the copies held for other
// subjects too) and then the subject's wrapped key, through the
// [SecureDeleter]. Tokens in messages remain; [Vault.Detokenize] of them
// returns [ErrSubjectShredded] from then on, and values attributed to the
// subject are never stored again. Shred is idempotent: running it again
// finishes an interrupted shred. The caller records the erasure in the
// audit log.
func (v *Vault) Shred(ctx context.Context, tenant, subject string) error {
	if v.deleter == nil {
		return fmt.Errorf("shred: %w", ErrNoSecureDeleter)
	}
	ctx, cancel := v.withTimeout(ctx)
	defer cancel()
	sh, err := v.SubjectHash(ctx, tenant, subject)
	if err != nil {
		return fmt.Errorf("shred: %w", err)
	}
	t := tenantSegment(tenant)
	// Tombstone first, so concurrent tokenization stops storing values.
	tb, _ := json.Marshal(tombstone{ShreddedAt: v.now().UTC()})
	if _, err := v.kv.Put(ctx, join(prefixTomb, t, sh), tb); err != nil {
		return fmt.Errorf("shred %s: tombstone: %w", sh, err)
	}
	v.tombs.Add(t+"\x00"+sh, struct{}{})
	v.deks.Remove(t + "\x00" + sh)
	subKeys, err := v.listKeys(ctx, join(prefixSub, t, sh, ">"))
	if err != nil {
		return fmt.Errorf("shred %s: list tokens: %w", sh, err)
	}
	for _, k := range subKeys {
		ts := k[strings.LastIndexByte(k, '.')+1:]
		vals, err := v.listKeys(ctx, join(prefixVal, t, ts, "*"))
		if err != nil {
			return fmt.Errorf("shred %s: list values: %w", sh, err)
		}
		for _, vk := range vals {
			if err := v.deleter.SecureDeleteKey(ctx, v.kv, vk); err != nil {
				return fmt.Errorf("shred %s: delete value: %w", sh, err)
			}
		}
	}
	keyName := join(prefixKey, t, sh)
	// History, not Get: a key deleted without overwrite still has bytes.
	if _, err := v.kv.History(ctx, keyName); err == nil {
		if err := v.deleter.SecureDeleteKey(ctx, v.kv, keyName); err != nil {
			return fmt.Errorf("shred %s: delete key: %w", sh, err)
		}
	} else if !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("shred %s: read key: %w", sh, err)
	}
	if v.metrics != nil {
		v.metrics.Shreds.Inc()
	}
	v.logger.InfoContext(ctx, "subject shredded", "subject_hash", sh, "tokens", len(subKeys))
	return nil
}

// Restrict blocks detokenization of every token of subject
// ([ErrSubjectRestricted]) without destroying anything, recording basis
// (the legal ground, e.g. "SEC 17a-4 retention") — GDPR Art. 18.
func (v *Vault) Restrict(ctx context.Context, tenant, subject, basis string) error {
	if strings.TrimSpace(basis) == "" {
		return fmt.Errorf("restrict: %w: basis required", ErrInvalidOption)
	}
	ctx, cancel := v.withTimeout(ctx)
	defer cancel()
	sh, err := v.SubjectHash(ctx, tenant, subject)
	if err != nil {
		return fmt.Errorf("restrict: %w", err)
	}
	b, _ := json.Marshal(restriction{Basis: basis, RestrictedAt: v.now().UTC()})
	if _, err := v.kv.Put(ctx, join(prefixRestrict, tenantSegment(tenant), sh), b); err != nil {
		return fmt.Errorf("restrict %s: %w", sh, err)
	}
	return nil
}

// Unrestrict lifts a restriction set by [Vault.Restrict]. Lifting a
// restriction that does not exist is not an error.
func (v *Vault) Unrestrict(ctx context.Context, tenant, subject string) error {
	ctx, cancel := v.withTimeout(ctx)
	defer cancel()
	sh, err := v.SubjectHash(ctx, tenant, subject)
	if err != nil {
		return fmt.Errorf("unrestrict: %w", err)
	}
	if err := v.kv.Delete(ctx, join(prefixRestrict, tenantSegment(tenant), sh)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("unrestrict %s: %w", sh, err)
	}
	return nil
}
