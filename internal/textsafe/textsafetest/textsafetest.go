// Package textsafetest holds hostile strings and a checker for tests of
// everything that prints text from guests, nodes or vCenter on a terminal.
package textsafetest

import (
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// Values a guest, a node or vCenter could send as a hostname, a certificate
// CN/OU/O, a VM name or an error message. All are valid UTF-8, so JSON can
// carry them exactly.
const (
	// CSI recolours the rest of the line (issue 9's reproduction).
	CSI = "wk\x1b[31mRED\x1b[0m-clone"
	// OSC sets the window title and writes the clipboard (OSC 52), ended by BEL.
	OSC = "wk\x1b]0;owned\x07\x1b]52;c;cm0gLXJmIC8=\x07-2"
	// C1 is the one-character CSI (U+009B) and NEL (U+0085).
	C1 = "wk\u009b2J\u0085-c1"
	// Bidi reverses what follows: "wk-1" then "clone" read backwards.
	Bidi = "wk-1\u202eenolc\u202c\u2066x\u2069"
	// Controls are the remaining C0 controls, DEL and line breaks.
	Controls = "a\x00b\x08c\td\ne\rf\x7fg\u2028h"
)

// Invalid is not UTF-8: the lone bytes of an 8-bit CSI and 0xff. JSON cannot
// carry these bytes (encoding/json turns them into U+FFFD).
const Invalid = "wk\x9b2J\xff-raw"

// All is every hostile value, Invalid included.
var All = []string{CSI, OSC, C1, Bidi, Controls, Invalid}

// Valid is every hostile value that is valid UTF-8.
var Valid = []string{CSI, OSC, C1, Bidi, Controls}

// Check fails t if out holds anything but newlines and printable characters:
// a byte that is not UTF-8, a C0 or C1 control, DEL, a bidi or other format
// character, or a line or paragraph separator.
func Check(t testing.TB, what, out string) {
	t.Helper()
	for i := 0; i < len(out); {
		r, size := utf8.DecodeRuneInString(out[i:])
		if (r == utf8.RuneError && size == 1) || (r != '\n' && !unicode.IsPrint(r)) {
			line := strings.Count(out[:i], "\n") + 1
			t.Errorf("%s: raw %q at byte %d (line %d):\n%s", what, out[i:i+size], i, line, out)
			return
		}
		i += size
	}
}
