package pii

import (
	"net/netip"
	"strings"

	"github.com/nyaruka/phonenumbers"
	"github.com/vigilhq/vigil"
)

// Directory names the people of a conversation, so that their names can be
// found in its text and values can be attributed to them.
type Directory struct {
	// Sender wrote the text; values found in it are attributed to Sender.ID.
	Sender vigil.Participant
	// Participants are the other people of the conversation (the sender may
	// be listed again).
	Participants []vigil.Participant
}

// Detector finds personal data in text under one [Policy]. It is safe for
// concurrent use.
type Detector struct {
	pol compiledPolicy
}

// NewDetector returns a detector for p. An invalid policy (unknown kind,
// confidence outside [0,1]) returns an error wrapping [ErrInvalidOption].
func NewDetector(p Policy) (*Detector, error) {
	c, err := p.compile()
	if err != nil {
		return nil, err
	}
	return &Detector{pol: c}, nil
}

// Detect returns the findings in text, ordered by Start and never
// overlapping. Existing tokens (see [FindTokens]) are skipped. dir supplies
// the names to look for; the zero Directory finds names only after
// honorifics.
func (d *Detector) Detect(text string, dir Directory) []Finding {
	sc := scanner{s: text, pol: &d.pol}
	sc.buildDir(&dir)
	sc.run()
	return sc.out
}

// Byte cues: the scanner looks closer only where one of these fires.
const (
	cueNone = iota
	cueDigit
	cueUpper
	cueAt
	cueColon
	cuePlusParen
	cueToken
	cueLowerName // first letter of a directory name part, lower-case
)

var cues = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] = cueDigit
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = cueUpper
	}
	t['@'] = cueAt
	t[':'] = cueColon
	t['+'] = cuePlusParen
	t['('] = cuePlusParen
	t[tokenOpen[0]] = cueToken
	return t
}()

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isAlpha(c byte) bool { return isUpper(c) || isLower(c) }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }
func isHex(c byte) bool {
	return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}

// wordBefore reports whether the byte before i continues a word, so that a
// cue at i is inside a word rather than at its start. A token's closing
// bracket ends a word.
func wordBefore(s string, i int) bool {
	if i == 0 {
		return false
	}
	c := s[i-1]
	if c < 0x80 {
		return isAlnum(c) || c == '_'
	}
	return !strings.HasSuffix(s[:i], tokenClose)
}

// inWord reports whether a cue at i is inside a word. The end of the last
// finding is a boundary, as the token that replaces it will be.
func (sc *scanner) inWord(i int) bool { return i != sc.last && wordBefore(sc.s, i) }

// wordAfter reports whether the byte at i glues the preceding candidate to
// more text (letters, digits, '_' or an '@' making it an e-mail local part).
func wordAfter(s string, i int) bool {
	if i >= len(s) {
		return false
	}
	c := s[i]
	if c < 0x80 {
		return isAlnum(c) || c == '_' || c == '@'
	}
	return !strings.HasPrefix(s[i:], tokenOpen)
}

// skipWord returns the end of the run of word bytes starting at i.
func skipWord(s string, i int) int {
	for i < len(s) && (isAlnum(s[i]) || s[i] == '_') {
		i++
	}
	return i
}

// skipIdent returns the end of an identifier continuing at i: word bytes
// and inner '.', '-' (v1.2-rc3, 2024.03.15.0001). It stops at '@', so an
// e-mail address is still seen.
func skipIdent(s string, i int) int {
	for i < len(s) {
		c := s[i]
		switch {
		case isAlnum(c) || c == '_':
			i++
		case (c == '.' || c == '-') && i+1 < len(s) && isAlnum(s[i+1]):
			i++
		default:
			return i
		}
	}
	return i
}

type dirPart struct {
	word    string
	subject string
	person  int
}

const maxDirParts = 32

type scanner struct {
	s    string
	pol  *compiledPolicy
	out  []Finding
	last int // end of the last finding: nothing before it is scanned again

	parts  [maxDirParts]dirPart
	nparts int
	// dirCues is a copy of cues with cueLowerName set for the first letters
	// of the directory's names, used when useDirCues is set.
	dirCues    [256]uint8
	useDirCues bool
	// lowerLens[c-'a'] has bit n set when a name part of length n starts
	// with letter c: most lower-case words are rejected by it.
	lowerLens [26]uint64
}

