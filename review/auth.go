package review

import (
	"context"
	"crypto/sha256"
	"net/http"
	"strings"

	"github.com/vigilhq/vigil/review/workflow"
)

// OIDCConfig enables OpenID Connect ID tokens as bearer tokens. Role and
// tenant come from claims.
type OIDCConfig struct {
	// IssuerURL of the provider; empty disables OIDC.
	IssuerURL string `yaml:"issuer_url"`
	// ClientID the ID tokens must be issued to (audience).
	ClientID string `yaml:"client_id"`
	// TenantClaim, RoleClaim and NameClaim name the claims holding the
	// tenant, the role (reviewer, privileged, admin) and the reviewer
	// name. Defaults "vigil_tenant", "vigil_role", "email".
	TenantClaim string `yaml:"tenant_claim"`
	RoleClaim   string `yaml:"role_claim"`
	NameClaim   string `yaml:"name_claim"`
}

// tokenAuth looks bearer tokens up by their SHA-256, so the map holds no
// token and a lookup does not compare secrets byte by byte.
type tokenAuth struct {
	byHash map[[sha256.Size]byte]workflow.Principal
	oidc   *oidcAuth
}

func newTokenAuth(tokens map[string]workflow.Principal) *tokenAuth {
	a := &tokenAuth{byHash: make(map[[sha256.Size]byte]workflow.Principal, len(tokens))}
	for tok, p := range tokens {
		a.byHash[sha256.Sum256([]byte(tok))] = p
	}
	return a
}

var errUnauthorized = workflow.Errorf(http.StatusUnauthorized, workflow.CodeUnauthorized, "missing or unknown token")

// authenticate returns the principal of a bearer token.
func (a *tokenAuth) authenticate(ctx context.Context, token string) (workflow.Principal, error) {
	token = strings.TrimSpace(token)
	if token == "" || len(token) > 8192 {
		return workflow.Principal{}, errUnauthorized
	}
	if p, ok := a.byHash[sha256.Sum256([]byte(token))]; ok {
		return p, nil
	}
	if a.oidc != nil {
		return a.oidc.authenticate(ctx, token)
	}
	return workflow.Principal{}, errUnauthorized
}

// bearer extracts the token of an "Authorization: Bearer …" header.
func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return h[7:]
	}
	return ""
}
