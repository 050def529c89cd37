package pii_test

import (
	"fmt"
	"testing"

	"github.com/vigilhq/vigil"
	"github.com/vigilhq/vigil/pii"
)

type found struct {
	Kind  pii.Kind
	Value string
}

func detectAll(t testing.TB, text string, dir pii.Directory) []found {
	t.Helper()
	d, err := pii.NewDetector(pii.Policy{})
	if err != nil {
		t.Fatal(err)
	}
	var out []found
	for _, f := range d.Detect(text, dir) {
		out = append(out, found{f.Kind, text[f.Start:f.End]})
	}
	return out
}

var testDir = pii.Directory{
	Sender:       vigil.Participant{ID: "u-anna", DisplayName: "Anna Lee"},
	Participants: []vigil.Participant{{ID: "u-bob", DisplayName: "Robert Okafor"}},
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name string
		text string
		want []found
	}{
		// e-mail
		{"email", "mail me at john.smith@example.com please", []found{{pii.KindEmail, "john.smith@example.com"}}},
		{"email mixed case subdomain", "(John.Smith+fx@Mail.Example.co.uk),", []found{{pii.KindEmail, "John.Smith+fx@Mail.Example.co.uk"}}},
		{"email digits local", "12345@corp.io", []found{{pii.KindEmail, "12345@corp.io"}}},
		{"email no tld", "user@localhost is fine", nil},
		{"email one-letter tld", "a@b.c", nil},
		{"handle", "ping @desk-ops now", nil},
		// cards
		{"visa spaced", "card 4111 1111 1111 1111 exp 09/27", []found{{pii.KindCard, "4111 1111 1111 1111"}}},
		{"visa dashed", "4111-1111-1111-1111", []found{{pii.KindCard, "4111-1111-1111-1111"}}},
		{"mastercard compact", "use 5500005555555559.", []found{{pii.KindCard, "5500005555555559"}}},
		{"amex 4-6-5", "amex 3782 822463 10005 ok", []found{{pii.KindCard, "3782 822463 10005"}}},
		{"card bad luhn", "card 4111 1111 1111 1112 exp", nil},
		{"card bad luhn compact", "4111111111111112", nil},
		{"luhn but unknown iin", "ref 9999999999999995", nil},
		// IBAN
		{"iban grouped", "wire to GB82 WEST 1234 5698 7654 32 today", []found{{pii.KindIBAN, "GB82 WEST 1234 5698 7654 32"}}},
		{"iban compact", "IBAN: DE89370400440532013000.", []found{{pii.KindIBAN, "DE89370400440532013000"}}},
		{"iban bad checksum", "GB82 WEST 1234 5698 7654 33", nil},
		{"iban wrong length", "DE8937040044053201300", nil},
		// phones
		{"phone e164", "call +44 20 7946 0958 now", []found{{pii.KindPhone, "+44 20 7946 0958"}}},
		{"phone us parens", "my cell is (212) 555-0187", []found{{pii.KindPhone, "(212) 555-0187"}}},
		{"phone us dotted", "212.555.0187", []found{{pii.KindPhone, "212.555.0187"}}},
		{"order number like phone", "order #2125550187 shipped", nil},
		{"order keyword", "your order 2125550187 shipped", nil},
		{"invoice ref", "invoice ref 2125550187", nil},
		{"too short", "room 5550187", nil},
		// SSN
		{"ssn dashed", "SSN 123-45-6789", []found{{pii.KindSSN, "123-45-6789"}}},
		{"ssn dashed no keyword", "it is 234-56-7890.", []found{{pii.KindSSN, "234-56-7890"}}},
		{"ssn area 000", "000-12-3456", nil},
		{"ssn area 666", "666-12-3456", nil},
		{"ssn area 9xx", "912-12-3456", nil},
		{"ssn group 00", "123-00-4567", nil},
		{"ssn serial 0000", "123-45-0000", nil},
		{"ssn compact keyword", "social security number 234567890", []found{{pii.KindSSN, "234567890"}}},
		{"ssn compact no keyword", "batch 234567890 done", nil},
		// accounts
		{"account", "account number 12345678", []found{{pii.KindAccount, "12345678"}}},
		{"acct", "acct: 9988-7766-55", []found{{pii.KindAccount, "9988-7766-55"}}},
		{"mrn", "MRN 00123456", []found{{pii.KindAccount, "00123456"}}},
		{"policy alnum", "policy PLC-88421953 renews", []found{{pii.KindAccount, "PLC-88421953"}}},
		{"member id", "Member ID: AB1234567", []found{{pii.KindAccount, "AB1234567"}}},
		{"number without keyword", "I have 12345678 reasons", nil},
		{"alnum without keyword", "see PLC-88421953", nil},
		// IP
		{"ipv4", "server 192.168.1.20 is down", []found{{pii.KindIP, "192.168.1.20"}}},
		{"ipv6", "from 2001:db8::8a2e:370:7334 today", []found{{pii.KindIP, "2001:db8::8a2e:370:7334"}}},
		{"ipv6 link local", "fe80::1ff:fe23:4567:890a.", []found{{pii.KindIP, "fe80::1ff:fe23:4567:890a"}}},
		{"version", "version 1.2.3 shipped", nil},
		{"bad octet", "999.1.1.1", nil},
		{"time", "at 10:30:45 today", nil},
		{"mac", "mac 00:1a:2b:3c:4d:5e", nil},
		// DOB
		{"dob slash", "DOB: 03/14/1985", []found{{pii.KindDOB, "03/14/1985"}}},
		{"dob iso", "she was born 1985-03-14", []found{{pii.KindDOB, "1985-03-14"}}},
		{"date no keyword", "meeting on 03/14/2025", nil},
		{"dob invalid date", "DOB 13/45/1985", nil},
		// address
		{"address", "I live at 742 Evergreen Terrace.", []found{{pii.KindAddress, "742 Evergreen Terrace."}}},
		{"address nw", "1600 Pennsylvania Ave NW, Washington", []found{{pii.KindAddress, "1600 Pennsylvania Ave NW"}}},
		{"not address", "I have 3 Apples and 2 Pears", nil},
		// names
		{"directory full name", "ask Anna Lee about it", []found{{pii.KindName, "Anna Lee"}}},
		{"directory first name", "thanks Robert!", []found{{pii.KindName, "Robert"}}},
		{"directory lowercase display", "Okafor agreed", []found{{pii.KindName, "Okafor"}}},
		{"honorific", "Dr. Watson said so", []found{{pii.KindName, "Watson"}}},
		{"honorific two words", "Mrs Jane Porter called", []found{{pii.KindName, "Jane Porter"}}},
		{"name inside word", "Annapolis office", nil},
		{"name as email local part", "Anna@corp.com", []found{{pii.KindEmail, "Anna@corp.com"}}},
		// mixtures and tokens
		{"several", "Anna: card 5500005555555559, mail anna.lee@bank.com",
			[]found{{pii.KindName, "Anna"}, {pii.KindCard, "5500005555555559"}, {pii.KindEmail, "anna.lee@bank.com"}}},
		{"token skipped", "see ⟦EMAIL:0123456789abcdef⟧ and ⟦CARD:fedcba9876543210⟧", nil},
		{"digits after token", "⟦CARD:fedcba9876543210⟧4111111111111111", []found{{pii.KindCard, "4111111111111111"}}},
		{"plain chat", "Hi team, the Q3 numbers look fine. Let's sync at 3pm.", nil},
		{"empty", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := detectAll(t, tc.text, testDir)
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("Detect(%q) = %v, want %v", tc.text, got, tc.want)
			}
		})
	}
}

