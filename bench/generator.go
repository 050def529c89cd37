// Package bench generates realistic chat traffic and drives it into a
// running Vigil to measure it: a deterministic conversation [Generator]
// (advisors and clients, customer support, a gaming community, a clinic,
// with a configurable rate of rule-worthy and PII-bearing lines), and a
// load harness, [Run], that sends it over HTTP, WebSocket or NATS at a
// target rate and reports the achieved rate, ack latency, errors by kind
// and verdict latency.
//
// It sits outside the data flow (ingest → pii → bus → evaluator →
// warehouse) and talks to it only through its public front doors; `vigil
// simulate` and the end-to-end benchmark are its callers.
package bench

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/vigilhq/vigil"
)

// Kind is a kind of conversation.
type Kind string

// Conversation kinds.
const (
	// KindAdvisory is a financial advisor talking with clients.
	KindAdvisory Kind = "advisory"
	// KindSupport is a customer-support chat.
	KindSupport Kind = "support"
	// KindGaming is a gaming community channel.
	KindGaming Kind = "gaming"
	// KindClinic is a clinic talking with patients.
	KindClinic Kind = "clinic"
)

// Kinds lists every conversation kind in a stable order.
var Kinds = []Kind{KindAdvisory, KindSupport, KindGaming, KindClinic}

// Labels the generator puts on a [Message] to say what it planted. Rule
// labels start with "rule:", PII labels with "pii:".
const (
	LabelOffChannel = "rule:offchannel" // "text me on WhatsApp"
	LabelPromissory = "rule:promissory" // "guaranteed returns"
	LabelMNPI       = "rule:mnpi"       // material non-public information hints
	LabelComplaint  = "rule:complaint"  // a customer complaint
	LabelHarassment = "rule:harassment" // insults at an agent
	LabelThreat     = "rule:threat"     // a real threat of violence
	// LabelBanter is "I'm going to kill you" inside a video-game context:
	// rule-worthy in the sense that a good rule must NOT flag it.
	LabelBanter = "rule:banter"
	LabelPHI    = "rule:phi" // health data sent to a personal account

	LabelEmail = "pii:email"
	LabelPhone = "pii:phone"
	LabelCard  = "pii:card" // Luhn-valid card number
	LabelIBAN  = "pii:iban" // mod-97-valid IBAN
	LabelName  = "pii:name" // a participant's full name
	LabelMRN   = "pii:mrn"  // medical record number
	LabelDOB   = "pii:dob"  // date of birth
)

// Mix says what traffic to generate: the relative weights of the
// conversation kinds and the fraction of messages that are rule-worthy or
// carry personal data.
type Mix struct {
	// Advisory, Support, Gaming and Clinic are relative weights of new
	// conversations of each [Kind]; they need not sum to 1.
	Advisory float64 `json:"advisory"`
	Support  float64 `json:"support"`
	Gaming   float64 `json:"gaming"`
	Clinic   float64 `json:"clinic"`
	// RuleRate is the fraction (0..1) of messages drawn from rule-worthy
	// lines of their conversation's kind.
	RuleRate float64 `json:"rule_rate"`
	// PIIRate is the fraction (0..1) of messages that carry personal data
	// (email, phone, card, IBAN, participant name, MRN, date of birth).
	PIIRate float64 `json:"pii_rate"`
}

// DefaultMix is a plausible blend for a firm with several lines of business:
// 2 % rule-worthy and 3 % PII-bearing messages.
var DefaultMix = Mix{Advisory: 4, Support: 3, Gaming: 2, Clinic: 1, RuleRate: 0.02, PIIRate: 0.03}

// ErrInvalidMix is returned by [NewGenerator] for a [Mix] with negative or
// all-zero weights or rates outside 0..1 whose sum exceeds 1.
var ErrInvalidMix = errors.New("bench: invalid mix")

func (m Mix) validate() error {
	ws := []float64{m.Advisory, m.Support, m.Gaming, m.Clinic}
	sum := 0.0
	for _, w := range ws {
		if !(w >= 0) || math.IsInf(w, 1) { // also NaN
			return fmt.Errorf("%w: weights must be finite and ≥ 0", ErrInvalidMix)
		}
		sum += w
	}
	if sum == 0 {
		return fmt.Errorf("%w: every weight is zero", ErrInvalidMix)
	}
	if !(m.RuleRate >= 0) || !(m.PIIRate >= 0) || !(m.RuleRate+m.PIIRate <= 1) { // also NaN
		return fmt.Errorf("%w: rule_rate and pii_rate must be in 0..1 and sum to at most 1", ErrInvalidMix)
	}
	return nil
}

