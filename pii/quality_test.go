package pii_test

import (
	"bytes"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/pii"
)

var update = flag.Bool("update", false, "rewrite golden files (pii/README.md quality table)")

// labelled is one generated chat line with the spans of its seeded values.
type labelled struct {
	text  string
	dir   pii.Directory
	spans []labelSpan
}

type labelSpan struct {
	kind       pii.Kind
	start, end int
}

// lineBuilder appends text and records labelled spans.
type lineBuilder struct {
	b     strings.Builder
	spans []labelSpan
}

func (l *lineBuilder) text(s string) *lineBuilder { l.b.WriteString(s); return l }
func (l *lineBuilder) value(k pii.Kind, s string) *lineBuilder {
	start := l.b.Len()
	l.b.WriteString(s)
	l.spans = append(l.spans, labelSpan{k, start, l.b.Len()})
	return l
}

var (
	firstNames = []string{"Anna", "Robert", "Maria", "James", "Priya", "Chen", "Fatima", "Lukas", "Sofia", "Daniel", "Aisha", "Mateo", "Olga", "Kwame", "Hannah", "Tomás", "Yuki", "Grace", "Omar", "Elena"}
	lastNames  = []string{"Lee", "Okafor", "Garcia", "Smith", "Patel", "Wang", "Haddad", "Becker", "Rossi", "Cohen", "Mensah", "Silva", "Ivanova", "Nakamura", "Murphy", "Dubois", "Kowalski", "Andersen", "Moreau", "Hughes"}
	domains    = []string{"example.com", "bank.co.uk", "client.org", "mail.example.net", "corp.io", "broker-dealer.com"}
	streets    = []string{"Evergreen", "Maple Grove", "Oak", "Pennsylvania", "Baker", "King", "Harbor View", "Elm", "Sunset", "Mill Creek"}
	suffixes   = []string{"Street", "St", "Avenue", "Ave", "Road", "Rd", "Lane", "Drive", "Boulevard", "Court"}
	areaCodes  = []string{"212", "415", "646", "312", "617", "202", "305", "713", "206", "303"}
	fillers    = []string{
		"Thanks, that works for me.", "Can we move the call to Thursday?", "The Q3 numbers look fine.",
		"Let's sync at 3pm London time.", "I'll send the deck after lunch.", "Market opened flat, watching NVDA and AAPL.",
		"Please review the attached term sheet before Monday.", "No worries, take your time.",
		"We closed 2 deals this week and 14 last month.", "Rates moved 25 bps after the Fed statement.",
		"FYI the compliance training is due on Friday.", "Sounds good!", "Room 4B is booked for the review.",
		"Version 2.4.1 of the app fixes the login bug.", "The meeting is at 10:30:00 in New York.",
		"Our Paris office reopens in January.", "Did you see the S&P 500 close at 5,234?",
	}
)

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func digits(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('0' + r.IntN(10))
	}
	return string(b)
}

