//go:build linux

package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// openPTY returns a pseudo-terminal's controlling side and its terminal,
// sized cols columns.
func openPTY(t *testing.T, cols uint16) (master, tty *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open pts: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := unix.IoctlSetWinsize(int(s.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Col: cols, Row: 50}); err != nil {
		t.Fatal(err)
	}
	return m, s
}

// TestTerminalWidth: on a terminal the table takes the terminal's width;
// piped, 100 columns.
func TestTerminalWidth(t *testing.T) {
	m, tty := openPTY(t, 150)
	if got := terminalWidth(tty); got != 150 {
		t.Errorf("terminalWidth(pty) = %d, want 150", got)
	}
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	if got := terminalWidth(f); got != 0 {
		t.Errorf("terminalWidth(file) = %d, want 0", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "demo", "-observe", "0")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	cmd.Stdout = tty
	var got bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&got, m); close(done) }()
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	longest := 0
	for _, l := range strings.Split(strings.ReplaceAll(got.String(), "\r\n", "\n"), "\n") {
		longest = max(longest, len([]rune(l)))
	}
	if longest <= 100 || longest > 150 {
		t.Errorf("on a 150-column terminal the longest line is %d columns, want within (100, 150]", longest)
	}
	piped := runBin(t, nil, "demo", "-observe", "0")
	for _, l := range strings.Split(piped.stdout, "\n") {
		if len([]rune(l)) > 100 {
			t.Errorf("piped: a line of %d columns: %q", len([]rune(l)), l)
		}
	}
}