func (sc *scanner) buildDir(dir *Directory) {
	if !sc.pol.enabled[idxName] {
		return
	}
	if dir.Sender.DisplayName != "" {
		sc.addParts(&dir.Sender, 0)
	}
	for i := range dir.Participants {
		if dir.Participants[i].DisplayName != "" {
			sc.addParts(&dir.Participants[i], i+1)
		}
	}
	if sc.nparts == 0 {
		return
	}
	sc.dirCues = cues
	for p := 0; p < sc.nparts; p++ {
		if w := sc.parts[p].word; isAlpha(w[0]) && len(w) >= minLowerName && len(w) < 64 {
			sc.dirCues[w[0]|0x20] = cueLowerName
			sc.lowerLens[w[0]|0x20-'a'] |= 1 << len(w)
			if len(w)+2 < 64 {
				sc.lowerLens[w[0]|0x20-'a'] |= 1 << (len(w) + 2) // possessive 's
			}
		}
	}
	sc.useDirCues = true
}

// addParts adds the words of p's display name to the directory index.
func (sc *scanner) addParts(p *vigil.Participant, person int) {
	name := p.DisplayName
	for len(name) > 0 && sc.nparts < maxDirParts {
		i := strings.IndexByte(name, ' ')
		w := name
		if i >= 0 {
			w, name = name[:i], name[i+1:]
		} else {
			name = ""
		}
		if len(w) < 2 || !isAlpha(w[0]) || isHonorific(w) || strings.HasPrefix(w, tokenOpen) {
			continue
		}
		sc.parts[sc.nparts] = dirPart{word: w, subject: p.ID, person: person}
		sc.nparts++
	}
}

func (sc *scanner) emit(k Kind, start, end int, conf float64, subject string) bool {
	if !sc.pol.accepts(k, conf) {
		return false
	}
	sc.out = append(sc.out, Finding{Kind: k, Start: start, End: end, Confidence: conf, Subject: subject})
	sc.last = end
	return true
}

func (sc *scanner) run() {
	s := sc.s
	cue := &cues
	if sc.useDirCues {
		cue = &sc.dirCues
	}
	for i := 0; i < len(s); {
		switch cue[s[i]] {
		case cueNone:
			i++
		case cueDigit:
			i = sc.digits(i)
		case cueUpper:
			i = sc.upper(i)
		case cueAt:
			i = sc.at(i)
		case cueColon:
			i = sc.colon(i)
		case cuePlusParen:
			if i+1 < len(s) && isDigit(s[i+1]) {
				i = sc.digits(i)
			} else {
				i++
			}
		case cueLowerName:
			i = sc.lowerName(i)
		case cueToken:
			if t, ok := parseTokenAt(s, i); ok {
				// A token ends context like a finding does, so text reads
				// the same before and after tokenization.
				i, sc.last = t.End, t.End
			} else {
				i++
			}
		}
	}
}

// ---- keyword context ----

const keywordWindow = 40

var (
	kwAccount = []string{"account", "acct", "a/c", "policy", "mrn", "medical record", "member id", "member #", "member no", "member number", "patient id", "record number", "record no", "record #"}
	kwDOB     = []string{"dob", "d.o.b", "born", "birthday", "date of birth", "birth date", "birthdate"}
	kwSSN     = []string{"ssn", "social security", "social sec", "ss#", "ss #"}
	kwPhone   = []string{"phone", "call", "tel", "mobile", "cell", "text me", "whatsapp", "fax", "reach me", "ring"}
	kwOrder   = []string{"order", "invoice", "ref", "ticket", "tracking", "case", "confirmation", "po #", "po#", "sku", "transaction", "txn", "shipment", "conf #", "booking", "reservation", "id #", "code"}
	kwCard    = []string{"card", "visa", "mastercard", "amex", "cc "}
)

// kwContext is the lower-cased text just before a candidate, after the last
// finding.
type kwContext struct {
	buf [keywordWindow]byte
	n   int
}

func (sc *scanner) contextBefore(start int, c *kwContext) *kwContext {
	c.n = 0
	from := start - keywordWindow
	if from < sc.last {
		from = sc.last
	}
	if from < 0 {
		from = 0
	}
	for i := from; i < start; i++ {
		b := sc.s[i]
		if isUpper(b) {
			b += 'a' - 'A'
		}
		c.buf[c.n] = b
		c.n++
	}
	return c
}

// lastIndex returns the position of the last keyword of set in the context,
// or -1.
func (c *kwContext) lastIndex(set []string) int {
	w := c.buf[:c.n]
	best := -1
	for _, k := range set {
		if i := lastIndexString(w, k); i > best {
			best = i
		}
	}
	return best
}

// lastIndexString is strings.LastIndex on a byte slice, without converting.
func lastIndexString(w []byte, k string) int {
	for i := len(w) - len(k); i >= 0; i-- {
		if w[i] == k[0] && string(w[i:i+len(k)]) == k {
			return i
		}
	}
	return -1
}

func (c *kwContext) has(set []string) bool { return c.lastIndex(set) >= 0 }

// ---- digit runs: cards, phones, SSNs, IPv4, dates, accounts, addresses ----

