package bench_test

import (
	"encoding/json"
	"errors"
	"math"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/bench"
	"github.com/vigilhq/vigil/pii"
)

func newGen(t *testing.T, seed int64, mix bench.Mix, opts ...bench.GeneratorOption) *bench.Generator {
	t.Helper()
	g, err := bench.NewGenerator(seed, mix, opts...)
	if err != nil {
		t.Fatalf("NewGenerator: %v", err)
	}
	return g
}

func take(g *bench.Generator, n int) []*bench.Message {
	out := make([]*bench.Message, n)
	for i := range out {
		out[i] = g.Next()
	}
	return out
}

func TestGeneratorDeterministic(t *testing.T) {
	tests := []struct {
		name     string
		a, b     int64
		wantSame bool
	}{
		{"same seed", 42, 42, true},
		{"other seed", 42, 43, false},
		{"zero seed", 0, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ga, gb := newGen(t, tc.a, bench.DefaultMix), newGen(t, tc.b, bench.DefaultMix)
			ja, _ := json.Marshal(take(ga, 500))
			jb, _ := json.Marshal(take(gb, 500))
			if same := string(ja) == string(jb); same != tc.wantSame {
				t.Errorf("seeds %d and %d: same output = %v, want %v", tc.a, tc.b, same, tc.wantSame)
			}
		})
	}
}

func TestGeneratorMixRates(t *testing.T) {
	const n = 40000
	tests := []struct {
		name string
		mix  bench.Mix
	}{
		{"default", bench.DefaultMix},
		{"gaming only, many rules", bench.Mix{Gaming: 1, RuleRate: 0.2, PIIRate: 0.1}},
		{"even kinds, no rules", bench.Mix{Advisory: 1, Support: 1, Gaming: 1, Clinic: 1, PIIRate: 0.05}},
		{"clinic heavy", bench.Mix{Advisory: 1, Clinic: 3, RuleRate: 0.05, PIIRate: 0.3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			g := newGen(t, 7, tc.mix)
			kinds := map[bench.Kind]int{}
			rule, piiN := 0, 0
			for _, m := range take(g, n) {
				kinds[m.Kind]++
				if m.RuleWorthy() {
					rule++
				}
				if m.HasPII() && !m.RuleWorthy() {
					piiN++
				}
			}
			total := tc.mix.Advisory + tc.mix.Support + tc.mix.Gaming + tc.mix.Clinic
			want := map[bench.Kind]float64{
				bench.KindAdvisory: tc.mix.Advisory / total, bench.KindSupport: tc.mix.Support / total,
				bench.KindGaming: tc.mix.Gaming / total, bench.KindClinic: tc.mix.Clinic / total,
			}
			for k, w := range want {
				if got := float64(kinds[k]) / n; math.Abs(got-w) > 0.04 {
					t.Errorf("share of %s = %.3f, want %.3f ± 0.04", k, got, w)
				}
			}
			if got := float64(rule) / n; math.Abs(got-tc.mix.RuleRate) > 0.006 {
				t.Errorf("rule-worthy rate = %.4f, want %.4f ± 0.006", got, tc.mix.RuleRate)
			}
			if got := float64(piiN) / n; math.Abs(got-tc.mix.PIIRate) > 0.006 {
				t.Errorf("PII rate = %.4f, want %.4f ± 0.006", got, tc.mix.PIIRate)
			}
		})
	}
}

