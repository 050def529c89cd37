package bench

// The generator's lines. Placeholders: {ticker} {amount} {pct} {first}
// (another participant's first name) {game} {map} {day} {hour}, and
// {value} where a planted personal-data value goes.

// Who says a line.
const (
	whoAny = iota
	whoStaff
	whoCustomer
)

type template struct {
	who   int
	text  string
	label string // rule label, for rule lines
	pii   string // PII label planted at {value}, if any
}

var firstNames = []string{
	"Olivia", "Liam", "Amelia", "Noah", "Sofia", "Mateo", "Hannah", "Lucas", "Priya", "Arjun",
	"Chloe", "Ethan", "Aisha", "Omar", "Grace", "Daniel", "Mei", "Kenji", "Elena", "Marco",
	"Zoe", "Samuel", "Fatima", "Jonas", "Ingrid", "Tomasz", "Chiara", "Diego", "Nadia", "Felix",
}

var lastNames = []string{
	"Hartley", "Okafor", "Lindqvist", "Moreau", "Castillo", "Nakamura", "Brennan", "Kowalski",
	"Fischer", "Patel", "Haddad", "Oyelaran", "Whitfield", "Romano", "Sandoval", "Achterberg",
	"Delacroix", "Murphy", "Novak", "Vasquez", "Lindgren", "Abernathy", "Costa", "Yilmaz",
}

var tickers = []string{"ACME", "NVLT", "GRNX", "ORBT", "KLYP", "TRVA", "MDLN", "QSTR", "HLIX", "BRKW"}

var games = []string{"Apex Legends", "Valorant", "Rocket League", "Fortnite", "Counter-Strike 2", "Overwatch 2"}

var gameMaps = []string{"Ascent", "Dust II", "Kings Canyon", "Haven", "Mirage", "Ilios"}

var plainLines = map[Kind][]template{
	KindAdvisory: {
		{who: whoStaff, text: "Morning {first}, quick update on your portfolio before the open."},
		{who: whoStaff, text: "We rebalanced the fixed-income sleeve last week, duration is a bit shorter now."},
		{who: whoStaff, text: "{ticker} reports on {day}; I'd keep the position size where it is until then."},
		{who: whoStaff, text: "The quarterly statement is in the client portal, let me know if anything looks off."},
		{who: whoStaff, text: "Past performance is no guarantee of future results, but the fund's risk profile fits your goals."},
		{who: whoStaff, text: "I can set up a call {day} at {hour}:00 to go through the proposal."},
		{who: whoStaff, text: "Your order for {amount} of the muni ladder was filled at the limit."},
		{who: whoCustomer, text: "Thanks, what do you think about adding some {ticker}?"},
		{who: whoCustomer, text: "Can we move {amount} from cash into the balanced fund?"},
		{who: whoCustomer, text: "I saw {ticker} dropped yesterday, should I be worried?"},
		{who: whoCustomer, text: "Works for me. Talk {day}."},
		{who: whoCustomer, text: "What are the fees on the managed account again?"},
		{who: whoAny, text: "Sounds good."},
		{who: whoAny, text: "Got it, thanks."},
	},
	KindSupport: {
		{who: whoStaff, text: "Hi, thanks for contacting support, how can I help today?"},
		{who: whoStaff, text: "I can see the payment on our side, it should clear within two business days."},
		{who: whoStaff, text: "I've reset the limit on your card, please try the transaction again."},
		{who: whoStaff, text: "Is there anything else I can help you with?"},
		{who: whoStaff, text: "Let me check that for you, one moment please."},
		{who: whoCustomer, text: "Hi, my card was declined at the supermarket this morning."},
		{who: whoCustomer, text: "The app keeps logging me out when I open the statements page."},
		{who: whoCustomer, text: "How long does a transfer to another bank usually take?"},
		{who: whoCustomer, text: "That worked, thank you!"},
		{who: whoCustomer, text: "Can I change the billing date to the 15th?"},
		{who: whoAny, text: "Thanks."},
	},
	KindGaming: {
		{who: whoAny, text: "gg everyone, that last round was close"},
		{who: whoAny, text: "anyone up for ranked on {map} tonight?"},
		{who: whoAny, text: "who's on {game} at {hour}?"},
		{who: whoAny, text: "lol that clutch was insane"},
		{who: whoAny, text: "need one more for the squad, {first} you in?"},
		{who: whoAny, text: "lag is terrible on this server again"},
		{who: whoAny, text: "new patch nerfed my main, rip"},
		{who: whoAny, text: "brb grabbing food"},
		{who: whoStaff, text: "Reminder: tournament check-in closes at {hour}:00, be on time."},
		{who: whoStaff, text: "Keep it friendly in here please."},
	},
	KindClinic: {
		{who: whoStaff, text: "Hello {first}, this is the clinic following up on your appointment."},
		{who: whoStaff, text: "Your lab results are ready; the doctor will review them with you at your visit."},
		{who: whoStaff, text: "Please remember to fast for 12 hours before the blood test."},
		{who: whoStaff, text: "We have an opening on {day} at {hour}:00, would that suit you?"},
		{who: whoStaff, text: "The prescription refill has been sent to your pharmacy."},
		{who: whoCustomer, text: "Thank you, {day} works for me."},
		{who: whoCustomer, text: "Is it normal to still feel dizzy after the new medication?"},
		{who: whoCustomer, text: "Can I reschedule my follow-up to next week?"},
		{who: whoCustomer, text: "Do I need a referral for the physio?"},
		{who: whoAny, text: "Thanks, see you then."},
	},
}