const (
	maxRunDigits = 24
	maxRunGroups = 8
	maxRunBytes  = 48
)

const (
	sepSpace = 1 << iota
	sepDash
	sepDot
	sepSlash
	sepParen
)

type numRun struct {
	start, end int
	digits     [maxRunDigits]byte
	nd         int
	groups     [maxRunGroups]int // digits per group
	groupEnd   [maxRunGroups]int // byte offset where each group ends
	ng         int
	seps       int
	sepKind    [maxRunGroups]byte // separator before group i (0 for the first)
	plus       bool
	long       bool // too many digits or groups to be anything we look for
}

// scanRun reads a run of digits with single separators (space, '-', '.',
// '/', parentheses) starting at i (a digit, '+' or '('). A run longer than
// maxRunGroups groups, maxRunDigits digits or maxRunBytes bytes ends at the
// last group boundary that fits; a first group longer than that marks the
// run long (a hash, a long id: nothing we look for).
func scanRun(s string, i int) numRun {
	r := numRun{start: i}
	j := i
	if s[j] == '+' {
		r.plus = true
		j++
	}
	inGroup := false
	limit := true // closeRun called on a limit, not at the run's natural end
	// closeRun ends the run at the last complete group.
	closeRun := func() numRun {
		if inGroup && j < len(s) && isDigit(s[j]) {
			// The current group is cut by a limit.
			if r.ng == 1 {
				r.long = true
				r.end = j
				return r
			}
			r.ng-- // drop it
		}
		if r.ng == 0 {
			r.end = j
			return r
		}
		if limit {
			// Recompute end and separators: a dropped group's separator
			// (a parenthesis, a space) is not part of the run.
			return r.prefix(s, r.ng)
		}
		r.end = r.groupEnd[r.ng-1]
		return r
	}
	for j < len(s) {
		c := s[j]
		if j-i >= maxRunBytes {
			return closeRun()
		}
		switch {
		case isDigit(c):
			if !inGroup {
				if r.ng == maxRunGroups {
					return closeRun()
				}
				r.ng++
				inGroup = true
			}
			if r.nd == maxRunDigits {
				return closeRun()
			}
			r.digits[r.nd] = c
			r.nd++
			r.groups[r.ng-1]++
			r.groupEnd[r.ng-1] = j + 1
			j++
			continue
		case c == '(' && !inGroup && j+1 < len(s) && isDigit(s[j+1]):
			r.seps |= sepParen
			j++
			continue
		case c == ')' && inGroup && r.seps&sepParen != 0 && j+1 < len(s) && (s[j+1] == ' ' || s[j+1] == '-' || isDigit(s[j+1])):
			if s[j+1] != ' ' && s[j+1] != '-' {
				inGroup = false
				j++
			} else if j+2 < len(s) && isDigit(s[j+2]) {
				inGroup = false
				j += 2
			} else {
				break
			}
			if r.ng < maxRunGroups {
				r.sepKind[r.ng] = ')'
			}
			continue
		case inGroup && j+1 < len(s) && (c == ' ' || c == '-' || c == '.' || c == '/') && (isDigit(s[j+1]) || (c == ' ' && s[j+1] == '(' && j+2 < len(s) && isDigit(s[j+2]))):
			inGroup = false
			switch c {
			case ' ':
				r.seps |= sepSpace
			case '-':
				r.seps |= sepDash
			case '.':
				r.seps |= sepDot
			case '/':
				r.seps |= sepSlash
			}
			if r.ng < maxRunGroups {
				r.sepKind[r.ng] = c
			}
			j++
			continue
		}
		break
	}
	inGroup, limit = false, false
	return closeRun()
}

// prefix returns the run cut to its first n groups, its separators
// recomputed.
func (r *numRun) prefix(s string, n int) numRun {
	p := *r
	p.ng = n
	p.end = r.groupEnd[n-1]
	p.nd = 0
	for g := 0; g < n; g++ {
		p.nd += r.groups[g]
	}
	for g := n; g < maxRunGroups; g++ {
		p.groups[g], p.groupEnd[g], p.sepKind[g] = 0, 0, 0
	}
	p.seps = 0
	for g := 1; g < n; g++ {
		switch r.sepKind[g] {
		case ' ':
			p.seps |= sepSpace
		case '-':
			p.seps |= sepDash
		case '.':
			p.seps |= sepDot
		case '/':
			p.seps |= sepSlash
		case ')':
			p.seps |= sepParen
		}
	}
	if strings.ContainsAny(s[p.start:p.end], "()") {
		p.seps |= sepParen
	}
	return p
}

func (r *numRun) sepsOnly(mask int) bool { return r.seps&^mask == 0 }

// uniformSep reports whether every separator of the run is c.
func (r *numRun) uniformSep(c byte) bool {
	for g := 1; g < r.ng; g++ {
		if r.sepKind[g] != c {
			return false
		}
	}
	return true
}

