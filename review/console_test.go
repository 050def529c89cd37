package review_test

import (
	"html"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/review/console"
)

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func TestConsoleEscapesMessageText(t *testing.T) {
	e := newEnv(t, testConfig())
	const evil = `<script>alert("pwned")</script><img src=x onerror=alert(1)>`
	e.flag("acme", "conv-<b>x</b>", "rule<i>", vigil.SeverityHigh, vigil.ActionAlert, evil+" write to jane.doe@example.com")
	id := e.waitAlerts(tokAnn, "", 1).Alerts[0].ID
	b := e.login(tokAnn)
	pages := []string{"/console/queue", "/console/alerts/" + id, "/console/dashboard", "/console/queue?rule=" + url.QueryEscape("<script>x</script>")}
	for _, p := range pages {
		st, body := b.get(p)
		if st != 200 {
			t.Fatalf("GET %s = %d", p, st)
		}
		for _, raw := range []string{"<script>alert", "<img src=x", "<b>x</b>", "rule<i>", "<script>x</script>"} {
			if strings.Contains(body, raw) {
				t.Errorf("GET %s: raw %q in page", p, raw)
			}
		}
	}
	_, body := b.get("/console/alerts/" + id)
	if !strings.Contains(body, html.EscapeString(`<img src=x onerror=alert(1)>`)) {
		t.Errorf("escaped message text missing from alert page")
	}
	if !strings.Contains(body, `class="chip chip-email`) {
		t.Errorf("token not rendered as a chip")
	}
}

func TestConsoleSessionAndCSRF(t *testing.T) {
	e := newEnv(t, testConfig())
	e.flag("acme", "c1", "r1", vigil.SeverityHigh, vigil.ActionAlert, "text")
	id := e.waitAlerts(tokAnn, "", 1).Alerts[0].ID

	// Login sets a signed, HttpOnly, SameSite=Strict cookie.
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).
		PostForm(e.http.URL+"/console/login", url.Values{"token": {tokAnn}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var ck *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == console.CookieName {
			ck = c
		}
	}
	if resp.StatusCode != http.StatusSeeOther || ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode {
		t.Fatalf("login = %d cookie %+v", resp.StatusCode, ck)
	}
	if st, _ := e.login(tokAnn).get("/console/queue"); st != 200 {
		t.Fatalf("queue after login = %d", st)
	}
	// A wrong token does not sign in; a tampered cookie is no session.
	resp, _ = http.PostForm(e.http.URL+"/console/login", url.Values{"token": {"wrong"}})
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("bad token login = %d, want 401", resp.StatusCode)
	}

	b := e.login(tokAnn)
	good := b.csrf("/console/alerts/" + id)
	other := e.login(tokBob).csrf("/console/queue")
	tests := []struct {
		name   string
		form   url.Values
		header map[string]string
		status int
	}{
		{"no token", url.Values{}, nil, 403},
		{"another session's token", url.Values{"csrf": {other}}, nil, 403},
		{"cross-origin", url.Values{"csrf": {good}}, map[string]string{"Origin": "http://evil.example"}, 403},
		{"cross-site fetch", url.Values{"csrf": {good}}, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"valid", url.Values{"csrf": {good}}, map[string]string{"Origin": e.http.URL}, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, _ := b.post("/console/alerts/"+id+"/claim", tc.form, tc.header)
			if st != tc.status {
				t.Fatalf("claim = %d, want %d", st, tc.status)
			}
			var a struct {
				State string `json:"state"`
			}
			e.api(tokAnn, "GET", "/v1/review/alerts/"+id, nil, &a)
			want := "open"
			if tc.status == 200 {
				want = "claimed"
			}
			if a.State != want {
				t.Errorf("state = %s, want %s", a.State, want)
			}
		})
	}
}
