package evaluator

import (
	"errors"
	"testing"
)

// FuzzClassifierDecode feeds arbitrary response bodies to both protocols'
// decoders: they never panic and fail only with ErrClassifier.
func FuzzClassifierDecode(f *testing.F) {
	f.Add([]byte(`{"choices":[{"message":{"role":"assistant","content":"{\"label\":\"threat\",\"confidence\":0.9,\"reason\":\"r\"}"}}]}`))
	f.Add([]byte(`{"label":"threat","confidence":0.7}`))
	f.Add([]byte(`{"choices":[]}`))
	f.Add([]byte(`{"choices":[{"message":{"content":"not json"}}]}`))
	var cs []*Classifier
	for _, proto := range []string{ProtocolChatCompletions, ProtocolPlain} {
		c, err := NewClassifier(ClassifierConfig{URL: "http://127.0.0.1:1", Model: "m", Protocol: proto}, nil)
		if err != nil {
			f.Fatal(err)
		}
		cs = append(cs, c)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 1<<16 {
			return
		}
		for _, c := range cs {
			if _, err := c.decode(data); err != nil && !errors.Is(err, ErrClassifier) {
				t.Fatalf("%s decode error %v does not match ErrClassifier", c.cfg.Protocol, err)
			}
		}
	})
}

func TestTruncateUTF8(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{"abcdef", 3, "abc"},
		{"héllo", 2, "h"}, // é is two bytes: never split
		{"héllo", 3, "hé"},
	}
	for _, tc := range tests {
		if got := truncateUTF8(tc.in, tc.n); got != tc.want {
			t.Errorf("truncateUTF8(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}
