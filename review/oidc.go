package review

import (
	"context"
	"fmt"

	"github.com/vigilhq/vigil/review/workflow"
)

// oidcAuth verifies OIDC ID tokens. Not built yet: see New.
type oidcAuth struct{}

func newOIDCAuth(_ context.Context, cfg OIDCConfig) (*oidcAuth, error) {
	return nil, fmt.Errorf("%w: oidc is not supported by this build (issuer %s)", ErrInvalidConfig, cfg.IssuerURL)
}

func (o *oidcAuth) authenticate(context.Context, string) (workflow.Principal, error) {
	return workflow.Principal{}, errUnauthorized
}