func (r *numRun) groupsAre(want ...int) bool {
	if r.ng != len(want) {
		return false
	}
	for i, w := range want {
		if r.groups[i] != w {
			return false
		}
	}
	return true
}

func (sc *scanner) digits(i int) int {
	s := sc.s
	if sc.inWord(i) {
		return skipWord(s, i+1)
	}
	if s[i] == '+' && i > 0 && (s[i-1] == '+' || isDigit(s[i-1])) {
		return i + 1
	}
	r := scanRun(s, i)
	if r.ng == 0 {
		return i + 1
	}
	if r.long {
		return skipWord(s, r.end)
	}
	if wordAfter(s, r.end) || (r.end+1 < len(s) && (s[r.end] == '.' || s[r.end] == '-') && isAlnum(s[r.end+1])) {
		// The last group is glued to a word, an e-mail local part or a
		// longer dotted/dashed identifier: it is not part of a value, the
		// groups before it may be.
		if r.ng == 1 {
			return skipIdent(s, r.end)
		}
		r = r.prefix(s, r.ng-1)
	}
	// The longest prefix of the run that is a value wins; shorter prefixes
	// matter when a value is followed by more numbers ("(212) 555-0187 2012"),
	// and make detection stable: text before a token reads as it did.
	for n := r.ng; n >= 1; n-- {
		p := &r
		if n < r.ng {
			q := r.prefix(s, n)
			p = &q
		}
		consumed, found := sc.classify(p)
		if found {
			return sc.last // an address extends past the run
		}
		if consumed && n == r.ng {
			// The whole run has the shape of a card, date or SSN but failed
			// its check: its parts are not values either.
			return r.end
		}
	}
	if r.ng == 1 {
		return r.end
	}
	// Nothing starts here: the next group may start a value of its own.
	return r.groupEnd[0]
}

// classify tries the kinds a digit run can be. consumed reports that the
// run had the shape of a kind but failed its validation, so its parts are
// not tried on their own.
func (sc *scanner) classify(r *numRun) (consumed, found bool) {
	s := sc.s
	d := r.digits[:r.nd]
	var ctxBuf kwContext
	var ctx *kwContext
	getCtx := func() *kwContext {
		if ctx == nil {
			ctx = sc.contextBefore(r.start, &ctxBuf)
		}
		return ctx
	}

	// IPv4: four dotted groups of 1–3 digits.
	if !r.plus && r.ng == 4 && r.sepsOnly(sepDot) && r.groups[0] <= 3 && r.groups[1] <= 3 && r.groups[2] <= 3 && r.groups[3] <= 3 {
		if a, err := netip.ParseAddr(s[r.start:r.end]); err == nil && a.Is4() {
			return true, sc.emit(KindIP, r.start, r.end, 0.9, "")
		}
		return true, false
	}

	// Dates: d/m/y, m/d/y, y-m-d with one kind of separator; a date of birth
	// only with a keyword before it.
	if !r.plus && r.ng == 3 && (r.uniformSep('/') || r.uniformSep('-') || r.uniformSep('.')) {
		g0, g1, g2 := r.groups[0], r.groups[1], r.groups[2]
		a, b, c := prefixNum(d, g0), prefixNum(d[g0:], g1), prefixNum(d[g0+g1:], g2)
		isDate := false
		switch {
		case g0 == 4 && g1 <= 2 && g2 <= 2:
			isDate = dateValid(c, b, a, 4)
		case g0 <= 2 && g1 <= 2 && (g2 == 4 || g2 == 2):
			isDate = dateValid(a, b, c, g2) || dateValid(b, a, c, g2)
		}
		if isDate {
			if getCtx().has(kwDOB) {
				return true, sc.emit(KindDOB, r.start, r.end, 0.9, "")
			}
			return true, false
		}
	}

	// US SSN written 3-2-4.
	if !r.plus && r.groupsAre(3, 2, 4) && (r.uniformSep('-') || (r.uniformSep(' ') && getCtx().has(kwSSN))) {
		if ssnValid(d) {
			conf := 0.9
			if getCtx().has(kwSSN) {
				conf = 0.97
			}
			if sc.emit(KindSSN, r.start, r.end, conf, "") {
				return true, true
			}
		}
		if r.uniformSep('-') {
			return true, false
		}
	}

	// Payment cards: 13–19 digits, ungrouped or in card-style groups.
	if !r.plus && r.nd >= 13 && r.nd <= 19 && r.sepsOnly(sepSpace|sepDash) && cardGrouping(r) {
		if luhn(d) {
			conf := 0.55
			if knownIIN(d) {
				conf = 0.98
				ctx := getCtx()
				switch card, order := ctx.lastIndex(kwCard), ctx.lastIndex(kwOrder); {
				case card >= 0 && card > order:
					conf = 0.995
				case order >= 0:
					// A reference, tracking or confirmation number: one in
					// ten random numbers passes Luhn.
					conf = 0.5
				}
			}
			if sc.emit(KindCard, r.start, r.end, conf, "") {
				return true, true
			}
		}
		if r.ng > 1 {
			return true, false
		}
	}

	// SSN without dashes: only with an SSN keyword.
	if !r.plus && r.ng == 1 && r.nd == 9 && getCtx().has(kwSSN) {
		if ssnValid(d) && sc.emit(KindSSN, r.start, r.end, 0.9, "") {
			return true, true
		}
		return true, false
	}

	// Account, policy, medical-record numbers: only with a keyword.
	if !r.plus && r.nd >= 5 && r.sepsOnly(sepSpace|sepDash) && getCtx().has(kwAccount) {
		if sc.emit(KindAccount, r.start, r.end, 0.85, "") {
			return true, true
		}
	}

	// Phone numbers, confirmed by libphonenumber metadata.
	if r.nd >= 7 && r.nd <= 15 && r.sepsOnly(sepSpace|sepDash|sepDot|sepParen) {
		if f, ok := sc.phone(r, getCtx()); ok {
			return true, f
		}
	}

	// Street address: house number, capitalised street name, suffix.
	if !r.plus && r.ng == 1 && r.nd <= 5 && r.end < len(s) && s[r.end] == ' ' {
		if end, conf, ok := streetAfter(s, r.end); ok {
			return true, sc.emit(KindAddress, r.start, end, conf, "")
		}
	}
	return false, false
}

