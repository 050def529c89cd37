package bench

import (
	"math/rand/v2"
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"3", 3 * time.Second},
		{" 120 ", 2 * time.Minute},
		{"-1", 0},
		{"soon", 0},
		{"9227000000", 24 * time.Hour}, // would overflow; clamped
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Minute).Format(http.TimeFormat), 0}, // in the past
	}
	for _, tc := range tests {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "1", "Fri, 04 Dec 2026 18:01:30 GMT", "99999999999999999999", "-5"} {
		f.Add(s)
	}
	now := time.Date(2026, 12, 4, 18, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) > 256 {
			return
		}
		if d := parseRetryAfter(s, now); d < 0 {
			t.Errorf("parseRetryAfter(%q) = %v, negative", s, d)
		}
	})
}

func TestValueBuilders(t *testing.T) {
	tests := []struct {
		name    string
		payload []byte
		want    byte
	}{
		{"visa test number", []byte{4, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, 1},
		{"wikipedia example", []byte{7, 9, 9, 2, 7, 3, 9, 8, 7, 1}, 3},
	}
	for _, tc := range tests {
		if got := luhnCheckDigit(tc.payload); got != tc.want {
			t.Errorf("%s: luhnCheckDigit = %d, want %d", tc.name, got, tc.want)
		}
	}
	// GB82 WEST 1234 5698 7654 32 is the ISO 13616 example: check digits 82.
	if got := 98 - ibanMod97("WEST12345698765432"+"GB"+"00"); got != 82 {
		t.Errorf("IBAN check digits = %d, want 82", got)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		if s := iban(r, false); ibanMod97(s[4:]+s[:4]) != 1 {
			t.Fatalf("iban %s fails mod-97", s)
		}
	}
}
