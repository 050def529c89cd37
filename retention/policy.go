package retention

import (
	"fmt"
	"sort"
	"time"
)

// Policy class names, the values of --class and of retention_policies.
const (
	ClassSEC17a4   = "sec-17a-4"
	ClassFINRA4511 = "finra-4511"
	ClassMiFIDII   = "mifid-ii"
	ClassHIPAA     = "hipaa"
	ClassGDPRMin   = "gdpr-minimization"
)

// Retention periods in days. Years are counted with their leap days at the
// most (6 years ≤ 2192 days), so a record is never purged a day early.
const (
	sixYearsDays   = 6*365 + 2
	fiveYearsDays  = 5*365 + 2
	sevenYearsDays = 7*365 + 2
)

// Class is a retention policy class: how long a record must (or may) be
// kept and whether that is a legal duty.
type Class struct {
	// Name is the identifier used in config and on the command line.
	Name string `json:"name"`
	// Title names the rules the class implements.
	Title string `json:"title"`
	// Basis is the legal ground recorded when an erasure request becomes
	// a restriction because of this class.
	Basis string `json:"basis"`
	// DefaultKeepDays is the period when an assignment sets none; 0 means
	// the firm must choose one.
	DefaultKeepDays int `json:"default_keep_days"`
	// MinKeepDays and MaxKeepDays bound the period an assignment may set.
	MinKeepDays int `json:"min_keep_days"`
	MaxKeepDays int `json:"max_keep_days,omitempty"`
	// Duty reports a regulatory retention obligation: records must be kept
	// until expiry, so an erasure request becomes a restriction. Without
	// it the period is a maximum (minimization) only.
	Duty bool `json:"duty"`
	// Rewritable is false for WORM classes: records are neither rewritten
	// nor erased before expiry.
	Rewritable bool `json:"rewritable"`
}

var classes = map[string]Class{
	ClassSEC17a4: {Name: ClassSEC17a4, Title: "SEC Rule 17a-4 (broker-dealer records)",
		Basis:           "SEC Rule 17a-4(b)(4): business communications kept 6 years, non-rewriteable, non-erasable",
		DefaultKeepDays: sixYearsDays, MinKeepDays: sixYearsDays, Duty: true},
	ClassFINRA4511: {Name: ClassFINRA4511, Title: "FINRA Rule 4511 (books and records)",
		Basis:           "FINRA Rule 4511(b): records without a specified period kept 6 years",
		DefaultKeepDays: sixYearsDays, MinKeepDays: sixYearsDays, Duty: true},
	ClassMiFIDII: {Name: ClassMiFIDII, Title: "MiFID II Art. 16(7) (communications recording)",
		Basis:           "MiFID II Art. 16(7): records of communications kept 5 years, up to 7 where the authority requires",
		DefaultKeepDays: fiveYearsDays, MinKeepDays: fiveYearsDays, MaxKeepDays: sevenYearsDays, Duty: true},
	ClassHIPAA: {Name: ClassHIPAA, Title: "HIPAA 45 CFR 164.316(b)(2) (required documentation)",
		Basis:           "HIPAA 45 CFR 164.316(b)(2)(i): required documentation kept 6 years",
		DefaultKeepDays: sixYearsDays, MinKeepDays: sixYearsDays, Duty: true},
	ClassGDPRMin: {Name: ClassGDPRMin, Title: "GDPR Art. 5(1)(c,e) (data minimization, storage limitation)",
		Basis:       "GDPR Art. 5(1)(e): kept no longer than necessary (period set by the firm)",
		MinKeepDays: 1, Duty: false, Rewritable: true},
}

// Classes returns every policy class, sorted by name.
func Classes() []Class {
	out := make([]Class, 0, len(classes))
	for _, c := range classes {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// LookupClass returns the class named name, or an error wrapping
// [ErrUnknownPolicy].
func LookupClass(name string) (Class, error) {
	c, ok := classes[name]
	if !ok {
		return Class{}, fmt.Errorf("%w %q (known: sec-17a-4, finra-4511, mifid-ii, hipaa, gdpr-minimization)", ErrUnknownPolicy, name)
	}
	return c, nil
}

// keepDays validates a requested period (0: the class default) for c.
func (c Class) keepDays(days int) (int, error) {
	if days == 0 {
		if c.DefaultKeepDays == 0 {
			return 0, fmt.Errorf("%w: class %s needs a period (keep days)", ErrInvalidRequest, c.Name)
		}
		return c.DefaultKeepDays, nil
	}
	if days < c.MinKeepDays {
		return 0, fmt.Errorf("%w: class %s keeps records at least %d days (got %d)", ErrInvalidRequest, c.Name, c.MinKeepDays, days)
	}
	if c.MaxKeepDays > 0 && days > c.MaxKeepDays {
		return 0, fmt.Errorf("%w: class %s keeps records at most %d days (got %d)", ErrInvalidRequest, c.Name, c.MaxKeepDays, days)
	}
	return days, nil
}

// expiry is when a record sent at sent under a keepDays policy may go.
func expiry(sent time.Time, keepDays uint32) time.Time {
	return sent.AddDate(0, 0, int(keepDays))
}