func TestGeneratorInvalid(t *testing.T) {
	tests := []struct {
		name string
		mix  bench.Mix
		opts []bench.GeneratorOption
	}{
		{"all zero weights", bench.Mix{RuleRate: 0.1}, nil},
		{"negative weight", bench.Mix{Advisory: -1, Gaming: 2}, nil},
		{"rates above one", bench.Mix{Gaming: 1, RuleRate: 0.7, PIIRate: 0.4}, nil},
		{"negative rate", bench.Mix{Gaming: 1, PIIRate: -0.1}, nil},
		{"NaN weight", bench.Mix{Gaming: math.NaN(), Clinic: 1}, nil},
		{"infinite weight", bench.Mix{Gaming: math.Inf(1)}, nil},
		{"NaN rate", bench.Mix{Gaming: 1, RuleRate: math.NaN()}, nil},
		{"bad tenant", bench.DefaultMix, []bench.GeneratorOption{bench.WithTenant("a b")}},
		{"zero conversations", bench.DefaultMix, []bench.GeneratorOption{bench.WithConversations(0)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := bench.NewGenerator(1, tc.mix, tc.opts...)
			if !errors.Is(err, bench.ErrInvalidMix) {
				t.Errorf("NewGenerator = %v, want ErrInvalidMix", err)
			}
		})
	}
}

// TestGeneratorMessagesValid checks every message against the ingest
// contract: valid ids, a sender among the participants, RFC 3339 times
// moving forward, text present and no unfilled placeholder.
func TestGeneratorMessagesValid(t *testing.T) {
	start := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	g := newGen(t, 3, bench.Mix{Advisory: 1, Support: 1, Gaming: 1, Clinic: 1, RuleRate: 0.2, PIIRate: 0.3},
		bench.WithTenant("acme"), bench.WithIDPrefix("run1"), bench.WithConversations(5), bench.WithStart(start))
	prev := start
	ids := map[string]bool{}
	lasts := 0
	for _, m := range take(g, 3000) {
		for _, id := range []string{m.ID, m.Tenant, m.ConversationID, m.Sender.ID} {
			if err := vigil.ValidateID(id); err != nil {
				t.Fatalf("message %s: id %q: %v", m.ID, id, err)
			}
		}
		if m.Tenant != "acme" || !strings.HasPrefix(m.ID, "run1-") {
			t.Fatalf("message %s: tenant %q, want acme and prefix run1-", m.ID, m.Tenant)
		}
		if ids[m.ID] {
			t.Fatalf("duplicate id %s", m.ID)
		}
		ids[m.ID] = true
		if !m.SentAt.After(prev) {
			t.Fatalf("message %s: sent_at %v not after %v", m.ID, m.SentAt, prev)
		}
		prev = m.SentAt
		found := false
		for _, p := range m.Participants {
			found = found || p == m.Sender
		}
		if !found {
			t.Fatalf("message %s: sender %v not among participants", m.ID, m.Sender)
		}
		if m.Text == "" || strings.ContainsAny(m.Text, "{}") {
			t.Fatalf("message %s: bad text %q", m.ID, m.Text)
		}
		if m.Last {
			lasts++
		}
		var wire map[string]any
		b, _ := json.Marshal(m)
		if err := json.Unmarshal(b, &wire); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"tenant", "conversation_id", "sender", "participants", "channel", "text", "sent_at"} {
			if _, ok := wire[k]; !ok {
				t.Fatalf("message %s: JSON lacks %q: %s", m.ID, k, b)
			}
		}
		if _, err := time.Parse(time.RFC3339, wire["sent_at"].(string)); err != nil {
			t.Fatalf("sent_at: %v", err)
		}
		if _, ok := wire["labels"]; ok {
			t.Fatalf("labels leaked into the wire JSON: %s", b)
		}
	}
	if lasts < 3000/40 {
		t.Errorf("%d conversations ended in 3000 messages, want at least %d", lasts, 3000/40)
	}
}

