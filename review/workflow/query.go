package workflow

import (
	"net/http"
	"strconv"
	"time"

	"github.com/vigilhq/vigil"
)

// Filter selects alerts for the queue. Zero fields match everything.
type Filter struct {
	// Tenant narrows an all-tenants admin to one tenant; other principals
	// only ever see their own tenant whatever this says.
	Tenant   string
	State    State
	RuleID   string
	Severity vigil.Severity
	// Assignee "-" selects unassigned alerts.
	Assignee string
	// MinAge selects alerts first seen at least this long ago.
	MinAge time.Duration
	// Page is 1-based; PerPage defaults to DefaultPerPage and is capped at
	// MaxPerPage.
	Page    int
	PerPage int
}

// Paging defaults.
const (
	DefaultPerPage = 50
	MaxPerPage     = 500
)

// Page is one page of the queue, most severe and oldest first.
type Page struct {
	Alerts []*Alert `json:"alerts"`
	// Total matches of the filter, over all pages.
	Total   int `json:"total"`
	Page    int `json:"page"`
	PerPage int `json:"per_page"`
	// Counts of matching alerts by state, severity and rule (for the
	// filter bar), computed before paging.
	ByState    map[State]int          `json:"by_state"`
	BySeverity map[vigil.Severity]int `json:"by_severity"`
	ByRule     map[string]int         `json:"by_rule"`
}

// Pages is the number of pages.
func (p *Page) Pages() int {
	if p.PerPage <= 0 {
		return 1
	}
	return max(1, (p.Total+p.PerPage-1)/p.PerPage)
}

// Stats is the dashboard of one principal's tenants.
type Stats struct {
	OpenBySeverity map[vigil.Severity]int `json:"open_by_severity"`
	Open           int                    `json:"open"`
	Claimed        int                    `json:"claimed"`
	Closed         int                    `json:"closed"`
	// OldestOpen is the first-seen time of the oldest open or claimed
	// alert; zero when there is none.
	OldestOpen time.Time `json:"oldest_open,omitzero"`
	// Suppressed verdicts folded into existing alerts.
	Suppressed int `json:"suppressed"`
	// VerdictsPerRule counts verdicts per rule per hour over the last
	// Hours hours (index 0 is the oldest hour).
	VerdictsPerRule map[string][]int `json:"verdicts_per_rule"`
	HourStart       time.Time        `json:"hour_start"`
	Hours           int              `json:"hours"`
}

// ParseFilter reads a queue filter from URL query parameters: tenant,
// state, rule, severity, assignee, min_age (Go duration), page, per_page.
func ParseFilter(q map[string][]string) (Filter, error) {
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	f := Filter{
		Tenant:   get("tenant"),
		State:    State(get("state")),
		RuleID:   get("rule"),
		Severity: vigil.Severity(get("severity")),
		Assignee: get("assignee"),
	}
	switch f.State {
	case "", StateActive, StateAll, StateOpen, StateClaimed, StateClosed:
	default:
		return f, Errorf(http.StatusBadRequest, CodeBadRequest, "unknown state %q", f.State)
	}
	if f.Severity != "" && !f.Severity.Valid() {
		return f, Errorf(http.StatusBadRequest, CodeBadRequest, "unknown severity %q", f.Severity)
	}
	if v := get("min_age"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			return f, Errorf(http.StatusBadRequest, CodeBadRequest, "min_age must be a duration such as 30m or 24h")
		}
		f.MinAge = d
	}
	for k, dst := range map[string]*int{"page": &f.Page, "per_page": &f.PerPage} {
		if v := get(k); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return f, Errorf(http.StatusBadRequest, CodeBadRequest, "%s must be a positive integer", k)
			}
			*dst = n
		}
	}
	return f, nil
}
