package pii

import (
	"errors"
	"fmt"
)

// Kind names a class of personal data. Kinds are lower-case; tokens carry
// them upper-case (⟦EMAIL:…⟧).
type Kind string

// Kinds the detectors find.
const (
	KindEmail   Kind = "email"
	KindPhone   Kind = "phone"
	KindCard    Kind = "card"
	KindIBAN    Kind = "iban"
	KindSSN     Kind = "ssn"
	KindAccount Kind = "account"
	KindIP      Kind = "ip"
	KindDOB     Kind = "dob"
	KindAddress Kind = "address"
	KindName    Kind = "name"
)

// numKinds is the number of known kinds; kindIndex maps each to 0…numKinds-1.
const numKinds = 10

var allKinds = [numKinds]Kind{KindEmail, KindPhone, KindCard, KindIBAN, KindSSN, KindAccount, KindIP, KindDOB, KindAddress, KindName}

// Kinds returns every kind the detectors know, in a fixed order.
func Kinds() []Kind {
	k := allKinds
	return k[:]
}

// idxName is kindIndex(KindName), for the hot path.
var idxName = kindIndex(KindName)

func kindIndex(k Kind) int {
	for i, kk := range allKinds {
		if kk == k {
			return i
		}
	}
	return -1
}

// Valid reports whether k is a known kind.
func (k Kind) Valid() bool { return kindIndex(k) >= 0 }

// Finding is one piece of personal data found in a text.
type Finding struct {
	// Kind is the class of the value.
	Kind Kind
	// Start and End are the byte offsets of the value: text[Start:End].
	Start, End int
	// Confidence is the detector's belief that the span is personal data of
	// Kind, between 0 and 1.
	Confidence float64
	// Subject is the participant id whose directory name matched, for
	// KindName findings from the [Directory]; empty otherwise.
	Subject string

	// norm is the normalised value when the detector computed it anyway
	// (E.164 for phones), so the tokenizer does not parse again.
	norm string
}

// Default policy values.
const (
	// DefaultMinConfidence is the confidence below which findings are dropped.
	DefaultMinConfidence = 0.6
	// DefaultPhoneRegion is the region used to read phone numbers written
	// without a country code.
	DefaultPhoneRegion = "US"
)

// ErrInvalidOption is returned (wrapped) by constructors and options given
// an invalid value.
var ErrInvalidOption = errors.New("invalid option")

// Policy is a tenant's detection configuration. The zero value enables every
// kind at [DefaultMinConfidence] and reads national phone numbers as
// [DefaultPhoneRegion].
type Policy struct {
	// Kinds are the kinds to detect; empty means all of [Kinds].
	Kinds []Kind `json:"kinds,omitempty" yaml:"kinds,omitempty"`
	// MinConfidence drops findings below it; 0 means DefaultMinConfidence.
	MinConfidence float64 `json:"min_confidence,omitempty" yaml:"min_confidence,omitempty"`
	// KindMinConfidence overrides MinConfidence per kind.
	KindMinConfidence map[Kind]float64 `json:"kind_min_confidence,omitempty" yaml:"kind_min_confidence,omitempty"`
	// PhoneRegion is the ISO 3166 region of phone numbers written without a
	// country code; empty means DefaultPhoneRegion.
	PhoneRegion string `json:"phone_region,omitempty" yaml:"phone_region,omitempty"`
}

// compiledPolicy is a Policy in the form the scanner reads.
type compiledPolicy struct {
	enabled [numKinds]bool
	minConf [numKinds]float64
	region  string
}

func (p Policy) compile() (compiledPolicy, error) {
	var c compiledPolicy
	min := p.MinConfidence
	if min == 0 {
		min = DefaultMinConfidence
	}
	if min < 0 || min > 1 {
		return c, fmt.Errorf("%w: min_confidence %v not in [0,1]", ErrInvalidOption, p.MinConfidence)
	}
	if len(p.Kinds) == 0 {
		for i := range c.enabled {
			c.enabled[i] = true
		}
	}
	for _, k := range p.Kinds {
		i := kindIndex(k)
		if i < 0 {
			return c, fmt.Errorf("%w: unknown kind %q", ErrInvalidOption, k)
		}
		c.enabled[i] = true
	}
	for i := range c.minConf {
		c.minConf[i] = min
	}
	for k, v := range p.KindMinConfidence {
		i := kindIndex(k)
		if i < 0 {
			return c, fmt.Errorf("%w: unknown kind %q", ErrInvalidOption, k)
		}
		if v < 0 || v > 1 {
			return c, fmt.Errorf("%w: kind_min_confidence[%s] %v not in [0,1]", ErrInvalidOption, k, v)
		}
		c.minConf[i] = v
	}
	c.region = p.PhoneRegion
	if c.region == "" {
		c.region = DefaultPhoneRegion
	}
	return c, nil
}

// accepts reports whether the policy keeps a finding of kind k at conf.
func (c *compiledPolicy) accepts(k Kind, conf float64) bool {
	i := kindIndex(k)
	return i >= 0 && c.enabled[i] && conf >= c.minConf[i]
}
