package console

import (
	"cmp"
	"fmt"
	"html/template"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/review/workflow"
)

func (c *Console) funcs() template.FuncMap {
	return template.FuncMap{
		"age":      age,
		"ts":       func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
		"label":    func(s any) string { return strings.ReplaceAll(fmt.Sprint(s), "_", " ") },
		"selected": func(a, b any) bool { return fmt.Sprint(a) == fmt.Sprint(b) },
		"filterURL": func(q url.Values, k, v string) string {
			n := url.Values{}
			for key, vs := range q {
				n[key] = vs
			}
			n.Del("page")
			if v == "" {
				n.Del(k)
			} else {
				n.Set(k, v)
			}
			return "/console/queue?" + n.Encode()
		},
		"add":     func(a, b int) int { return a + b },
		"sev":     func(s vigil.Severity) int { return s.Rank() },
		"icon":    kindIcon,
		"list":    func(s ...string) []string { return s },
		"byState": func(p *workflow.Page, s string) int { return p.ByState[workflow.State(s)] },
		"bySev":   func(p *workflow.Page, s vigil.Severity) int { return p.BySeverity[s] },
	}
}

// age is a short human duration from t to now.
func age(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "<1m"
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh %dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}

func kindIcon(kind string) string {
	switch kind {
	case "email":
		return "@"
	case "phone":
		return "☎"
	case "card", "iban", "account":
		return "#"
	case "name":
		return "👤"
	}
	return "•"
}

// segment is a run of message text rendered one way: plain, highlighted
// (a rule matched it) or a token chip. Text is escaped by the template.
type segment struct {
	Text  string
	Hit   bool
	Token bool
	Kind  string
}

// segments splits text at matched spans and tokens. Span offsets are
// bytes; offsets outside the text or inside a UTF-8 sequence are clamped,
// and a span boundary inside a token is widened to the whole token so a
// chip is never split.
func segments(text string, spans []vigil.Span) []segment {
	tokens := workflow.FindTokens(text)
	inToken := func(i int) (workflow.Token, bool) {
		for _, t := range tokens {
			if i > t.Start && i < t.End {
				return t, true
			}
		}
		return workflow.Token{}, false
	}
	clamp := func(i int, start bool) int {
		i = max(0, min(i, len(text)))
		for i > 0 && i < len(text) && !utf8.RuneStart(text[i]) {
			i--
		}
		if t, ok := inToken(i); ok {
			if start {
				return t.Start
			}
			return t.End
		}
		return i
	}
	type rng struct{ s, e int }
	var hits []rng
	cuts := map[int]bool{0: true, len(text): true}
	for _, sp := range spans {
		s, e := clamp(sp.Start, true), clamp(sp.End, false)
		if s < e {
			hits = append(hits, rng{s, e})
			cuts[s], cuts[e] = true, true
		}
	}
	for _, t := range tokens {
		cuts[t.Start], cuts[t.End] = true, true
	}
	points := slices.Sorted(maps.Keys(cuts))
	var out []segment
	for i := 0; i+1 < len(points); i++ {
		s, e := points[i], points[i+1]
		seg := segment{Text: text[s:e]}
		for _, h := range hits {
			if s >= h.s && e <= h.e {
				seg.Hit = true
				break
			}
		}
		for _, t := range tokens {
			if s == t.Start && e == t.End {
				seg.Token, seg.Kind = true, t.Kind
				break
			}
		}
		if n := len(out); n > 0 && !seg.Token && !out[n-1].Token && out[n-1].Hit == seg.Hit {
			out[n-1].Text += seg.Text
			continue
		}
		out = append(out, seg)
	}
	return out
}

// bar is one severity bar of the dashboard.
type bar struct {
	Severity vigil.Severity
	Count    int
	Width    int
	Y        int
}

func severityBars(st *workflow.Stats) []bar {
	order := []vigil.Severity{vigil.SeverityCritical, vigil.SeverityHigh, vigil.SeverityMedium, vigil.SeverityLow, vigil.SeverityInfo}
	top := 1
	for _, s := range order {
		top = max(top, st.OpenBySeverity[s])
	}
	out := make([]bar, len(order))
	for i, s := range order {
		n := st.OpenBySeverity[s]
		out[i] = bar{Severity: s, Count: n, Width: n * 300 / top, Y: i * 28}
	}
	return out
}

// chart is the verdicts-per-rule line chart, drawn as inline SVG.
type chart struct {
	Width, Height int
	Series        []series
	YMax          int
	XLabels       []axisLabel
	Empty         bool
}

type series struct {
	Rule   string
	Points string
	Total  int
	Class  string
	Y      int
}

type axisLabel struct {
	X    int
	Text string
}

func buildChart(st *workflow.Stats) chart {
	const w, h, left, bottom = 640, 200, 40, 20
	ch := chart{Width: w, Height: h, YMax: 1}
	for _, s := range st.VerdictsPerRule {
		for _, n := range s {
			ch.YMax = max(ch.YMax, n)
		}
	}
	rules := slices.SortedFunc(maps.Keys(st.VerdictsPerRule), cmp.Compare[string])
	ch.Empty = len(rules) == 0
	hours := max(st.Hours, 2)
	x := func(i int) int { return left + i*(w-left-10)/(hours-1) }
	y := func(n int) int { return h - bottom - n*(h-bottom-10)/ch.YMax }
	for k, r := range rules {
		var pts []string
		total := 0
		for i, n := range st.VerdictsPerRule[r] {
			pts = append(pts, fmt.Sprintf("%d,%d", x(i), y(n)))
			total += n
		}
		ch.Series = append(ch.Series, series{Rule: r, Points: strings.Join(pts, " "), Total: total, Class: fmt.Sprintf("s%d", k%6), Y: 16 + k*18})
	}
	for i := 0; i < hours; i += 6 {
		ch.XLabels = append(ch.XLabels, axisLabel{X: x(i), Text: st.HourStart.Add(time.Duration(i) * time.Hour).UTC().Format("15:04")})
	}
	return ch
}
