package review

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/review/workflow"
)

// index is the in-memory view of the alerts bucket, rebuilt from KV at
// start and kept current by the bucket watcher and by this replica's own
// writes. An entry is replaced only by a higher KV revision, so the two
// paths may race harmlessly.
type index struct {
	mu     sync.RWMutex
	alerts map[string]indexEntry
	// flagged counts verdict alerts per tenant+conversation, so sampling
	// can skip conversations that are already under review.
	flagged map[convKey]int
	// order holds every alert sorted for the queue (most severe, then
	// oldest first). It is rebuilt lazily by the first query after a
	// change, so a burst of changes costs one sort and queries only filter.
	order []row
	dirty bool
	// rules interns rule ids for counting without map writes per alert.
	rules     map[string]int
	ruleNames []string
}

// row is an alert in queue order with its filter keys precomputed.
type row struct {
	a     *workflow.Alert
	rule  int
	sev   int
	state int
}

// stateSlot numbers the alert states for counting.
var stateSlots = [...]workflow.State{workflow.StateOpen, workflow.StateClaimed, workflow.StateClosed}

func stateSlot(s workflow.State) int {
	switch s {
	case workflow.StateOpen:
		return 0
	case workflow.StateClaimed:
		return 1
	case workflow.StateClosed:
		return 2
	}
	return 3
}

var severitySlots = [...]vigil.Severity{vigil.SeverityInfo, vigil.SeverityLow, vigil.SeverityMedium, vigil.SeverityHigh, vigil.SeverityCritical}

type indexEntry struct {
	alert *workflow.Alert
	rev   uint64
}

type convKey struct{ tenant, conversation string }

func newIndex() *index {
	return &index{alerts: make(map[string]indexEntry), flagged: make(map[convKey]int), rules: make(map[string]int)}
}

// apply stores a at revision rev. It reports whether the index changed and
// whether the alert is new to it. Alerts are treated as immutable once
// stored.
func (x *index) apply(a *workflow.Alert, rev uint64) (changed, created bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	old, ok := x.alerts[a.ID]
	if ok && old.rev >= rev {
		return false, false
	}
	x.alerts[a.ID] = indexEntry{alert: a, rev: rev}
	x.dirty = true
	if !ok && a.Kind == workflow.KindVerdict {
		x.flagged[convKey{a.Tenant, a.ConversationID}]++
	}
	return true, !ok
}

func (x *index) remove(id string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if e, ok := x.alerts[id]; ok {
		delete(x.alerts, id)
		x.dirty = true
		if e.alert.Kind == workflow.KindVerdict {
			k := convKey{e.alert.Tenant, e.alert.ConversationID}
			if x.flagged[k]--; x.flagged[k] <= 0 {
				delete(x.flagged, k)
			}
		}
	}
}

func (x *index) get(id string) (*workflow.Alert, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	e, ok := x.alerts[id]
	return e.alert, ok
}

// pending returns the alerts whose latest event is not yet published.
func (x *index) pending() []indexEntry {
	x.mu.RLock()
	defer x.mu.RUnlock()
	var out []indexEntry
	for _, e := range x.alerts {
		if e.alert.Pending != nil {
			out = append(out, e)
		}
	}
	return out
}

func (x *index) isFlagged(tenant, conversation string) bool {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.flagged[convKey{tenant, conversation}] > 0
}

func (x *index) len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.alerts)
}

func stateMatches(want, got workflow.State) bool {
	switch want {
	case "", workflow.StateActive:
		return got == workflow.StateOpen || got == workflow.StateClaimed
	case workflow.StateAll:
		return true
	}
	return want == got
}

// query filters, counts, sorts (most severe, then oldest first) and pages
// the alerts p may see.
func (x *index) query(p workflow.Principal, f workflow.Filter, now time.Time) *workflow.Page {
	per := f.PerPage
	if per <= 0 {
		per = workflow.DefaultPerPage
	}
	per = min(per, workflow.MaxPerPage)
	page := max(f.Page, 1)
	out := &workflow.Page{
		Page:       page,
		PerPage:    per,
		ByState:    map[workflow.State]int{},
		BySeverity: map[vigil.Severity]int{},
		ByRule:     map[string]int{},
	}
	var cutoff time.Time
	if f.MinAge > 0 {
		cutoff = now.Add(-f.MinAge)
	}
	x.mu.RLock()
	if x.dirty {
		x.mu.RUnlock()
		x.sort()
		x.mu.RLock()
	}
	defer x.mu.RUnlock()
	rule := -1
	if f.RuleID != "" {
		var ok bool
		if rule, ok = x.rules[f.RuleID]; !ok {
			rule = -2 // no alert has this rule
		}
	}
	sev := -1
	if f.Severity != "" {
		sev = f.Severity.Rank()
	}
	var byState [len(stateSlots) + 1]int
	var bySev [len(severitySlots)]int
	byRule := make([]int, len(x.ruleNames))
	start, end := (page-1)*per, page*per
	for _, r := range x.order {
		a := r.a
		if !p.Sees(a.Tenant) || (f.Tenant != "" && a.Tenant != f.Tenant) {
			continue
		}
		if rule != -1 && r.rule != rule {
			continue
		}
		if sev != -1 && r.sev != sev {
			continue
		}
		if f.Assignee != "" && !(a.Assignee == f.Assignee || f.Assignee == "-" && a.Assignee == "") {
			continue
		}
		if !cutoff.IsZero() && a.FirstAt.After(cutoff) {
			continue
		}
		// Counts by state ignore the state filter so the filter bar can
		// show what each state holds.
		byState[r.state]++
		if !stateMatches(f.State, a.State) {
			continue
		}
		if r.sev >= 0 {
			bySev[r.sev]++
		}
		byRule[r.rule]++
		if out.Total >= start && out.Total < end {
			out.Alerts = append(out.Alerts, a)
		}
		out.Total++
	}
	for i, st := range stateSlots {
		if byState[i] > 0 {
			out.ByState[st] = byState[i]
		}
	}
	for i, sv := range severitySlots {
		if bySev[i] > 0 {
			out.BySeverity[sv] = bySev[i]
		}
	}
	for i, n := range byRule {
		if n > 0 {
			out.ByRule[x.ruleNames[i]] = n
		}
	}
	if out.Alerts == nil {
		out.Alerts = []*workflow.Alert{}
	}
	return out
}

