package textsafe

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/vmreconcile/vmreconcile/internal/textsafe/textsafetest"
)

func TestTerm(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"plain", "wk-1.example.com", "wk-1.example.com"},
		{"empty", "", ""},
		{"unicode kept", "Zürich-节点-🐳 e\u0301 ①", "Zürich-节点-🐳 e\u0301 ①"},
		{"replacement char kept", "a\ufffdb", "a\ufffdb"},
		{"backslash kept", `C:\x1b`, `C:\x1b`},
		{"csi", textsafetest.CSI, `wk\x1b[31mRED\x1b[0m-clone`},
		{"osc title and clipboard", textsafetest.OSC, `wk\x1b]0;owned\x07\x1b]52;c;cm0gLXJmIC8=\x07-2`},
		{"c1", textsafetest.C1, `wk\u009b2J\u0085-c1`},
		{"bidi", textsafetest.Bidi, `wk-1\u202eenolc\u202c\u2066x\u2069`},
		{"controls", textsafetest.Controls, `a\x00b\x08c\td\ne\rf\x7fg\u2028h`},
		{"not utf-8", textsafetest.Invalid, `wk\x9b2J\xff-raw`},
		{"truncated sequence", "ab\xe2\x80", `ab\xe2\x80`},
		{"surrogate half", "\xed\xa0\x80", `\xed\xa0\x80`},
		{"invisible", "a\u200bb\u00a0c\ufeffd\u00ade", `a\u200bb\u00a0c\ufeffd\u00ade`},
		{"tag character", "x\U000e0041", `x\U000e0041`},
		{"private use", "\ue000", `\ue000`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Term(tc.in); got != tc.want {
				t.Errorf("Term(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

// TestTermUnchangedIsSame: safe text is returned as it is, without a copy.
func TestTermUnchangedIsSame(t *testing.T) {
	s := strings.Repeat("wk-1 Zürich ", 10)
	if allocs := testing.AllocsPerRun(100, func() { _ = Term(s) }); allocs != 0 {
		t.Errorf("Term of safe text allocates %v times", allocs)
	}
}

func FuzzTerm(f *testing.F) {
	for _, s := range textsafetest.All {
		f.Add(s)
	}
	f.Add("Zürich-节点-🐳")
	f.Fuzz(func(t *testing.T, s string) {
		got := Term(s)
		textsafetest.Check(t, "Term", strings.ReplaceAll(got, "\n", `\n`))
		if strings.Contains(got, "\n") {
			t.Fatalf("Term(%q) = %q holds a newline", s, got)
		}
		if again := Term(got); again != got {
			t.Fatalf("not idempotent: Term(%q) = %q, Term of that = %q", s, got, again)
		}
		// Every printable character of s survives, in order.
		var kept []rune
		for i := 0; i < len(s); {
			r, size := utf8.DecodeRuneInString(s[i:])
			if !(r == utf8.RuneError && size == 1) && unicode.IsPrint(r) {
				kept = append(kept, r)
			}
			i += size
		}
		rest := got
		for _, r := range kept {
			j := strings.IndexRune(rest, r)
			if j < 0 {
				t.Fatalf("Term(%q) = %q lost %q", s, got, r)
			}
			rest = rest[j+utf8.RuneLen(r):]
		}
		if utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) && got != s {
			t.Fatalf("printable %q changed to %q", s, got)
		}
	})
}
