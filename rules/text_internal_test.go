package rules

import (
	"fmt"
	"testing"
)

func TestTokenize(t *testing.T) {
	tests := []struct {
		text string
		want string // norm[start:end] ...
	}{
		{"Hello, World!", "hello[0:5] world[7:12]"},
		{"I'm K1LL-ing", "im[0:3] kill[4:8] ing[9:12]"},
		{"Résumé café", "resume[0:8] cafe[9:14]"},
		{"pay $100 @ 5pm", "pay[0:3] $100[4:8] @[9:10] spm[11:14]"},
		{"call ⟦PHONE:ab12⟧ now", "call[0:4] now[22:25]"},
		{"can’t", "cant[0:7]"},
		{"trailing' quote'", "trailing[0:8] quote[10:15]"},
		{"⟦open", ""},
		{"", ""},
	}
	for _, tc := range tests {
		var got string
		for i, w := range tokenize(tc.text) {
			if i > 0 {
				got += " "
			}
			got += fmt.Sprintf("%s[%d:%d]", w.norm, w.start, w.end)
		}
		if got != tc.want {
			t.Errorf("tokenize(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
}

func TestExprMapPosition(t *testing.T) {
	m := exprMap{segs: []exprSeg{{0, 4, 7}, {5, 5, 7}, {6, 6, 7}}}
	for _, tc := range []struct{ off, line, col int }{{0, 4, 7}, {2, 4, 9}, {5, 5, 7}, {8, 6, 9}} {
		if l, c := m.position(tc.off); l != tc.line || c != tc.col {
			t.Errorf("position(%d) = %d:%d, want %d:%d", tc.off, l, c, tc.line, tc.col)
		}
	}
}