// cardGrouping reports whether a run's groups look like a written card
// number: one group, groups of four (the last 1–4), or 4-6-5 / 4-6-4.
func cardGrouping(r *numRun) bool {
	if r.ng == 1 {
		return true
	}
	if r.groupsAre(4, 6, 5) || r.groupsAre(4, 6, 4) {
		return true
	}
	for g := 0; g < r.ng-1; g++ {
		if r.groups[g] != 4 {
			return false
		}
	}
	last := r.groups[r.ng-1]
	return last >= 1 && last <= 4
}

// phone validates a phone-number candidate. ok reports that the run was
// judged (found or rejected for good).
func (sc *scanner) phone(r *numRun, ctx *kwContext) (found, ok bool) {
	s := sc.s
	if r.start > 0 && s[r.start-1] == '#' {
		return false, false
	}
	if o := ctx.lastIndex(kwOrder); o >= 0 && o > ctx.lastIndex(kwPhone) {
		return false, false
	}
	region := sc.pol.region
	if r.plus {
		region = ""
	}
	if !plausiblePhone(r, region) {
		return false, false
	}
	num, err := phonenumbers.Parse(s[r.start:r.end], region)
	if err != nil || !phonenumbers.IsValidNumber(num) {
		return false, false
	}
	conf := 0.7
	if r.plus || r.ng > 1 || r.seps&sepParen != 0 || ctx.has(kwPhone) {
		conf = 0.9
	}
	if !sc.emit(KindPhone, r.start, r.end, conf, "") {
		return false, true
	}
	sc.out[len(sc.out)-1].norm = phonenumbers.Format(num, phonenumbers.E164)
	return true, true
}

// plausiblePhone rejects digit runs that cannot be phone numbers before
// the (regexp-heavy) libphonenumber validation: international numbers have
// 8–15 digits after the '+'; North American national numbers are
// [1] NXX NXX XXXX with N in 2–9.
func plausiblePhone(r *numRun, region string) bool {
	d := r.digits[:r.nd]
	if r.plus {
		return len(d) >= 8 && len(d) <= 15
	}
	if region != "US" && region != "CA" {
		return true
	}
	if len(d) == 11 && d[0] == '1' {
		d = d[1:]
	}
	return len(d) == 10 && d[0] >= '2' && d[3] >= '2'
}

var streetSuffixes = []string{
	"St", "Street", "Ave", "Avenue", "Rd", "Road", "Blvd", "Boulevard", "Ln", "Lane",
	"Dr", "Drive", "Way", "Ct", "Court", "Pl", "Place", "Ter", "Terrace", "Hwy",
	"Highway", "Pkwy", "Parkway", "Sq", "Square", "Cir", "Circle",
}

// streetSuffixFirst marks the first letters (upper and lower case) of the
// street suffixes, a cheap reject before comparing.
var streetSuffixFirst = func() (t [256]bool) {
	for _, x := range streetSuffixes {
		t[x[0]], t[x[0]|0x20] = true, true
	}
	return t
}()

func isStreetSuffix(w string) bool {
	if len(w) < 2 || len(w) > 10 || !streetSuffixFirst[w[0]] {
		return false
	}
	for _, x := range streetSuffixes {
		if w == x {
			return true
		}
	}
	return false
}

