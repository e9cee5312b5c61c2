//go:build !unix

package main

import "os"

// terminalWidth is 0 (unknown) where there is no TIOCGWINSZ: tables use the
// default width.
func terminalWidth(f *os.File) int { return 0 }
