package review

import (
	"context"
	"fmt"
	"net/http"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/vigilhq/vigil/review/workflow"
)

// Default claim names of [OIDCConfig].
const (
	DefaultTenantClaim = "vigil_tenant"
	DefaultRoleClaim   = "vigil_role"
	DefaultNameClaim   = "email"
)

// oidcAuth verifies OIDC ID tokens (signature, issuer, audience, expiry)
// and maps their claims to a principal.
type oidcAuth struct {
	verifier                    *oidc.IDTokenVerifier
	tenantClaim, roleClaim, who string
}

// newOIDCAuth discovers the provider (one HTTP request to the issuer's
// /.well-known/openid-configuration); keys are fetched when first needed.
func newOIDCAuth(ctx context.Context, cfg OIDCConfig) (*oidcAuth, error) {
	if cfg.ClientID == "" {
		return nil, fmt.Errorf("%w: oidc.client_id is required with oidc.issuer_url", ErrInvalidConfig)
	}
	p, err := oidc.NewProvider(ctx, cfg.IssuerURL)
	if err != nil {
		return nil, fmt.Errorf("oidc discovery of %s: %w", cfg.IssuerURL, err)
	}
	a := &oidcAuth{
		verifier:    p.Verifier(&oidc.Config{ClientID: cfg.ClientID}),
		tenantClaim: cmpOr(cfg.TenantClaim, DefaultTenantClaim),
		roleClaim:   cmpOr(cfg.RoleClaim, DefaultRoleClaim),
		who:         cmpOr(cfg.NameClaim, DefaultNameClaim),
	}
	return a, nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// authenticate verifies raw as an ID token. Every failure is the same
// 401 to the client; the cause is not echoed (it may quote the token).
func (o *oidcAuth) authenticate(ctx context.Context, raw string) (workflow.Principal, error) {
	tok, err := o.verifier.Verify(ctx, raw)
	if err != nil {
		return workflow.Principal{}, errUnauthorized
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return workflow.Principal{}, errUnauthorized
	}
	str := func(k string) string {
		s, _ := claims[k].(string)
		return s
	}
	p := workflow.Principal{Name: str(o.who), Tenant: str(o.tenantClaim), Role: workflow.Role(str(o.roleClaim))}
	switch {
	case p.Name == "" || p.Tenant == "":
		return workflow.Principal{}, workflow.Errorf(http.StatusForbidden, workflow.CodeForbidden, "the ID token lacks the %s or %s claim", o.who, o.tenantClaim)
	case !p.Role.Valid():
		return workflow.Principal{}, workflow.Errorf(http.StatusForbidden, workflow.CodeForbidden, "the ID token's %s claim is not a Vigil role", o.roleClaim)
	case p.Tenant == workflow.AllTenants && p.Role != workflow.RoleAdmin:
		return workflow.Principal{}, workflow.Errorf(http.StatusForbidden, workflow.CodeForbidden, "only admins may see all tenants")
	}
	return p, nil
}
