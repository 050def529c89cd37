package console

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vigilhq/vigil"
)

func TestSegments(t *testing.T) {
	const tok = "⟦EMAIL:0123456789abcdef⟧"
	tests := []struct {
		name  string
		text  string
		spans []vigil.Span
		want  string // rendered as: [hit] {token} plain
	}{
		{"plain", "hello", nil, "hello"},
		{"span", "buy now please", []vigil.Span{{Start: 4, End: 7}}, "buy [now] please"},
		{"token", "mail " + tok + " ok", nil, "mail {email} ok"},
		{"span inside token widens to the chip", "x " + tok, []vigil.Span{{Start: 5, End: 8}}, "x {email!}"},
		{"span over token and text", "a " + tok + " b", []vigil.Span{{Start: 0, End: len("a " + tok + " b")}}, "[a ]{email!}[ b]"},
		{"span out of range", "abc", []vigil.Span{{Start: -5, End: 99}}, "[abc]"},
		{"inverted span", "abc", []vigil.Span{{Start: 2, End: 1}}, "abc"},
		{"span inside a rune widens to it", "héllo", []vigil.Span{{Start: 2, End: 3}}, "h[é]llo"},
		{"not a token", "⟦EMAIL:xyz⟧", nil, "⟦EMAIL:xyz⟧"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var b strings.Builder
			for _, s := range segments(tc.text, tc.spans) {
				switch {
				case s.Token && s.Hit:
					b.WriteString("{" + s.Kind + "!}")
				case s.Token:
					b.WriteString("{" + s.Kind + "}")
				case s.Hit:
					b.WriteString("[" + s.Text + "]")
				default:
					b.WriteString(s.Text)
				}
			}
			if got := b.String(); got != tc.want {
				t.Errorf("segments(%q, %v) = %q, want %q", tc.text, tc.spans, got, tc.want)
			}
		})
	}
}

// FuzzSegments checks that segments always partition the text exactly,
// on rune boundaries, whatever the spans.
func FuzzSegments(f *testing.F) {
	f.Add("mail ⟦EMAIL:0123456789abcdef⟧ now", 3, 12)
	f.Add("héllo wörld", 1, 2)
	f.Add("", 0, 0)
	f.Add("⟦PHONE:fedcba9876543210⟧⟦EMAIL:0123456789abcdef⟧", 5, 40)
	f.Fuzz(func(t *testing.T, text string, start, end int) {
		if len(text) > 4096 {
			return
		}
		var b strings.Builder
		for _, s := range segments(text, []vigil.Span{{Start: start, End: end}}) {
			if s.Text == "" {
				t.Fatalf("empty segment")
			}
			if utf8.ValidString(text) && !utf8.ValidString(s.Text) {
				t.Fatalf("segment %q splits a rune", s.Text)
			}
			b.WriteString(s.Text)
		}
		if b.String() != text {
			t.Fatalf("segments do not reassemble %q: %q", text, b.String())
		}
	})
}

func TestSessionCookie(t *testing.T) {
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	c := &Console{opts: Options{SessionKey: []byte(strings.Repeat("k", 32)), SessionTTL: time.Hour, Now: func() time.Time { return now }}}
	other := &Console{opts: Options{SessionKey: []byte(strings.Repeat("o", 32)), SessionTTL: time.Hour, Now: c.opts.Now}}
	s := session{Name: "ann", Tenant: "acme", Role: "reviewer", ID: "sid", Expires: now.Add(time.Hour).Unix()}
	good := c.encodeSession(s)
	payload, sig, _ := strings.Cut(good, ".")
	admin := c.encodeSession(session{Name: "ann", Tenant: "*", Role: "admin", ID: "sid", Expires: s.Expires})
	adminPayload, _, _ := strings.Cut(admin, ".")
	tests := []struct {
		name  string
		c     *Console
		value string
		ok    bool
	}{
		{"valid", c, good, true},
		{"other key", other, good, false},
		{"payload swapped", c, adminPayload + "." + sig, false},
		{"no signature", c, payload, false},
		{"garbage", c, "%%%.%%%", false},
		{"expired", c, c.encodeSession(session{Name: "ann", Tenant: "acme", Role: "reviewer", ID: "sid", Expires: now.Unix()}), false},
		{"unknown role", c, c.encodeSession(session{Name: "ann", Tenant: "acme", Role: "root", ID: "sid", Expires: s.Expires}), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := tc.c.decodeSession(tc.value); ok != tc.ok {
				t.Errorf("decodeSession() ok = %v, want %v", ok, tc.ok)
			}
		})
	}
	if c.csrfToken(s) == c.csrfToken(session{ID: "other"}) || c.csrfToken(s) == other.csrfToken(s) {
		t.Error("CSRF token not bound to session and key")
	}
}

func TestSafeNext(t *testing.T) {
	tests := map[string]string{
		"/console/alerts/a-1":   "/console/alerts/a-1",
		"https://evil.example/": "/console/queue",
		"//evil.example/x":      "/console/queue",
		"/console/\\evil":       "/console/queue",
		"/v1/review/alerts":     "/console/queue",
		"":                      "/console/queue",
	}
	for in, want := range tests {
		if got := safeNext(in); got != want {
			t.Errorf("safeNext(%q) = %q, want %q", in, got, want)
		}
	}
}