func (m Mix) weight(k Kind) float64 {
	switch k {
	case KindAdvisory:
		return m.Advisory
	case KindSupport:
		return m.Support
	case KindGaming:
		return m.Gaming
	case KindClinic:
		return m.Clinic
	}
	return 0
}

// Message is one generated chat message in the ingest JSON shape
// (POST /v1/messages). Kind, Labels and Last describe it for the harness and
// tests and are not sent.
type Message struct {
	ID             string              `json:"id,omitempty"`
	Tenant         string              `json:"tenant"`
	ConversationID string              `json:"conversation_id"`
	Sender         vigil.Participant   `json:"sender"`
	Participants   []vigil.Participant `json:"participants"`
	Channel        string              `json:"channel"`
	Text           string              `json:"text"`
	SentAt         time.Time           `json:"sent_at"`
	Metadata       map[string]string   `json:"metadata,omitempty"`

	// Kind is the conversation's kind.
	Kind Kind `json:"-"`
	// Labels say what was planted: rule labels ("rule:…") and PII labels
	// ("pii:…"); none for an ordinary line.
	Labels []string `json:"-"`
	// Values are the planted personal-data values, by PII label.
	Values map[string]string `json:"-"`
	// Last is true on the last message of its conversation.
	Last bool `json:"-"`
}

// HasLabel reports whether m carries label l.
func (m *Message) HasLabel(l string) bool {
	for _, x := range m.Labels {
		if x == l {
			return true
		}
	}
	return false
}

// RuleWorthy reports whether m was drawn from the rule-worthy lines.
func (m *Message) RuleWorthy() bool { return m.hasPrefix("rule:") }

// HasPII reports whether m carries planted personal data.
func (m *Message) HasPII() bool { return m.hasPrefix("pii:") }

func (m *Message) hasPrefix(p string) bool {
	for _, x := range m.Labels {
		if strings.HasPrefix(x, p) {
			return true
		}
	}
	return false
}

// Defaults of [NewGenerator].
const (
	// DefaultTenant is the tenant of generated messages.
	DefaultTenant = "sim"
	// DefaultIDPrefix prefixes generated message ids.
	DefaultIDPrefix = "sim"
	// DefaultConversations is the number of conversations open at once.
	DefaultConversations = 64
)

// DefaultStart is the sent_at of the first generated message.
var DefaultStart = time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)

// GeneratorOption configures [NewGenerator].
type GeneratorOption func(*genOptions) error

type genOptions struct {
	tenant   string
	idPrefix string
	convs    int
	start    time.Time
}

// WithTenant sets the tenant of every message (default [DefaultTenant]).
func WithTenant(t string) GeneratorOption {
	return func(o *genOptions) error {
		if err := vigil.ValidateID(t); err != nil {
			return fmt.Errorf("%w: tenant: %w", ErrInvalidMix, err)
		}
		o.tenant = t
		return nil
	}
}

// WithIDPrefix sets the prefix of message and conversation ids (default
// [DefaultIDPrefix]); runs that must not deduplicate against an earlier run
// use a fresh prefix.
func WithIDPrefix(p string) GeneratorOption {
	return func(o *genOptions) error {
		if err := vigil.ValidateID(p); err != nil || len(p) > 64 {
			return fmt.Errorf("%w: id prefix must be a valid id of at most 64 bytes", ErrInvalidMix)
		}
		o.idPrefix = p
		return nil
	}
}

// WithConversations sets how many conversations are open at once (default
// [DefaultConversations]); each message goes to one of them at random.
func WithConversations(n int) GeneratorOption {
	return func(o *genOptions) error {
		if n < 1 {
			return fmt.Errorf("%w: conversations must be at least 1", ErrInvalidMix)
		}
		o.convs = n
		return nil
	}
}

// WithStart sets the sent_at of the first message (default [DefaultStart]);
// later messages follow 1–20 s apart.
func WithStart(t time.Time) GeneratorOption {
	return func(o *genOptions) error {
		o.start = t.UTC()
		return nil
	}
}