// TestGeneratorPlantedValues checks that every planted value is a real
// value of its kind: cards pass Luhn, IBANs pass mod-97, and the pii
// detector finds it in the text.
func TestGeneratorPlantedValues(t *testing.T) {
	det, err := pii.NewDetector(pii.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	g := newGen(t, 11, bench.Mix{Advisory: 1, Support: 1, Gaming: 1, Clinic: 1, RuleRate: 0.1, PIIRate: 0.9})
	emailRe := regexp.MustCompile(`^[a-z0-9.]+@[a-z.]*example\.(com|org|net)$`)
	seen := map[string]int{}
	for _, m := range take(g, 5000) {
		for label, v := range m.Values {
			seen[label]++
			if !strings.Contains(m.Text, v) {
				t.Fatalf("%s: value %q not in text %q", label, v, m.Text)
			}
			switch label {
			case bench.LabelCard:
				if d := digits(v); len(d) != 16 || !luhnValid(d) {
					t.Fatalf("card %q fails Luhn", v)
				}
			case bench.LabelIBAN:
				if !ibanValid(v) {
					t.Fatalf("IBAN %q fails mod-97", v)
				}
			case bench.LabelEmail:
				if !emailRe.MatchString(v) {
					t.Fatalf("email %q", v)
				}
			case bench.LabelName:
				ok := false
				for _, p := range m.Participants {
					ok = ok || (p.DisplayName == v && p.ID != m.Sender.ID)
				}
				if !ok {
					t.Fatalf("name %q is not another participant's", v)
				}
			}
			// The detector must see card, IBAN, email and phone values.
			want := map[string]pii.Kind{bench.LabelCard: pii.KindCard, bench.LabelIBAN: pii.KindIBAN,
				bench.LabelEmail: pii.KindEmail, bench.LabelPhone: pii.KindPhone, bench.LabelName: pii.KindName,
				bench.LabelDOB: pii.KindDOB, bench.LabelMRN: pii.KindAccount}[label]
			if want == "" {
				continue
			}
			dir := pii.Directory{Sender: m.Sender, Participants: m.Participants}
			found := false
			for _, f := range det.Detect(m.Text, dir) {
				found = found || f.Kind == want
			}
			if !found {
				t.Errorf("detector did not find %s in %q", want, m.Text)
			}
		}
	}
	for _, l := range []string{bench.LabelEmail, bench.LabelPhone, bench.LabelCard, bench.LabelIBAN, bench.LabelName, bench.LabelMRN, bench.LabelDOB} {
		if seen[l] < 50 {
			t.Errorf("only %d values of %s planted in 5000 messages", seen[l], l)
		}
	}
}

func digits(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= '0' && c <= '9' {
			b.WriteRune(c)
		}
	}
	return b.String()
}

// luhnValid is an independent Luhn check.
func luhnValid(d string) bool {
	sum := 0
	for i := 0; i < len(d); i++ {
		v := int(d[len(d)-1-i] - '0')
		if i%2 == 1 {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return sum%10 == 0
}

// ibanValid is an independent ISO 13616 check: move the first four
// characters to the end, letters to numbers, and the value mod 97 is 1.
func ibanValid(s string) bool {
	s = strings.ReplaceAll(s, " ", "")
	if len(s) < 15 {
		return false
	}
	s = s[4:] + s[:4]
	var num strings.Builder
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			num.WriteRune(c)
		case c >= 'A' && c <= 'Z':
			num.WriteString(strconv.Itoa(int(c-'A') + 10))
		default:
			return false
		}
	}
	m := 0
	for _, c := range num.String() {
		m = (m*10 + int(c-'0')) % 97
	}
	return m == 1
}

func TestLuhnAndIBANCheckersRejectCorruption(t *testing.T) {
	tests := []struct {
		name string
		ok   bool
		fn   func() bool
	}{
		{"known good card", true, func() bool { return luhnValid("4111111111111111") }},
		{"corrupted card", false, func() bool { return luhnValid("4111111111111112") }},
		{"known good IBAN", true, func() bool { return ibanValid("GB82 WEST 1234 5698 7654 32") }},
		{"corrupted IBAN", false, func() bool { return ibanValid("GB82 WEST 1234 5698 7654 33") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.fn(); got != tc.ok {
				t.Errorf("got %v, want %v", got, tc.ok)
			}
		})
	}
}
