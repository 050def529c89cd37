package pii

import (
	"net/netip"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// normalize returns the canonical form of a value of kind k, so that
// spellings of one value share one token: lower-case e-mail, E.164 phone,
// digits of cards and SSNs, compact upper-case IBAN and account numbers,
// canonical IP, lower-case single-spaced names and addresses.
func normalize(k Kind, v, region string) string {
	switch k {
	case KindEmail:
		return strings.ToLower(v)
	case KindPhone:
		reg := region
		if strings.HasPrefix(v, "+") {
			reg = ""
		}
		if n, err := phonenumbers.Parse(v, reg); err == nil {
			return phonenumbers.Format(n, phonenumbers.E164)
		}
		return keepAlnum(v, false)
	case KindCard, KindSSN:
		return keepAlnum(v, false)
	case KindIBAN, KindAccount:
		return keepAlnum(v, true)
	case KindIP:
		if a, err := netip.ParseAddr(v); err == nil {
			return a.String()
		}
		return strings.ToLower(v)
	case KindName, KindAddress:
		return strings.Join(strings.Fields(strings.ToLower(v)), " ")
	}
	return v
}

// keepAlnum drops everything but letters and digits, upper-casing letters
// when upper is set.
func keepAlnum(v string, upper bool) string {
	b := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case isDigit(c), isUpper(c):
			b = append(b, c)
		case isLower(c):
			if upper {
				c -= 'a' - 'A'
			}
			b = append(b, c)
		}
	}
	return string(b)
}