// Generator produces an endless, deterministic stream of chat messages: the
// same seed, mix and options give the same messages. It is not safe for
// concurrent use; give each sender its own.
type Generator struct {
	r     *rand.Rand
	mix   Mix
	o     genOptions
	clock time.Time
	n     uint64
	nconv uint64
	convs []*conversation
}

type conversation struct {
	id       string
	kind     Kind
	channel  string
	people   []vigil.Participant // people[0] is staff
	left     int                 // messages still to send
	turn     int
	ticker   string
	metadata map[string]string
}

// NewGenerator returns a generator for seed and mix. It returns an error
// wrapping [ErrInvalidMix] for an invalid mix or option.
//
// Available options:
//   - [WithTenant]
//   - [WithIDPrefix]
//   - [WithConversations]
//   - [WithStart]
func NewGenerator(seed int64, mix Mix, opts ...GeneratorOption) (*Generator, error) {
	if err := mix.validate(); err != nil {
		return nil, err
	}
	o := genOptions{tenant: DefaultTenant, idPrefix: DefaultIDPrefix, convs: DefaultConversations, start: DefaultStart}
	for _, opt := range opts {
		if err := opt(&o); err != nil {
			return nil, err
		}
	}
	g := &Generator{
		r:   rand.New(rand.NewPCG(uint64(seed), 0x5eed_0f_71611)),
		mix: mix, o: o, clock: o.start,
	}
	return g, nil
}

// Next returns the next message. It never fails.
func (g *Generator) Next() *Message {
	if len(g.convs) < g.o.convs {
		g.convs = append(g.convs, g.newConversation())
	}
	i := g.r.IntN(len(g.convs))
	c := g.convs[i]
	g.n++
	g.clock = g.clock.Add(time.Duration(1+g.r.IntN(20)) * time.Second)
	m := &Message{
		ID:             g.o.idPrefix + "-" + strconv.FormatUint(g.n, 10),
		Tenant:         g.o.tenant,
		ConversationID: c.id,
		Participants:   c.people,
		Channel:        c.channel,
		SentAt:         g.clock,
		Metadata:       c.metadata,
		Kind:           c.kind,
	}
	u := g.r.Float64()
	switch {
	case u < g.mix.RuleRate:
		g.ruleLine(c, m)
	case u < g.mix.RuleRate+g.mix.PIIRate:
		g.piiLine(c, m)
	default:
		g.plainLine(c, m)
	}
	c.turn++
	c.left--
	if c.left <= 0 {
		m.Last = true
		g.convs[i] = g.newConversation()
	}
	return m
}

func (g *Generator) pick(xs []string) string { return xs[g.r.IntN(len(xs))] }

func (g *Generator) newKind() Kind {
	total := 0.0
	for _, k := range Kinds {
		total += g.mix.weight(k)
	}
	u := g.r.Float64() * total
	for _, k := range Kinds {
		if u < g.mix.weight(k) {
			return k
		}
		u -= g.mix.weight(k)
	}
	return KindAdvisory // rounding: u landed on the total
}

func (g *Generator) person(role string) vigil.Participant {
	name := g.pick(firstNames) + " " + g.pick(lastNames)
	return vigil.Participant{ID: fmt.Sprintf("%s-%06d", role, g.r.IntN(1_000_000)), DisplayName: name, Role: role}
}

func (g *Generator) newConversation() *conversation {
	g.nconv++
	k := g.newKind()
	c := &conversation{
		id:     fmt.Sprintf("%s-%s-%d", g.o.idPrefix, k, g.nconv),
		kind:   k,
		left:   5 + g.r.IntN(36),
		ticker: g.pick(tickers),
	}
	switch k {
	case KindAdvisory:
		c.channel = g.pick([]string{"symphony", "bloomberg-ib", "teams"})
		c.people = []vigil.Participant{g.person("advisor"), g.person("client")}
		if g.r.IntN(4) == 0 {
			c.people = append(c.people, g.person("client"))
		}
		c.metadata = map[string]string{"desk": g.pick([]string{"wealth", "equities", "fixed-income"})}
	case KindSupport:
		c.channel = "web-chat"
		c.people = []vigil.Participant{g.person("agent"), g.person("customer")}
		c.metadata = map[string]string{"queue": g.pick([]string{"billing", "cards", "accounts"})}
	case KindGaming:
		c.channel = g.pick([]string{"discord", "lobby", "party-chat"})
		c.people = []vigil.Participant{g.person("moderator")}
		for range 2 + g.r.IntN(4) {
			c.people = append(c.people, g.person("player"))
		}
		c.metadata = map[string]string{"game": g.pick(games)}
	case KindClinic:
		c.channel = "patient-portal"
		c.people = []vigil.Participant{g.person(g.pick([]string{"nurse", "physician"})), g.person("patient")}
		c.metadata = map[string]string{"department": g.pick([]string{"cardiology", "dermatology", "primary-care"})}
	}
	return c
}

