package pii

import (
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/nyaruka/phonenumbers"
	"github.com/vigilhq/vigil"
)

// maxFuzzInput bounds fuzz inputs: chat messages are small, and big inputs
// only slow the fuzzer down.
const maxFuzzInput = 4096

var fuzzDir = Directory{
	Sender:       vigil.Participant{ID: "u-anna", DisplayName: "Anna Lee"},
	Participants: []vigil.Participant{{ID: "u-bob", DisplayName: "Robert Okafor"}, {ID: "u-jp", DisplayName: "José Pérez-Nuñez"}},
}

// fuzzSeeds are shared by every detector target (the committed corpora under
// testdata/fuzz hold more).
var fuzzSeeds = []string{
	"mail me at john.smith@example.com please",
	"card 4111 1111 1111 1111 exp 09/27, amex 3782 822463 10005",
	"wire to GB82 WEST 1234 5698 7654 32 or DE89370400440532013000",
	"call +44 20 7946 0958 or (212) 555-0187, order #2125550187",
	"SSN 123-45-6789, 666-12-3456, social security number 234567890",
	"account number 12345678, policy PLC-88421953, MRN 00123456",
	"server 192.168.1.20 and 2001:db8::8a2e:370:7334, at 10:30:45",
	"DOB: 03/14/1985, born 1985-03-14, meeting 03/14/2025",
	"I live at 742 Evergreen Terrace. 1600 Pennsylvania Ave NW",
	"ask Anna Lee and Dr. Watson; Robert Okafor agreed; José Pérez-Nuñez",
	"see ⟦EMAIL:0123456789abcdef⟧ and ⟦CARD:fedcba9876543210⟧4111111111111111",
	"⟦⟦NAME:0123456789abcdef⟧⟧ ⟦EMAIL:0123⟧ a@b.c @@ ::: +++ ((((1",
}

// checkFindings asserts the properties every detector keeps: spans inside
// the text, ordered, not overlapping, confidences in (0,1], kinds as asked,
// whole runes.
func checkFindings(t *testing.T, text string, fs []Finding, kinds ...Kind) {
	t.Helper()
	prev := 0
	for i, f := range fs {
		if f.Start < prev || f.End <= f.Start || f.End > len(text) {
			t.Fatalf("finding %d span [%d,%d) bad (prev end %d, len %d)", i, f.Start, f.End, prev, len(text))
		}
		prev = f.End
		if f.Confidence <= 0 || f.Confidence > 1 {
			t.Fatalf("finding %d confidence %v", i, f.Confidence)
		}
		if len(kinds) > 0 && !containsKind(kinds, f.Kind) {
			t.Fatalf("finding %d kind %s, want one of %v", i, f.Kind, kinds)
		}
		if utf8.ValidString(text) && !utf8.ValidString(text[f.Start:f.End]) {
			t.Fatalf("finding %d splits a rune", i)
		}
		if len(FindTokens(text[f.Start:f.End])) > 0 {
			t.Fatalf("finding %d overlaps a token", i)
		}
	}
}

func containsKind(ks []Kind, k Kind) bool {
	for _, x := range ks {
		if x == k {
			return true
		}
	}
	return false
}

func digitsOf(s string) []byte {
	var d []byte
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			d = append(d, s[i])
		}
	}
	return d
}

// fuzzDetector runs one kind's detector with a low threshold (to reach the
// low-confidence paths too) and checks its findings with valid.
func fuzzDetector(f *testing.F, k Kind, valid func(v string) bool) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	d, err := NewDetector(Policy{Kinds: []Kind{k}, MinConfidence: 0.01})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > maxFuzzInput {
			t.Skip()
		}
		fs := d.Detect(text, fuzzDir)
		checkFindings(t, text, fs, k)
		for _, x := range fs {
			if v := text[x.Start:x.End]; !valid(v) {
				t.Fatalf("%s finding %q fails its validation", k, v)
			}
		}
	})
}

func FuzzDetectEmail(f *testing.F) {
	fuzzDetector(f, KindEmail, func(v string) bool {
		at := strings.IndexByte(v, '@')
		dot := strings.LastIndexByte(v, '.')
		return at > 0 && strings.Count(v, "@") == 1 && dot > at+1 && len(v)-dot > 2
	})
}

func FuzzDetectPhone(f *testing.F) {
	fuzzDetector(f, KindPhone, func(v string) bool {
		reg := DefaultPhoneRegion
		if strings.HasPrefix(v, "+") {
			reg = ""
		}
		n, err := phonenumbers.Parse(v, reg)
		return err == nil && phonenumbers.IsValidNumber(n)
	})
}

func FuzzDetectCard(f *testing.F) {
	fuzzDetector(f, KindCard, func(v string) bool {
		d := digitsOf(v)
		return len(d) >= 13 && len(d) <= 19 && luhn(d)
	})
}

func FuzzDetectIBAN(f *testing.F) {
	fuzzDetector(f, KindIBAN, func(v string) bool { return ibanValid([]byte(keepAlnum(v, false))) })
}

func FuzzDetectSSN(f *testing.F) {
	fuzzDetector(f, KindSSN, func(v string) bool { return ssnValid(digitsOf(v)) })
}

