package bench

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Synthetic personal data. Every value is well-formed (card numbers pass
// Luhn, IBANs pass ISO 13616 mod-97, phone numbers use fictional ranges),
// so the PII detectors treat them as real, yet none belongs to anyone.

// cardNumber returns a 16-digit Visa- or Mastercard-like number with a
// valid Luhn check digit, grouped in fours with sep ("" for none).
func cardNumber(r *rand.Rand, sep string) string {
	d := make([]byte, 16)
	start := 1
	if r.IntN(2) == 0 {
		d[0] = 4
	} else {
		d[0], d[1], start = 5, byte(1+r.IntN(5)), 2
	}
	for i := start; i < 15; i++ {
		d[i] = byte(r.IntN(10))
	}
	d[15] = luhnCheckDigit(d[:15])
	var b strings.Builder
	for i, c := range d {
		if i > 0 && i%4 == 0 {
			b.WriteString(sep)
		}
		b.WriteByte('0' + c)
	}
	return b.String()
}

// luhnCheckDigit returns the digit that makes payload+digit pass Luhn.
func luhnCheckDigit(payload []byte) byte {
	sum := 0
	// Walking from the right, the digit next to the check digit is doubled.
	for i := len(payload) - 1; i >= 0; i-- {
		v := int(payload[i])
		if (len(payload)-1-i)%2 == 0 {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return byte((10 - sum%10) % 10)
}

// ibanFormats are BBAN layouts by country: 'n' a digit, 'a' an upper-case
// letter.
var ibanFormats = []struct{ country, bban string }{
	{"DE", "nnnnnnnnnnnnnnnnnn"},
	{"GB", "aaaannnnnnnnnnnnnn"},
	{"FR", "nnnnnnnnnnnnnnnnnnnnnnn"},
	{"NL", "aaaannnnnnnnnn"},
	{"ES", "nnnnnnnnnnnnnnnnnnnn"},
}

// iban returns an IBAN with valid mod-97 check digits, printed in groups of
// four when grouped is true.
func iban(r *rand.Rand, grouped bool) string {
	f := ibanFormats[r.IntN(len(ibanFormats))]
	bban := make([]byte, len(f.bban))
	for i, c := range []byte(f.bban) {
		if c == 'a' {
			bban[i] = 'A' + byte(r.IntN(26))
		} else {
			bban[i] = '0' + byte(r.IntN(10))
		}
	}
	check := 98 - ibanMod97(string(bban)+f.country+"00")
	s := fmt.Sprintf("%s%02d%s", f.country, check, bban)
	if !grouped {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i += 4 {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i:min(i+4, len(s))])
	}
	return b.String()
}

// ibanMod97 computes the ISO 7064 mod-97 of s with letters as 10..35.
func ibanMod97(s string) int {
	m := 0
	for _, c := range []byte(s) {
		switch {
		case c >= '0' && c <= '9':
			m = (m*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			m = (m*100 + int(c-'A') + 10) % 97
		}
	}
	return m
}

// phoneNumber returns a number in a range reserved for fiction or drama
// (NANP 555-01xx, Ofcom 020 7946 0xxx, Australian 0491 570 xxx).
func phoneNumber(r *rand.Rand) string {
	switch r.IntN(3) {
	case 0:
		return fmt.Sprintf("+1 212 555 01%02d", r.IntN(100))
	case 1:
		return fmt.Sprintf("+44 20 7946 0%03d", r.IntN(1000))
	default:
		return fmt.Sprintf("(212) 555-01%02d", r.IntN(100))
	}
}

// emailFor returns an address built from a display name at a reserved
// example domain.
func emailFor(r *rand.Rand, name string) string {
	first, last, _ := strings.Cut(strings.ToLower(name), " ")
	domains := []string{"example.com", "example.org", "example.net", "mail.example.com"}
	d := domains[r.IntN(len(domains))]
	switch r.IntN(3) {
	case 0:
		return first + "." + last + "@" + d
	case 1:
		return first[:1] + last + "@" + d
	default:
		return fmt.Sprintf("%s%d@%s", first, 10+r.IntN(90), d)
	}
}

// mrn returns a medical record number.
func mrn(r *rand.Rand) string { return fmt.Sprintf("%08d", r.IntN(100_000_000)) }

// dateOfBirth returns a date between 1940 and 2005 in one of the usual
// notations.
func dateOfBirth(r *rand.Rand) string {
	y, m, d := 1940+r.IntN(66), 1+r.IntN(12), 1+r.IntN(28)
	if r.IntN(2) == 0 {
		return fmt.Sprintf("%04d-%02d-%02d", y, m, d)
	}
	return fmt.Sprintf("%02d/%02d/%04d", m, d, y)
}