// speaker returns who says the next line: staff (people[0]), a customer
// (anyone else) or, for whoAny, whoever's turn it is.
func (g *Generator) speaker(c *conversation, who int) vigil.Participant {
	switch who {
	case whoStaff:
		return c.people[0]
	case whoCustomer:
		return c.people[1+g.r.IntN(len(c.people)-1)]
	}
	if g.r.IntN(4) == 0 {
		return c.people[g.r.IntN(len(c.people))]
	}
	return c.people[c.turn%len(c.people)]
}

// other returns someone in c other than sender, for name mentions.
func (g *Generator) other(c *conversation, sender vigil.Participant) vigil.Participant {
	for {
		p := c.people[g.r.IntN(len(c.people))]
		if p.ID != sender.ID {
			return p
		}
	}
}

func (g *Generator) fill(c *conversation, sender vigil.Participant, tmpl string) string {
	if !strings.Contains(tmpl, "{") {
		return tmpl
	}
	o := g.other(c, sender)
	first, _, _ := strings.Cut(o.DisplayName, " ")
	r := strings.NewReplacer(
		"{ticker}", c.ticker,
		"{amount}", strconv.Itoa(5+g.r.IntN(200))+"k",
		"{pct}", strconv.Itoa(8+g.r.IntN(30)),
		"{first}", first,
		"{game}", c.metadata["game"],
		"{map}", g.pick(gameMaps),
		"{day}", g.pick([]string{"Monday", "Tuesday", "Wednesday", "Thursday", "Friday"}),
		"{hour}", strconv.Itoa(9+g.r.IntN(8)),
	)
	return r.Replace(tmpl)
}

func (g *Generator) plainLine(c *conversation, m *Message) {
	t := g.pickTemplate(plainLines[c.kind])
	m.Sender = g.speaker(c, t.who)
	m.Text = g.fill(c, m.Sender, t.text)
}

func (g *Generator) ruleLine(c *conversation, m *Message) {
	t := g.pickTemplate(ruleLines[c.kind])
	m.Sender = g.speaker(c, t.who)
	m.Text = g.fill(c, m.Sender, t.text)
	m.Labels = []string{t.label}
	if t.pii != "" {
		g.plant(c, m, t.pii)
	}
}

func (g *Generator) piiLine(c *conversation, m *Message) {
	kinds := piiKinds[c.kind]
	label := kinds[g.r.IntN(len(kinds))]
	t := g.pickTemplate(piiLines[label])
	m.Sender = g.speaker(c, t.who)
	m.Text = g.fill(c, m.Sender, t.text)
	g.plant(c, m, label)
}

// plant replaces the {value} placeholder of m.Text with a fresh value of
// the PII kind label and records it.
func (g *Generator) plant(c *conversation, m *Message, label string) {
	var v string
	switch label {
	case LabelEmail:
		v = emailFor(g.r, m.Sender.DisplayName)
	case LabelPhone:
		v = phoneNumber(g.r)
	case LabelCard:
		v = cardNumber(g.r, g.pick([]string{" ", "-", ""}))
	case LabelIBAN:
		v = iban(g.r, g.r.IntN(2) == 0)
	case LabelName:
		v = g.other(c, m.Sender).DisplayName
	case LabelMRN:
		v = mrn(g.r)
	case LabelDOB:
		v = dateOfBirth(g.r)
	}
	m.Text = strings.Replace(m.Text, "{value}", v, 1)
	m.Labels = append(m.Labels, label)
	if m.Values == nil {
		m.Values = map[string]string{}
	}
	m.Values[label] = v
}

func (g *Generator) pickTemplate(ts []template) template { return ts[g.r.IntN(len(ts))] }