// sort rebuilds the queue order if it is stale.
func (x *index) sort() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.dirty {
		return
	}
	x.order = x.order[:0]
	for _, e := range x.alerts {
		a := e.alert
		rn, ok := x.rules[a.RuleID]
		if !ok {
			rn = len(x.ruleNames)
			x.rules[a.RuleID] = rn
			x.ruleNames = append(x.ruleNames, a.RuleID)
		}
		x.order = append(x.order, row{a: a, rule: rn, sev: a.Severity.Rank(), state: stateSlot(a.State)})
	}
	slices.SortFunc(x.order, func(a, b row) int { return compareAlerts(a.a, b.a) })
	x.dirty = false
}

func compareAlerts(a, b *workflow.Alert) int {
	if c := cmp.Compare(b.Severity.Rank(), a.Severity.Rank()); c != 0 {
		return c
	}
	if c := a.FirstAt.Compare(b.FirstAt); c != 0 {
		return c
	}
	return cmp.Compare(a.ID, b.ID)
}

// statsHours is the span of the verdicts-per-rule chart.
const statsHours = 24

// maxChartRules bounds the rules drawn on the dashboard chart.
const maxChartRules = 6

func (x *index) stats(p workflow.Principal, tenant string, now time.Time) *workflow.Stats {
	hourStart := now.UTC().Truncate(time.Hour).Add(-(statsHours - 1) * time.Hour)
	st := &workflow.Stats{
		OpenBySeverity:  map[vigil.Severity]int{},
		VerdictsPerRule: map[string][]int{},
		HourStart:       hourStart,
		Hours:           statsHours,
	}
	x.mu.RLock()
	if x.dirty {
		x.mu.RUnlock()
		x.sort()
		x.mu.RLock()
	}
	var byState [len(stateSlots) + 1]int
	var openBySev [len(severitySlots)]int
	series := make([][]int, len(x.ruleNames))
	for _, r := range x.order {
		a := r.a
		if !p.Sees(a.Tenant) || (tenant != "" && a.Tenant != tenant) {
			continue
		}
		st.Suppressed += a.Suppressed()
		byState[r.state]++
		if r.state != 2 {
			if r.sev >= 0 {
				openBySev[r.sev]++
			}
			if st.OldestOpen.IsZero() || a.FirstAt.Before(st.OldestOpen) {
				st.OldestOpen = a.FirstAt
			}
		}
		if a.Kind != workflow.KindVerdict {
			continue
		}
		// An alert covers one aggregation window; its verdicts are charted
		// in the hour its window starts.
		h := int(a.WindowStart.Sub(hourStart) / time.Hour)
		if h < 0 || h >= statsHours || a.WindowStart.Before(hourStart) {
			continue
		}
		if series[r.rule] == nil {
			series[r.rule] = make([]int, statsHours)
		}
		series[r.rule][h] += a.Count
	}
	x.mu.RUnlock()
	st.Open, st.Claimed, st.Closed = byState[0], byState[1], byState[2]
	for i, sv := range severitySlots {
		if openBySev[i] > 0 {
			st.OpenBySeverity[sv] = openBySev[i]
		}
	}
	for i, s := range series {
		if s != nil {
			st.VerdictsPerRule[x.ruleNames[i]] = s
		}
	}
	if len(st.VerdictsPerRule) > maxChartRules {
		type rt struct {
			rule  string
			total int
		}
		var rs []rt
		for r, s := range st.VerdictsPerRule {
			t := 0
			for _, n := range s {
				t += n
			}
			rs = append(rs, rt{r, t})
		}
		slices.SortFunc(rs, func(a, b rt) int {
			if c := cmp.Compare(b.total, a.total); c != 0 {
				return c
			}
			return cmp.Compare(a.rule, b.rule)
		})
		for _, r := range rs[maxChartRules:] {
			delete(st.VerdictsPerRule, r.rule)
		}
	}
	return st
}
