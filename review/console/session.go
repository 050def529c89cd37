package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/vigilhq/vigil/review/workflow"
)

// Session cookie and form field names.
const (
	CookieName = "vigil_session"
	CSRFField  = "csrf"
	cookiePath = "/console"
)

// session is the signed payload of the session cookie.
type session struct {
	Name    string        `json:"n"`
	Tenant  string        `json:"t"`
	Role    workflow.Role `json:"r"`
	ID      string        `json:"s"`
	Expires int64         `json:"e"`
}

func (s session) principal() workflow.Principal {
	return workflow.Principal{Name: s.Name, Tenant: s.Tenant, Role: s.Role}
}

func (c *Console) sign(b []byte) []byte {
	m := hmac.New(sha256.New, c.opts.SessionKey)
	m.Write([]byte("session\x00"))
	m.Write(b)
	return m.Sum(nil)
}

func (c *Console) encodeSession(s session) string {
	payload, _ := json.Marshal(s)
	return base64.RawURLEncoding.EncodeToString(payload) + "." + base64.RawURLEncoding.EncodeToString(c.sign(payload))
}

func (c *Console) decodeSession(v string) (session, bool) {
	p, sig, ok := strings.Cut(v, ".")
	if !ok || len(v) > 4096 {
		return session{}, false
	}
	payload, err1 := base64.RawURLEncoding.DecodeString(p)
	mac, err2 := base64.RawURLEncoding.DecodeString(sig)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, c.sign(payload)) {
		return session{}, false
	}
	var s session
	if err := json.Unmarshal(payload, &s); err != nil || !s.Role.Valid() || s.ID == "" {
		return session{}, false
	}
	if c.opts.Now().Unix() >= s.Expires {
		return session{}, false
	}
	return s, true
}

// csrfToken is bound to the session: a form from another session (or a
// forged one without the cookie's secret) does not validate.
func (c *Console) csrfToken(s session) string {
	m := hmac.New(sha256.New, c.opts.SessionKey)
	m.Write([]byte("csrf\x00"))
	m.Write([]byte(s.ID))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

func (c *Console) setSession(w http.ResponseWriter, p workflow.Principal) {
	var id [16]byte
	_, _ = rand.Read(id[:])
	exp := c.opts.Now().Add(c.opts.SessionTTL)
	s := session{Name: p.Name, Tenant: p.Tenant, Role: p.Role, ID: hex.EncodeToString(id[:]), Expires: exp.Unix()}
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: c.encodeSession(s), Path: cookiePath,
		Expires: exp, MaxAge: int(c.opts.SessionTTL.Seconds()),
		HttpOnly: true, Secure: c.opts.SecureCookies, SameSite: http.SameSiteStrictMode,
	})
}

func (c *Console) clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: "", Path: cookiePath, MaxAge: -1,
		HttpOnly: true, Secure: c.opts.SecureCookies, SameSite: http.SameSiteStrictMode,
	})
}

// sameOrigin refuses cross-site posts: the Origin (or Referer) must name
// this host. Browsers send Origin on every POST; a request with neither
// header is not from a browser form and is judged by the CSRF token alone.
func sameOrigin(r *http.Request) bool {
	if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		return false
	}
	o := r.Header.Get("Origin")
	if o == "" {
		o = r.Header.Get("Referer")
	}
	if o == "" {
		return true
	}
	if o == "null" {
		return false
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

type authedFunc func(w http.ResponseWriter, r *http.Request, s session)

// authed requires a valid session; POSTs also need the same origin and
// the session's CSRF token.
func (c *Console) authed(f authedFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(CookieName)
		var s session
		ok := err == nil
		if ok {
			s, ok = c.decodeSession(ck.Value)
		}
		if !ok {
			if r.Method == http.MethodGet && r.URL.Path != "/console/events" {
				http.Redirect(w, r, "/console/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			c.renderError(w, r, nil, workflow.Errorf(http.StatusUnauthorized, workflow.CodeUnauthorized, "sign in first"))
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
			if !sameOrigin(r) || !hmac.Equal([]byte(r.PostFormValue(CSRFField)), []byte(c.csrfToken(s))) {
				c.renderError(w, r, &s, workflow.Errorf(http.StatusForbidden, workflow.CodeForbidden, "the form has expired or did not come from this console; reload the page and try again"))
				return
			}
		}
		f(w, r, s)
	}
}

// safeNext keeps post-login redirects on the console.
func safeNext(next string) string {
	if !strings.HasPrefix(next, "/console/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return "/console/queue"
	}
	return next
}