func TestDetectPolicy(t *testing.T) {
	text := "mail a@example.com, card 4111111111111111, call (212) 555-0187"
	tests := []struct {
		name string
		pol  pii.Policy
		want []pii.Kind
	}{
		{"all", pii.Policy{}, []pii.Kind{pii.KindEmail, pii.KindCard, pii.KindPhone}},
		{"email only", pii.Policy{Kinds: []pii.Kind{pii.KindEmail}}, []pii.Kind{pii.KindEmail}},
		{"high threshold for phones", pii.Policy{KindMinConfidence: map[pii.Kind]float64{pii.KindPhone: 0.95}}, []pii.Kind{pii.KindEmail, pii.KindCard}},
		{"threshold above all", pii.Policy{MinConfidence: 1}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := pii.NewDetector(tc.pol)
			if err != nil {
				t.Fatal(err)
			}
			var got []pii.Kind
			for _, f := range d.Detect(text, pii.Directory{}) {
				got = append(got, f.Kind)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("kinds = %v, want %v", got, tc.want)
			}
		})
	}
	if _, err := pii.NewDetector(pii.Policy{Kinds: []pii.Kind{"shoe-size"}}); err == nil {
		t.Error("NewDetector(unknown kind) = nil error")
	}
	if _, err := pii.NewDetector(pii.Policy{MinConfidence: 1.5}); err == nil {
		t.Error("NewDetector(min 1.5) = nil error")
	}
}
