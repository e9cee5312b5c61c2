// Package textsafe makes text that comes from guests, swarm nodes and vCenter
// safe to print on a terminal.
//
// A hostname, a certificate subject or a VM name is chosen by whoever controls
// the machine it comes from. Printed raw, ESC sequences in it can recolour or
// rewrite the report, set the window title, write the clipboard (OSC 52) or
// hide text; bidi overrides can make "wk-1-clone" read as another name. Term
// turns every such character into a visible escape and leaves ordinary text,
// including non-ASCII letters, alone. Use it where text is printed for a
// person; JSON output keeps the exact value.
package textsafe

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

const hex = "0123456789abcdef"

// Term returns s with every character a terminal could act on, or that would
// hide or reorder text, replaced by a visible Go-style escape:
//
//   - C0 controls and DEL: \t, \n, \r, else \xNN (ESC is \x1b, so an ESC
//     sequence prints as the text \x1b[31m);
//   - bytes that are not UTF-8: \xNN;
//   - C1 controls, bidi controls and other format, separator or unassigned
//     characters (anything unicode.IsPrint rejects, so also U+00A0 and
//     U+200B): \u0085, \u202e, \U000e0001.
//
// Letters, marks, numbers, punctuation, symbols and the ASCII space are kept.
// The result holds only printable characters, so Term(Term(s)) == Term(s).
// A backslash is kept as it is: the output is for reading, not for parsing.
func Term(s string) string {
	i := 0
	for i < len(s) {
		if c := s[i]; c < utf8.RuneSelf {
			if c < 0x20 || c == 0x7f {
				break
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || !unicode.IsPrint(r) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			writeHex(&b, `\x`, uint32(s[i]), 2)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < utf8.RuneSelf && (r < 0x20 || r == 0x7f):
			writeHex(&b, `\x`, uint32(r), 2)
		case r < utf8.RuneSelf || unicode.IsPrint(r):
			b.WriteString(s[i : i+size])
		case r <= 0xffff:
			writeHex(&b, `\u`, uint32(r), 4)
		default:
			writeHex(&b, `\U`, uint32(r), 8)
		}
		i += size
	}
	return b.String()
}

func writeHex(b *strings.Builder, prefix string, v uint32, digits int) {
	b.WriteString(prefix)
	for shift := 4 * (digits - 1); shift >= 0; shift -= 4 {
		b.WriteByte(hex[v>>uint(shift)&0xf])
	}
}
