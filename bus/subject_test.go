package bus_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/vigilhq/vigil/bus"
)

func TestParseMessageSubjectRejects(t *testing.T) {
	for _, s := range []string{
		"", "msg", "msg.1.a", "act.1.YQ.Yg", "msg.x.YQ.Yg", "msg.-1.YQ.Yg", "msg.1.YQ.Yg.extra", "msg.1.!!.Yg",
	} {
		if _, _, _, err := bus.ParseMessageSubject(s); err == nil {
			t.Errorf("ParseMessageSubject(%q) accepted a bad subject", s)
		}
	}
}

func TestIngestSubjectRoundTrip(t *testing.T) {
	for _, tenant := range []string{"acme", "a.b", "*", "银行"} {
		got, err := bus.TenantFromIngestSubject(bus.IngestSubject(tenant))
		if err != nil || got != tenant {
			t.Errorf("TenantFromIngestSubject(IngestSubject(%q)) = %q, %v", tenant, got, err)
		}
	}
	if _, err := bus.TenantFromIngestSubject("vigil.ingest.a.b"); err == nil {
		t.Error("TenantFromIngestSubject accepted two tokens")
	}
}

// FuzzSubjectRoundTrip checks that any tenant and conversation encode to
// legal, wildcard-free subject tokens that decode back to the same ids,
// and that the partition is stable and in range.
func FuzzSubjectRoundTrip(f *testing.F) {
	for _, s := range [][2]string{{"acme", "c1"}, {"a.b", "c*d>"}, {"银行", "💬"}, {"$JS", "$KV.x"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, tenant, conv string) {
		if tenant == "" || conv == "" || len(tenant) > 1024 || len(conv) > 1024 {
			return
		}
		subj := bus.StoredMessageSubject(tenant, conv, 8)
		if strings.ContainsAny(subj, " *>\t\r\n") || !utf8.ValidString(subj) {
			t.Fatalf("illegal subject %q", subj)
		}
		p, gotT, gotC, err := bus.ParseMessageSubject(subj)
		if err != nil || gotT != tenant || gotC != conv {
			t.Fatalf("round trip of %q = %q, %q, %v", subj, gotT, gotC, err)
		}
		if p != bus.PartitionOf(tenant, conv, 8) || p < 0 || p >= 8 {
			t.Fatalf("partition %d", p)
		}
	})
}

func TestActionTenantWildcard(t *testing.T) {
	for _, tenant := range []string{"acme", "a.b", "*"} {
		sub := bus.ActionSubject(tenant, "conv.1")
		if got, want := bus.ActionTenantWildcardOf(sub), bus.ActionTenantWildcard(tenant); got != want {
			t.Errorf("ActionTenantWildcardOf(%q) = %q, want %q", sub, got, want)
		}
	}
	for _, s := range []string{"", "act.x", "msg.a.b", "act.a.b.c"} {
		if got := bus.ActionTenantWildcardOf(s); got != "" {
			t.Errorf("ActionTenantWildcardOf(%q) = %q, want empty", s, got)
		}
	}
}