// streetAfter matches " Street Name Suffix[.]" after a house number ending
// at i and returns the end of the address and its confidence. Capitalised
// names are the common case; an all-lower-case address ("12 oak st") is
// accepted only when the suffix ends the clause.
func streetAfter(s string, i int) (int, float64, bool) {
	words, lower := 0, false
	for words < 5 && i < len(s) && s[i] == ' ' {
		j := i + 1
		if j >= len(s) || !(isAlpha(s[j]) || isDigit(s[j])) {
			return 0, 0, false
		}
		if isLower(s[j]) {
			lower = true
		}
		if lower && words >= 3 {
			return 0, 0, false
		}
		k := j + 1
		for k < len(s) && isAlnum(s[k]) {
			k++
		}
		w := s[j:k]
		if words > 0 && (isStreetSuffix(w) || (lower && isStreetSuffixFold(w))) {
			if lower {
				if k < len(s) && !strings.ContainsRune(",.;:!?)\n", rune(s[k])) {
					return 0, 0, false
				}
				return k, 0.65, true
			}
			if k < len(s) && s[k] == '.' {
				k++
			}
			// An optional compass direction.
			if k+2 < len(s) && s[k] == ' ' {
				m := k + 1
				n := m
				for n < len(s) && n-m < 2 && isUpper(s[n]) {
					n++
				}
				switch s[m:n] {
				case "N", "S", "E", "W", "NE", "NW", "SE", "SW":
					if n == len(s) || !isAlnum(s[n]) {
						k = n
					}
				}
			}
			return k, 0.75, true
		}
		if k < len(s) && s[k] != ' ' {
			return 0, 0, false
		}
		words++
		i = k
	}
	return 0, 0, false
}

// isStreetSuffixFold is isStreetSuffix ignoring case.
func isStreetSuffixFold(w string) bool {
	if len(w) < 2 || len(w) > 10 || !streetSuffixFirst[w[0]] {
		return false
	}
	for _, x := range streetSuffixes {
		if len(x) == len(w) && strings.EqualFold(w, x) {
			return true
		}
	}
	return false
}

// ---- e-mail ----

func isLocalChar(c byte) bool {
	return isAlnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-' || c == '\'' || c >= 0x80
}

// localBefore reports whether the byte before k belongs to an e-mail local
// part (internationalised addresses included; a token's end is not).
func localBefore(s string, k int) bool {
	return k > 0 && isLocalChar(s[k-1]) && !strings.HasSuffix(s[:k], tokenClose)
}

func (sc *scanner) at(i int) int {
	s := sc.s
	k := i
	for k > sc.last && i-k < 64 && localBefore(s, k) {
		k--
	}
	if k > 0 && k != sc.last && (localBefore(s, k) || wordBefore(s, k)) {
		// Stopped at the previous finding or the length limit: not a clean
		// address start.
		return i + 1
	}
	for k < i && (s[k] == '.' || s[k] == '\'') {
		k++
	}
	if k == i {
		return i + 1
	}
	j := i + 1
	dots, labelStart, lastLabelStart := 0, j, j
	for j < len(s) && j-i < 255 {
		c := s[j]
		if isAlnum(c) || c == '-' {
			j++
			continue
		}
		if c == '.' && j+1 < len(s) && isAlnum(s[j+1]) && j > labelStart {
			dots++
			j++
			labelStart, lastLabelStart = j, j
			continue
		}
		break
	}
	if dots == 0 || wordAfter(s, j) {
		return i + 1
	}
	tld := s[lastLabelStart:j]
	if len(tld) < 2 {
		return i + 1
	}
	for k := 0; k < len(tld); k++ {
		if !isAlpha(tld[k]) {
			return i + 1
		}
	}
	if s[j-1] == '-' {
		return i + 1
	}
	if sc.emit(KindEmail, k, j, 0.99, "") {
		return j
	}
	return i + 1
}

// ---- IPv6 ----

func (sc *scanner) colon(i int) int {
	s := sc.s
	if i+1 >= len(s) || !(isHex(s[i+1]) || s[i+1] == ':') {
		return i + 1
	}
	k := i
	for k > sc.last && i-k < 40 && (isHex(s[k-1]) || s[k-1] == ':') {
		k--
	}
	if sc.inWord(k) {
		return i + 1
	}
	j := i + 1
	for j < len(s) && j-k < 46 && (isHex(s[j]) || s[j] == ':' || (s[j] == '.' && j+1 < len(s) && isDigit(s[j+1]))) {
		j++
	}
	if wordAfter(s, j) || j-k < 6 {
		return i + 1
	}
	if end, ok := sc.ipv6(k, j); ok {
		return end
	}
	// An embedded IPv4 tail that does not parse: the address may end
	// before its first dot ("fe80::1.", as it reads once what follows is
	// tokenized).
	if d := strings.IndexByte(s[k:j], '.'); d > 0 {
		if end, ok := sc.ipv6(k, k+d); ok {
			return end
		}
	}
	return i + 1
}