func luhnCheck(d string) byte {
	sum := 0
	for i := len(d) - 1; i >= 0; i-- {
		n := int(d[i] - '0')
		if (len(d)-i)%2 == 1 {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
	}
	return byte('0' + (10-sum%10)%10)
}

// genCard returns a valid card number of a major network, formatted.
func genCard(r *rand.Rand, valid bool) string {
	var body string
	amex := false
	switch r.IntN(4) {
	case 0:
		body = "4" + digits(r, 14)
	case 1:
		body = strconv.Itoa(51+r.IntN(5)) + digits(r, 13)
	case 2:
		body = pick(r, []string{"34", "37"}) + digits(r, 12)
		amex = true
	default:
		body = "6011" + digits(r, 11)
	}
	d := body + string(luhnCheck(body))
	if !valid {
		last := (d[len(d)-1]-'0'+1+byte(r.IntN(8)))%10 + '0'
		d = d[:len(d)-1] + string(last)
	}
	switch r.IntN(3) {
	case 0:
		return d
	case 1:
		if amex {
			return d[:4] + " " + d[4:10] + " " + d[10:]
		}
		return d[:4] + " " + d[4:8] + " " + d[8:12] + " " + d[12:]
	default:
		if amex {
			return d[:4] + "-" + d[4:10] + "-" + d[10:]
		}
		return d[:4] + "-" + d[4:8] + "-" + d[8:12] + "-" + d[12:]
	}
}

func mod97(s string) int {
	rem := 0
	for _, c := range s {
		if c >= 'A' && c <= 'Z' {
			rem = (rem*100 + int(c-'A'+10)) % 97
		} else {
			rem = (rem*10 + int(c-'0')) % 97
		}
	}
	return rem
}

// genIBAN returns an IBAN (valid checksum unless !valid), compact or grouped.
func genIBAN(r *rand.Rand, valid bool) string {
	var cc, bban string
	switch r.IntN(5) {
	case 0:
		cc, bban = "DE", digits(r, 18)
	case 1:
		cc, bban = "GB", pick(r, []string{"WEST", "NWBK", "BARC", "HBUK"})+digits(r, 14)
	case 2:
		cc, bban = "FR", digits(r, 23)
	case 3:
		cc, bban = "NL", pick(r, []string{"ABNA", "INGB", "RABO"})+digits(r, 10)
	default:
		cc, bban = "ES", digits(r, 20)
	}
	check := 98 - mod97(bban+cc+"00")
	if !valid {
		check = (check + 1 + r.IntN(90)) % 97
		if check < 2 {
			check += 2
		}
		if check == 98-mod97(bban+cc+"00") {
			check++
		}
	}
	iban := fmt.Sprintf("%s%02d%s", cc, check, bban)
	if r.IntN(2) == 0 {
		return iban
	}
	var g []string
	for i := 0; i < len(iban); i += 4 {
		g = append(g, iban[i:min(i+4, len(iban))])
	}
	return strings.Join(g, " ")
}

func genPhone(r *rand.Rand) string {
	area := pick(r, areaCodes)
	ex := strconv.Itoa(200 + r.IntN(800)) // exchange 200–999
	line := digits(r, 4)
	switch r.IntN(6) {
	case 0:
		return "(" + area + ") " + ex + "-" + line
	case 1:
		return area + "-" + ex + "-" + line
	case 2:
		return "+1 " + area + " " + ex + " " + line
	case 3:
		return area + "." + ex + "." + line
	case 4:
		return "+44 20 7946 " + digits(r, 4)
	default:
		return "+49 30 " + strconv.Itoa(2000000+r.IntN(7000000))
	}
}

func genSSN(r *rand.Rand, valid bool) string {
	if !valid {
		switch r.IntN(5) {
		case 0:
			return "000-" + digits(r, 2) + "-" + digits(r, 4)
		case 1:
			return "666-" + strconv.Itoa(10+r.IntN(90)) + "-" + strconv.Itoa(1000+r.IntN(9000))
		case 2:
			return strconv.Itoa(900+r.IntN(100)) + "-" + strconv.Itoa(10+r.IntN(90)) + "-" + strconv.Itoa(1000+r.IntN(9000))
		case 3:
			return strconv.Itoa(100+r.IntN(565)) + "-00-" + strconv.Itoa(1000+r.IntN(9000))
		default:
			return strconv.Itoa(100+r.IntN(565)) + "-" + strconv.Itoa(10+r.IntN(90)) + "-0000"
		}
	}
	return strconv.Itoa(100+r.IntN(565)) + "-" + strconv.Itoa(10+r.IntN(90)) + "-" + strconv.Itoa(1000+r.IntN(9000))
}

func genIPv6(r *rand.Rand) string {
	g := make([]string, 8)
	for i := range g {
		g[i] = strconv.FormatInt(int64(r.IntN(65536)), 16)
	}
	if r.IntN(2) == 0 {
		return "2001:db8::" + g[6] + ":" + g[7]
	}
	return strings.Join(g, ":")
}

// genCorpus builds n labelled chat lines from seed: seeded values of every
// kind in realistic phrasing, near misses (invalid checksums, order numbers,
// SSNs in invalid ranges, numbers and dates without keywords, versions,
// times) and plain chat.
func genCorpus(seed uint64, n int) []labelled {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	out := make([]labelled, 0, n)
	for i := 0; i < n; i++ {
		sf, sl := pick(r, firstNames), pick(r, lastNames)
		pf, pl := pick(r, firstNames), pick(r, lastNames)
		for pf == sf {
			pf = pick(r, firstNames)
		}
		dir := pii.Directory{
			Sender:       vigil.Participant{ID: "u-s", DisplayName: sf + " " + sl},
			Participants: []vigil.Participant{{ID: "u-p", DisplayName: pf + " " + pl}},
		}
		var l lineBuilder
		if r.IntN(4) == 0 {
			l.text(pick(r, fillers) + " ")
		}
		switch r.IntN(36) {
		case 0:
			l.text("You can reach me at ").value(pii.KindEmail, strings.ToLower(sf)+"."+strings.ToLower(sl)+"@"+pick(r, domains)).text(" anytime.")
		case 1:
			l.text("cc ").value(pii.KindEmail, strings.ToLower(pf[:1]+pl)+strconv.Itoa(r.IntN(99))+"@"+pick(r, domains)).text(" on the thread pls")
		case 2:
			l.text("Charge it to my card ").value(pii.KindCard, genCard(r, true)).text(", exp 09/27.")
		case 3:
			l.text("new one is ").value(pii.KindCard, genCard(r, true))
		case 4:
			l.text("Please wire the funds to ").value(pii.KindIBAN, genIBAN(r, true)).text(" by Friday.")
		case 5:
			l.text("IBAN: ").value(pii.KindIBAN, genIBAN(r, true))
		case 6:
			l.text("Call me on ").value(pii.KindPhone, genPhone(r)).text(" after 5.")
		case 7:
			l.text("my cell ").value(pii.KindPhone, genPhone(r))
		case 8:
			l.text("SSN is ").value(pii.KindSSN, genSSN(r, true))
		case 9:
			l.text("Her social security number: ").value(pii.KindSSN, strings.ReplaceAll(genSSN(r, true), "-", "")).text(".")
		case 10:
			l.text(pick(r, []string{"Account number ", "acct ", "Policy no. ", "MRN: ", "Member ID "})).value(pii.KindAccount, digits(r, 6+r.IntN(6))).text(" is on file.")
		case 11:
			l.text("Login came from ").value(pii.KindIP, fmt.Sprintf("%d.%d.%d.%d", 1+r.IntN(223), r.IntN(256), r.IntN(256), 1+r.IntN(254))).text(" last night.")
		case 12:
			l.text("blocked ").value(pii.KindIP, genIPv6(r)).text(" at the firewall")
		case 13:
			y, m, d := 1940+r.IntN(65), 1+r.IntN(12), 1+r.IntN(28)
			if r.IntN(2) == 0 {
				l.text("DOB ").value(pii.KindDOB, fmt.Sprintf("%02d/%02d/%d", m, d, y)).text(", please verify.")
			} else {
				l.text("he was born on ").value(pii.KindDOB, fmt.Sprintf("%d-%02d-%02d", y, m, d))
			}
		case 14:
			l.text("Send the documents to ").value(pii.KindAddress, strconv.Itoa(1+r.IntN(9999))+" "+pick(r, streets)+" "+pick(r, suffixes)).text(", thanks.")
		case 15:
			l.text("Hi ").value(pii.KindName, pf).text(", did you get a chance to look at it?")
		case 16:
			l.text("I spoke with ").value(pii.KindName, pf+" "+pl).text(" this morning.")
		case 17:
			l.text(pick(r, []string{"Mr", "Mrs", "Ms", "Dr.", "Dr"})+" ").value(pii.KindName, pick(r, lastNames)).text(" will join the call.")
		case 18:
			l.text("Thanks ").value(pii.KindName, pf).text(" - ").value(pii.KindName, sf)
		// near misses: nothing to find
		case 19:
			l.text("Old card " + genCard(r, false) + " was declined.")
		case 20:
			l.text("Wire to " + genIBAN(r, false) + " bounced.")
		case 21:
			l.text(pick(r, []string{"Your order #", "Order ", "ticket ", "invoice ref "}) + pick(r, areaCodes) + strconv.Itoa(200+r.IntN(800)) + digits(r, 4) + " has shipped.")
		case 22:
			l.text("test value " + genSSN(r, false) + " rejected")
		case 23:
			l.text("We have " + digits(r, 6+r.IntN(4)) + " shares outstanding.")
		case 24:
			l.text(fmt.Sprintf("Meeting on %02d/%02d/2025 at 10:30:45, build 3.%d.%d", 1+r.IntN(12), 1+r.IntN(28), r.IntN(10), r.IntN(20)))
		// harder positives
		case 26:
			l.text("text me at ").value(pii.KindPhone, pick(r, []string{
				"+1-" + pick(r, areaCodes) + "-" + strconv.Itoa(200+r.IntN(800)) + "-" + digits(r, 4),
				pick(r, areaCodes) + strconv.Itoa(200+r.IntN(800)) + digits(r, 4),
				"+33 1 42 68 53 " + digits(r, 2),
				"07700 900" + digits(r, 3), // UK national format: not readable with the US default region
			}))
		case 27:
			l.text(pick(r, []string{"thanks ", "ok ", "cc "})).value(pii.KindName, strings.ToLower(pf)).text(" see above") // lower-case mention
		case 28:
			l.text("That was ").value(pii.KindName, pf).text("'s call, not mine.")
		case 29:
			l.text("SSN ").value(pii.KindSSN, strings.ReplaceAll(genSSN(r, true), "-", " "))
		case 30:
			l.text(pick(r, []string{"account ending in ", "acct ending "}) + digits(r, 4)) // last four: masked, not an account number
		case 31:
			l.text("ship it to ").value(pii.KindAddress, strconv.Itoa(1+r.IntN(999))+" "+strings.ToLower(pick(r, streets))+" st") // lower-case street
		case 32:
			l.text("EMAIL ME: ").value(pii.KindEmail, strings.ToUpper(sf)+"@"+strings.ToUpper(pick(r, domains))).text(".")
		// harder near misses
		case 33:
			l.text(pick(r, []string{"Your confirmation code is ", "tracking ", "Ref: "}) + "4" + digits(r, 15))
		case 34:
			dir.Participants[0].DisplayName = "Grace " + pl
			l.text("Grace period ends on Friday, then fees apply.")
		default:
			l.text(pick(r, fillers))
		}
		out = append(out, labelled{text: l.b.String(), dir: dir, spans: l.spans})
	}
	return out
}

type score struct{ labels, predicted, tpLabels, tpPred int }

func (s score) precision() float64 {
	if s.predicted == 0 {
		return 1
	}
	return float64(s.tpPred) / float64(s.predicted)
}

func (s score) recall() float64 {
	if s.labels == 0 {
		return 1
	}
	return float64(s.tpLabels) / float64(s.labels)
}

func overlaps(a0, a1, b0, b1 int) bool { return a0 < b1 && b0 < a1 }

// evaluate scores the default detector on the corpus: a prediction is
// correct when it overlaps a labelled span of its kind.
func evaluate(t testing.TB, corpus []labelled) (map[pii.Kind]*score, []string) {
	d, err := pii.NewDetector(pii.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	scores := map[pii.Kind]*score{}
	for _, k := range pii.Kinds() {
		scores[k] = &score{}
	}
	var misses []string
	for _, line := range corpus {
		fs := d.Detect(line.text, line.dir)
		for _, sp := range line.spans {
			s := scores[sp.kind]
			s.labels++
			hit := false
			for _, f := range fs {
				if f.Kind == sp.kind && overlaps(f.Start, f.End, sp.start, sp.end) {
					hit = true
				}
			}
			if hit {
				s.tpLabels++
			} else {
				misses = append(misses, fmt.Sprintf("missed %s %q in %q", sp.kind, line.text[sp.start:sp.end], line.text))
			}
		}
		for _, f := range fs {
			s := scores[f.Kind]
			s.predicted++
			hit := false
			for _, sp := range line.spans {
				if f.Kind == sp.kind && overlaps(f.Start, f.End, sp.start, sp.end) {
					hit = true
				}
			}
			if hit {
				s.tpPred++
			} else {
				misses = append(misses, fmt.Sprintf("false %s %q in %q", f.Kind, line.text[f.Start:f.End], line.text))
			}
		}
	}
	return scores, misses
}

const (
	qualitySeed  = 20261204
	qualityLines = 5000
	readmePath   = "README.md"
	qualityBegin = "<!-- quality:begin (go test ./pii -run TestQuality -update) -->"
	qualityEnd   = "<!-- quality:end -->"
)

func TestQuality(t *testing.T) {
	corpus := genCorpus(qualitySeed, qualityLines)
	scores, misses := evaluate(t, corpus)
	var tbl bytes.Buffer
	fmt.Fprintf(&tbl, "Labelled corpus: %d generated chat lines (seed %d), default policy.\n\n", qualityLines, qualitySeed)
	fmt.Fprintln(&tbl, "| kind | labelled | predicted | precision | recall |")
	fmt.Fprintln(&tbl, "| --- | ---: | ---: | ---: | ---: |")
	for _, k := range pii.Kinds() {
		s := scores[k]
		fmt.Fprintf(&tbl, "| %s | %d | %d | %.3f | %.3f |\n", k, s.labels, s.predicted, s.precision(), s.recall())
	}
	for i, m := range misses {
		if i == 20 {
			t.Logf("… %d more", len(misses)-20)
			break
		}
		t.Log(m)
	}
	goals := []struct {
		kind              pii.Kind
		precision, recall float64
	}{
		{pii.KindCard, 0.98, 0.99},
		{pii.KindIBAN, 0.98, 0.99},
		{pii.KindName, 0, 0.9},
		{pii.KindEmail, 0.98, 0.99},
		{pii.KindSSN, 0.95, 0.95},
		{pii.KindPhone, 0.9, 0.9},
	}
	for _, g := range goals {
		s := scores[g.kind]
		if s.labels == 0 {
			t.Errorf("%s: corpus has no labelled values", g.kind)
		}
		if s.precision() < g.precision || s.recall() < g.recall {
			t.Errorf("%s: precision %.3f recall %.3f, want ≥ %.2f / ≥ %.2f", g.kind, s.precision(), s.recall(), g.precision, g.recall)
		}
	}
	readme, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	i, j := bytes.Index(readme, []byte(qualityBegin)), bytes.Index(readme, []byte(qualityEnd))
	if i < 0 || j < i {
		t.Fatalf("%s: quality markers missing", readmePath)
	}
	want := append(append(append([]byte{}, readme[:i+len(qualityBegin)]...), '\n', '\n'), tbl.Bytes()...)
	want = append(append(want, '\n'), readme[j:]...)
	if *update {
		if err := os.WriteFile(readmePath, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if !bytes.Equal(want, readme) {
		t.Errorf("%s quality table is stale: run go test ./pii -run TestQuality -update\n%s", readmePath, tbl.String())
	}
}