func FuzzDetectAccount(f *testing.F) {
	fuzzDetector(f, KindAccount, func(v string) bool { return len(digitsOf(v)) >= 5 })
}

func FuzzDetectIP(f *testing.F) {
	fuzzDetector(f, KindIP, func(v string) bool {
		_, err := netip.ParseAddr(v)
		return err == nil
	})
}

func FuzzDetectDOB(f *testing.F) {
	fuzzDetector(f, KindDOB, func(v string) bool { n := len(digitsOf(v)); return n >= 4 && n <= 8 })
}

func FuzzDetectAddress(f *testing.F) {
	fuzzDetector(f, KindAddress, func(v string) bool { return isDigit(v[0]) && strings.Contains(v, " ") })
}

func FuzzDetectName(f *testing.F) {
	fuzzDetector(f, KindName, func(v string) bool {
		if isUpper(v[0]) {
			return true
		}
		// Lower-case: only directory names.
		first, _, _ := strings.Cut(v, " ")
		for _, p := range append([]vigil.Participant{fuzzDir.Sender}, fuzzDir.Participants...) {
			for _, w := range strings.Fields(p.DisplayName) {
				if strings.EqualFold(w, first) {
					return true
				}
			}
		}
		return false
	})
}

// FuzzTokenize checks the tokenizer's properties with an in-memory map in
// place of the vault: detokenize(tokenize(x)) == x, deterministic tokens,
// one value per token id, nothing detectable left, existing tokens kept.
func FuzzTokenize(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	d, err := NewDetector(Policy{MinConfidence: 0.01})
	if err != nil {
		f.Fatal(err)
	}
	key := []byte("fuzz-token-key-0123456789abcdef!")
	var tk Tokenizer
	f.Fuzz(func(t *testing.T, text string) {
		if len(text) > maxFuzzInput {
			t.Skip()
		}
		fs := d.Detect(text, fuzzDir)
		checkFindings(t, text, fs)
		var b batch
		out := tk.replace(d, newTokenHasher(key), text, fs, &fuzzDir, &b)

		// Deterministic.
		var b2 batch
		if out2 := tk.replace(d, newTokenHasher(key), text, d.Detect(text, fuzzDir), &fuzzDir, &b2); out2 != out {
			t.Fatalf("tokenize not deterministic:\n%q\n%q", out, out2)
		}
		// One normalised value per token id, and the vault entries hold the
		// raw values.
		vault := map[string]string{}
		norm := map[string]string{}
		for _, e := range b.entries {
			n := normalize(e.Kind, e.Value, d.pol.region)
			if prev, ok := norm[e.TokenID]; ok && prev != n {
				t.Fatalf("token %s for two values", e.TokenID)
			}
			norm[e.TokenID] = n
			if tokenID(key, e.Kind, n) != e.TokenID {
				t.Fatalf("token id of %s not reproducible", e.Kind)
			}
			vault[e.TokenID] = e.Value
		}
		// Existing tokens survive, new ones are added.
		in, got := FindTokens(text), FindTokens(out)
		if len(got) != len(in)+len(fs) {
			t.Fatalf("tokens in output = %d, want %d existing + %d new", len(got), len(in), len(fs))
		}
		// detokenize(tokenize(x)) == x: replace the new tokens by their
		// values; the input's own tokens stay.
		var sb strings.Builder
		prev, fi := 0, 0
		for _, tok := range got {
			sb.WriteString(out[prev:tok.Start])
			prev = tok.End
			if fi < len(fs) && out[tok.Start:tok.End] == formatToken(fs[fi].Kind, tok.ID) && tok.ID == tokenID(key, fs[fi].Kind, normalize(fs[fi].Kind, text[fs[fi].Start:fs[fi].End], d.pol.region)) {
				// The vault keeps one spelling per token: equal up to
				// normalisation.
				raw := text[fs[fi].Start:fs[fi].End]
				if normalize(fs[fi].Kind, vault[tok.ID], d.pol.region) != normalize(fs[fi].Kind, raw, d.pol.region) {
					t.Fatalf("vault value of %s is another value", tok)
				}
				sb.WriteString(raw)
				fi++
				continue
			}
			sb.WriteString(out[tok.Start:tok.End])
		}
		sb.WriteString(out[prev:])
		if sb.String() != text {
			t.Fatalf("detokenize(tokenize(x)) != x:\n x=%q\n t=%q\n d=%q", text, out, sb.String())
		}
		// Nothing detectable is left, and tokenizing again is a no-op.
		if again := d.Detect(out, fuzzDir); len(again) != 0 {
			t.Fatalf("tokenized output still has findings %v: %q", again, out)
		}
	})
}

func FuzzFindTokens(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		prev := 0
		for _, tk := range FindTokens(text) {
			if tk.Start < prev || tk.End > len(text) || text[tk.Start:tk.End] != tk.String() {
				t.Fatalf("token %+v does not round-trip", tk)
			}
			if p, ok := ParseToken(tk.String()); !ok || p != (Token{Kind: tk.Kind, ID: tk.ID, End: tk.End - tk.Start}) {
				t.Fatalf("ParseToken(%q) = %+v, %v", tk.String(), p, ok)
			}
			prev = tk.End
		}
	})
}
