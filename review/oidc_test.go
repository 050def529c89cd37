package review_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/review"
	"github.com/vigilhq/vigil/review/workflow"
)

// issuer is a minimal OpenID provider on loopback: discovery document and
// JWKS, and it signs RS256 ID tokens, so the OIDC path runs offline.
type issuer struct {
	srv *httptest.Server
	key *rsa.PrivateKey
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": is.srv.URL, "jwks_uri": is.srv.URL + "/keys",
			"authorization_endpoint": is.srv.URL + "/auth", "token_endpoint": is.srv.URL + "/token",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		b64 := base64.RawURLEncoding.EncodeToString
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "kid": "k1", "alg": "RS256", "use": "sig",
			"n": b64(key.N.Bytes()), "e": b64(big.NewInt(int64(key.E)).Bytes()),
		}}})
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

func (is *issuer) token(t *testing.T, claims map[string]any) string {
	t.Helper()
	b64 := base64.RawURLEncoding.EncodeToString
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": "k1"})
	p, _ := json.Marshal(claims)
	signing := b64(h) + "." + b64(p)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, is.key, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + b64(sig)
}

func TestOIDCBearer(t *testing.T) {
	is := newIssuer(t)
	cfg := testConfig()
	cfg.OIDC = review.OIDCConfig{IssuerURL: is.srv.URL, ClientID: "vigil-console"}
	e := newEnv(t, cfg)
	e.flag("acme", "c1", "r1", vigil.SeverityHigh, vigil.ActionAlert, "text")
	e.waitAlerts(tokAnn, "", 1)
	now := time.Now()
	claims := func(over map[string]any) map[string]any {
		c := map[string]any{
			"iss": is.srv.URL, "sub": "u-42", "aud": "vigil-console", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
			"email": "olga@acme.example", "vigil_tenant": "acme", "vigil_role": "reviewer",
		}
		for k, v := range over {
			c[k] = v
		}
		return c
	}
	tests := []struct {
		name   string
		tok    string
		status int
		total  int
	}{
		{"valid reviewer", is.token(t, claims(nil)), 200, 1},
		{"other tenant", is.token(t, claims(map[string]any{"vigil_tenant": "other"})), 200, 0},
		{"wrong audience", is.token(t, claims(map[string]any{"aud": "someone-else"})), 401, 0},
		{"expired", is.token(t, claims(map[string]any{"exp": now.Add(-time.Hour).Unix()})), 401, 0},
		{"wrong issuer", is.token(t, claims(map[string]any{"iss": "https://evil.example"})), 401, 0},
		{"unknown role", is.token(t, claims(map[string]any{"vigil_role": "superuser"})), 403, 0},
		{"reviewer of all tenants", is.token(t, claims(map[string]any{"vigil_tenant": "*"})), 403, 0},
		{"tampered", is.token(t, claims(nil))[:40] + "x" + is.token(t, claims(nil))[41:], 401, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var pg workflow.Page
			st := e.api(tc.tok, "GET", "/v1/review/alerts?state=all", nil, &pg)
			if st != tc.status || (st == 200 && pg.Total != tc.total) {
				t.Fatalf("GET alerts = %d (%d alerts), want %d (%d)", st, pg.Total, tc.status, tc.total)
			}
		})
	}
	// The principal's name comes from the email claim.
	id := e.waitAlerts(tokAnn, "", 1).Alerts[0].ID
	var a workflow.Alert
	if st := e.api(is.token(t, claims(nil)), "POST", "/v1/review/alerts/"+id+"/claim", nil, &a); st != 200 || a.Assignee != "olga@acme.example" {
		t.Fatalf("claim via OIDC = %d assignee %q", st, a.Assignee)
	}
}

func TestOIDCDiscoveryFailure(t *testing.T) {
	e := newEnv(t, testConfig())
	cfg := testConfig()
	cfg.OIDC = review.OIDCConfig{IssuerURL: "http://127.0.0.1:1", ClientID: "x"}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := review.New(ctx, e.bus, cfg); err == nil {
		t.Fatal("New with an unreachable issuer succeeded")
	}
}
