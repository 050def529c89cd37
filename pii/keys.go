package pii

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeySize is the size in bytes of every key a [KeyProvider] returns.
const KeySize = 32

// Environment variables read by [StaticKeysFromEnv].
const (
	EnvKEK      = "VIGIL_PII_KEK"
	EnvTokenKey = "VIGIL_PII_TOKEN_KEY"
)

// ErrUnknownTenant is returned (wrapped) by a [KeyProvider] that has no keys
// for a tenant.
var ErrUnknownTenant = errors.New("no keys for tenant")

// ErrInvalidKey is returned (wrapped) for key material that is not a
// base64-encoded 32-byte key.
var ErrInvalidKey = errors.New("invalid key")

// KeyProvider supplies a tenant's root keys. A KMS-backed implementation can
// unwrap keys remotely; implementations must be safe for concurrent use and
// should cache, as the vault asks on every new value.
type KeyProvider interface {
	// KeyEncryptionKey returns the tenant's 32-byte key-encryption key
	// (KEK), which wraps every data-subject key of the tenant.
	KeyEncryptionKey(ctx context.Context, tenant string) ([]byte, error)
	// TokenKey returns the tenant's 32-byte HMAC key for token ids and
	// subject hashes. Changing it changes every token of the tenant.
	TokenKey(ctx context.Context, tenant string) ([]byte, error)
}

// StaticTenantKeys are one tenant's keys, base64-encoded (standard
// encoding), 32 bytes each.
type StaticTenantKeys struct {
	// KEK wraps the tenant's data-subject keys.
	KEK string `json:"kek" yaml:"kek"`
	// TokenKey keys the HMAC of token ids and subject hashes.
	TokenKey string `json:"token_key" yaml:"token_key"`
}

// StaticKeysConfig configures [StaticKeys].
type StaticKeysConfig struct {
	// Tenants maps tenant ids to their keys.
	Tenants map[string]StaticTenantKeys `json:"tenants,omitempty" yaml:"tenants,omitempty"`
	// Default, when set, derives keys for tenants not listed in Tenants:
	// HMAC-SHA256(default key, tenant id), so every tenant still has its own.
	Default *StaticTenantKeys `json:"default,omitempty" yaml:"default,omitempty"`
}

type keyPair struct{ kek, token []byte }

// StaticKeys is a [KeyProvider] holding keys from configuration, a file or
// the environment.
type StaticKeys struct {
	tenants map[string]keyPair
	def     *keyPair
}

var _ KeyProvider = (*StaticKeys)(nil)

func decodeKey(field, s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: not base64", ErrInvalidKey, field)
	}
	if len(b) != KeySize {
		return nil, fmt.Errorf("%w: %s: %d bytes, want %d", ErrInvalidKey, field, len(b), KeySize)
	}
	return b, nil
}

func decodePair(name string, k StaticTenantKeys) (keyPair, error) {
	kek, err := decodeKey(name+".kek", k.KEK)
	if err != nil {
		return keyPair{}, err
	}
	tok, err := decodeKey(name+".token_key", k.TokenKey)
	if err != nil {
		return keyPair{}, err
	}
	if hmac.Equal(kek, tok) {
		return keyPair{}, fmt.Errorf("%w: %s: kek and token_key must differ", ErrInvalidKey, name)
	}
	return keyPair{kek: kek, token: tok}, nil
}

// NewStaticKeys returns a provider for cfg. Keys that are not base64
// 32-byte values return an error wrapping [ErrInvalidKey] naming the field
// (never the key).
func NewStaticKeys(cfg StaticKeysConfig) (*StaticKeys, error) {
	sk := &StaticKeys{tenants: make(map[string]keyPair, len(cfg.Tenants))}
	for t, k := range cfg.Tenants {
		p, err := decodePair("tenants."+t, k)
		if err != nil {
			return nil, err
		}
		sk.tenants[t] = p
	}
	if cfg.Default != nil {
		p, err := decodePair("default", *cfg.Default)
		if err != nil {
			return nil, err
		}
		sk.def = &p
	}
	if len(sk.tenants) == 0 && sk.def == nil {
		return nil, fmt.Errorf("%w: no tenant keys and no default", ErrInvalidKey)
	}
	return sk, nil
}

// LoadStaticKeysFile reads a JSON [StaticKeysConfig] from path. Unknown
// fields are errors.
func LoadStaticKeysFile(path string) (*StaticKeys, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load pii keys: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	var cfg StaticKeysConfig
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("load pii keys %s: %w", path, err)
	}
	sk, err := NewStaticKeys(cfg)
	if err != nil {
		return nil, fmt.Errorf("load pii keys %s: %w", path, err)
	}
	return sk, nil
}

// StaticKeysFromEnv builds a provider whose default keys come from the
// environment variables [EnvKEK] and [EnvTokenKey] (base64, 32 bytes);
// per-tenant keys are derived from them. getenv is usually os.Getenv.
func StaticKeysFromEnv(getenv func(string) string) (*StaticKeys, error) {
	return NewStaticKeys(StaticKeysConfig{Default: &StaticTenantKeys{KEK: getenv(EnvKEK), TokenKey: getenv(EnvTokenKey)}})
}

func (sk *StaticKeys) pair(tenant string) (keyPair, error) {
	if p, ok := sk.tenants[tenant]; ok {
		return p, nil
	}
	if sk.def == nil {
		return keyPair{}, fmt.Errorf("%w %q", ErrUnknownTenant, tenant)
	}
	return keyPair{kek: derive(sk.def.kek, tenant), token: derive(sk.def.token, tenant)}, nil
}

func derive(root []byte, tenant string) []byte {
	m := hmac.New(sha256.New, root)
	m.Write([]byte("vigil/pii/tenant-key/v1\x00"))
	m.Write([]byte(tenant))
	return m.Sum(nil)
}

// KeyEncryptionKey implements [KeyProvider].
func (sk *StaticKeys) KeyEncryptionKey(_ context.Context, tenant string) ([]byte, error) {
	p, err := sk.pair(tenant)
	return p.kek, err
}

// TokenKey implements [KeyProvider].
func (sk *StaticKeys) TokenKey(_ context.Context, tenant string) ([]byte, error) {
	p, err := sk.pair(tenant)
	return p.token, err
}