// ipv6 emits s[k:j] if it is an IPv6 address.
func (sc *scanner) ipv6(k, j int) (int, bool) {
	cand := sc.s[k:j]
	if len(cand) < 6 {
		return 0, false
	}
	colons := strings.Count(cand, ":")
	// Full form has 7 colons (6 with a trailing IPv4); anything shorter
	// needs "::". Checked first: times like 10:30:45 are common and a
	// failed parse allocates.
	if colons < 2 || (colons != 7 && !(colons == 6 && strings.IndexByte(cand, '.') >= 0) && !strings.Contains(cand, "::")) {
		return 0, false
	}
	a, err := netip.ParseAddr(cand)
	if err != nil || !a.Is6() {
		return 0, false
	}
	return j, sc.emit(KindIP, k, j, 0.9, "")
}

// ---- capitalised words: IBANs, names ----

var honorifics = []string{"Mr", "Mrs", "Ms", "Miss", "Mx", "Dr", "Prof", "Sir", "Dame"}

func isHonorific(w string) bool {
	if len(w) < 2 || len(w) > 5 {
		return false
	}
	switch w[0] {
	case 'M', 'D', 'P', 'S':
	default:
		return false
	}
	w = strings.TrimSuffix(w, ".")
	for _, h := range honorifics {
		if w == h {
			return true
		}
	}
	return false
}

// nameWordEnd returns the end of a name word starting at i: letters,
// apostrophes and inner hyphens, and non-ASCII letters.
func nameWordEnd(s string, i int) int {
	j := i
	for j < len(s) {
		c := s[j]
		switch {
		case isAlpha(c):
			j++
		case (c == '\'' || c == '-') && j > i && j+1 < len(s) && isAlpha(s[j+1]):
			j++
		case c >= 0x80 && !strings.HasPrefix(s[j:], tokenOpen) && !strings.HasPrefix(s[j:], "\u2019"):
			j++
		default:
			return j
		}
	}
	return j
}

// gluedAfterName reports whether a word ending at j continues as an e-mail
// address or identifier (john@…, John.Smith@…, Anna_b).
func gluedAfterName(s string, j int) bool {
	if j >= len(s) {
		return false
	}
	c := s[j]
	if isDigit(c) || c == '@' || c == '_' {
		return true
	}
	return (c == '.' || c == '+' || c == '-') && j+1 < len(s) && isAlnum(s[j+1])
}

func (sc *scanner) upper(i int) int {
	s := sc.s
	if sc.inWord(i) {
		return skipWord(s, i+1)
	}
	if i+3 < len(s) && isUpper(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
		if end, ok := sc.iban(i); ok {
			return end // an IBAN, or one with a bad checksum: skip it whole
		}
	}
	j := nameWordEnd(s, i)
	if j < len(s) && isDigit(s[j]) || (j < len(s) && s[j] == '-' && j+1 < len(s) && isDigit(s[j+1])) {
		// Letters then digits: an alphanumeric account number (PLC-8842195).
		return sc.alnumAccount(i)
	}
	if gluedAfterName(s, j) {
		// Part of an identifier (John.Smith2, anna_b): skip all of it, so
		// its tail is not read as a value of its own.
		return skipIdent(s, j)
	}
	w := s[i:j]
	if isHonorific(w) {
		return sc.honorific(i, j)
	}
	if sc.nparts > 0 {
		if end, ok := sc.dirName(i, j); ok {
			return end
		}
		if strings.HasSuffix(w, "'s") {
			// Possessive: "Maria's call".
			if end, ok := sc.dirName(i, j-2); ok {
				return end
			}
		}
	}
	return j
}

// honorific handles "Mr Smith", "Dr. Anna Lee": the name after the
// honorific becomes a finding (the honorific stays as context).
func (sc *scanner) honorific(i, j int) int {
	s := sc.s
	k := j
	if k < len(s) && s[k] == '.' {
		k++
	}
	if k+1 >= len(s) || s[k] != ' ' || !isUpper(s[k+1]) {
		return j
	}
	start := k + 1
	end := nameWordEnd(s, start)
	if end-start < 2 || gluedAfterName(s, end) {
		return j
	}
	// An optional second capitalised word (surname).
	if end+2 < len(s) && s[end] == ' ' && isUpper(s[end+1]) {
		e2 := nameWordEnd(s, end+1)
		if e2-end-1 >= 2 && !gluedAfterName(s, e2) && !isStopWord(s[end+1:e2]) {
			end = e2
		}
	}
	conf, subject := 0.85, ""
	if p, ok := sc.matchPart(s[start:nameWordEnd(s, start)]); ok {
		conf, subject = 0.95, p.subject
	}
	if sc.emit(KindName, start, end, conf, subject) {
		return end
	}
	return j
}