var ruleLines = map[Kind][]template{
	KindAdvisory: {
		{who: whoStaff, label: LabelOffChannel, text: "Easier if you text me on WhatsApp tonight, we can sort the {ticker} trade there."},
		{who: whoStaff, label: LabelOffChannel, text: "Let's move this to Signal, text me there and I'll send the details."},
		{who: whoCustomer, label: LabelOffChannel, text: "Can you just text me on WhatsApp? I never check this app."},
		{who: whoStaff, label: LabelPromissory, text: "This fund has guaranteed returns of {pct}% a year, there's basically zero risk."},
		{who: whoStaff, label: LabelPromissory, text: "I can guarantee you won't lose money on {ticker}, it's a sure thing."},
		{who: whoStaff, label: LabelPromissory, text: "Trust me, it's risk-free and the returns are guaranteed."},
		{who: whoStaff, label: LabelMNPI, text: "Keep this between us: the {ticker} merger is announced {day}, buy before the news."},
		{who: whoStaff, label: LabelMNPI, text: "A friend on the deal team says the {ticker} acquisition isn't public yet but closes next week."},
		{who: whoCustomer, label: LabelComplaint, text: "I want to file a formal complaint, nobody explained the fees on {ticker} to me."},
		{who: whoCustomer, label: LabelComplaint, text: "This is unacceptable, I'm going to report this to FINRA."},
	},
	KindSupport: {
		{who: whoCustomer, label: LabelComplaint, text: "I want to make a formal complaint, this is the third time my card has been blocked."},
		{who: whoCustomer, label: LabelComplaint, text: "Get me a supervisor, I'm going to complain to the ombudsman about this."},
		{who: whoCustomer, label: LabelHarassment, text: "You are useless, shut up and fix my account."},
		{who: whoStaff, label: LabelOffChannel, text: "Text me on WhatsApp and I can approve it faster outside the system."},
	},
	KindGaming: {
		{who: whoAny, label: LabelBanter, text: "gg, I'm going to kill you next round on {map}"},
		{who: whoAny, label: LabelBanter, text: "respawn and I'm going to kill you in the game again lol"},
		{who: whoAny, label: LabelBanter, text: "{first} I'm going to kill you in the next round, no mercy"},
		{who: whoAny, label: LabelBanter, text: "I'm going to kill you in the game tonight, bring your A team gg"},
		{who: whoCustomer, label: LabelThreat, text: "This isn't about the game. I know where you live and I'm going to kill you."},
	},
	KindClinic: {
		{who: whoCustomer, label: LabelPHI, pii: LabelEmail, text: "Can you send my lab results to my personal email {value}?"},
		{who: whoStaff, label: LabelPHI, text: "I'll forward the patient list to my gmail so I can finish the charts at home."},
	},
}

var piiKinds = map[Kind][]string{
	KindAdvisory: {LabelEmail, LabelPhone, LabelIBAN, LabelCard, LabelName},
	KindSupport:  {LabelEmail, LabelPhone, LabelCard, LabelName},
	KindGaming:   {LabelEmail, LabelPhone, LabelName},
	KindClinic:   {LabelMRN, LabelDOB, LabelEmail, LabelPhone, LabelName},
}

var piiLines = map[string][]template{
	LabelEmail: {
		{who: whoCustomer, text: "You can reach me at {value} if that's easier."},
		{who: whoAny, text: "my email is {value}"},
	},
	LabelPhone: {
		{who: whoCustomer, text: "Call me on {value} after five."},
		{who: whoAny, text: "my number is {value}"},
	},
	LabelCard: {
		{who: whoCustomer, text: "Please charge the card {value}, expiry 09/28."},
		{who: whoCustomer, text: "card number is {value}"},
	},
	LabelIBAN: {
		{who: whoCustomer, text: "Please wire the proceeds to {value}."},
		{who: whoCustomer, text: "My IBAN is {value}"},
	},
	LabelName: {
		{who: whoAny, text: "I spoke with {value} yesterday about this."},
		{who: whoAny, text: "Thanks {value}, appreciated."},
	},
	LabelMRN: {
		{who: whoStaff, text: "Patient MRN {value}: follow-up booked, results attached to the chart."},
		{who: whoStaff, text: "MRN: {value}, please confirm your date of visit."},
	},
	LabelDOB: {
		{who: whoStaff, text: "For verification, can you confirm your date of birth is {value}?"},
		{who: whoCustomer, text: "My DOB is {value}."},
	},
}
