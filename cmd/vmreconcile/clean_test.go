package main

import "testing"

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"wk-01":                              "wk-01",
		"wk-01 (original), ünïcødé":          "wk-01 (original), ünïcødé",
		"evil\x1b[2J\x1b[Hok":                `evil\x1b[2J\x1b[Hok`,
		"two\nlines\rcr\ttab":                `two\x0alines\x0dcr\x09tab`,
		"txt.exe\u202egnp.":                  `txt.exe\u202egnp.`,
		"bad\xffutf8":                        `bad\xffutf8`,
		"c1\u009bcontrol":                    `c1\u009bcontrol`,
		"isolate\u2066x\u2069 and lrm\u200e": `isolate\u2066x\u2069 and lrm\u200e`,
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
}