var stopWords = []string{"The", "And", "But", "Or", "If", "I", "We", "You", "He", "She", "They", "It", "Is", "Are", "Was", "Will", "Can", "Please", "Thanks", "Thank", "Hi", "Hello", "Yes", "No", "Ok", "OK", "So", "Re", "On", "In", "At", "To", "For", "From"}

func isStopWord(w string) bool {
	for _, x := range stopWords {
		if w == x {
			return true
		}
	}
	return false
}

func (sc *scanner) matchPart(w string) (*dirPart, bool) {
	for p := 0; p < sc.nparts; p++ {
		part := &sc.parts[p]
		if len(part.word) == len(w) && part.word[0]|0x20 == w[0]|0x20 && strings.EqualFold(part.word, w) {
			return part, true
		}
	}
	return nil, false
}

// dirName matches directory names at the capitalised word s[i:j],
// extending over following words of the same person ("Anna Lee").
func (sc *scanner) dirName(i, j int) (int, bool) {
	return sc.dirNameConf(i, j, 0.85, 0.95)
}

// minLowerName is the shortest name part matched in lower case.
const minLowerName = 3

// lowerName matches a directory name written in lower case ("thanks
// anna"), with less confidence: such words are more often ordinary words.
func (sc *scanner) lowerName(i int) int {
	s := sc.s
	if sc.inWord(i) {
		return skipWord(s, i+1)
	}
	j := nameWordEnd(s, i)
	if n := j - i; n < minLowerName || n >= 64 || sc.lowerLens[s[i]-'a']&(1<<n) == 0 {
		return max(j, i+1)
	}
	if gluedAfterName(s, j) {
		return skipIdent(s, j)
	}
	if end, ok := sc.dirNameConf(i, j, 0.7, 0.85); ok {
		return end
	}
	if strings.HasSuffix(s[i:j], "'s") {
		if end, ok := sc.dirNameConf(i, j-2, 0.7, 0.85); ok {
			return end
		}
	}
	return j
}

// dirNameConf is dirName with the confidences of a one-word and a
// several-word match.
func (sc *scanner) dirNameConf(i, j int, one, several float64) (int, bool) {
	s := sc.s
	p, ok := sc.matchPart(s[i:j])
	if !ok {
		return 0, false
	}
	end, words := j, 1
	for end+1 < len(s) && s[end] == ' ' && isAlpha(s[end+1]) {
		e2 := nameWordEnd(s, end+1)
		q, ok := sc.matchPart(s[end+1 : e2])
		if !ok || q.person != p.person || gluedAfterName(s, e2) {
			break
		}
		end = e2
		words++
	}
	conf := one
	if words > 1 {
		conf = several
	}
	return end, sc.emit(KindName, i, end, conf, p.subject)
}

// alnumAccount handles letter-prefixed numbers (AB1234567, PLC-88421953):
// account/policy/record numbers, only with a keyword before them.
func (sc *scanner) alnumAccount(i int) int {
	s := sc.s
	j := i
	for j < len(s) && j-i < 4 && isUpper(s[j]) {
		j++
	}
	if j < len(s) && s[j] == '-' {
		j++
	}
	d := j
	for j < len(s) && isDigit(s[j]) {
		j++
	}
	if j-d < 5 || wordAfter(s, j) {
		return skipWord(s, i)
	}
	var ctx kwContext
	if sc.contextBefore(i, &ctx).has(kwAccount) && sc.emit(KindAccount, i, j, 0.85, "") {
		return j
	}
	return j
}

// iban matches an IBAN starting at i, compact or in groups of four.
func (sc *scanner) iban(i int) (int, bool) {
	s := sc.s
	want, ok := ibanLengths[s[i:i+2]]
	if !ok {
		return 0, false
	}
	var buf [34]byte
	n, j := 0, i
	for j < len(s) && n < want {
		c := s[j]
		switch {
		case isDigit(c) || isUpper(c):
			buf[n] = c
			n++
			j++
		case c == ' ' && n%4 == 0 && n > 0 && j+1 < len(s) && (isDigit(s[j+1]) || isUpper(s[j+1])):
			j++
		default:
			return 0, false
		}
	}
	if n != want || wordAfter(s, j) {
		return 0, false
	}
	if ibanValid(buf[:n]) {
		sc.emit(KindIBAN, i, j, 0.99, "")
	}
	// Found, or IBAN-shaped with a bad checksum: either way its digit
	// groups are not phone or card numbers.
	return j, true
}
